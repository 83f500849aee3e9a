/**
 * The one interface for everything replicas share: windowed counters (rate limits and quotas),
 * leases (concurrency caps), small records with revisions (routes, opt-outs, kill-switch state),
 * append-only hash-chained logs (audit), mergeable bucket counters (drift windows, canary figures)
 * and change notifications. `MemoryStore` is the single-process default; `RedisStore` shares state across
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

/** One entry of an append-only log, as readLog returns it. */
export interface LogEntry {
  /** 1, 2, 3… in the order the store took them: no gap, no duplicate, whoever appended. */
  readonly seq: number;
  /** When the store took it, in ms by the store's clock (Redis's TIME, not a replica's). */
  readonly at: number;
  /** The previous entry's hash (GENESIS for seq 1). */
  readonly prev: string;
  /** SHA-256 over prev, seq, at and the entry's JSON (gateway/state/log-chain.ts). */
  readonly hash: string;
  readonly entry: unknown;
}

/** A log's last entry: `{ seq: 0, hash: GENESIS }` while the log is empty. */
export interface LogHead {
  readonly seq: number;
  readonly hash: string;
}

/** A record and the revision its last write got (revisions only grow within a scope). */
export interface VersionedRecord {
  readonly value: unknown;
  readonly revision: number;
}

export interface CompareAndSetResult {
  readonly ok: boolean;
  /** On success the new revision (0 after a delete); on a mismatch the current one (0: absent). */
  readonly revision: number;
}

export interface RecordOptions {
  /** The record (and its revision) disappear this many ms after the write. Without it: never. */
  readonly ttlMs?: number;
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
  /**
   * Writes a record unconditionally. Like every write it takes a new revision from the scope's
   * sequence; with `ttlMs` the record expires (a later write without it makes it permanent again).
   */
  set(scope: string, key: string, value: unknown, opts?: RecordOptions): Promise<void>;
  /**
   * Deletes a record and its revision: nothing naming `key` is left (erasure). Deleting a record
   * that exists is a write (it moves the scope's sequence); the sequence itself names only the scope.
   */
  delete(scope: string, key: string): Promise<void>;
  /** A record with its revision; undefined when absent (an absent record has revision 0). */
  read(scope: string, key: string): Promise<VersionedRecord | undefined>;
  /**
   * Writes `value` (undefined: deletes) only if the record's revision is still `expectedRevision`
   * (0: only if absent). Revisions come from one sequence per scope, so they are never reused, even
   * after a delete: a revision read before a delete and re-create can never match again.
   */
  compareAndSet(scope: string, key: string, expectedRevision: number, value: unknown, opts?: RecordOptions): Promise<CompareAndSetResult>;
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
  /**
   * Appends to the scope's log: the entry gets the next sequence number (from 1, without gaps, even
   * with concurrent appends from several replicas) and is chained to the one before. Resolves to its
   * seq and hash. An entry is JSON of at most 8 KiB (MAX_LOG_ENTRY_BYTES).
   */
  append(scope: string, entry: unknown): Promise<LogHead>;
  /** Entries with seq >= fromSeq, ascending, at most `limit` (itself at most MAX_LOG_READ, 1000). */
  readLog(scope: string, fromSeq: number, limit: number): Promise<LogEntry[]>;
  logHead(scope: string): Promise<LogHead>;
  /**
   * Adds integer amounts to named buckets of a counter `key` (creating what is missing) and makes
   * the whole key expire `ttlMs` after this call: a window of figures several replicas add to.
   * Resolves to the totals of the buckets given, after the addition, atomically (an exact shared
   * counter: the drift windows number their samples with it).
   */
  add(scope: string, key: string, buckets: Readonly<Record<string, number>>, ttlMs: number): Promise<Record<string, number>>;
  /** Bucket by bucket, the sum over `keys`; a missing or expired key adds nothing. */
  sum(scope: string, keys: readonly string[]): Promise<Record<string, number>>;
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
