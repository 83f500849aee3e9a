/**
 * A scope of the shared store mirrored in this replica's memory: the one mechanism behind every
 * record the request path must read without I/O (opt-outs, run-time routes; kill-switch state next).
 * Unleash's model: evaluate from a local copy, keep the copy fresh in the background.
 *
 * The copy is kept fresh three ways: a change made here is applied at once (after the store took
 * it); a change made on another replica arrives as a notification on the scope's channel (the
 * message is the key, whose record is then re-read); and because notifications are at most once
 * (lost while Redis is away), the whole scope is re-read every `reconcileMs`. A reconcile that
 * fails keeps the last known copy and warns once per outage; a change made while a reconcile reads
 * is not undone by its older snapshot.
 *
 * How a replica starts when the store does not answer (`start`): `open` serves from an empty copy
 * until the first reconcile that succeeds (right for routes: the configuration file's stand);
 * `closed` is not `ready` until the first successful read (the gateway then refuses predictions,
 * GATEWAY_NOT_READY, rather than ignore what it cannot read); `snapshot` starts from the last copy
 * this replica wrote to disk (`snapshotFile`, rewritten after every change and reconcile), and is
 * closed when there is none. A copy that loaded once stays ready: later outages keep the last
 * known copy enforced.
 *
 * A change goes to the store first: when the store cannot take it, the caller gets
 * STATE_STORE_UNAVAILABLE and nothing changed here. (A write that timed out on a stalled Redis may
 * still land once it answers; the next reconcile then applies it everywhere.)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { MirrorStart } from '../config.js';
import { GatewayError } from '../errors.js';
import { readSnapshot, SnapshotWriter } from './snapshot.js';
import { StoreUnavailableError, type CompareAndSetResult, type StateStore, type VersionedRecord } from './store.js';

/** Tries of an unconditional change that keeps losing the race to other writers. */
const MAX_ATTEMPTS = 32;

/** What a change did: the stored record it replaced, what it wrote, and the revision that got. */
export interface ScopeChange {
  readonly before: VersionedRecord | undefined;
  /** undefined: the record was removed. */
  readonly after: unknown;
  /** The record's new revision (0: removed). */
  readonly revision: number;
}

/** The record moved since the caller read it: the answer names the current revision (ETag). */
export function revisionConflict(current: number): GatewayError {
  return new GatewayError('REVISION_CONFLICT', `the current revision is ${current}`, { headers: { etag: `"${current}"` } });
}


export interface MirroredScopeOptions<T> {
  /** The store scope mirrored; also the notification channel. */
  readonly scope: string;
  readonly reconcileMs: number;
  /** Its log lines are prefixed with the scope. */
  readonly log: Logger;
  /**
   * A stored value as what the copy holds: undefined for "no entry" (e.g. a record that opts out of
   * nothing). Throws for a value that is not a record of this scope: it is left out and counted.
   */
  readonly parse: (key: string, value: unknown) => T | undefined;
  /** Called after every change of the copy (not on a request path: it may rebuild tables). */
  readonly onChange?: (entries: ReadonlyMap<string, T>) => void;
  /** Default `open`. */
  readonly start?: MirrorStart;
  /** Where `snapshot` keeps this replica's last copy (written with mode 0600: it may name subjects). */
  readonly snapshotFile?: string;
}

/** A store failure as the catalogue's 503 (nothing was changed); other errors as they are. */
export function storeUnavailable(err: unknown): unknown {
  return err instanceof StoreUnavailableError ? new GatewayError('STATE_STORE_UNAVAILABLE', undefined, { cause: err }) : err;
}

export class MirroredScope<T> {
  readonly #store: StateStore;
  readonly #opts: MirroredScopeOptions<T>;
  readonly #log: Logger;
  /** Replaced whole by a reconcile; read by `get` on the request path. */
  #entries = new Map<string, T>();
  /** Keys changed while a reconcile is in flight: its (older) snapshot must not undo them. */
  #touched: Set<string> | undefined;
  #reconciling: Promise<boolean> | undefined;
  #failing = false;
  /** Malformed records seen by the last reconcile: warned about when the number changes, not every time. */
  #malformed = 0;
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => Promise<void>) | undefined;
  #closed = false;
  #ready: boolean;
  /** When the store last answered for this scope (ms since the epoch; 0: never). */
  #confirmedAt = 0;
  /** The stored values behind the copy, kept only to write snapshots. */
  readonly #raw: Map<string, unknown> | undefined;
  readonly #snapshots: SnapshotWriter | undefined;

  constructor(store: StateStore, opts: MirroredScopeOptions<T>) {
    this.#store = store;
    this.#opts = opts;
    this.#log = opts.log;
    const start = opts.start ?? 'open';
    this.#ready = start === 'open';
    if (start === 'snapshot') {
      if (opts.snapshotFile === undefined) throw new Error(`${opts.scope}: start "snapshot" needs a snapshotFile`);
      this.#raw = new Map();
      this.#snapshots = new SnapshotWriter(opts.snapshotFile, opts.scope, opts.log);
    }
  }

  /** False while a `closed` or `snapshot` scope has nothing it can trust yet: the gateway must not serve. */
  get ready(): boolean {
    return this.#ready;
  }

  /**
   * Subscribes, then loads the scope. Never fails for want of the store: without it the replica
   * starts with an empty copy (and says so) and fills it at the first reconcile that succeeds.
   */
  async start(): Promise<void> {
    // Subscribed before the first read, so no change made in between is missed.
    try {
      this.#unsubscribe = await this.#store.subscribe(this.#opts.scope, (key) => void this.#refresh(key));
    } catch (err) {
      this.#log.warn({ err }, `${this.#opts.scope}: could not subscribe to changes; relying on reconciliation`);
    }
    const loaded = await this.reconcile();
    if (!loaded && this.#opts.start === 'snapshot') await this.#fromSnapshot();
    if (!this.#ready) {
      this.#log.warn(`${this.#opts.scope}: the shared store does not answer and this scope starts closed; predictions are refused (GATEWAY_NOT_READY) until it can be read`);
    }
    this.#timer = setInterval(() => void this.reconcile(), this.#opts.reconcileMs);
    this.#timer.unref();
  }

  async #fromSnapshot(): Promise<void> {
    const snap = await readSnapshot(this.#opts.snapshotFile as string, this.#opts.scope, this.#log);
    if (snap === undefined || this.#ready) return;
    const next = new Map<string, T>();
    for (const [key, value] of snap.records) {
      try {
        const entry = this.#opts.parse(key, value);
        if (entry !== undefined) next.set(key, entry);
        this.#raw?.set(key, value);
      } catch {
        // Not a record of this scope: left out, as a reconcile would.
      }
    }
    this.#entries = next;
    this.#ready = true;
    this.#log.warn({ entries: next.size, writtenAt: snap.writtenAt }, `${this.#opts.scope}: the shared store does not answer; serving from this replica's last snapshot until it does`);
    this.#changed();
  }

  /**
   * When the store last answered a read of this scope (a reconcile, a re-read after an
   * announcement, a change): how fresh the copy is known to be. 0 until the first answer.
   */
  get confirmedAt(): number {
    return this.#confirmedAt;
  }

  /** The local copy's entry: memory only. */
  get(key: string): T | undefined {
    return this.#entries.get(key);
  }

  get entries(): ReadonlyMap<string, T> {
    return this.#entries;
  }

  /** The stored value of `key` with its revision (the local copy is brought in line with it). */
  async read(key: string): Promise<VersionedRecord | undefined> {
    let stored: VersionedRecord | undefined;
    try {
      stored = await this.#store.read(this.#opts.scope, key);
    } catch (err) {
      throw storeUnavailable(err);
    }
    this.#confirmedAt = Date.now();
    this.#take(key, stored?.value);
    this.#changed();
    return stored;
  }

  /**
   * Changes `key` to what `compute` makes of its stored value (undefined: removes it), only if
   * nobody wrote it in between: a compare-and-set on the record's revision, so two replicas changing
   * one record at once each get their own revision, and each change's `before` is what it replaced.
   * With `expected` (the revision the caller read, If-Match), the change is made against that
   * revision only, else REVISION_CONFLICT; without, it is tried again against the newer value.
   * On success the change is applied here and announced to the other replicas.
   */
  async change(key: string, expected: number | undefined, compute: (current: unknown) => unknown): Promise<ScopeChange> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.read(key);
      const revision = current?.revision ?? 0;
      if (expected !== undefined && expected !== revision) throw revisionConflict(revision);
      const after = compute(current?.value);
      let result: CompareAndSetResult;
      try {
        result = await this.#store.compareAndSet(this.#opts.scope, key, revision, after);
      } catch (err) {
        throw storeUnavailable(err);
      }
      if (result.ok) {
        this.#take(key, after);
        this.#changed();
        await this.#notify(key);
        return { before: current, after, revision: result.revision };
      }
      if (expected !== undefined) throw revisionConflict(result.revision);
      // Another writer got in between: read its value and decide again, after a short random pause
      // so that writers racing in step do not keep colliding.
      await sleep(Math.random() * Math.min(50, 2 ** attempt));
    }
    throw new GatewayError('REVISION_CONFLICT', `${this.#opts.scope}/${key} kept changing; try again`);
  }

  /**
   * Re-reads the whole scope into a new copy. Resolves to false (keeping the last known copy) when
   * the store does not answer; never rejects. Concurrent calls share one read.
   */
  reconcile(): Promise<boolean> {
    this.#reconciling ??= this.#reconcileOnce().finally(() => (this.#reconciling = undefined));
    return this.#reconciling;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#unsubscribe?.().catch(() => undefined);
    await this.#snapshots?.close();
  }

  async #reconcileOnce(): Promise<boolean> {
    if (this.#closed) return false;
    const touched = new Set<string>();
    this.#touched = touched;
    const { scope } = this.#opts;
    try {
      const all = await this.#store.records(scope);
      this.#confirmedAt = Date.now();
      if (this.#raw !== undefined) {
        const touchedRaw = new Map([...touched].map((k) => [k, this.#raw?.get(k)]));
        this.#raw.clear();
        for (const [k, v] of all) this.#raw.set(k, v);
        for (const [k, v] of touchedRaw) if (v === undefined) this.#raw.delete(k); else this.#raw.set(k, v);
      }
      const next = new Map<string, T>();
      let malformed = 0;
      for (const [key, value] of all) {
        try {
          const entry = this.#opts.parse(key, value);
          if (entry !== undefined) next.set(key, entry);
        } catch {
          malformed++;
        }
      }
      // Changed here or notified while the snapshot was read: the newer value stands.
      for (const key of touched) {
        const entry = this.#entries.get(key);
        if (entry === undefined) next.delete(key);
        else next.set(key, entry);
      }
      this.#entries = next;
      this.#ready = true;
      if (malformed > 0 && malformed !== this.#malformed) this.#log.warn({ malformed }, `${scope}: records that are not ${scope} records were ignored`);
      this.#malformed = malformed;
      if (this.#failing) {
        this.#failing = false;
        this.#log.info({ entries: next.size }, `${scope}: the store answers again; reloaded`);
      }
      this.#changed();
      return true;
    } catch (err) {
      if (!this.#failing) {
        this.#failing = true;
        // Once per outage: the copy is still enforced, only changes from other replicas wait.
        this.#log.warn({ err, entries: this.#entries.size }, `${scope}: could not read the shared store; keeping the last known copy`);
      }
      return false;
    } finally {
      if (this.#touched === touched) this.#touched = undefined;
    }
  }

  /** A notification: re-read that key. A failure is left to the next reconcile. */
  async #refresh(key: string): Promise<void> {
    if (this.#closed) return;
    try {
      this.#take(key, await this.#store.get(this.#opts.scope, key));
      this.#confirmedAt = Date.now();
      this.#changed();
    } catch (err) {
      this.#log.debug({ err }, `${this.#opts.scope}: re-reading a changed record failed; the next reconcile applies it`);
    }
  }

  /** Puts one stored value (undefined: none) into the copy; a malformed one counts as none. */
  #take(key: string, value: unknown): void {
    let entry: T | undefined;
    try {
      entry = value === undefined || value === null ? undefined : this.#opts.parse(key, value);
    } catch {
      entry = undefined;
    }
    if (entry === undefined) this.#entries.delete(key);
    else this.#entries.set(key, entry);
    if (this.#raw !== undefined) {
      if (entry === undefined) this.#raw.delete(key);
      else this.#raw.set(key, value);
    }
    this.#touched?.add(key);
  }

  #changed(): void {
    this.#opts.onChange?.(this.#entries);
    if (this.#raw !== undefined) this.#snapshots?.schedule(this.#raw);
  }

  /** The change is stored: a lost notification only delays other replicas until their reconcile. */
  async #notify(key: string): Promise<void> {
    try {
      await this.#store.publish(this.#opts.scope, key);
    } catch (err) {
      this.#log.warn({ err, reconcileMs: this.#opts.reconcileMs }, `${this.#opts.scope}: change stored but not announced; other replicas apply it at their next reconcile`);
    }
  }
}
