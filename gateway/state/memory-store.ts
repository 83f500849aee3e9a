/**
 * The single-process StateStore: the default without Redis, and the `local` fallback when Redis is
 * down. It sits on the request path, so every operation is a few Map look-ups and no I/O.
 *
 * The rules match the Lua in redis-*scripts.ts (the contract suite runs against both): fixed
 * windows that start at the first charge, all-or-nothing charges, leases that expire, records
 * stored as JSON text (so a caller gets a copy and sees exactly what Redis would return) with
 * revisions from one sequence per scope, logs chained by log-chain.ts, bucket counters that expire
 * as a whole, and messages delivered asynchronously. Every expiry follows the injected clock.
 */
import type { ChargeResult, CompareAndSetResult, CounterCharge, LeaseResult, LogEntry, LogHead, RecordOptions, StateStore, VersionedRecord } from './store.js';
import { checkBuckets, checkCharge, checkLease, checkScope } from './checks.js';
import { MemoryLogs } from './memory-log.js';
import { liveEntry, MemoryRecords, slot } from './memory-records.js';

export interface MemoryStoreOptions {
  /** The clock, in ms. Tests pass a fake one. */
  readonly now?: () => number;
  /**
   * How often expired windows and leases are swept. Expired entries are also replaced when next
   * touched; the sweep bounds memory for keys that are never touched again (one per departed
   * subject). 0 disables the timer (tests call `prune()`).
   */
  readonly pruneIntervalMs?: number;
}

interface Window {
  count: number;
  /** Clock time at which the window ends. */
  readonly resetAt: number;
}

/** id → expiry (clock time). */
type Leases = Map<string, number>;

interface Buckets {
  readonly counts: Map<string, number>;
  /** Clock time at which the whole key disappears. */
  expiresAt: number;
}

type Handler = (message: string) => void;

const DEFAULT_PRUNE_INTERVAL_MS = 10_000;

export class MemoryStore implements StateStore {
  readonly kind = 'memory';
  readonly #now: () => number;
  readonly #windows = new Map<string, Window>();
  readonly #leases = new Map<string, Leases>();
  readonly #records: MemoryRecords;
  readonly #logs: MemoryLogs;
  readonly #buckets = new Map<string, Buckets>();
  readonly #channels = new Map<string, Set<Handler>>();
  readonly #timer: NodeJS.Timeout | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#records = new MemoryRecords(this.#now);
    this.#logs = new MemoryLogs(this.#now);
    const every = options.pruneIntervalMs ?? DEFAULT_PRUNE_INTERVAL_MS;
    if (every > 0) {
      // unref: a sweep timer must never keep a process alive that is otherwise done.
      this.#timer = setInterval(() => this.prune(), every).unref();
    }
  }

  async charge(scope: string, counters: readonly CounterCharge[], cost: number): Promise<ChargeResult> {
    checkCharge(counters, cost);
    const now = this.#now();
    const n = counters.length;
    const slots = new Array<string>(n);
    let allowed = true;
    for (let i = 0; i < n; i++) {
      const c = counters[i];
      slots[i] = slot(scope, c.key);
      const w = this.#window(slots[i], now);
      if ((w?.count ?? 0) + cost > c.limit) allowed = false;
    }
    const out = new Array<{ count: number; resetMs: number }>(n);
    for (let i = 0; i < n; i++) {
      const c = counters[i];
      let w = this.#window(slots[i], now);
      if (allowed) {
        if (w === undefined) {
          w = { count: 0, resetAt: now + c.windowMs };
          this.#windows.set(slots[i], w);
        }
        w.count += cost;
      }
      out[i] = w === undefined ? { count: 0, resetMs: c.windowMs } : { count: w.count, resetMs: w.resetAt - now };
    }
    return { allowed, counters: out };
  }

  async acquire(scope: string, key: string, id: string, limit: number, ttlMs: number): Promise<LeaseResult> {
    checkLease(limit, ttlMs);
    const s = slot(scope, key);
    const now = this.#now();
    let leases = this.#leases.get(s);
    if (leases === undefined) {
      leases = new Map();
      this.#leases.set(s, leases);
    } else {
      dropExpired(leases, now);
    }
    if (!leases.has(id) && leases.size >= limit) return { granted: false, held: leases.size };
    leases.set(id, now + ttlMs);
    return { granted: true, held: leases.size };
  }

  async release(scope: string, key: string, id: string): Promise<void> {
    const s = slot(scope, key);
    const leases = this.#leases.get(s);
    if (leases === undefined) return;
    leases.delete(id);
    if (leases.size === 0) this.#leases.delete(s);
  }

  async get(scope: string, key: string): Promise<unknown> {
    return this.#records.get(scope, key);
  }

  async set(scope: string, key: string, value: unknown, opts?: RecordOptions): Promise<void> {
    this.#records.set(scope, key, value, opts);
  }

  async delete(scope: string, key: string): Promise<void> {
    this.#records.delete(scope, key);
  }

  async read(scope: string, key: string): Promise<VersionedRecord | undefined> {
    return this.#records.read(scope, key);
  }

  async compareAndSet(scope: string, key: string, expectedRevision: number, value: unknown, opts?: RecordOptions): Promise<CompareAndSetResult> {
    return this.#records.compareAndSet(scope, key, expectedRevision, value, opts);
  }

  async records(scope: string): Promise<Map<string, unknown>> {
    return this.#records.records(scope);
  }

  async append(scope: string, entry: unknown): Promise<LogHead> {
    return this.#logs.append(scope, entry);
  }

  async readLog(scope: string, fromSeq: number, limit: number): Promise<LogEntry[]> {
    return this.#logs.read(scope, fromSeq, limit);
  }

  async logHead(scope: string): Promise<LogHead> {
    return this.#logs.head(scope);
  }

  async add(scope: string, key: string, buckets: Readonly<Record<string, number>>, ttlMs: number): Promise<Record<string, number>> {
    checkBuckets(key, buckets, ttlMs);
    const s = slot(scope, key);
    const now = this.#now();
    const amounts = Object.entries(buckets);
    let b = this.#liveBuckets(s, now);
    if (b === undefined) {
      // Nothing to add to nothing: Redis would not create the key either.
      if (amounts.length === 0) return {};
      b = { counts: new Map(), expiresAt: 0 };
      this.#buckets.set(s, b);
    }
    const totals: [string, number][] = [];
    for (const [name, n] of amounts) {
      const total = (b.counts.get(name) ?? 0) + n;
      b.counts.set(name, total);
      totals.push([name, total]);
    }
    b.expiresAt = now + ttlMs;
    // fromEntries, not assignment: a bucket named __proto__ stays a bucket.
    return Object.fromEntries(totals);
  }

  async sum(scope: string, keys: readonly string[]): Promise<Record<string, number>> {
    checkScope(scope);
    const now = this.#now();
    const total = new Map<string, number>();
    for (const key of keys) {
      const b = this.#liveBuckets(slot(scope, key), now);
      if (b !== undefined) for (const [name, n] of b.counts) total.set(name, (total.get(name) ?? 0) + n);
    }
    // fromEntries, not assignment: a bucket named __proto__ stays a bucket.
    return Object.fromEntries(total);
  }

  async forget(scope: string, counterKeys: readonly string[]): Promise<number> {
    const now = this.#now();
    let n = 0;
    for (const key of counterKeys) {
      const s = slot(scope, key);
      // An expired window no longer exists (Redis would have dropped the key).
      if (this.#window(s, now) !== undefined) n++;
      this.#windows.delete(s);
    }
    return n;
  }

  async publish(channel: string, message: string): Promise<void> {
    const handlers = this.#channels.get(channel);
    if (handlers === undefined) return;
    for (const h of handlers) {
      // Asynchronous, like a message from Redis: a handler never runs inside publish().
      queueMicrotask(function deliver() {
        // Unsubscribed in the meantime: no delivery.
        if (!handlers.has(h)) return;
        try {
          h(message);
        } catch {
          // A subscriber's failure is its own; it must not break the publisher or other subscribers.
        }
      });
    }
  }

  async subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    let handlers = this.#channels.get(channel);
    if (handlers === undefined) {
      handlers = new Set();
      this.#channels.set(channel, handlers);
    }
    // A wrapper, so the same function subscribed twice is two subscriptions, as with Redis.
    const h: Handler = (m) => onMessage(m);
    handlers.add(h);
    const channels = this.#channels;
    return async function unsubscribe() {
      handlers.delete(h);
      if (handlers.size === 0 && channels.get(channel) === handlers) channels.delete(channel);
    };
  }

  healthy(): boolean {
    return true;
  }

  async close(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#channels.clear();
  }

  /** Drops every expired window, lease, record and bucket key. Runs on the timer; public for tests and callers that want it now. */
  prune(): void {
    const now = this.#now();
    for (const [s, w] of this.#windows) if (w.resetAt <= now) this.#windows.delete(s);
    for (const [s, b] of this.#buckets) if (b.expiresAt <= now) this.#buckets.delete(s);
    this.#records.prune(now);
    for (const [s, leases] of this.#leases) {
      dropExpired(leases, now);
      if (leases.size === 0) this.#leases.delete(s);
    }
  }

  /** Entries held, expired or not (for tests and metrics). */
  stats(): { windows: number; leaseKeys: number; records: number; bucketKeys: number; logEntries: number; channels: number } {
    return {
      windows: this.#windows.size,
      leaseKeys: this.#leases.size,
      records: this.#records.size,
      bucketKeys: this.#buckets.size,
      logEntries: this.#logs.size,
      channels: this.#channels.size,
    };
  }

  #window(s: string, now: number): Window | undefined {
    return liveEntry(this.#windows, s, now, (w) => w.resetAt);
  }

  #liveBuckets(s: string, now: number): Buckets | undefined {
    return liveEntry(this.#buckets, s, now, (b) => b.expiresAt);
  }
}

function dropExpired(leases: Leases, now: number): void {
  for (const [id, expiry] of leases) if (expiry <= now) leases.delete(id);
}

