/**
 * MemoryStore's append-only logs: one array per scope, chained by log-chain.ts. An append runs
 * without awaiting, so concurrent appends in one process are ordered and never share a seq.
 */
import { checkScope } from './checks.js';
import { chainHash, checkLogRead, GENESIS, logEntryJson } from './log-chain.js';
import type { LogEntry, LogHead } from './store.js';

/** An entry with its JSON text as chained: a reader gets a fresh copy of the entry each time. */
interface StoredEntry {
  readonly seq: number;
  readonly at: number;
  readonly prev: string;
  readonly hash: string;
  readonly json: string;
}

export class MemoryLogs {
  readonly #now: () => number;
  readonly #logs = new Map<string, StoredEntry[]>();

  constructor(now: () => number) {
    this.#now = now;
  }

  append(scope: string, entry: unknown): LogHead {
    checkScope(scope);
    const json = logEntryJson(entry);
    let log = this.#logs.get(scope);
    if (log === undefined) {
      log = [];
      this.#logs.set(scope, log);
    }
    const seq = log.length + 1;
    const prev = log[log.length - 1]?.hash ?? GENESIS;
    const at = this.#now();
    const hash = chainHash(prev, seq, at, json);
    log.push({ seq, at, prev, hash, json });
    return { seq, hash };
  }

  read(scope: string, fromSeq: number, limit: number): LogEntry[] {
    checkScope(scope);
    const n = checkLogRead(fromSeq, limit);
    const log = this.#logs.get(scope) ?? [];
    // Entry seq s sits at index s - 1: seqs start at 1 and have no gaps.
    const from = Math.max(fromSeq, 1) - 1;
    return log.slice(from, from + n).map(({ json, ...e }) => ({ ...e, entry: JSON.parse(json) }));
  }

  head(scope: string): LogHead {
    checkScope(scope);
    const last = this.#logs.get(scope)?.at(-1);
    return last === undefined ? { seq: 0, hash: GENESIS } : { seq: last.seq, hash: last.hash };
  }

  /** Entries held across all scopes (for stats). */
  get size(): number {
    let n = 0;
    for (const log of this.#logs.values()) n += log.length;
    return n;
  }
}
