/**
 * The hash chain of an append-only log (StateStore.append): each entry's hash covers the previous
 * entry's hash, its sequence number, its time and its JSON text, so editing, dropping or reordering
 * an entry breaks every hash after it. MemoryStore chains with this module; RedisStore chains in Lua
 * (redis-log-scripts.ts) by the same formula, and readers check either with `verifyLog`.
 *
 * hash = lowercase hex SHA-256 of `${prev}\n${seq}\n${at}\n${entryJson}` (UTF-8), with
 * entryJson = JSON.stringify(entry) exactly as stored, and prev = GENESIS for entry 1.
 */
import { createHash } from 'node:crypto';
import { toJson } from './checks.js';
import type { LogEntry } from './store.js';

/** The `prev` of the first entry, and the head of an empty log. */
export const GENESIS = '0'.repeat(64);

/**
 * The largest entry, as UTF-8 JSON. Redis computes the chain's SHA-256 in Lua, inside the script,
 * at about 1 ms per KiB while every other command waits: 8 KiB keeps an append under ~10 ms.
 */
export const MAX_LOG_ENTRY_BYTES = 8 * 1024;

/** The most entries one readLog returns, whatever limit is asked for: a read stays one bounded reply. */
export const MAX_LOG_READ = 1000;

export function chainHash(prev: string, seq: number, at: number, entryJson: string): string {
  return createHash('sha256').update(`${prev}\n${seq}\n${at}\n${entryJson}`, 'utf8').digest('hex');
}

/** The entry's JSON text, refused (before anything is written) when a store would not take it. */
export function logEntryJson(entry: unknown): string {
  const json = toJson(entry);
  const bytes = Buffer.byteLength(json, 'utf8');
  if (bytes > MAX_LOG_ENTRY_BYTES) throw new RangeError(`a log entry must be at most ${MAX_LOG_ENTRY_BYTES} bytes of JSON, got ${bytes}`);
  return json;
}

/** The checks both stores make on a readLog, with the limit it is capped to. */
export function checkLogRead(fromSeq: number, limit: number): number {
  if (!Number.isSafeInteger(fromSeq) || fromSeq < 0) throw new RangeError(`fromSeq must be a non-negative integer, got ${fromSeq}`);
  if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError(`limit must be a non-negative integer, got ${limit}`);
  return Math.min(limit, MAX_LOG_READ);
}

/**
 * The seq of the first entry that breaks the chain, or undefined when it holds. `entries` is a run
 * of consecutive entries as readLog returns them; `expectedPrev` is the hash the run must follow on
 * (the last hash checked before, or GENESIS). Without it, a run from seq 1 must start at GENESIS
 * and any other run is trusted to start where it says (only its inner links are checked).
 *
 * An entry breaks the chain when its seq does not follow the previous one, its prev is not the
 * previous hash, or its hash is not the hash of its own content.
 */
export function verifyLog(entries: readonly LogEntry[], expectedPrev?: string): number | undefined {
  let prev = expectedPrev ?? (entries[0]?.seq === 1 ? GENESIS : entries[0]?.prev);
  let seq = (entries[0]?.seq ?? 1) - 1;
  for (const e of entries) {
    seq++;
    if (e.seq !== seq || e.prev !== prev || !Number.isSafeInteger(e.at)) return e.seq;
    let json: string;
    try {
      json = toJson(e.entry);
    } catch {
      return e.seq;
    }
    if (e.hash !== chainHash(e.prev, e.seq, e.at, json)) return e.seq;
    prev = e.hash;
  }
  return undefined;
}
