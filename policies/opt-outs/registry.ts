/**
 * The opt-out registry: who opted out of what. The shared store holds it (scope `opt-outs`, one
 * record per subject, `{kinds, updatedAt, updatedBy}`); every replica keeps a local copy as a
 * `Map<subject, OPT_OUT bits>`, so the request path reads memory only (unleash's model).
 *
 * The copy is kept fresh three ways: a change made here is applied at once; a change made on another
 * replica arrives as a notification on the `opt-outs` channel (the message is the subject, whose
 * record is then re-read); and because notifications are at most once (lost while Redis is away),
 * the whole registry is re-read every `state.reconcileMs`. A reconcile that fails keeps the last
 * known copy (an opt-out is never dropped for want of Redis) and warns once per outage.
 *
 * A change goes to the store first: when the store cannot take it, the caller gets
 * STATE_STORE_UNAVAILABLE and nothing changed here. (A write that timed out on a stalled Redis may
 * still land once it answers; the next reconcile then applies it everywhere.)
 */
import type { Logger } from 'pino';
import { GatewayError } from '../../gateway/errors.js';
import { StoreUnavailableError, type StateStore } from '../../gateway/state/store.js';
import { OPT_OUT } from '../policy.js';

export const OPT_OUTS_SCOPE = 'opt-outs';
export const OPT_OUTS_CHANNEL = 'opt-outs';

/** The kinds as the API and the stored records name them, in canonical order, with their bits. */
export const OPT_OUT_KINDS = Object.freeze({
  experiments: OPT_OUT.experiments,
  tracking: OPT_OUT.tracking,
  'automated-decision': OPT_OUT.automatedDecision,
});
export type OptOutKindName = keyof typeof OPT_OUT_KINDS;
export const KIND_NAMES = Object.freeze(Object.keys(OPT_OUT_KINDS) as OptOutKindName[]);

export function isKindName(s: unknown): s is OptOutKindName {
  return typeof s === 'string' && Object.hasOwn(OPT_OUT_KINDS, s);
}

export function bitsOf(kinds: readonly OptOutKindName[]): number {
  let bits = 0;
  for (const k of kinds) bits |= OPT_OUT_KINDS[k];
  return bits;
}

/** The kind names of `bits`, in canonical order. */
export function kindsOf(bits: number): OptOutKindName[] {
  return KIND_NAMES.filter((k) => (bits & OPT_OUT_KINDS[k]) !== 0);
}

export interface OptOutRecord {
  readonly kinds: readonly OptOutKindName[];
  /** ISO 8601. */
  readonly updatedAt: string;
  /** The subject of the caller who made the change (the subject itself, or an admin). */
  readonly updatedBy: string;
}

/**
 * A stored value as a record, or undefined. Kinds this version does not know (written by a newer
 * one) are left out rather than failing the whole record.
 */
export function asRecord(value: unknown): OptOutRecord | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  if (!Array.isArray(v.kinds)) return undefined;
  const kinds = kindsOf(bitsOf(v.kinds.filter(isKindName)));
  return {
    kinds,
    updatedAt: typeof v.updatedAt === 'string' ? v.updatedAt : '',
    updatedBy: typeof v.updatedBy === 'string' ? v.updatedBy : '',
  };
}

export interface RegistryOptions {
  readonly log: Logger;
  /** How often the whole registry is re-read (state.reconcileMs). */
  readonly reconcileMs: number;
  readonly now?: () => number;
}

/** What a change did, for the answer and the audit line. */
export interface Change {
  readonly before: OptOutRecord | undefined;
  readonly after: OptOutRecord | undefined;
}

export class OptOutRegistry {
  readonly #store: StateStore;
  readonly #log: Logger;
  readonly #reconcileMs: number;
  readonly #now: () => number;
  /** subject → bits; only subjects with at least one opt-out. Replaced whole by a reconcile. */
  #bits = new Map<string, number>();
  /** Subjects changed while a reconcile is in flight: its (older) snapshot must not undo them. */
  #touched: Set<string> | undefined;
  #reconciling: Promise<boolean> | undefined;
  #failing = false;
  /** Malformed records seen by the last reconcile: warned about when the number changes, not every time. */
  #malformed = 0;
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => Promise<void>) | undefined;
  #closed = false;

  constructor(store: StateStore, opts: RegistryOptions) {
    this.#store = store;
    this.#log = opts.log.child({ component: 'opt-outs' });
    this.#reconcileMs = opts.reconcileMs;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * Subscribes, then loads the registry. Never fails for want of the store: without it the replica
   * starts with an empty copy (and says so) and fills it at the first reconcile that succeeds.
   */
  async start(): Promise<void> {
    // Subscribed before the first read, so no change made in between is missed.
    this.#unsubscribe = await this.#store.subscribe(OPT_OUTS_CHANNEL, (subject) => void this.#refresh(subject));
    await this.reconcile();
    this.#timer = setInterval(() => void this.reconcile(), this.#reconcileMs);
    this.#timer.unref();
  }

  /** The subject's OPT_OUT bits (0: none), from memory: the request path's only call. */
  bits(subject: string): number {
    return this.#bits.get(subject) ?? 0;
  }

  /** Subjects with an opt-out in the local copy. */
  get size(): number {
    return this.#bits.size;
  }

  /** The subject's record, read from the store (the local copy is brought in line with it). */
  async get(subject: string): Promise<OptOutRecord | undefined> {
    const record = await this.#read(subject);
    this.#apply(subject, record === undefined ? 0 : bitsOf(record.kinds));
    return record;
  }

  /** Replaces the subject's opt-outs with `kinds` (non-empty, validated by the caller). */
  async set(subject: string, kinds: readonly OptOutKindName[], by: string): Promise<Change> {
    const before = await this.#read(subject);
    const bits = bitsOf(kinds);
    const after: OptOutRecord = { kinds: kindsOf(bits), updatedAt: new Date(this.#now()).toISOString(), updatedBy: by };
    await this.#write(() => this.#store.set(OPT_OUTS_SCOPE, subject, after));
    this.#apply(subject, bits);
    await this.#notify(subject);
    return { before, after };
  }

  /** Removes the subject's record (every opt-out); harmless when there is none. */
  async clear(subject: string): Promise<Change> {
    const before = await this.#read(subject);
    await this.#write(() => this.#store.delete(OPT_OUTS_SCOPE, subject));
    this.#apply(subject, 0);
    await this.#notify(subject);
    return { before, after: undefined };
  }

  /**
   * Re-reads the whole registry into a new copy. Resolves to false (keeping the last known copy)
   * when the store does not answer; never rejects. Concurrent calls share one read.
   */
  reconcile(): Promise<boolean> {
    this.#reconciling ??= this.#reconcileOnce().finally(() => (this.#reconciling = undefined));
    return this.#reconciling;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#unsubscribe?.().catch(() => undefined);
  }

  async #reconcileOnce(): Promise<boolean> {
    if (this.#closed) return false;
    const touched = new Set<string>();
    this.#touched = touched;
    try {
      const all = await this.#store.records(OPT_OUTS_SCOPE);
      const next = new Map<string, number>();
      let malformed = 0;
      for (const [subject, value] of all) {
        const record = asRecord(value);
        if (record === undefined) malformed++;
        const bits = record === undefined ? 0 : bitsOf(record.kinds);
        if (bits !== 0) next.set(subject, bits);
      }
      // Changed here or notified while the snapshot was read: the newer value stands.
      for (const subject of touched) {
        const bits = this.#bits.get(subject);
        if (bits === undefined) next.delete(subject);
        else next.set(subject, bits);
      }
      this.#bits = next;
      if (malformed > 0 && malformed !== this.#malformed) this.#log.warn({ malformed }, 'opt-outs: records that are not opt-out records were ignored');
      this.#malformed = malformed;
      if (this.#failing) {
        this.#failing = false;
        this.#log.info({ subjects: next.size }, 'opt-outs: the store answers again; registry reloaded');
      }
      return true;
    } catch (err) {
      if (!this.#failing) {
        this.#failing = true;
        // Once per outage: the copy is still enforced, only changes from other replicas wait.
        this.#log.warn({ err, subjects: this.#bits.size }, 'opt-outs: could not read the registry; keeping the last known copy');
      }
      return false;
    } finally {
      if (this.#touched === touched) this.#touched = undefined;
    }
  }

  /** A notification: re-read that subject. A failure is left to the next reconcile. */
  async #refresh(subject: string): Promise<void> {
    if (this.#closed) return;
    try {
      const record = asRecord(await this.#store.get(OPT_OUTS_SCOPE, subject));
      this.#apply(subject, record === undefined ? 0 : bitsOf(record.kinds));
    } catch (err) {
      this.#log.debug({ err }, 'opt-outs: re-reading a changed record failed; the next reconcile applies it');
    }
  }

  #apply(subject: string, bits: number): void {
    if (bits === 0) this.#bits.delete(subject);
    else this.#bits.set(subject, bits);
    this.#touched?.add(subject);
  }

  async #read(subject: string): Promise<OptOutRecord | undefined> {
    let value: unknown;
    try {
      value = await this.#store.get(OPT_OUTS_SCOPE, subject);
    } catch (err) {
      throw unavailable(err);
    }
    return asRecord(value);
  }

  async #write(write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** The change is stored: a lost notification only delays other replicas until their reconcile. */
  async #notify(subject: string): Promise<void> {
    try {
      await this.#store.publish(OPT_OUTS_CHANNEL, subject);
    } catch (err) {
      this.#log.warn({ err, reconcileMs: this.#reconcileMs }, 'opt-outs: change stored but not announced; other replicas apply it at their next reconcile');
    }
  }
}

function unavailable(err: unknown): unknown {
  return err instanceof StoreUnavailableError ? new GatewayError('STATE_STORE_UNAVAILABLE', undefined, { cause: err }) : err;
}
