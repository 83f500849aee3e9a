/**
 * The opt-out registry: who opted out of what. The shared store holds it (scope `opt-outs`, one
 * record per subject, `{kinds, updatedAt, updatedBy}`); every replica mirrors it as a
 * `Map<subject, OPT_OUT bits>` (gateway/state/mirrored-scope.ts: changes applied at once here,
 * notified to other replicas, the whole scope reconciled every `state.reconcileMs`), so the request
 * path reads memory only. A store that cannot take a change answers STATE_STORE_UNAVAILABLE and
 * nothing changed; a store that cannot be read leaves the last known copy enforced.
 */
import type { Logger } from 'pino';
import type { MirrorStart } from '../config.js';
import { MirroredScope } from '../state/mirrored-scope.js';
import type { StateStore } from '../state/store.js';
import { OPT_OUT } from '../../policies/policy.js';

export const OPT_OUTS_SCOPE = 'opt-outs';

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
  /** How the copy starts when the store does not answer (state.mirrors.optOuts); default `open`. */
  readonly start?: MirrorStart;
  readonly snapshotFile?: string;
}

/** What a change did, for the answer and the audit log. */
export interface Change {
  readonly before: OptOutRecord | undefined;
  readonly after: OptOutRecord | undefined;
  /** The record's revision after the change (0: removed). */
  readonly revision: number;
}

export class OptOutRegistry {
  readonly #mirror: MirroredScope<number>;
  readonly #now: () => number;

  constructor(store: StateStore, opts: RegistryOptions) {
    this.#now = opts.now ?? Date.now;
    this.#mirror = new MirroredScope<number>(store, {
      scope: OPT_OUTS_SCOPE,
      reconcileMs: opts.reconcileMs,
      log: opts.log.child({ component: 'opt-outs' }),
      start: opts.start,
      snapshotFile: opts.snapshotFile,
      parse: (_subject, value) => {
        const record = asRecord(value);
        if (record === undefined) throw new Error('not an opt-out record');
        const bits = bitsOf(record.kinds);
        return bits === 0 ? undefined : bits;
      },
    });
  }

  /**
   * Subscribes, then loads the registry. Never fails for want of the store: without it the replica
   * starts with an empty copy (and says so) and fills it at the first reconcile that succeeds.
   */
  start(): Promise<void> {
    return this.#mirror.start();
  }

  /** The subject's OPT_OUT bits (0: none), from memory: the request path's only call. */
  bits(subject: string): number {
    return this.#mirror.get(subject) ?? 0;
  }

  /** False while the copy starts closed and has not been read (the gateway must not serve). */
  get ready(): boolean {
    return this.#mirror.ready;
  }

  /** Subjects with an opt-out in the local copy. */
  get size(): number {
    return this.#mirror.entries.size;
  }

  /** The subject's record and its revision (0: none), read from the store (the local copy follows). */
  async get(subject: string): Promise<{ readonly record: OptOutRecord | undefined; readonly revision: number }> {
    const stored = await this.#mirror.read(subject);
    return { record: asRecord(stored?.value), revision: stored?.revision ?? 0 };
  }

  /**
   * Replaces the subject's opt-outs with `kinds` (non-empty, validated by the caller): a
   * compare-and-set, against `expected` if given (REVISION_CONFLICT when it moved).
   */
  async set(subject: string, kinds: readonly OptOutKindName[], by: string, expected?: number): Promise<Change> {
    const after: OptOutRecord = { kinds: kindsOf(bitsOf(kinds)), updatedAt: new Date(this.#now()).toISOString(), updatedBy: by };
    const done = await this.#mirror.change(subject, expected, () => after);
    return { before: asRecord(done.before?.value), after, revision: done.revision };
  }

  /** Removes the subject's record (every opt-out) and its revision; harmless when there is none. */
  async clear(subject: string, expected?: number): Promise<Change> {
    const done = await this.#mirror.change(subject, expected, () => undefined);
    return { before: asRecord(done.before?.value), after: undefined, revision: 0 };
  }

  /**
   * Re-reads the whole registry into a new copy. Resolves to false (keeping the last known copy)
   * when the store does not answer; never rejects. Concurrent calls share one read.
   */
  reconcile(): Promise<boolean> {
    return this.#mirror.reconcile();
  }

  close(): Promise<void> {
    return this.#mirror.close();
  }
}
