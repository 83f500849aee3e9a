/**
 * The StateStore shared by replicas, on Redis (ioredis).
 *
 * It must never make a request wait on a Redis that is gone: there is no offline queue (a command
 * while disconnected fails at once), every call has a deadline of `commandTimeoutMs`, and every
 * failure becomes a `StoreUnavailableError` that callers answer with their failMode. It starts
 * without Redis (unhealthy) and keeps reconnecting with a capped back-off.
 *
 * Keys: `${prefix}{${scope}}:${kind}:${key}`, kind c (counter), l (leases) or r (record). The scope
 * is the hash tag, so every key of one call sits in one Redis Cluster slot; the kind keeps a
 * counter, a lease set and a record of the same name apart, as in MemoryStore.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { StoreSettings } from '../config.js';
import { ACQUIRE_LUA, CHARGE_LUA, RESERVE_LUA } from './redis-scripts.js';
import { StoreUnavailableError, type ChargeResult, type CounterCharge, type LeaseResult, type StateStore } from './store.js';
import { checkCharge, checkLease, toJson } from './checks.js';

interface PendingCharge {
  readonly counters: readonly CounterCharge[];
  readonly cost: number;
  readonly resolve: (r: ChargeResult) => void;
  readonly reject: (e: unknown) => void;
}

/** The commands `defineCommand` adds (EVALSHA, falling back to EVAL on NOSCRIPT). */
interface ScriptedRedis extends Redis {
  bwCharge(numKeys: number, ...keysThenArgs: (string | number)[]): Promise<unknown>;
  bwAcquire(key: string, id: string, limit: number, ttlMs: number): Promise<unknown>;
  bwReserve(numKeys: number, ...keysThenArgs: (string | number)[]): Promise<unknown>;
}

/** What one counter gave a reservation: `granted` units, its count after, ms until its window resets. */
export interface Reservation {
  readonly allowed: boolean;
  readonly counters: readonly { readonly granted: number; readonly count: number; readonly resetMs: number }[];
}

/** Back-off between reconnect attempts: 100 ms, 200 ms, … capped at 2 s so recovery is noticed quickly. */
const RETRY_CAP_MS = 2000;
const retryStrategy = (attempt: number): number => Math.min(attempt * 100, RETRY_CAP_MS);

type Handler = (message: string) => void;

/** SCAN's COUNT hint and the MGET/DEL batch size of records() and forget(). */
const RECORDS_BATCH = 500;

/** A literal for a SCAN MATCH pattern: a scope may hold glob characters (`*`, `?`, `[`, a backslash). */
function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}

export class RedisStore implements StateStore {
  readonly kind = 'redis';
  readonly #redis: ScriptedRedis;
  /** Subscriber mode takes a connection over, so pub/sub has its own. */
  readonly #sub: Redis;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #log: Logger;
  /** Prefixed channel → handlers. Ours, not ioredis's, so a subscription made while Redis is down takes effect once it is back. */
  readonly #channels = new Map<string, Set<Handler>>();
  /** Prefixed channel → its SUBSCRIBE in flight, which later subscribers to the channel wait for too. */
  readonly #subscribing = new Map<string, Promise<void>>();
  #probing = false;
  /** Set when a command timed out (the server is stalled though the socket is open), cleared by the next answer. */
  #stalled = false;
  #closed = false;

  /** Charges waiting for this turn's flush, by scope (one script call per scope). */
  #batches = new Map<string, PendingCharge[]>();
  #flushScheduled = false;

  private constructor(cfg: StoreSettings, log: Logger) {
    const url = cfg.redisUrl;
    if (url === undefined) throw new Error('RedisStore needs state.redisUrl');
    if (/[{}]/.test(cfg.keyPrefix)) throw new Error(`state.keyPrefix must not contain { or } (it would break the {scope} hash tag): ${cfg.keyPrefix}`);
    this.#prefix = cfg.keyPrefix;
    this.#timeoutMs = cfg.commandTimeoutMs;
    this.#log = log.child({ component: 'redis-store', redis: redacted(url) });
    const options: RedisOptions = {
      // No queue while disconnected: a command fails at once rather than piling up behind an outage.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // A charge already reported as failed must not be replayed after a reconnect.
      autoResendUnfulfilledCommands: false,
      autoResubscribe: false,
      // Only a backstop: #call's own deadline (which tells lag from silence) decides first.
      commandTimeout: cfg.commandTimeoutMs * 4,
      connectTimeout: cfg.connectTimeoutMs,
      retryStrategy,
      // Concurrent requests' commands share one write and one round trip.
      enableAutoPipelining: true,
    };
    this.#redis = new Redis(url, options) as ScriptedRedis;
    this.#redis.defineCommand('bwCharge', { lua: CHARGE_LUA });
    this.#redis.defineCommand('bwAcquire', { lua: ACQUIRE_LUA, numberOfKeys: 1 });
    this.#redis.defineCommand('bwReserve', { lua: RESERVE_LUA });
    this.#sub = this.#redis.duplicate();
    this.#watch(this.#redis, 'commands');
    this.#watch(this.#sub, 'subscriber');
    this.#sub.on('ready', () => this.#resubscribe());
    this.#sub.on('message', (channel: string, message: string) => this.#deliver(channel, message));
  }

  /**
   * Connects, waiting at most `connectTimeoutMs`. Without Redis it still returns a store: unhealthy,
   * failing every call with StoreUnavailableError, and reconnecting in the background.
   */
  static async connect(cfg: StoreSettings, log: Logger): Promise<RedisStore> {
    const store = new RedisStore(cfg, log);
    const up = await Promise.all([untilReady(store.#redis, cfg.connectTimeoutMs), untilReady(store.#sub, cfg.connectTimeoutMs)]);
    if (up.every(Boolean)) {
      store.#log.info('connected to redis');
    } else {
      store.#log.warn('redis is not answering; starting without it (unhealthy) and reconnecting in the background');
    }
    return store;
  }

  /**
   * Charges made in the same event-loop turn for the same scope go to Redis as ONE script call
   * (flushed with setImmediate, so no charge waits longer than the turn it was made in): the round
   * trip, not the script, is what a check costs, and under load many requests share it.
   */
  charge(scope: string, counters: readonly CounterCharge[], cost: number): Promise<ChargeResult> {
    try {
      checkCharge(counters, cost);
      if (scope.length === 0) throw new RangeError('scope must not be empty');
    } catch (e) {
      return Promise.reject(e);
    }
    if (counters.length === 0) return Promise.resolve({ allowed: true, counters: [] });
    return new Promise<ChargeResult>((resolve, reject) => {
      let batch = this.#batches.get(scope);
      if (batch === undefined) {
        batch = [];
        this.#batches.set(scope, batch);
      }
      batch.push({ counters, cost, resolve, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => this.#flushCharges());
      }
    });
  }

  #flushCharges(): void {
    this.#flushScheduled = false;
    const batches = this.#batches;
    this.#batches = new Map();
    for (const [scope, batch] of batches) void this.#sendCharges(scope, batch);
  }

  async #sendCharges(scope: string, batch: readonly PendingCharge[]): Promise<void> {
    // KEYS = every counter of every charge; ARGV = m, then per charge n, cost, limits, windows.
    const keys: string[] = [];
    const args: (string | number)[] = [batch.length];
    for (const p of batch) {
      args.push(p.counters.length, p.cost);
      for (const c of p.counters) {
        keys.push(this.#key(scope, 'c', c.key));
        args.push(c.limit);
      }
      for (const c of p.counters) args.push(c.windowMs);
    }
    let r: number[];
    try {
      const size = batch.reduce((s, p) => s + 1 + 2 * p.counters.length, 0);
      r = integers(await this.#call('charge', this.#redis, () => this.#redis.bwCharge(keys.length, ...keys, ...args)), size, 'charge');
    } catch (e) {
      for (const p of batch) p.reject(e);
      return;
    }
    let at = 0;
    for (const p of batch) {
      const n = p.counters.length;
      const out = new Array<{ count: number; resetMs: number }>(n);
      for (let i = 0; i < n; i++) out[i] = { count: r[at + 1 + 2 * i], resetMs: r[at + 2 + 2 * i] };
      p.resolve({ allowed: r[at] === 1, counters: out });
      at += 1 + 2 * n;
    }
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
      keysThenArgs[i] = this.#key(scope, 'c', c.key);
      keysThenArgs[n + 4 * i] = c.limit;
      keysThenArgs[n + 4 * i + 1] = c.windowMs;
      keysThenArgs[n + 4 * i + 2] = need;
      keysThenArgs[n + 4 * i + 3] = Math.max(need, wants[i] ?? need);
    }
    const r = integers(await this.#call('reserve', this.#redis, () => this.#redis.bwReserve(n, ...keysThenArgs)), 1 + 3 * n, 'reserve');
    const out = new Array<{ granted: number; count: number; resetMs: number }>(n);
    for (let i = 0; i < n; i++) out[i] = { granted: r[1 + 3 * i], count: r[2 + 3 * i], resetMs: r[3 + 3 * i] };
    return { allowed: r[0] === 1, counters: out };
  }

  async acquire(scope: string, key: string, id: string, limit: number, ttlMs: number): Promise<LeaseResult> {
    checkLease(limit, ttlMs);
    const k = this.#key(scope, 'l', key);
    const reply = await this.#call('acquire', this.#redis, () => this.#redis.bwAcquire(k, id, limit, ttlMs));
    const r = integers(reply, 2, 'acquire');
    return { granted: r[0] === 1, held: r[1] };
  }

  async release(scope: string, key: string, id: string): Promise<void> {
    const k = this.#key(scope, 'l', key);
    await this.#call('release', this.#redis, () => this.#redis.zrem(k, id));
  }

  async get(scope: string, key: string): Promise<unknown> {
    const k = this.#key(scope, 'r', key);
    const text = await this.#call('get', this.#redis, () => this.#redis.get(k));
    if (text === null) return undefined;
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new StoreUnavailableError(`record ${key} in ${scope} is not JSON`, { cause: e });
    }
  }

  async set(scope: string, key: string, value: unknown): Promise<void> {
    const k = this.#key(scope, 'r', key);
    const text = toJson(value);
    await this.#call('set', this.#redis, () => this.#redis.set(k, text));
  }

  async delete(scope: string, key: string): Promise<void> {
    const k = this.#key(scope, 'r', key);
    await this.#call('delete', this.#redis, () => this.#redis.del(k));
  }

  /**
   * SCAN over the scope's record keys (COUNT 500), then MGET in batches of at most 500: each
   * command bounded by commandTimeoutMs like every other call, so a scope of n records costs about
   * 2n/500 round trips and never one long blocking command.
   */
  async records(scope: string): Promise<Map<string, unknown>> {
    const head = this.#key(scope, 'r', '');
    const match = `${globEscape(head)}*`;
    const keys = new Set<string>();
    let cursor = '0';
    do {
      const [next, found] = await this.#call('records', this.#redis, () => this.#redis.scan(cursor, 'MATCH', match, 'COUNT', RECORDS_BATCH));
      for (const k of found) keys.add(k);
      cursor = next;
    } while (cursor !== '0');
    const out = new Map<string, unknown>();
    const all = [...keys];
    for (let i = 0; i < all.length; i += RECORDS_BATCH) {
      const batch = all.slice(i, i + RECORDS_BATCH);
      const texts = await this.#call('records', this.#redis, () => this.#redis.mget(batch));
      for (let j = 0; j < batch.length; j++) {
        const text = texts[j];
        // Deleted between SCAN and MGET.
        if (text === null || text === undefined) continue;
        const key = batch[j].slice(head.length);
        try {
          out.set(key, JSON.parse(text));
        } catch (e) {
          throw new StoreUnavailableError(`record ${key} in ${scope} is not JSON`, { cause: e });
        }
      }
    }
    return out;
  }

  async forget(scope: string, counterKeys: readonly string[]): Promise<number> {
    let n = 0;
    for (let i = 0; i < counterKeys.length; i += RECORDS_BATCH) {
      const keys = counterKeys.slice(i, i + RECORDS_BATCH).map((k) => this.#key(scope, 'c', k));
      n += await this.#call('forget', this.#redis, () => this.#redis.del(keys));
    }
    return n;
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.#call('publish', this.#redis, () => this.#redis.publish(this.#prefix + channel, message));
  }

  /**
   * Never fails for want of Redis: the subscription is recorded and (re)made on every reconnect of
   * the subscriber connection. While Redis is down, messages are lost (at most once): callers
   * reconcile from records.
   */
  async subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    const full = this.#prefix + channel;
    let handlers = this.#channels.get(full);
    const first = handlers === undefined;
    if (handlers === undefined) {
      handlers = new Set();
      this.#channels.set(full, handlers);
    }
    // A wrapper, so the same function subscribed twice is two subscriptions, as in MemoryStore.
    const h: Handler = (m) => onMessage(m);
    handlers.add(h);
    if (first && this.#sub.status === 'ready') {
      // Wait for the server's confirmation, so a publish made after this resolves reaches us.
      // On failure the subscription stays recorded and is made on reconnect.
      const confirmed = this.#call('subscribe', this.#sub, () => this.#sub.subscribe(full)).then(
        () => undefined,
        (e: unknown) => void this.#log.warn({ err: e, channel }, 'subscribe failed; will retry on reconnect'),
      );
      this.#subscribing.set(full, confirmed);
      void confirmed.then(() => this.#subscribing.get(full) === confirmed && this.#subscribing.delete(full));
    }
    await this.#subscribing.get(full);
    return () => this.#unsubscribeOne(full, h);
  }

  async #unsubscribeOne(full: string, h: Handler): Promise<void> {
    const handlers = this.#channels.get(full);
    if (handlers === undefined || !handlers.delete(h) || handlers.size > 0) return;
    this.#channels.delete(full);
    // Messages for the channel are dropped from now on whether or not UNSUBSCRIBE reaches Redis.
    if (this.#sub.status !== 'ready') return;
    await this.#call('unsubscribe', this.#sub, () => this.#sub.unsubscribe(full)).catch((e: unknown) => {
      this.#log.debug({ err: e }, 'unsubscribe failed (the connection is being replaced)');
    });
  }

  healthy(): boolean {
    if (this.#stalled) this.#probe();
    return !this.#closed && !this.#stalled && this.#redis.status === 'ready' && this.#sub.status === 'ready';
  }

  /** Quits both connections, waiting at most about commandTimeoutMs, then drops them. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#channels.clear();
    await Promise.all([quit(this.#redis, this.#timeoutMs), quit(this.#sub, this.#timeoutMs)]);
  }

  #key(scope: string, kind: 'c' | 'l' | 'r', key: string): string {
    if (scope.length === 0) throw new RangeError('scope must not be empty');
    return `${this.#prefix}{${scope}}:${kind}:${key}`;
  }

  /**
   * Runs one command with a hard deadline. ioredis's commandTimeout also applies, but a command can
   * wait behind a running auto-pipeline or be re-sent after NOSCRIPT, each with a fresh timer; this
   * deadline bounds the caller's wait however ioredis schedules it.
   */
  #call<T>(what: string, conn: Redis, command: () => Promise<T>): Promise<T> {
    // Fails at once, without a round through ioredis's auto-pipeline, when there is no connection.
    const status = conn.status;
    if (status !== 'ready') {
      return Promise.reject(new StoreUnavailableError(`redis ${what} failed: connection is ${status}`));
    }
    return new Promise<T>((resolve, reject) => {
      let answered = false;
      const timer = setTimeout(() => {
        // Timers run before the event loop polls its sockets: after a long synchronous stretch
        // (a burst of requests) the answer may already be waiting unread. Decide after the poll
        // phase, so a busy gateway does not mistake its own lag for a dead Redis.
        setImmediate(() => {
          if (answered) return;
          this.#stalled = true;
          this.#probe();
          reject(new StoreUnavailableError(`redis ${what} timed out after ${this.#timeoutMs} ms`));
        });
      }, this.#timeoutMs);
      command().then(
        (value) => {
          answered = true;
          clearTimeout(timer);
          this.#stalled = false;
          resolve(value);
        },
        (e: unknown) => {
          answered = true;
          clearTimeout(timer);
          if (e instanceof Error && e.message === 'Command timed out') this.#stalled = true;
          reject(new StoreUnavailableError(`redis ${what} failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
        },
      );
    });
  }

  /**
   * After a timeout the socket may still be open while the server answers nothing (paused, or a
   * partition). One PING at a time tells when it answers again, even if no request tries.
   */
  #probe(): void {
    if (this.#probing || this.#closed) return;
    this.#probing = true;
    this.#call('ping', this.#redis, () => this.#redis.ping()).then(
      () => (this.#probing = false),
      () => {
        this.#probing = false;
        // Still silent: look again shortly, so recovery does not wait for the next request.
        if (this.#stalled && !this.#closed) setTimeout(() => this.#probe(), this.#timeoutMs).unref();
      },
    );
  }

  #resubscribe(): void {
    const channels = [...this.#channels.keys()];
    if (channels.length === 0) return;
    this.#sub.subscribe(...channels).then(
      () => this.#log.info({ channels: channels.length }, 'resubscribed'),
      (e: unknown) => this.#log.warn({ err: e }, 'resubscribe failed; will retry on reconnect'),
    );
  }

  #deliver(channel: string, message: string): void {
    const handlers = this.#channels.get(channel);
    if (handlers === undefined) return;
    for (const h of handlers) {
      try {
        h(message);
      } catch (e) {
        // A subscriber's failure is its own; it must not stop delivery to the others.
        this.#log.error({ err: e, channel: channel.slice(this.#prefix.length) }, 'subscriber threw');
      }
    }
  }

  /** Logs transitions (lost, back), not every failed reconnect attempt. */
  #watch(conn: Redis, role: string): void {
    let up = false;
    let reported = false;
    conn.on('ready', () => {
      if (reported) this.#log.info({ role }, 'redis is back');
      up = true;
      reported = false;
    });
    conn.on('error', (e: unknown) => {
      if (reported || this.#closed) return this.#log.debug({ err: e, role }, 'redis still unavailable');
      reported = true;
      // At start-up connect() reports the outage once for both connections.
      if (up) this.#log.warn({ err: e, role }, 'redis connection failed; reconnecting');
    });
    conn.on('close', () => {
      if (up && !reported && !this.#closed) {
        this.#log.warn({ role }, 'redis connection lost; reconnecting');
        reported = true;
      }
      up = false;
    });
  }
}

/** True once `conn` is ready; false on its first failure or after `ms`. */
function untilReady(conn: Redis, ms: number): Promise<boolean> {
  if (conn.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      conn.off('ready', onReady);
      conn.off('error', onFail);
      conn.off('close', onFail);
      resolve(ok);
    };
    const onReady = () => done(true);
    const onFail = () => done(false);
    const timer = setTimeout(onFail, ms);
    conn.once('ready', onReady);
    conn.once('error', onFail);
    conn.once('close', onFail);
  });
}

async function quit(conn: Redis, ms: number): Promise<void> {
  if (conn.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    });
    await Promise.race([conn.quit().catch(() => undefined), deadline]);
    clearTimeout(timer);
  }
  // Stops reconnecting and drops the socket if QUIT did not.
  conn.disconnect(false);
}

function integers(reply: unknown, length: number, what: string): number[] {
  if (Array.isArray(reply) && reply.length === length && reply.every((x) => typeof x === 'number')) return reply as number[];
  throw new StoreUnavailableError(`redis ${what} returned an unexpected reply`);
}

/** A URL fit for logs: no password. */
function redacted(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable url)';
  }
}

