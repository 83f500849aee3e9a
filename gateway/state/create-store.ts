/**
 * Picks the StateStore for a configuration: Redis when `state.redisUrl` is set (replicas share
 * state; quota reserved in blocks unless `state.quotaBlocks` is off); otherwise, in a worker of
 * `server.workers > 1`, the primary's store through the relay (the workers of one host share
 * state); otherwise one process's memory.
 */
import type { Logger } from 'pino';
import { isClusterWorker } from '../cluster.js';
import type { StoreSettings } from '../config.js';
import { MemoryStore } from './memory-store.js';
import { RedisStore } from './redis-store.js';
import { primaryChannel } from './relay-ipc.js';
import { RelayStore } from './relay-store.js';
import { ReservingStore } from './reserving-store.js';
import type { StateStore } from './store.js';

/** Never fails for want of Redis: a RedisStore starts unhealthy and reconnects by itself. */
export async function createStore(cfg: StoreSettings, log: Logger): Promise<StateStore> {
  if (cfg.redisUrl !== undefined) {
    const redis = await RedisStore.connect(cfg, log);
    // Quota is reserved in blocks and handed out locally unless exact per-request charges are asked for.
    return cfg.quotaBlocks ? new ReservingStore(redis) : redis;
  }
  if (isClusterWorker()) {
    // The primary holds the one store of this host (gateway/cluster.ts starts it for every worker).
    log.debug('no state.redisUrl: state is relayed to the primary and shared by its workers');
    return new RelayStore(primaryChannel(), { timeoutMs: cfg.commandTimeoutMs, log });
  }
  log.debug('no state.redisUrl: state is per process');
  return new MemoryStore();
}
