/**
 * The StateStore shared by replicas, on Redis (ioredis). It composes, as undici composes a client
 * by role: the connections and the deadline of every command (redis-connection.ts), pub/sub
 * (redis-pubsub.ts), the Lua scripts (redis-scripts.ts and beside it), the key layout
 * (redis-keys.ts), batched charges (redis-charges.ts) and records (redis-records.ts). What is left
 * here is small enough to read at once: leases, reservations, logs and bucket counters.
 *
 * Every call has a deadline of `commandTimeoutMs` and fails with StoreUnavailableError rather than
 * wait on a Redis that is gone; the store starts without Redis (unhealthy) and reconnects by itself.
 */
import type { Logger } from 'pino';
import type { StoreSettings } from '../config.js';
import { checkBuckets, checkCharge, checkLease, checkScope } from './checks.js';
import { checkLogRead, GENESIS, logEntryJson } from './log-chain.js';
import { ChargeBatcher } from './redis-charges.js';
import { RedisConnection } from './redis-connection.js';
import { RedisKeys } from './redis-keys.js';
import { RedisPubSub } from './redis-pubsub.js';
import { RECORDS_BATCH, RedisRecords } from './redis-records.js';
import { integers, withScripts, type ScriptedRedis } from './redis-scripts.js';
import {
  StoreUnavailableError, type ChargeResult, type CompareAndSetResult, type CounterCharge, type LeaseResult, type LogEntry, type LogHead,
  type RecordOptions, type StateStore, type VersionedRecord,
} from './store.js';

/** What one counter gave a reservation: `granted` units, its count after, ms until its window resets. */
export interface Reservation {
  readonly allowed: boolean;
  readonly counters: readonly { readonly granted: number; readonly count: number; readonly resetMs: number }[];
}

export class RedisStore implements StateStore {
  readonly kind = 'redis';
  readonly #conn: RedisConnection;
  readonly #redis: ScriptedRedis;
  readonly #keys: RedisKeys;
  readonly #pubsub: RedisPubSub;
  readonly #charges: ChargeBatcher;
  readonly #records: RedisRecords;

  private constructor(cfg: StoreSettings, log: Logger) {
    // Checked before a connection is opened, so a refused configuration leaves nothing behind.
    this.#keys = new RedisKeys(cfg.keyPrefix);
    this.#conn = new RedisConnection(cfg, log);
    this.#redis = withScripts(this.#conn.commands);
    this.#pubsub = new RedisPubSub(this.#conn, this.#keys);
    this.#charges = new ChargeBatcher(this.#conn, this.#redis, this.#keys);
    this.#records = new RedisRecords(this.#conn, this.#redis, this.#keys);
  }

  /**
   * Connects, waiting at most `connectTimeoutMs`. Without Redis it still returns a store: unhealthy,
   * failing every call with StoreUnavailableError, and reconnecting in the background.
   */
  static async connect(cfg: StoreSettings, log: Logger): Promise<RedisStore> {
    const store = new RedisStore(cfg, log);
    if (await store.#conn.ready(cfg.connectTimeoutMs)) {
      store.#conn.log.info('connected to redis');
    } else {
      store.#conn.log.warn('redis is not answering; starting without it (unhealthy) and reconnecting in the background');
    }
    return store;
  }

  charge(scope: string, counters: readonly CounterCharge[], cost: number): Promise<ChargeResult> {
    return this.#charges.charge(scope, counters, cost);
  }

  /**
   * Takes, from every counter, its `needs[i]` (all or nothing) and up to `wants[i]` if there is
   * room: quota a replica then hands out locally (gateway/state/reserving-store.ts).
   */
  async reserve(scope: string, counters: readonly CounterCharge[], needs: readonly number[], wants: readonly number[]): Promise<Reservation> {
    checkCharge(counters, 0);
    const n = counters.length;
    const keysThenArgs = new Array<string | number>(5 * n);
    for (let i = 0; i < n; i++) {
      const c = counters[i];
      const need = needs[i] ?? 0;
      keysThenArgs[i] = this.#keys.key(scope, 'c', c.key);
      keysThenArgs[n + 4 * i] = c.limit;
      keysThenArgs[n + 4 * i + 1] = c.windowMs;
      keysThenArgs[n + 4 * i + 2] = need;
      keysThenArgs[n + 4 * i + 3] = Math.max(need, wants[i] ?? need);
    }
    const r = integers(await this.#conn.call('reserve', () => this.#redis.bwReserve(n, ...keysThenArgs)), 1 + 3 * n, 'reserve');
    const out = new Array<{ granted: number; count: number; resetMs: number }>(n);
    for (let i = 0; i < n; i++) out[i] = { granted: r[1 + 3 * i], count: r[2 + 3 * i], resetMs: r[3 + 3 * i] };
    return { allowed: r[0] === 1, counters: out };
  }

  async acquire(scope: string, key: string, id: string, limit: number, ttlMs: number): Promise<LeaseResult> {
    checkLease(limit, ttlMs);
    const k = this.#keys.key(scope, 'l', key);
    const reply = await this.#conn.call('acquire', () => this.#redis.bwAcquire(k, id, limit, ttlMs));
    const r = integers(reply, 2, 'acquire');
    return { granted: r[0] === 1, held: r[1] };
  }

  async release(scope: string, key: string, id: string): Promise<void> {
    const k = this.#keys.key(scope, 'l', key);
    await this.#conn.call('release', () => this.#redis.zrem(k, id));
  }

  get(scope: string, key: string): Promise<unknown> {
    return this.#records.get(scope, key);
  }

  set(scope: string, key: string, value: unknown, opts?: RecordOptions): Promise<void> {
    return this.#records.set(scope, key, value, opts);
  }

  delete(scope: string, key: string): Promise<void> {
    return this.#records.delete(scope, key);
  }

  read(scope: string, key: string): Promise<VersionedRecord | undefined> {
    return this.#records.read(scope, key);
  }

  compareAndSet(scope: string, key: string, expectedRevision: number, value: unknown, opts?: RecordOptions): Promise<CompareAndSetResult> {
    return this.#records.compareAndSet(scope, key, expectedRevision, value, opts);
  }

  records(scope: string): Promise<Map<string, unknown>> {
    return this.#records.records(scope);
  }

  async forget(scope: string, counterKeys: readonly string[]): Promise<number> {
    let n = 0;
    for (let i = 0; i < counterKeys.length; i += RECORDS_BATCH) {
      const keys = counterKeys.slice(i, i + RECORDS_BATCH).map((k) => this.#keys.key(scope, 'c', k));
      n += await this.#conn.call('forget', () => this.#redis.del(keys));
    }
    return n;
  }

  async append(scope: string, entry: unknown): Promise<LogHead> {
    const json = logEntryJson(entry);
    const [entries, head] = this.#logKeys(scope);
    const reply = await this.#conn.call('append', () => this.#redis.bwAppend(entries, head, json));
    if (Array.isArray(reply) && reply.length === 2 && typeof reply[0] === 'number' && typeof reply[1] === 'string') return { seq: reply[0], hash: reply[1] };
    throw new StoreUnavailableError('redis append returned an unexpected reply');
  }

  async readLog(scope: string, fromSeq: number, limit: number): Promise<LogEntry[]> {
    const n = checkLogRead(fromSeq, limit);
    const [entries, head] = this.#logKeys(scope);
    if (n === 0) return [];
    const reply = await this.#conn.call('readLog', () => this.#redis.bwReadLog(entries, head, fromSeq, n));
    if (!Array.isArray(reply)) throw new StoreUnavailableError('redis readLog returned an unexpected reply');
    // An entry missing from Redis is left out rather than hidden: verifyLog reports the gap.
    return reply.filter((text): text is string => typeof text === 'string').map((text) => logEntry(text, scope));
  }

  async logHead(scope: string): Promise<LogHead> {
    const [, head] = this.#logKeys(scope);
    const [seq, hash] = await this.#conn.call('logHead', () => this.#redis.hmget(head, 'seq', 'hash'));
    return seq === null || hash === null ? { seq: 0, hash: GENESIS } : { seq: Number(seq), hash };
  }

  async add(scope: string, key: string, buckets: Readonly<Record<string, number>>, ttlMs: number): Promise<Record<string, number>> {
    checkBuckets(key, buckets, ttlMs);
    const k = this.#keys.key(scope, 'b', key);
    const entries = Object.entries(buckets);
    const reply = await this.#conn.call('add', () => this.#redis.bwAddBuckets(k, ttlMs, ...entries.flat()));
    const totals = integers(reply, entries.length, 'add');
    // fromEntries, not assignment: a bucket named __proto__ stays a bucket.
    return Object.fromEntries(entries.map(([name], i) => [name, totals[i]]));
  }

  async sum(scope: string, keys: readonly string[]): Promise<Record<string, number>> {
    checkScope(scope);
    if (keys.length === 0) return {};
    const ks = keys.map((k) => this.#keys.key(scope, 'b', k));
    const reply = await this.#conn.call('sum', () => this.#redis.bwSumBuckets(ks.length, ...ks));
    if (!Array.isArray(reply) || reply.length % 2 !== 0) throw new StoreUnavailableError('redis sum returned an unexpected reply');
    const total = new Map<string, number>();
    for (let i = 0; i < reply.length; i += 2) {
      const [name, n] = [reply[i], reply[i + 1]];
      if (typeof name !== 'string' || typeof n !== 'number') throw new StoreUnavailableError('redis sum returned an unexpected reply');
      total.set(name, n);
    }
    // fromEntries, not assignment: a bucket named __proto__ stays a bucket.
    return Object.fromEntries(total);
  }

  publish(channel: string, message: string): Promise<void> {
    return this.#pubsub.publish(channel, message);
  }

  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    return this.#pubsub.subscribe(channel, onMessage);
  }

  healthy(): boolean {
    return this.#conn.healthy();
  }

  /** Quits both connections, waiting at most about commandTimeoutMs, then drops them. */
  async close(): Promise<void> {
    if (this.#conn.closed) return;
    this.#pubsub.clear();
    await this.#conn.close();
  }

  #logKeys(scope: string): [string, string] {
    return [this.#keys.key(scope, 'j'), this.#keys.key(scope, 'h')];
  }
}

/** An entry as stored by APPEND_LUA (redis-log-scripts.ts). */
function logEntry(text: string, scope: string): LogEntry {
  let e: unknown;
  try {
    e = JSON.parse(text);
  } catch (err) {
    throw new StoreUnavailableError(`an entry of log ${scope} is not JSON`, { cause: err });
  }
  const { seq, at, prev, hash } = (typeof e === 'object' && e !== null ? e : {}) as Partial<Record<keyof LogEntry, unknown>>;
  if (typeof seq === 'number' && typeof at === 'number' && typeof prev === 'string' && typeof hash === 'string' && 'entry' in (e as object)) {
    return e as LogEntry;
  }
  throw new StoreUnavailableError(`an entry of log ${scope} is not a log entry`);
}
