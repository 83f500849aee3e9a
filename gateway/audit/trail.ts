/**
 * This replica's audit trail (docs/audit.md): one hash chain (trail-format.ts) written through a
 * sink (trail-sink.ts: files by default), with three promises:
 *
 * - **Admin and automatic actions are durable before they are acknowledged**: `durable()` chains
 *   the record, writes it with everything queued before it, and fsyncs, before it resolves; the
 *   audit log (audit-log.ts) awaits it before the admin API answers.
 * - **Prediction records cost the request path nothing**: `prediction()` chains the record and
 *   queues it; the queue is written (and fsynced) every `maxLossMs`, so a replica killed outright
 *   loses at most that window of prediction records (`maxLossMs: 0`: each is written at once, at the
 *   price of a write and an fsync per prediction). The queue is bounded (`maxPending`): past it the
 *   oldest records are dropped before they are chained, counted and logged, never silently.
 * - **The chain is signed**: every `checkpointMs`, and at close, the chain head is signed with this
 *   replica's Ed25519 key (a `checkpoint` entry, durable) and published to the shared store (scope
 *   `audit-checkpoints`, and announced), where every other replica countersigns it (a `countersign`
 *   entry of its own chain). A tail cut off one replica's files is then missing from checkpoints the
 *   others hold.
 *
 * Entries are chained in the order they are made, whatever their kind, so the file order is the
 * chain order. A write that fails (disk full) fails the durable call that waited for it (the admin
 * API answers 503 rather than acknowledge a record it did not keep) and is retried with the next.
 */
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { StateStore } from '../state/store.js';
import {
  checkpointSigned, countersign, GENESIS, keyIdOf, nextEntry, signClaim,
  type Checkpoint, type TrailEntry, type TrailKind,
} from './trail-format.js';

export const CHECKPOINT_SCOPE = 'audit-checkpoints';
const CHECKPOINT_CHANNEL = 'audit-checkpoints';

/** Where entries go (trail-sink.ts FileTrailSink, or a pipeline's). */
export interface TrailSink {
  append(entries: readonly TrailEntry[], durable: boolean): Promise<void>;
  close(): Promise<void>;
}

export interface AuditTrailOptions {
  readonly replica: string;
  readonly sink: TrailSink;
  readonly key: KeyObject;
  /** Keys whose checkpoints this replica countersigns (by keyId); its own is added. */
  readonly publicKeys: ReadonlyMap<string, KeyObject>;
  readonly checkpointMs: number;
  readonly maxLossMs: number;
  readonly maxPending: number;
  readonly store?: StateStore;
  readonly log: Logger;
  readonly now?: () => number;
}

export class AuditTrail {
  readonly #o: AuditTrailOptions;
  readonly #now: () => number;
  readonly #keys: Map<string, KeyObject>;
  #head = { seq: 0, hash: GENESIS };
  /** Chained, not yet handed to the sink. */
  #queue: TrailEntry[] = [];
  /** The sink's writes, one at a time, in order. */
  #writing: Promise<void> = Promise.resolve();
  #flushTimer: NodeJS.Timeout | undefined;
  #checkpointTimer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => Promise<void>) | undefined;
  #dropped = 0;
  #lastCheckpointSeq = 0;
  #closed = false;

  constructor(opts: AuditTrailOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#keys = new Map(opts.publicKeys);
    this.#keys.set(keyIdOf(opts.key), opts.key);
  }

  get head(): { readonly seq: number; readonly hash: string } {
    return this.#head;
  }

  /** Prediction records dropped because the queue was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Starts the flush and checkpoint timers and listens for the other replicas' checkpoints. */
  async start(): Promise<void> {
    if (this.#o.maxLossMs > 0) {
      this.#flushTimer = setInterval(() => void this.#flush(true).catch(() => undefined), this.#o.maxLossMs);
      this.#flushTimer.unref();
    }
    this.#checkpointTimer = setInterval(() => void this.checkpoint().catch((err: unknown) => this.#o.log.warn({ err }, 'audit: a checkpoint failed')), this.#o.checkpointMs);
    this.#checkpointTimer.unref();
    const store = this.#o.store;
    if (store !== undefined) {
      try {
        this.#unsubscribe = await store.subscribe(CHECKPOINT_CHANNEL, (m) => this.#seen(m));
      } catch (err) {
        this.#o.log.warn({ err }, 'audit: cannot listen for the other replicas\' checkpoints; this replica will not countersign them');
      }
    }
  }

  #chain(kind: TrailKind, body: unknown): TrailEntry {
    const e = nextEntry(this.#head, this.#o.replica, kind, body, new Date(this.#now()).toISOString());
    this.#head = { seq: e.seq, hash: e.hash };
    this.#queue.push(e);
    return e;
  }

  /** Hands the queue to the sink (after the writes before it). */
  #flush(durable: boolean): Promise<void> {
    const batch = this.#queue;
    this.#queue = [];
    const write = this.#writing.then(() => (batch.length === 0 && !durable ? undefined : this.#o.sink.append(batch, durable)));
    // A failed write does not stop the ones after it; its waiter sees the failure, and its entries go
    // back to the head of the queue, so the next write retries them: the chain keeps no gap.
    this.#writing = write.catch((err: unknown) => {
      this.#queue = [...batch, ...this.#queue];
      this.#o.log.error({ err, entries: batch.length }, 'audit: the trail could not be written; retried with the next write');
    });
    return write;
  }

  /** An admin or automatic record (or a configuration or model load): written and synced before it resolves. */
  async durable(kind: Exclude<TrailKind, 'prediction' | 'checkpoint' | 'countersign'>, body: unknown): Promise<TrailEntry> {
    if (this.#closed) throw new Error('the audit trail is closed');
    const e = this.#chain(kind, body);
    await this.#flush(true);
    return e;
  }

  /** A prediction's decision record: queued, written within maxLossMs. Never throws. */
  prediction(body: unknown): void {
    if (this.#closed) return;
    if (this.#queue.length >= this.#o.maxPending) {
      if (this.#dropped++ % 10_000 === 0) this.#o.log.error({ dropped: this.#dropped }, 'audit: prediction records are arriving faster than the trail is written; the newest are dropped');
      return;
    }
    this.#chain('prediction', body);
    if (this.#o.maxLossMs === 0) void this.#flush(true).catch(() => undefined);
  }

  /** Signs the chain head (if it moved), writes the checkpoint durably and publishes it. */
  async checkpoint(): Promise<Checkpoint | undefined> {
    if (this.#head.seq === this.#lastCheckpointSeq && this.#head.seq !== 0) return undefined;
    const claim = { replica: this.#o.replica, seq: this.#head.seq, hash: this.#head.hash, at: new Date(this.#now()).toISOString() };
    const cp = signClaim(claim, this.#o.key);
    const e = this.#chain('checkpoint', cp);
    this.#lastCheckpointSeq = e.seq;
    await this.#flush(true);
    const store = this.#o.store;
    if (store !== undefined) {
      try {
        await store.set(CHECKPOINT_SCOPE, this.#o.replica, cp);
        await store.publish(CHECKPOINT_CHANNEL, JSON.stringify(cp));
      } catch (err) {
        this.#o.log.warn({ err }, 'audit: the checkpoint is in this replica\'s trail but not in the shared store');
      }
    }
    return cp;
  }

  /** Another replica's checkpoint, announced: countersigned if its signature holds. */
  #seen(message: string): void {
    if (this.#closed) return;
    let cp: Checkpoint;
    try {
      cp = JSON.parse(message) as Checkpoint;
    } catch {
      return;
    }
    if (cp.replica === this.#o.replica) return;
    const key = this.#keys.get(cp.keyId);
    if (key === undefined || !checkpointSigned(cp, key)) {
      this.#o.log.warn({ replica: cp.replica, keyId: cp.keyId }, 'audit: a checkpoint signed with a key not listed in audit.publicKeyFiles (or a bad signature) was announced; not countersigned');
      return;
    }
    this.#chain('countersign', countersign(cp, this.#o.key));
  }

  /** Checkpoints what was written, writes everything, closes the sink. */
  async close(): Promise<void> {
    if (this.#closed) return;
    clearInterval(this.#flushTimer);
    clearInterval(this.#checkpointTimer);
    await this.#unsubscribe?.().catch(() => undefined);
    try {
      await this.checkpoint();
    } catch (err) {
      this.#o.log.warn({ err }, 'audit: the closing checkpoint failed');
    }
    this.#closed = true;
    await this.#flush(true).catch(() => undefined);
    await this.#writing;
    await this.#o.sink.close();
  }
}
