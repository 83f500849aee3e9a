/**
 * RedisStore's charges, batched: charges made in the same event-loop turn for the same scope go to
 * Redis as ONE script call (flushed with setImmediate, so no charge waits longer than the turn it
 * was made in). The round trip, not the script, is what a check costs, and under load many
 * requests share it.
 */
import { checkCharge, checkScope } from './checks.js';
import type { RedisConnection } from './redis-connection.js';
import type { RedisKeys } from './redis-keys.js';
import { integers, type ScriptedRedis } from './redis-scripts.js';
import type { ChargeResult, CounterCharge } from './store.js';

interface PendingCharge {
  readonly counters: readonly CounterCharge[];
  readonly cost: number;
  readonly resolve: (r: ChargeResult) => void;
  readonly reject: (e: unknown) => void;
}

export class ChargeBatcher {
  readonly #conn: RedisConnection;
  readonly #redis: ScriptedRedis;
  readonly #keys: RedisKeys;
  /** Charges waiting for this turn's flush, by scope (one script call per scope). */
  #batches = new Map<string, PendingCharge[]>();
  #flushScheduled = false;

  constructor(conn: RedisConnection, redis: ScriptedRedis, keys: RedisKeys) {
    this.#conn = conn;
    this.#redis = redis;
    this.#keys = keys;
  }

  charge(scope: string, counters: readonly CounterCharge[], cost: number): Promise<ChargeResult> {
    try {
      checkCharge(counters, cost);
      checkScope(scope);
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
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#flushScheduled = false;
    const batches = this.#batches;
    this.#batches = new Map();
    for (const [scope, batch] of batches) void this.#send(scope, batch);
  }

  async #send(scope: string, batch: readonly PendingCharge[]): Promise<void> {
    // KEYS = every counter of every charge; ARGV = m, then per charge n, cost, limits, windows.
    const keys: string[] = [];
    const args: (string | number)[] = [batch.length];
    for (const p of batch) {
      args.push(p.counters.length, p.cost);
      for (const c of p.counters) {
        keys.push(this.#keys.key(scope, 'c', c.key));
        args.push(c.limit);
      }
      for (const c of p.counters) args.push(c.windowMs);
    }
    let r: number[];
    try {
      const size = batch.reduce((s, p) => s + 1 + 2 * p.counters.length, 0);
      r = integers(await this.#conn.call('charge', () => this.#redis.bwCharge(keys.length, ...keys, ...args)), size, 'charge');
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
}
