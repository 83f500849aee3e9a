/**
 * The one interface for everything replicas share: windowed counters (rate limits and quotas),
 * leases (concurrency caps), small records (routes, opt-outs, kill-switch state) and change
 * notifications. `MemoryStore` is the single-process default; `RedisStore` shares state across
 * replicas. One contract suite (test/helpers/store-contract.ts) runs against both.
 *
 * Keys are grouped by a `scope` (a tenant, a model…): everything one call touches shares a scope,
 * so a Redis Cluster keeps it in one hash slot (`{scope}` hash tags) and a call stays atomic.
 */

/** One counter to charge, e.g. the subject's and the tenant's request windows of one model. */
export interface CounterCharge {
  /** Unique within the scope, e.g. `sub:alice:titanic:per-minute`. */
  readonly key: string;
  readonly limit: number;
  readonly windowMs: number;
}

export interface ChargeResult {
  /** True when every counter had room and all were charged; false when none was charged. */
  readonly allowed: boolean;
  /** Per counter, in the order given: its count after the call and ms until its window resets. */
  readonly counters: readonly { readonly count: number; readonly resetMs: number }[];
}

export interface LeaseResult {
  readonly granted: boolean;
  /** Leases held after the call (including this one when granted). */
  readonly held: number;
}

export interface StateStore {
  /** `memory` or `redis`: reported in metrics and logs. */
  readonly kind: string;
  /**
   * Charges `cost` to every counter atomically, all or nothing: if any counter would pass its limit
   * nothing is charged. Windows are fixed, aligned to the first charge of the window.
   */
  charge(scope: string, counters: readonly CounterCharge[], cost: number): Promise<ChargeResult>;
  /**
   * Takes one of `limit` leases on `key` for at most `ttlMs` (a replica that dies without releasing
   * loses its leases when they expire). `id` names this lease for release.
   */
  acquire(scope: string, key: string, id: string, limit: number, ttlMs: number): Promise<LeaseResult>;
  release(scope: string, key: string, id: string): Promise<void>;
  /** Small records (JSON-serialisable), e.g. a model's routes. */
  get(scope: string, key: string): Promise<unknown>;
  set(scope: string, key: string, value: unknown): Promise<void>;
  delete(scope: string, key: string): Promise<void>;
  /**
   * Every record of `scope`, key → value: how a replica loads (and reconciles) its local copy of a
   * registry (opt-outs…). Not for the request path: it reads the whole scope. A record deleted or
   * written while it runs may or may not be in the answer (Redis SCAN's guarantee).
   */
  records(scope: string): Promise<Map<string, unknown>>;
  /**
   * Deletes counters of `scope` (erasure of a subject's rate-limit windows); a missing counter is
   * harmless. Resolves to how many existed. Leases are not touched: they expire by themselves.
   */
  forget(scope: string, counterKeys: readonly string[]): Promise<number>;
  /** Publishes to every subscriber of `channel` on every replica (including this one). */
  publish(channel: string, message: string): Promise<void>;
  /** Returns the unsubscribe function. Delivery is at most once; reconcile from records on reconnect. */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>>;
  /** True while the store answers (a Redis store that lost its server is not healthy). */
  healthy(): boolean;
  close(): Promise<void>;
}

/** Thrown by a store that cannot answer in time (Redis down or slow): callers apply their failMode. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}
