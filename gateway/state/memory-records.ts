/**
 * MemoryStore's records: JSON text with a revision from one sequence per scope, and an optional
 * expiry. The rules of redis-record-scripts.ts, in memory (the contract suite keeps them equal).
 */
import { checkRevision, checkScope, recordTtl, toJson } from './checks.js';
import type { CompareAndSetResult, RecordOptions, VersionedRecord } from './store.js';

interface StoredRecord {
  readonly text: string;
  readonly revision: number;
  /** Clock time at which it disappears; Infinity for none. */
  readonly expiresAt: number;
}

/** Scope and key joined; NUL does not occur in the names we build (tenants, models, rule names). */
export function slot(scope: string, key: string): string {
  checkScope(scope);
  return `${scope}\u0000${key}`;
}

/**
 * The entry under `key` unless it has expired by `now`; an expired one is dropped, as Redis drops
 * an expired key when it is touched (lazy expiry; `prune` sweeps the rest).
 */
export function liveEntry<T>(map: Map<string, T>, key: string, now: number, endOf: (entry: T) => number): T | undefined {
  const entry = map.get(key);
  if (entry === undefined || endOf(entry) > now) return entry;
  map.delete(key);
  return undefined;
}

const expiryOf = (r: StoredRecord): number => r.expiresAt;

export class MemoryRecords {
  readonly #now: () => number;
  readonly #records = new Map<string, StoredRecord>();
  /** Scope → the last revision given in it. Kept after the scope's records are gone, so none is reused. */
  readonly #revisions = new Map<string, number>();

  constructor(now: () => number) {
    this.#now = now;
  }

  get size(): number {
    return this.#records.size;
  }

  get(scope: string, key: string): unknown {
    const r = this.#live(slot(scope, key), this.#now());
    return r === undefined ? undefined : JSON.parse(r.text);
  }

  read(scope: string, key: string): VersionedRecord | undefined {
    const r = this.#live(slot(scope, key), this.#now());
    return r === undefined ? undefined : { value: JSON.parse(r.text), revision: r.revision };
  }

  set(scope: string, key: string, value: unknown, opts?: RecordOptions): void {
    const text = toJson(value);
    const ttlMs = recordTtl(opts);
    this.#write(scope, slot(scope, key), text, ttlMs);
  }

  delete(scope: string, key: string): void {
    const s = slot(scope, key);
    if (this.#live(s, this.#now()) !== undefined) this.#erase(scope, s);
  }

  compareAndSet(scope: string, key: string, expectedRevision: number, value: unknown, opts?: RecordOptions): CompareAndSetResult {
    checkRevision(expectedRevision);
    const text = value === undefined ? undefined : toJson(value);
    const ttlMs = recordTtl(opts);
    const s = slot(scope, key);
    const current = this.#live(s, this.#now())?.revision ?? 0;
    if (current !== expectedRevision) return { ok: false, revision: current };
    if (text !== undefined) return { ok: true, revision: this.#write(scope, s, text, ttlMs) };
    if (current !== 0) this.#erase(scope, s);
    return { ok: true, revision: 0 };
  }

  records(scope: string): Map<string, unknown> {
    const start = slot(scope, '');
    const now = this.#now();
    const out = new Map<string, unknown>();
    for (const [s, r] of this.#records) {
      if (s.startsWith(start) && this.#live(s, now) !== undefined) out.set(s.slice(start.length), JSON.parse(r.text));
    }
    return out;
  }

  prune(now: number): void {
    for (const [s, r] of this.#records) if (r.expiresAt <= now) this.#records.delete(s);
  }

  #write(scope: string, s: string, text: string, ttlMs: number | undefined): number {
    const revision = this.#nextRevision(scope);
    this.#records.set(s, { text, revision, expiresAt: ttlMs === undefined ? Infinity : this.#now() + ttlMs });
    return revision;
  }

  /** A delete is a write too: it moves the scope's sequence, as in Redis. */
  #erase(scope: string, s: string): void {
    this.#records.delete(s);
    this.#nextRevision(scope);
  }

  #nextRevision(scope: string): number {
    const revision = (this.#revisions.get(scope) ?? 0) + 1;
    this.#revisions.set(scope, revision);
    return revision;
  }

  #live(s: string, now: number): StoredRecord | undefined {
    return liveEntry(this.#records, s, now, expiryOf);
  }
}
