/**
 * Picks the StateStore for a configuration: Redis when `state.redisUrl` is set (replicas share
 * state), otherwise one process's memory.
 */
import type { Logger } from 'pino';
import type { StateConfig } from '../config.js';
import { MemoryStore } from './memory-store.js';
import { RedisStore } from './redis-store.js';
import type { StateStore } from './store.js';

/** Never fails for want of Redis: a RedisStore starts unhealthy and reconnects by itself. */
export async function createStore(cfg: StateConfig, log: Logger): Promise<StateStore> {
  if (cfg.redisUrl !== undefined) return RedisStore.connect(cfg, log);
  log.debug('no state.redisUrl: state is per process');
  return new MemoryStore();
}
