/**
 * Argument checks shared by every store, so that both refuse the same inputs with the same
 * messages (Redis counters are integers; PEXPIRE takes whole milliseconds).
 */
import type { CounterCharge } from './store.js';

export function checkCharge(counters: readonly CounterCharge[], cost: number): void {
  if (!Number.isSafeInteger(cost) || cost < 0) throw new RangeError(`cost must be a non-negative integer, got ${cost}`);
  for (const c of counters) {
    if (!Number.isSafeInteger(c.windowMs) || c.windowMs < 1) {
      throw new RangeError(`windowMs of counter ${c.key} must be a positive integer, got ${c.windowMs}`);
    }
    // Infinity or NaN would mean "no limit" here and a script error in Redis.
    if (!Number.isFinite(c.limit) || c.limit < 0) throw new RangeError(`limit of counter ${c.key} must be a finite number >= 0, got ${c.limit}`);
  }
}

export function checkLease(limit: number, ttlMs: number): void {
  if (!Number.isFinite(limit) || limit < 0) throw new RangeError(`lease limit must be a finite number >= 0, got ${limit}`);
  checkTtl(ttlMs);
}

export function checkTtl(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1) throw new RangeError(`ttlMs must be a positive integer, got ${ttlMs}`);
}

/** A record's TTL, if any: `undefined` means none. */
export function recordTtl(opts: { readonly ttlMs?: number } | undefined): number | undefined {
  const ttlMs = opts?.ttlMs;
  if (ttlMs !== undefined) checkTtl(ttlMs);
  return ttlMs;
}

export function checkRevision(expectedRevision: number): void {
  if (!Number.isSafeInteger(expectedRevision) || expectedRevision < 0) {
    throw new RangeError(`expectedRevision must be a non-negative integer, got ${expectedRevision}`);
  }
}

/** Bucket amounts are integers (Redis HINCRBY), negative ones included. */
export function checkBuckets(key: string, buckets: Readonly<Record<string, number>>, ttlMs: number): void {
  for (const [name, n] of Object.entries(buckets)) {
    if (!Number.isSafeInteger(n)) throw new RangeError(`bucket ${name} of ${key} must be an integer, got ${n}`);
  }
  checkTtl(ttlMs);
}

export function checkScope(scope: string): void {
  if (scope.length === 0) throw new RangeError('scope must not be empty');
}

export function toJson(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError(`a record must be JSON-serialisable, got ${typeof value}`);
  return text;
}
