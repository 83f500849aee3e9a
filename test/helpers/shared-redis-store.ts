/**
 * RedisStores for a test file on the shared Redis (127.0.0.1:6379): the file gets its own key
 * prefix, and every key under it is removed when the file's tests end.
 */
import { randomUUID } from 'node:crypto';
import { after } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { StoreSettings } from '../../gateway/config.js';
import { RedisStore } from '../../gateway/state/redis-store.js';
import { sharedTestRedis } from './redis.js';

export const silent = pino({ level: 'silent' });

export interface SharedRedisStores {
  /** Every key the file writes starts with it. */
  readonly prefix: string;
  config(url: string, overrides?: Partial<StoreSettings>): StoreSettings;
  /** A client of the shared Redis, as one replica has. */
  replica(): Promise<RedisStore>;
}

/** Call at the top of a test file: it registers the clean-up with `after`. */
export function sharedRedisStores(commandTimeoutMs: number): SharedRedisStores {
  const prefix = `bwtest-${randomUUID().slice(0, 8)}:`;
  const config = (url: string, overrides: Partial<StoreSettings> = {}): StoreSettings => ({
    redisUrl: url, keyPrefix: prefix, commandTimeoutMs, connectTimeoutMs: 1000, quotaBlocks: false, reconcileMs: 5000, ...overrides,
  });
  after(async () => {
    const raw = new Redis(await sharedTestRedis(), { lazyConnect: true });
    await raw.connect();
    const keys = await raw.keys(`${prefix}*`);
    if (keys.length > 0) await raw.del(...keys);
    await raw.quit();
  });
  return { prefix, config, replica: async () => RedisStore.connect(config(await sharedTestRedis()), silent) };
}
