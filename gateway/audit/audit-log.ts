/**
 * The one audit log: every change an operator, a subject or the gateway itself makes is one record
 * of one format (audit-record.ts), written by this one writer, appended to one hash-chained log in
 * the shared store (`append`: a sequence number per record, no gap, no duplicate, whoever writes).
 * Traffic changes, opt-out changes and erasures today; the kill switch, guards, rollouts and the
 * signed, walk-back trail of the next issues build on it.
 *
 * The record is first written as a log line (the record of last resort, with `audit: true`), then
 * appended. An append the store cannot take is kept in memory and retried with back-off until it
 * lands (bounded: past MAX_PENDING the oldest are dropped, counted and logged), so a change that was
 * applied is not lost from the log because the store blinked between the change and its record.
 */
import type { Logger } from 'pino';
import { REPLICA } from '../replica.js';
import { MAX_LOG_ENTRY_BYTES } from '../state/log-chain.js';
import { storeUnavailable } from '../state/mirrored-scope.js';
import type { LogEntry, StateStore } from '../state/store.js';
import { GatewayError } from '../errors.js';
import { fitRecord, type AuditInput, type AuditRecord } from './audit-record.js';
import type { AuditTrail } from './trail.js';

/** The store scope of the log (one hash slot: appends are atomic in a Redis Cluster too). */
export const AUDIT_SCOPE = 'audit';
/** Records waiting for the store, at most. */
const MAX_PENDING = 10_000;
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 10_000;
/** How far back a history query reads (the newest records of the log). */
export const HISTORY_SCAN = 1000;

/** Where a record went: its sequence number, or pending (it will be appended when the store answers). */
export type AuditReceipt = { readonly seq: number } | { readonly pending: true };

/** A record as read back, with its place in the log. */
export interface AuditedRecord {
  readonly seq: number;
  /** When the store took it (ms). */
  readonly storedAt: number;
  readonly hash: string;
  readonly record: AuditRecord;
}

export interface AuditQuery {
  readonly targetKind?: AuditRecord['target']['kind'];
  readonly targetId?: string;
  /** Records whose action starts with this (e.g. `traffic.`). */
  readonly actionPrefix?: string | readonly string[];
  /** Newest first, at most this many. */
  readonly limit: number;
  /** Only records older than this sequence number (paging back). */
  readonly beforeSeq?: number;
}

function isRecord(e: unknown): e is AuditRecord {
  const r = e as Partial<AuditRecord> | null;
  return r !== null && typeof r === 'object' && r.format === 1 && typeof r.action === 'string' && typeof r.target === 'object' && r.target !== null;
}

export class AuditLog {
  readonly #store: StateStore;
  readonly #log: Logger;
  readonly #replica: string;
  readonly #pending: AuditRecord[] = [];
  #timer: NodeJS.Timeout | undefined;
  #delayMs = RETRY_FIRST_MS;
  #dropped = 0;
  #flushing: Promise<void> | undefined;

  readonly #trail: Pick<AuditTrail, 'durable'> | undefined;

  /** `trail`: this replica's signed, file-backed trail (trail.ts), where every record is made durable before it is acknowledged. */
  constructor(store: StateStore, log: Logger, replica = REPLICA, trail?: Pick<AuditTrail, 'durable'>) {
    this.#store = store;
    this.#log = log.child({ component: 'audit' });
    this.#replica = replica;
    this.#trail = trail;
  }

  /** Records waiting for the store. */
  get pending(): number {
    return this.#pending.length;
  }

  /** Writes one record: its log line now, its entry in the shared log now or as soon as the store answers. */
  async record(input: AuditInput): Promise<AuditReceipt> {
    const record = fitRecord({ format: 1, at: new Date().toISOString(), replica: this.#replica, ...input }, MAX_LOG_ENTRY_BYTES);
    this.#log.info({ audit: true, ...record }, `audit: ${record.action}`);
    // Durable (written and synced) in this replica's trail before anything acknowledges it.
    if (this.#trail !== undefined) {
      try {
        await this.#trail.durable(record.actor === 'breakwater' ? 'automatic' : 'admin', record);
      } catch (err) {
        this.#log.error({ err, action: record.action }, 'audit: the trail could not make the record durable; it is retried with the next write');
        throw new GatewayError('AUDIT_UNAVAILABLE', 'the change was made, but its audit record is not durable yet: it is kept and retried');
      }
    }
    // Behind records still waiting: the log keeps the order things happened in.
    if (this.#pending.length === 0) {
      try {
        const { seq } = await this.#store.append(AUDIT_SCOPE, record);
        return { seq };
      } catch (err) {
        this.#log.warn({ err, action: record.action }, 'audit: the store did not take the record; keeping it and retrying');
      }
    }
    this.#enqueue(record);
    return { pending: true };
  }

  /**
   * The newest records matching `q`, newest first (reads at most the last HISTORY_SCAN records).
   * STATE_STORE_UNAVAILABLE when the store does not answer.
   */
  async query(q: AuditQuery): Promise<AuditedRecord[]> {
    try {
      return await this.#query(q);
    } catch (e) {
      throw storeUnavailable(e);
    }
  }

  async #query(q: AuditQuery): Promise<AuditedRecord[]> {
    const prefixes = q.actionPrefix === undefined ? undefined : typeof q.actionPrefix === 'string' ? [q.actionPrefix] : q.actionPrefix;
    const head = await this.#store.logHead(AUDIT_SCOPE);
    const newest = Math.min(head.seq, (q.beforeSeq ?? Infinity) - 1);
    const out: AuditedRecord[] = [];
    let to = newest;
    const floor = Math.max(1, head.seq - HISTORY_SCAN + 1);
    while (to >= floor && out.length < q.limit) {
      const from = Math.max(floor, to - 199);
      const page: LogEntry[] = await this.#store.readLog(AUDIT_SCOPE, from, to - from + 1);
      for (let i = page.length - 1; i >= 0 && out.length < q.limit; i--) {
        const e = page[i];
        if (!isRecord(e.entry)) continue;
        const r = e.entry;
        if (q.targetKind !== undefined && r.target.kind !== q.targetKind) continue;
        if (q.targetId !== undefined && r.target.id !== q.targetId) continue;
        if (prefixes !== undefined && !prefixes.some((p) => r.action.startsWith(p))) continue;
        out.push({ seq: e.seq, storedAt: e.at, hash: e.hash, record: r });
      }
      to = from - 1;
    }
    return out;
  }

  /** Tries once more to append what is pending (at shutdown), for at most `waitMs`. */
  async close(waitMs = 1000): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#flush(), new Promise<void>((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
    if (this.#pending.length > 0) {
      // The log lines written at record time are all that is left of these.
      this.#log.error({ records: this.#pending.length }, 'audit: records not appended before shutdown; their log lines are the only copy');
    }
  }

  #enqueue(record: AuditRecord): void {
    this.#pending.push(record);
    if (this.#pending.length > MAX_PENDING) {
      this.#pending.shift();
      this.#dropped++;
      if (this.#dropped === 1 || this.#dropped % 1000 === 0) {
        this.#log.error({ dropped: this.#dropped }, 'audit: too many records waiting for the store; the oldest are dropped (their log lines remain)');
      }
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#flush();
    }, this.#delayMs);
    this.#timer.unref();
  }

  #flush(): Promise<void> {
    this.#flushing ??= this.#flushOnce().finally(() => (this.#flushing = undefined));
    return this.#flushing;
  }

  async #flushOnce(): Promise<void> {
    while (this.#pending.length > 0) {
      const next = this.#pending[0];
      try {
        await this.#store.append(AUDIT_SCOPE, next);
      } catch {
        this.#delayMs = Math.min(this.#delayMs * 2, RETRY_MAX_MS);
        this.#schedule();
        return;
      }
      this.#pending.shift();
    }
    this.#delayMs = RETRY_FIRST_MS;
    this.#log.info('audit: every waiting record is in the log');
  }
}
