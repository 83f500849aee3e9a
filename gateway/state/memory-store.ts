/**
 * The single-process StateStore: the default without Redis, and the `local` fallback when Redis is
 * down. It sits on the request path, so every operation is a few Map look-ups and no I/O.
 *
 * The rules match the Lua in redis-scripts.ts (the contract suite runs against both): fixed
 * windows that start at the first charge, all-or-nothing charges, leases that expire, records
 * stored as JSON text (so a caller gets a copy and sees exactly what Redis would return), and
 * messages delivered asynchronously.
 */
import type { ChargeResult, CounterCharge, LeaseResult, StateStore } from './store.js';
import { checkCharge, checkLease, toJson } from './checks.js';

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

type Handler = (message: string) => void;

const DEFAULT_PRUNE_INTERVAL_MS = 10_000;

/** Scope and key joined; NUL does not occur in the names we build (tenants, models, rule names). */
function slot(scope: string, key: string): string {
  if (scope.length === 0) throw new RangeError('scope must not be empty');
  return `${scope}\u0000${key}`;
}

export class MemoryStore implements StateStore {
  readonly kind = 'memory';
  readonly #now: () => number;
  readonly #windows = new Map<string, Window>();
  readonly #leases = new Map<string, Leases>();
  readonly #records = new Map<string, string>();
  readonly #channels = new Map<string, Set<Handler>>();
  readonly #timer: NodeJS.Timeout | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    this.#now = options.now ?? Date.now;
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
    const text = this.#records.get(slot(scope, key));
    return text === undefined ? undefined : JSON.parse(text);
  }

  async set(scope: string, key: string, value: unknown): Promise<void> {
    this.#records.set(slot(scope, key), toJson(value));
  }

  async delete(scope: string, key: string): Promise<void> {
    this.#records.delete(slot(scope, key));
  }

  async records(scope: string): Promise<Map<string, unknown>> {
    const start = slot(scope, '');
    const out = new Map<string, unknown>();
    for (const [s, text] of this.#records) if (s.startsWith(start)) out.set(s.slice(start.length), JSON.parse(text));
    return out;
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

  /** Drops every expired window and lease. Runs on the timer; public for tests and callers that want it now. */
  prune(): void {
    const now = this.#now();
    for (const [s, w] of this.#windows) if (w.resetAt <= now) this.#windows.delete(s);
    for (const [s, leases] of this.#leases) {
      dropExpired(leases, now);
      if (leases.size === 0) this.#leases.delete(s);
    }
  }

  /** Entries held, expired or not (for tests and metrics). */
  stats(): { windows: number; leaseKeys: number; records: number; channels: number } {
    return { windows: this.#windows.size, leaseKeys: this.#leases.size, records: this.#records.size, channels: this.#channels.size };
  }

  /** The live window of a counter, dropping an expired one (lazy pruning). */
  #window(s: string, now: number): Window | undefined {
    const w = this.#windows.get(s);
    if (w === undefined || w.resetAt > now) return w;
    this.#windows.delete(s);
    return undefined;
  }
}

function dropExpired(leases: Leases, now: number): void {
  for (const [id, expiry] of leases) if (expiry <= now) leases.delete(id);
}

