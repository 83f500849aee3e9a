/**
 * The extraction monitor of one model version on one replica: per subject, the signals of its rows
 * (extraction-signals.ts) counted per time window and shared across replicas through the
 * StateStore, judged by the flag rule (extraction-rule.ts). The request path (`observe`) reads and
 * writes memory only; the store is reached in the background:
 *
 * - every `flushMs` (250 ms) the counters added since the last flush are `add`-ed, one bucket
 *   counter per subject per window, key `w<window>|<subject>` in `scope` (buckets: the counters of
 *   SignalCounts and `c<cell>` per coverage cell), expiring `(windows + 1) × windowMs` after the
 *   last add;
 * - every `syncMs` (1 s) each subject seen here within the live windows is re-judged on its counts
 *   `sum`-med over the live windows (every replica's rows), and the verdict kept in memory. A
 *   flagged subject is also written to `<scope>:flags` (refreshed every max(reconcileMs, syncMs),
 *   expiring after three such periods), so the admin list on any replica shows subjects flagged
 *   through other replicas' traffic;
 * - every `reconcileMs` (5 s) the clear and flag records are read back (`records` scans, so not
 *   every second; a clear reaches the other replicas by announcement at once).
 * Between syncs `observe` judges the last merged counts plus the rows it saw since, so a subject
 * sending many rows to one replica is flagged without waiting for a sync.
 *
 * Decay: only the last `windows` windows count, so evidence ages out window by window.
 *
 * Clearing a subject (an admin, `clear`) writes a clear record (`<scope>:clears`, the clear's time,
 * expiring when the windows before it have) and deletes its flag record, then announces it. Every
 * replica then ignores the subject's counters from before the clear: windows that ended before it
 * are skipped, and the clear's own window is counted under its own key (`w<window>c<at>|<subject>`),
 * so rows after the clear still count. A replica that misses the announcement learns the clear at
 * its next sync.
 *
 * A caller opted out of tracking is counted (`observeCounts`: rows only; nothing derived from the
 * payload, and the recent queries of its earlier tracked requests are dropped), so it shows in the
 * row figures but cannot be judged on its queries.
 *
 * Store failures never reach the caller of `observe`: they go to `onError`, and the counters of a
 * failed flush are lost (the flag rule then sees fewer rows, which can only delay a flag).
 */
import type { StateStore } from '../../gateway/state/store.js';
import type { WindowSettings } from './extraction-detector.js';
import { DEFAULT_RULE, isFlagged, judge, nullRates, UNFLAGGED, type NullRates, type RuleSettings, type Verdict } from './extraction-rule.js';
import { QueryTrace, SignalCounts, type ExtractionSignals } from './extraction-signals.js';

export interface ExtractionMonitorOptions<R> extends WindowSettings {
  readonly store: StateStore;
  /** This model version's counters, e.g. `extraction:iris:1`; `<scope>:flags`, `<scope>:clears` beside it. */
  readonly scope: string;
  readonly signals: ExtractionSignals<R>;
  readonly rule?: RuleSettings;
  /** How often counters are added to the store (250 ms, like the quotas' batches). */
  readonly flushMs?: number;
  /** How often subjects are re-judged on the counts of every replica. */
  readonly syncMs?: number;
  /** How often (at a sync) the clear and flag records are read back; 5 s by default. */
  readonly reconcileMs?: number;
  /**
   * Memory for the subjects' recent queries (64 encoded rows each); past it, the queries of the
   * least recently seen subject are dropped (its counters stay). 64 MiB by default.
   */
  readonly traceBudgetBytes?: number;
  readonly now?: () => number;
  /** A store call that failed in the background (counted and logged by the caller). */
  readonly onError: (error: unknown, during: 'flush' | 'sync' | 'clear') => void;
  /**
   * A subject this replica judged flagged that was not (as its rows arrived, or at a sync on every
   * replica's counts): for the audit trail. Called after the verdict; what it throws is ignored.
   */
  readonly onFlagged?: (subject: string, verdict: Verdict) => void;
}

/** A flagged subject in the admin list. */
export interface FlaggedSubject extends Verdict {
  readonly subject: string;
}

/** What a flag record in `<scope>:flags` holds: the verdict, and when it was reached (the start of the sync). */
type FlagRecord = Omit<Verdict, 'flagged'> & { readonly at: number };

class Subject {
  trace: QueryTrace | undefined;
  /** The window `pending` belongs to. */
  pendingWindow = -1;
  readonly pending = new SignalCounts();
  readonly pendingCells = new Map<number, number>();
  /** Queued for the next flush. */
  dirty = false;
  /** Counters of the live windows, every replica's, at the last sync. */
  readonly merged = new SignalCounts();
  /** Counted here since the last sync took its snapshot. */
  readonly recent = new SignalCounts();
  flagged = false;
  verdict: Verdict = UNFLAGGED;
  lastSeen = 0;
  /** The last clear's time (0: never cleared). */
  clearedAt = 0;
  /** When this replica last wrote the subject's flag record (0: it holds none). */
  recordAt = 0;
}

const SYNC_CONCURRENCY = 32;
const DEFAULT_TRACE_BUDGET = 64 * 1024 * 1024;

export class ExtractionMonitor<R> {
  readonly #o: ExtractionMonitorOptions<R>;
  readonly #rule: RuleSettings;
  readonly #nulls: NullRates;
  readonly #now: () => number;
  readonly #ttlMs: number;
  readonly #reconcileMs: number;
  readonly #flagTtlMs: number;
  #lastReconcile = -Infinity;
  readonly #channel: string;
  readonly #subjects = new Map<string, Subject>();
  /** Subjects holding a trace, least recently seen first. */
  readonly #traces = new Map<string, Subject>();
  #traceBytes = 0;
  readonly #traceBudget: number;
  /** Counters of windows that ended before their flush: key → buckets. */
  #ready: { key: string; buckets: Record<string, number> }[] = [];
  #dirty: string[] = [];
  /** Clears known: subject → time. */
  readonly #clears = new Map<string, number>();
  /** Flag records of the store (other replicas' verdicts), as last read. */
  #remote = new Map<string, Verdict>();
  readonly #total = new SignalCounts();
  readonly #batch = new SignalCounts();
  #timers: NodeJS.Timeout[] = [];
  #unsubscribe: (() => Promise<void>) | undefined;
  #syncing: Promise<void> | undefined;
  /** The last flush: a sync waits for it, so its sums include every row counted before. */
  #flushed: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(o: ExtractionMonitorOptions<R>) {
    if (!(o.windowMs > 0) || !(o.windows >= 1)) throw new RangeError('windowMs and windows must be positive');
    this.#o = o;
    this.#rule = o.rule ?? DEFAULT_RULE;
    this.#nulls = nullRates(o.signals.settings, this.#rule);
    this.#now = o.now ?? Date.now;
    this.#ttlMs = (o.windows + 1) * o.windowMs;
    this.#reconcileMs = o.reconcileMs ?? 5000;
    this.#flagTtlMs = 3 * Math.max(this.#reconcileMs, o.syncMs ?? 1000);
    this.#channel = `${o.scope}:cleared`;
    this.#traceBudget = o.traceBudgetBytes ?? DEFAULT_TRACE_BUDGET;
  }

  /**
   * Subscribes to clears and starts the background flush and sync. A store that is down does not
   * stop it: the failure goes to onError and clears are then learnt at each sync.
   */
  static async start<R>(options: ExtractionMonitorOptions<R>): Promise<ExtractionMonitor<R>> {
    const m = new ExtractionMonitor(options);
    try {
      m.#unsubscribe = await options.store.subscribe(m.#channel, (message) => m.#onClearMessage(message));
    } catch (e) {
      options.onError(e, 'clear');
    }
    const run = (what: () => Promise<void>) => () => void what();
    m.#timers = [
      setInterval(run(() => m.flush()), options.flushMs ?? 250).unref(),
      setInterval(run(() => m.sync()), options.syncMs ?? 1000).unref(),
    ];
    return m;
  }

  /**
   * Counts the subject's rows (each scored and encoded once) at `now`; true when the subject is
   * flagged after them. Memory only.
   */
  observe(subject: string, rows: readonly R[], now = this.#now()): boolean {
    const s = this.#touch(subject, now);
    let trace = s.trace;
    if (trace === undefined) trace = this.#newTrace(subject, s);
    else {
      // Least recently seen first: move to the end.
      this.#traces.delete(subject);
      this.#traces.set(subject, s);
    }
    const batch = this.#batch;
    batch.clear();
    trace.recordRows(this.#o.signals, rows, batch, s.pendingCells);
    s.pending.add(batch);
    s.recent.add(batch);
    return this.#check(subject, s);
  }

  /** Rows of a caller opted out of tracking: counted, nothing derived from the payload kept. */
  observeCounts(subject: string, rows: number, now = this.#now()): boolean {
    const s = this.#touch(subject, now);
    this.#dropTrace(subject, s);
    s.pending.rows += rows;
    s.pending.untracked += rows;
    s.recent.rows += rows;
    s.recent.untracked += rows;
    return this.#check(subject, s);
  }

  /** The subject's verdict as this replica knows it. */
  status(subject: string): Verdict {
    const s = this.#subjects.get(subject);
    if (s?.flagged) return s.verdict;
    return this.#remote.get(subject) ?? s?.verdict ?? UNFLAGGED;
  }

  /** Every flagged subject known here (judged here, or flagged by another replica), highest score first. */
  flagged(): FlaggedSubject[] {
    const names = new Set(this.#remote.keys());
    for (const [name, s] of this.#subjects) if (s.flagged) names.add(name);
    const out: FlaggedSubject[] = [];
    for (const subject of names) out.push({ subject, ...this.status(subject) });
    return out.sort((a, b) => b.score - a.score || a.subject.localeCompare(b.subject));
  }

  /**
   * Clears the subject on every replica: its earlier counters stop counting, its flag is removed
   * and replicas drop what they hold of it. Rejects when the store cannot take the clear.
   */
  async clear(subject: string): Promise<void> {
    const at = this.#now();
    const store = this.#o.store;
    await store.set(`${this.#o.scope}:clears`, subject, { at }, { ttlMs: this.#ttlMs });
    await store.delete(`${this.#o.scope}:flags`, subject);
    this.#applyClear(subject, at);
    await store.publish(this.#channel, JSON.stringify({ subject, at }));
  }

  /** Adds the counters gathered since the last flush to the store; resolves when every earlier flush has landed too. */
  flush(): Promise<void> {
    const adds = this.#ready;
    this.#ready = [];
    for (const name of this.#dirty) {
      const s = this.#subjects.get(name);
      if (s === undefined || !s.dirty) continue;
      s.dirty = false;
      if (s.pending.rows === 0) continue;
      adds.push({ key: this.#key(name, s.pendingWindow, s.clearedAt), buckets: s.pending.toBuckets(s.pendingCells) });
      s.pending.clear();
      s.pendingCells.clear();
    }
    this.#dirty = [];
    const { store, scope, onError } = this.#o;
    let failure: unknown;
    const landed = Promise.all(adds.map((a) => store.add(scope, a.key, a.buckets, this.#ttlMs).catch((e: unknown) => {
      failure ??= e;
    })));
    // One report per flush, however many adds a store that is down refused.
    const done = Promise.all([this.#flushed, landed]).then(() => {
      if (failure !== undefined) onError(failure, 'flush');
    });
    this.#flushed = done;
    return done;
  }

  /** Learns clears, flushes, re-judges every subject seen here on every replica's counts. */
  sync(): Promise<void> {
    this.#syncing ??= this.#sync().catch((e: unknown) => this.#o.onError(e, 'sync')).finally(() => {
      this.#syncing = undefined;
    });
    return this.#syncing;
  }

  /** Stops the background work after a last flush. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    await this.#syncing;
    await this.flush();
    await this.#unsubscribe?.().catch((e: unknown) => this.#o.onError(e, 'clear'));
  }

  async #sync(): Promise<void> {
    const start = this.#now();
    const { store, scope } = this.#o;
    const reconcile = start - this.#lastReconcile >= this.#reconcileMs;
    if (reconcile) {
      this.#lastReconcile = start;
      for (const [subject, v] of await store.records(`${scope}:clears`)) {
        const at = (v as { at?: unknown } | null)?.at;
        if (typeof at === 'number' && at > (this.#clears.get(subject) ?? 0)) this.#applyClear(subject, at);
      }
    }
    const horizon = start - this.#ttlMs;
    for (const [subject, at] of this.#clears) if (at < horizon) this.#clears.delete(subject);
    for (const s of this.#subjects.values()) s.recent.clear();
    await this.flush();
    const current = Math.floor(start / this.#o.windowMs);
    const live = start - this.#o.windows * this.#o.windowMs;
    const names: string[] = [];
    for (const [name, s] of this.#subjects) {
      if (s.lastSeen >= live || s.dirty) names.push(name);
      else this.#forget(name, s);
    }
    for (let i = 0; i < names.length; i += SYNC_CONCURRENCY) {
      await Promise.all(names.slice(i, i + SYNC_CONCURRENCY).map((name) => this.#judge(name, current, start)));
    }
    if (!reconcile) return;
    const remote = new Map<string, Verdict>();
    for (const [subject, v] of await store.records(`${scope}:flags`)) {
      const r = v as FlagRecord;
      if (typeof r?.at !== 'number' || r.at < (this.#clears.get(subject) ?? 0) || !Array.isArray(r.signals)) continue;
      remote.set(subject, { flagged: true, score: r.score, signals: r.signals, scores: r.scores, rows: r.rows, cells: r.cells });
    }
    this.#remote = remote;
  }

  /** One subject re-judged on the merged counts; its flag record written or removed to match. */
  async #judge(name: string, current: number, start: number): Promise<void> {
    const { store, scope } = this.#o;
    const s = this.#subjects.get(name);
    if (s === undefined) return;
    const clearedAt = s.clearedAt;
    const sum = await store.sum(scope, this.#windowKeys(name, current, clearedAt));
    if (s.clearedAt !== clearedAt || this.#subjects.get(name) !== s) return; // cleared meanwhile
    s.merged.setFromBuckets(sum);
    const total = new SignalCounts();
    total.copy(s.merged);
    const cells = total.cells;
    total.add(s.recent);
    total.cells = cells;
    const was = s.flagged;
    s.verdict = judge(total, this.#nulls, this.#rule);
    s.flagged = s.verdict.flagged;
    if (s.flagged && !was) this.#flagged(name, s.verdict);
    if (s.flagged) {
      if (was && s.recordAt > 0 && start - s.recordAt < this.#flagTtlMs / 3) return;
      const { score, signals, scores, rows } = s.verdict;
      const record: FlagRecord = { at: start, score, signals, scores, rows, cells };
      s.recordAt = start;
      await store.set(`${scope}:flags`, name, record, { ttlMs: this.#flagTtlMs });
    } else if (was || this.#remote.has(name)) {
      // The merged counts are every replica's: a flag record still standing is out of date.
      s.recordAt = 0;
      this.#remote.delete(name);
      await store.delete(`${scope}:flags`, name);
    }
  }

  #touch(subject: string, now: number): Subject {
    let s = this.#subjects.get(subject);
    if (s === undefined) {
      s = new Subject();
      s.clearedAt = this.#clears.get(subject) ?? 0;
      this.#subjects.set(subject, s);
    }
    s.lastSeen = now;
    const w = Math.floor(now / this.#o.windowMs);
    if (s.pendingWindow !== w) {
      // A new window: what was gathered for the old one goes out as it is.
      if (s.pending.rows > 0) this.#ready.push({ key: this.#key(subject, s.pendingWindow, s.clearedAt), buckets: s.pending.toBuckets(s.pendingCells) });
      s.pending.clear();
      s.pendingCells.clear();
      s.pendingWindow = w;
    }
    if (!s.dirty) {
      s.dirty = true;
      this.#dirty.push(subject);
    }
    return s;
  }

  #newTrace(subject: string, s: Subject): QueryTrace {
    const trace = new QueryTrace(this.#o.signals.settings.columns);
    this.#traceBytes += trace.bytes;
    for (const [name, old] of this.#traces) {
      if (this.#traceBytes <= this.#traceBudget) break;
      this.#dropTrace(name, old);
    }
    s.trace = trace;
    this.#traces.set(subject, s);
    return trace;
  }

  #dropTrace(name: string, s: Subject): void {
    if (s.trace === undefined) return;
    this.#traceBytes -= s.trace.bytes;
    s.trace = undefined;
    this.#traces.delete(name);
  }

  #forget(name: string, s: Subject): void {
    this.#dropTrace(name, s);
    this.#subjects.delete(name);
  }

  /** Flagged when already judged so, by another replica, or now on merged plus recent counts. */
  #check(subject: string, s: Subject): boolean {
    if (s.flagged) return true;
    if (this.#remote.has(subject)) return true;
    const total = this.#total;
    total.copy(s.merged);
    total.add(s.recent);
    if (total.rows < this.#rule.minRows || !isFlagged(total, this.#nulls, this.#rule)) return false;
    s.flagged = true;
    s.verdict = judge(total, this.#nulls, this.#rule);
    this.#flagged(subject, s.verdict);
    return true;
  }

  #flagged(subject: string, verdict: Verdict): void {
    try {
      this.#o.onFlagged?.(subject, verdict);
    } catch {
      // the audit trail's trouble, never the request's
    }
  }

  #key(subject: string, window: number, clearedAt: number): string {
    return clearedAt > 0 && Math.floor(clearedAt / this.#o.windowMs) === window ? `w${window}c${clearedAt}|${subject}` : `w${window}|${subject}`;
  }

  /** The keys of the live windows, skipping those that ended before the subject's last clear. */
  #windowKeys(subject: string, current: number, clearedAt: number): string[] {
    const from = Math.max(current - this.#o.windows + 1, clearedAt > 0 ? Math.floor(clearedAt / this.#o.windowMs) : -Infinity);
    const keys: string[] = [];
    for (let w = from; w <= current; w++) keys.push(this.#key(subject, w, clearedAt));
    return keys;
  }

  #applyClear(subject: string, at: number): void {
    if (at <= (this.#clears.get(subject) ?? 0)) return;
    this.#clears.set(subject, at);
    this.#remote.delete(subject);
    const s = this.#subjects.get(subject);
    if (s === undefined) return;
    // What was gathered before the clear no longer counts; a new Subject starts from nothing.
    this.#forget(subject, s);
    const fresh = new Subject();
    fresh.clearedAt = at;
    fresh.lastSeen = s.lastSeen;
    this.#subjects.set(subject, fresh);
  }

  #onClearMessage(message: string): void {
    try {
      const { subject, at } = JSON.parse(message) as { subject?: unknown; at?: unknown };
      if (typeof subject === 'string' && typeof at === 'number') this.#applyClear(subject, at);
    } catch (e) {
      this.#o.onError(e, 'clear');
    }
  }
}
