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
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1) throw new RangeError(`ttlMs must be a positive integer, got ${ttlMs}`);
}

export function toJson(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError(`a record must be JSON-serialisable, got ${typeof value}`);
  return text;
}
