/**
 * Picks the StateStore for a configuration: Redis when `state.redisUrl` is set (replicas share
 * state; quota reserved in blocks unless `state.quotaBlocks` is off), otherwise one process's memory.
 */
import type { Logger } from 'pino';
import type { StoreSettings } from '../config.js';
import { MemoryStore } from './memory-store.js';
import { RedisStore } from './redis-store.js';
import { ReservingStore } from './reserving-store.js';
import type { StateStore } from './store.js';

/** Never fails for want of Redis: a RedisStore starts unhealthy and reconnects by itself. */
export async function createStore(cfg: StoreSettings, log: Logger): Promise<StateStore> {
  if (cfg.redisUrl !== undefined) {
    const redis = await RedisStore.connect(cfg, log);
    // Quota is reserved in blocks and handed out locally unless exact per-request charges are asked for.
    return cfg.quotaBlocks ? new ReservingStore(redis) : redis;
  }
  log.debug('no state.redisUrl: state is per process');
  return new MemoryStore();
}
