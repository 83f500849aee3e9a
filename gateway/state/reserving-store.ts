/**
 * Quota reserved in blocks, handed out locally: a RedisStore whose `charge` rarely goes to Redis.
 *
 * A replica takes a block of units from each shared counter at once (one script, all or nothing on
 * what the current request needs) and serves the next requests from that block in memory. Far from
 * a limit a block is up to 64 units, so most requests never wait for Redis; as the room left
 * shrinks, blocks shrink (to 1/16 of what is left) until each request reserves exactly its own cost.
 *
 * The limit holds across replicas exactly as with per-request charges: Redis never grants past a
 * counter's limit, and a replica hands out only what it was granted. What a replica reserved but did
 * not use before its window ended is lost (the window resets in Redis), so a replica whose traffic
 * stops may leave at most a block unused: the error is on the side of refusing, never of admitting.
 * Everything but `charge` (and forget, which drops this replica's blocks) goes straight to the
 * wrapped store.
 */
import { checkCharge } from './checks.js';
import type { RedisStore } from './redis-store.js';
import type { ChargeResult, CompareAndSetResult, CounterCharge, LeaseResult, LogEntry, LogHead, RecordOptions, StateStore, VersionedRecord } from './store.js';

/** The largest block a replica takes beyond what a request needs. */
const MAX_EXTRA = 63;
/** Blocks are at most this fraction of the room left, so replicas leave room for one another. */
const SHARE = 16;
/** A request that finds its block taken by concurrent requests reserves again at most this often. */
const ATTEMPTS = 3;
/** Bounds the loop of waiting for other requests' reservations and trying the block again. */
const MAX_TURNS = 64;

interface Block {
  /** Units reserved and not yet handed out. */
  available: number;
  /** The counter's value in Redis at the last reservation (it includes `available`). */
  count: number;
  /** Local time at which the counter's window ends; the block is void from then on. */
  windowEnd: number;
}

export class ReservingStore implements StateStore {
  readonly kind = 'redis';
  readonly #inner: RedisStore;
  readonly #blocks = new Map<string, Block>();
  /** Reservations in flight, by block key: each settles to undefined, or to the error it failed with. */
  readonly #inflight = new Map<string, Promise<unknown>>();
  readonly #now: () => number;
  readonly #prune: NodeJS.Timeout;

  constructor(inner: RedisStore, now: () => number = Date.now) {
    this.#inner = inner;
    this.#now = now;
    // Blocks of windows that ended are dead weight; drop them now and then.
    this.#prune = setInterval(() => {
      const t = this.#now();
      for (const [k, b] of this.#blocks) if (b.windowEnd <= t) this.#blocks.delete(k);
    }, 10_000);
    this.#prune.unref();
  }

  async charge(scope: string, counters: readonly CounterCharge[], cost: number): Promise<ChargeResult> {
    checkCharge(counters, cost);
    if (scope.length === 0) throw new RangeError('scope must not be empty');
    if (counters.length === 0) return { allowed: true, counters: [] };
    const keys = counters.map((c) => `${scope}\u0000${c.key}`);
    let reserved = 0;
    for (let turn = 0; turn < MAX_TURNS; turn++) {
      const now = this.#now();
      const blocks = keys.map((k) => this.#live(k, now));
      if (blocks.every((b) => b !== undefined && b.available >= cost)) return this.#take(blocks as Block[], cost, now);
      // One reservation per counter at a time: concurrent requests wait for it and share its block
      // rather than each grabbing one from a stale idea of the room left.
      const pending = keys.map((k) => this.#inflight.get(k)).filter((p) => p !== undefined);
      if (pending.length > 0) {
        // If the reservation waited for failed (Redis down or stalled), so does this charge: trying
        // again would stack one command timeout per waiting request.
        const failed = (await Promise.all(pending)).find((e) => e !== undefined);
        if (failed !== undefined) throw failed;
        continue;
      }
      if (reserved === ATTEMPTS) break;
      reserved++;
      const done = this.#reserve(scope, counters, keys, blocks, cost);
      const outcome = done.then(() => undefined, (e: unknown) => e);
      for (const k of keys) this.#inflight.set(k, outcome);
      let allowed: boolean;
      try {
        allowed = await done;
      } finally {
        for (const k of keys) this.#inflight.delete(k);
      }
      if (!allowed) {
        // Refused in Redis; only what this replica still holds could serve the request now.
        const t = this.#now();
        if (!keys.every((k) => (this.#live(k, t)?.available ?? 0) >= cost)) break;
      }
    }
    const t = this.#now();
    return {
      allowed: false,
      counters: keys.map((k) => {
        const b = this.#live(k, t);
        return { count: b?.count ?? 0, resetMs: Math.max(1, (b?.windowEnd ?? t + 1000) - t) };
      }),
    };
  }

  /** Reserves what `cost` lacks from every counter, plus a block where there is room; true if granted. */
  async #reserve(scope: string, counters: readonly CounterCharge[], keys: readonly string[], blocks: readonly (Block | undefined)[], cost: number): Promise<boolean> {
    const needs = blocks.map((b) => Math.max(0, cost - (b?.available ?? 0)));
    const wants = counters.map((c, i) => {
      const room = c.limit - (blocks[i]?.count ?? 0);
      return needs[i] === 0 ? 0 : needs[i] + Math.min(MAX_EXTRA, Math.max(0, Math.floor((room - needs[i]) / SHARE)));
    });
    const r = await this.#inner.reserve(scope, counters, needs, wants);
    const after = this.#now();
    for (let i = 0; i < counters.length; i++) {
      const got = r.counters[i];
      const windowEnd = after + got.resetMs;
      let old = this.#live(keys[i], after);
      // A window that ends more than half a window later than the block's is a new one: what
      // was left of the old block died with its window in Redis.
      if (old !== undefined && windowEnd > old.windowEnd + counters[i].windowMs / 2) old = undefined;
      this.#blocks.set(keys[i], { available: (old?.available ?? 0) + got.granted, count: got.count, windowEnd });
    }
    return r.allowed;
  }

  /** Hands `cost` out of every block (they all have it). */
  #take(blocks: Block[], cost: number, now: number): ChargeResult {
    const out = new Array<{ count: number; resetMs: number }>(blocks.length);
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i];
      b.available -= cost;
      // What the counter would read if this replica's unused units were given back.
      out[i] = { count: b.count - b.available, resetMs: Math.max(1, b.windowEnd - now) };
    }
    return { allowed: true, counters: out };
  }

  #live(key: string, now: number): Block | undefined {
    const b = this.#blocks.get(key);
    return b !== undefined && b.windowEnd > now ? b : undefined;
  }

  acquire(scope: string, key: string, id: string, limit: number, ttlMs: number): Promise<LeaseResult> {
    return this.#inner.acquire(scope, key, id, limit, ttlMs);
  }

  release(scope: string, key: string, id: string): Promise<void> {
    return this.#inner.release(scope, key, id);
  }

  get(scope: string, key: string): Promise<unknown> {
    return this.#inner.get(scope, key);
  }

  set(scope: string, key: string, value: unknown, opts?: RecordOptions): Promise<void> {
    return this.#inner.set(scope, key, value, opts);
  }

  delete(scope: string, key: string): Promise<void> {
    return this.#inner.delete(scope, key);
  }

  read(scope: string, key: string): Promise<VersionedRecord | undefined> {
    return this.#inner.read(scope, key);
  }

  compareAndSet(scope: string, key: string, expectedRevision: number, value: unknown, opts?: RecordOptions): Promise<CompareAndSetResult> {
    return this.#inner.compareAndSet(scope, key, expectedRevision, value, opts);
  }

  append(scope: string, entry: unknown): Promise<LogHead> {
    return this.#inner.append(scope, entry);
  }

  readLog(scope: string, fromSeq: number, limit: number): Promise<LogEntry[]> {
    return this.#inner.readLog(scope, fromSeq, limit);
  }

  logHead(scope: string): Promise<LogHead> {
    return this.#inner.logHead(scope);
  }

  add(scope: string, key: string, buckets: Readonly<Record<string, number>>, ttlMs: number): Promise<Record<string, number>> {
    return this.#inner.add(scope, key, buckets, ttlMs);
  }

  sum(scope: string, keys: readonly string[]): Promise<Record<string, number>> {
    return this.#inner.sum(scope, keys);
  }

  records(scope: string): Promise<Map<string, unknown>> {
    return this.#inner.records(scope);
  }

  /** Drops this replica's blocks of those counters too (other replicas' blocks end with their window). */
  forget(scope: string, counterKeys: readonly string[]): Promise<number> {
    for (const k of counterKeys) this.#blocks.delete(`${scope}\u0000${k}`);
    return this.#inner.forget(scope, counterKeys);
  }

  publish(channel: string, message: string): Promise<void> {
    return this.#inner.publish(channel, message);
  }

  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    return this.#inner.subscribe(channel, onMessage);
  }

  healthy(): boolean {
    return this.#inner.healthy();
  }

  async close(): Promise<void> {
    clearInterval(this.#prune);
    this.#blocks.clear();
    await this.#inner.close();
  }
}
