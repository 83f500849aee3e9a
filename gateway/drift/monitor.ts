/**
 * The drift monitors: one per model version whose model has a `drift` section, kept in step with
 * the model table like the extraction monitors (made when a version is served, replaced when its
 * profile changes, closed when it goes).
 *
 * Off the request path: the observer phase (gateway/observers.ts) hands every ended request to
 * `observe`, which counts an answered request's rows into this replica's pending bins (a binary
 * search or a Map lookup per feature, no allocation beyond the feature rows) and returns. Requests of
 * subjects who opted out of tracking reach observers without their payload and answer
 * (gateway/retention.ts), so nothing of theirs is ever counted. A timer flushes the pending counts to
 * the shared window (shared-window.ts) once a second, or sooner when half a window is waiting, and
 * judges the merged window every `evaluateMs`; a store that does not answer only pauses both (the
 * counts stay pending, in a fixed-size array, and go with the next flush that succeeds).
 *
 * Judging: per feature and output, statistics.ts's PSI, Jensen–Shannon distance and KS or
 * chi-square test of the live window against the reference; a raw status from effect size and
 * Bonferroni-corrected significance on at least minSamples rows; confirmed over `confirmations`
 * consecutive evaluations, counted only when the window has moved on by a tenth of its size (so
 * polling faster does not confirm sooner). The overall status is shared through the store (one
 * record per version), so the replica that sees a change first records it once, with its time, and
 * only that replica sends the webhook alert and the audit record.
 *
 * Without a profile (`drift.baseline.samples`), a version's first rows are its reference: the bins
 * come from the first rows one replica sees (BASELINE_BIN_ROWS, their quantiles, as a profile's do)
 * and are shared through the store, then the next `samples` rows of all replicas are the baseline
 * counts, kept in a store record, and the live window starts after them.
 */
import type { Logger } from 'pino';
import type { InferResponse } from '../../adapters/adapter.js';
import type { ModelTable } from '../../adapters/registry.js';
import { featureProfiles } from '../profile/build.js';
import { featureRows, type RowValues } from '../../policies/guards/features.js';
import type { DriftBins, DriftReference, Profile, ProfileInput } from '../../policies/guards/profile.js';
import type { DriftConfig, GatewayConfig } from '../config.js';
import type { RequestEnd } from '../observers.js';
import type { StateStore } from '../state/store.js';
import type { DriftGaugeRow } from '../telemetry/metrics.js';
import { compileDrift, type CompiledDrift } from './bin-row.js';
import { areProbabilities } from '../profile/answers.js';
import { driftReference } from '../profile/drift-reference.js';
import { SharedWindow, type ResetPoint, type WindowSpec } from './shared-window.js';
import { binStats, overallStatus, rawStatus, StatusTracker, type BinStats, type DriftStatus, type DriftThresholds } from './statistics.js';

/** Rows a replica collects to fix a baseline's bins when the version has no profile. */
export const BASELINE_BIN_ROWS = 500;
/** Confirmations count only evaluations at least this share of a window apart (sample windows). */
const CONFIRM_STEP = 0.1;

export const STATUS_VALUE: Readonly<Record<DriftStatus, number>> = { insufficient: -1, ok: 0, warning: 1, drift: 2 };

/** One feature's or output's figures in a report. */
export interface DriftFigure {
  readonly name: string;
  readonly kind: 'numeric' | 'categorical';
  readonly status: DriftStatus;
  /** This evaluation's unconfirmed verdict. */
  readonly raw: DriftStatus;
  readonly samples: number;
  readonly psi: number;
  readonly js: number;
  readonly pValue: number;
  readonly ks?: { readonly statistic: number; readonly pValue: number };
  readonly chiSquare?: { readonly statistic: number; readonly df: number; readonly pValue: number };
  /** The bins that moved most (PSI contribution), with their reference and live shares. */
  readonly top: readonly { readonly bin: string; readonly reference: number; readonly live: number; readonly contribution: number }[];
}

/** What `GET /admin/models/{m}/drift` answers. */
export interface DriftReport {
  readonly model: string;
  readonly version: string;
  readonly status: DriftStatus;
  /** When the overall status last changed (ISO 8601), null before any change; `statusRevision` counts changes. */
  readonly since: string | null;
  readonly reference: { readonly kind: 'profile' | 'baseline' | 'version'; readonly rows: number; readonly version?: string; readonly state?: 'collecting-bins' | 'counting' | 'ready' };
  readonly window: { readonly kind: 'samples' | 'seconds'; readonly size: number; readonly mode: 'sliding' | 'tumbling'; readonly samples: number; readonly from: number; readonly to: number };
  readonly thresholds: DriftThresholds;
  readonly evaluatedAt: string;
  readonly features: readonly DriftFigure[];
  readonly outputs: readonly DriftFigure[];
}

interface SharedStatus {
  readonly status: DriftStatus;
  readonly since: string;
}

/** A version's baseline while it is being set up (no profile). */
interface Baseline {
  readonly samples: number;
  /** Rows this replica keeps until bins are fixed. */
  rows: RowValues[];
  answers: { values: Float64Array; classes: number }[];
  /** The baseline's counts once complete, and the epoch and sample number where it ended. */
  counts: Float64Array | undefined;
  epoch: number | undefined;
  end: number | undefined;
}

function thresholdsOf(d: DriftConfig): DriftThresholds {
  return { ...d.thresholds };
}

function specOf(d: DriftConfig): WindowSpec {
  return d.window.seconds !== undefined ? { kind: 'seconds', size: d.window.seconds, mode: d.window.mode } : { kind: 'samples', size: d.window.samples, mode: d.window.mode };
}

/** A readable name of bin `i` of `b`. */
export function binLabel(b: DriftBins, i: number): string {
  if (b.kind === 'categorical') return i < b.categories.length ? b.categories[i] : i === b.categories.length ? '(other)' : '(missing)';
  const e = b.edges.map((x) => Number(x.toPrecision(4)));
  if (i === e.length + 1) return '(missing)';
  if (i === 0) return `< ${e[0]}`;
  if (i === e.length) return `>= ${e[e.length - 1]}`;
  return `[${e[i - 1]}, ${e[i]})`;
}

/** The bins without their counts: two references with equal layouts can be compared. */
function layoutOf(ref: DriftReference): string {
  const strip = (b: DriftBins) => (b.kind === 'numeric' ? { n: b.name, e: b.edges } : { n: b.name, c: b.categories });
  return JSON.stringify({ f: ref.features.map(strip), o: ref.outputs.map(strip), out: ref.output ?? null });
}

class VersionDrift {
  readonly model: string;
  readonly version: string;
  readonly profile: Profile | undefined;
  readonly config: DriftConfig;
  readonly #store: StateStore;
  readonly #scope: string;
  readonly #log: Logger;
  readonly #inputs: readonly ProfileInput[];
  #reference: DriftReference | undefined;
  #compiled: CompiledDrift | undefined;
  #window: SharedWindow | undefined;
  #pending: Float64Array = new Float64Array(0);
  #pendingRows = 0;
  #flushing: Promise<void> | undefined;
  #trackers: StatusTracker[] = [];
  #lastCounted = -Infinity;
  /** The overall raw status of this replica's last `confirmations` counted evaluations (the evidence for moving the shared status). */
  #recent: DriftStatus[] = [];
  #last: DriftReport | undefined;
  #shared: { status: SharedStatus | undefined; revision: number } = { status: undefined, revision: 0 };
  readonly #baseline: Baseline | undefined;
  readonly #onChange: (report: DriftReport, from: DriftStatus) => void;

  constructor(opts: { model: string; version: string; profile: Profile | undefined; inputs: readonly ProfileInput[]; config: DriftConfig; store: StateStore; log: Logger; onChange: (report: DriftReport, from: DriftStatus) => void }) {
    this.model = opts.model;
    this.version = opts.version;
    this.profile = opts.profile;
    this.config = opts.config;
    this.#store = opts.store;
    this.#scope = `drift:${opts.model}`;
    this.#log = opts.log;
    this.#inputs = opts.inputs;
    this.#onChange = opts.onChange;
    const ref = opts.profile?.drift;
    if (ref !== undefined) this.#use(ref);
    else if (opts.config.baseline !== undefined) this.#baseline = { samples: opts.config.baseline.samples, rows: [], answers: [], counts: undefined, epoch: undefined, end: undefined };
  }

  get reference(): DriftReference | undefined {
    return this.#reference;
  }

  get last(): DriftReport | undefined {
    return this.#last;
  }

  #use(ref: DriftReference): void {
    this.#reference = ref;
    this.#compiled = compileDrift(ref);
    this.#pending = new Float64Array(this.#compiled.binsTotal);
    this.#window = new SharedWindow(this.#store, this.#scope, this.version, this.#compiled.binsTotal, specOf(this.config));
    this.#trackers = [...ref.features, ...ref.outputs].map(() => new StatusTracker(this.config.thresholds.confirmations));
  }

  /** Counts one answered request's rows (already sampled). */
  count(end: RequestEnd): void {
    const payload = end.payload;
    if (payload === undefined) return;
    const rows = featureRows({ inputs: this.#inputs }, payload);
    const compiled = this.#compiled;
    if (compiled === undefined) {
      this.#collect(rows, end.answer);
      return;
    }
    for (const row of rows) compiled.addFeatures(row, this.#pending);
    const out = this.#reference?.output;
    if (out !== undefined && end.answer !== undefined) {
      const t = end.answer.outputs.find((o) => o.name === out.name);
      const data = t?.data as ArrayLike<number> | undefined;
      if (data !== undefined && data.length === rows.length * out.classes) {
        for (let r = 0; r < rows.length; r++) compiled.addOutputRow(data, r * out.classes, out.classes, this.#pending);
      }
    }
    this.#pendingRows += rows.length;
    const spec = this.#window?.spec;
    // A failed early flush keeps its counts pending; the timer's next flush reports the outage.
    if (spec?.kind === 'samples' && this.#pendingRows >= spec.size / 2) this.flush().catch(() => undefined);
  }

  /** Baseline, before bins are fixed: keeps this replica's first rows (and class-score answers). */
  #collect(rows: RowValues[], answer: InferResponse | undefined): void {
    const b = this.#baseline;
    if (b === undefined || b.rows.length >= BASELINE_BIN_ROWS) return;
    b.rows.push(...rows);
    const out = answer?.outputs.find((o) => o.shape.length === 2 && o.shape[0] === rows.length && o.shape[1] >= 2 && o.datatype.startsWith('FP'));
    if (out !== undefined) {
      this.#lastOutputName = out.name;
      const data = out.data as ArrayLike<number>;
      const classes = out.shape[1];
      for (let r = 0; r < rows.length; r++) b.answers.push({ values: Float64Array.from({ length: classes }, (_, j) => data[r * classes + j]), classes });
    }
    if (b.rows.length >= BASELINE_BIN_ROWS) this.#fixBins().catch((e: unknown) => this.#log.warn({ model: this.model, version: this.version, problem: (e as Error).message }, 'drift: the baseline bins could not be fixed'));
  }

  /** Proposes bins from this replica's first rows; the first proposal stored wins on every replica. */
  async #fixBins(): Promise<void> {
    const b = this.#baseline as Baseline;
    const rows = b.rows;
    const features = featureProfiles(this.#inputs, rows);
    const name = this.#lastOutputName;
    const vectors = b.answers.map((a) => a.values);
    const answers = name === undefined || vectors.length !== rows.length
      ? undefined
      : { output: { name, logits: !areProbabilities(vectors), classes: vectors[0]?.length ?? 0 }, rows: vectors };
    const proposal = driftReference(features, rows, answers);
    const key = `drift:${this.version}:bins`;
    try {
      const r = await this.#store.compareAndSet(this.#scope, key, 0, proposal);
      if (!r.ok) await this.#adoptBins();
      else this.#startBaseline(proposal);
    } catch (e) {
      this.#log.warn({ model: this.model, version: this.version, problem: (e as Error).message }, 'drift: the baseline bins could not be stored; retrying with the next rows');
      b.rows = rows.slice(0, BASELINE_BIN_ROWS - 1);
      b.answers = b.answers.slice(0, BASELINE_BIN_ROWS - 1);
    }
  }

  /** The output whose answers the baseline keeps (an FP [N, classes] output), once seen. */
  #lastOutputName: string | undefined;

  async #adoptBins(): Promise<void> {
    const stored = await this.#store.get(this.#scope, `drift:${this.version}:bins`);
    if (stored !== undefined && this.#compiled === undefined) this.#startBaseline(stored as DriftReference);
  }

  #startBaseline(ref: DriftReference): void {
    if (this.#compiled !== undefined) return;
    this.#use({ ...ref, rows: 0 });
    const b = this.#baseline as Baseline;
    b.rows = [];
    b.answers = [];
  }

  /** Adds the pending counts to the shared window (one at a time; a failure keeps them pending). */
  flush(): Promise<void> {
    this.#flushing ??= this.#flush().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  async #flush(): Promise<void> {
    const window = this.#window;
    if (window === undefined || this.#pendingRows === 0) return;
    await this.#syncEpoch();
    if (this.#pendingRows === 0) return;
    const counts = this.#pending;
    const n = this.#pendingRows;
    this.#pending = new Float64Array(counts.length);
    this.#pendingRows = 0;
    try {
      await window.flush(counts, n, Date.now());
    } catch (e) {
      // Kept for the next flush: the array is fixed-size whatever the traffic.
      for (let i = 0; i < counts.length; i++) this.#pending[i] += counts[i];
      this.#pendingRows += n;
      throw e;
    }
  }

  /**
   * Reads the shared reset epoch; when it moved on, this replica's window, trackers and pending
   * counts start afresh (rows counted before this replica learned of the reset are dropped).
   */
  async #syncEpoch(): Promise<void> {
    const v = (await this.#store.get(this.#scope, `drift:${this.version}:epoch`)) as { epoch?: unknown } | undefined;
    const epoch = typeof v?.epoch === 'number' ? v.epoch : 0;
    const window = this.#window;
    if (window === undefined || epoch === window.epoch) return;
    window.epoch = epoch;
    this.#pending.fill(0);
    this.#pendingRows = 0;
    this.#trackers = this.#trackers.map(() => new StatusTracker(this.config.thresholds.confirmations));
    this.#lastCounted = -Infinity;
    this.#recent = [];
  }

  /**
   * Baseline mode: the reference counts once the baseline is complete (undefined before), and where
   * the live window starts: after the baseline's samples in its epoch, from 0 in a later one.
   */
  async #baselineCounts(): Promise<{ counts: Float64Array; start: ResetPoint | undefined } | undefined> {
    const b = this.#baseline as Baseline;
    const window = this.#window as SharedWindow;
    const key = `drift:${this.version}:baseline`;
    if (b.counts === undefined) {
      const stored = (await this.#store.get(this.#scope, key)) as { counts: number[]; epoch: number; end: number } | undefined;
      if (stored !== undefined) {
        b.counts = Float64Array.from(stored.counts);
        b.epoch = stored.epoch;
        b.end = stored.end;
      } else {
        // Where the baseline starts: the first position a replica stored after the bins were fixed.
        const startKey = `drift:${this.version}:baseline-start`;
        let begin = (await this.#store.get(this.#scope, startKey)) as { epoch: number; start: number } | undefined;
        if (begin === undefined) {
          await this.#store.compareAndSet(this.#scope, startKey, 0, { epoch: window.epoch, start: await window.position(Date.now()) });
          begin = (await this.#store.get(this.#scope, startKey)) as { epoch: number; start: number };
        }
        const end = begin.start + b.samples;
        if (begin.epoch !== window.epoch || (await window.position(Date.now())) < end) return undefined;
        const read = await window.readRange(begin.start, end, begin.epoch);
        await this.#store.compareAndSet(this.#scope, key, 0, { counts: [...read.counts], epoch: begin.epoch, end });
        const final = (await this.#store.get(this.#scope, key)) as { counts: number[]; epoch: number; end: number };
        b.counts = Float64Array.from(final.counts);
        b.epoch = final.epoch;
        b.end = final.end;
      }
    }
    return { counts: b.counts, start: b.epoch === window.epoch ? { at: b.end as number } : undefined };
  }

  /**
   * Flushes, reads the merged window and judges it. `against`: another version's monitor whose
   * live window is the reference instead (no confirmation, nothing recorded).
   */
  async evaluate(against?: VersionDrift): Promise<DriftReport | undefined> {
    await this.flush().catch(() => undefined);
    if (this.#baseline !== undefined && this.#compiled === undefined && this.#baseline.rows.length === 0) await this.#adoptBins().catch(() => undefined);
    const ref = this.#reference;
    const window = this.#window;
    if (ref === undefined || window === undefined) return this.#collecting();
    const now = Date.now();
    let refCounts: Float64Array | undefined;
    let refKind: DriftReport['reference'];
    await this.#syncEpoch();
    let start: ResetPoint | undefined;
    if (against !== undefined) {
      const other = await against.liveCounts();
      if (other === undefined) return undefined;
      refCounts = other.counts;
      refKind = { kind: 'version', version: against.version, rows: other.samples };
    } else if (this.#baseline !== undefined) {
      const base = await this.#baselineCounts();
      refCounts = base?.counts;
      start = base?.start;
      refKind = { kind: 'baseline', rows: base === undefined ? 0 : this.#baseline.samples, state: base === undefined ? 'counting' : 'ready' };
    } else {
      refKind = { kind: 'profile', rows: ref.rows };
    }
    const live = await window.read(now, start);
    const blocks = [...ref.features, ...ref.outputs];
    const compiled = this.#compiled as CompiledDrift;
    const t = this.config.thresholds;
    const tests = blocks.length;
    const counted = against === undefined && (this.#baseline === undefined || refCounts !== undefined) && this.#counts(live.to, window.spec);
    const figures: DriftFigure[] = blocks.map((b, i) => {
      const off = compiled.offsets[i];
      const len = b.counts.length;
      const reference = refCounts === undefined ? (this.#baseline === undefined ? b.counts : undefined) : refCounts.subarray(off, off + len);
      const liveBins = live.counts.subarray(off, off + len);
      if (reference === undefined) return this.#insufficient(b, live.samples);
      const s: BinStats = binStats(b.kind, reference, liveBins);
      const raw = rawStatus(s, t, tests);
      const status = counted ? this.#trackers[i].update(raw) : against === undefined ? this.#trackers[i].status : raw;
      return {
        name: b.name,
        kind: b.kind,
        status,
        raw,
        samples: s.samples,
        psi: s.psi,
        js: s.js,
        pValue: s.pValue,
        ...(s.ks === undefined ? {} : { ks: s.ks }),
        ...(s.chiSquare === undefined ? {} : { chiSquare: s.chiSquare }),
        top: s.top.map((x) => ({ bin: binLabel(b, x.bin), reference: x.reference, live: x.live, contribution: x.contribution })),
      };
    });
    if (counted) this.#recent = [...this.#recent, overallStatus(figures.map((f) => f.raw))].slice(-t.confirmations);
    const status = overallStatus(figures.map((f) => f.status));
    const spec = window.spec;
    const report: DriftReport = {
      model: this.model,
      version: this.version,
      status,
      since: this.#shared.status?.since ?? null,
      reference: refKind,
      window: { kind: spec.kind, size: spec.size, mode: spec.mode, samples: live.samples, from: live.from, to: live.to },
      thresholds: { ...t },
      evaluatedAt: new Date(now).toISOString(),
      features: figures.slice(0, ref.features.length),
      outputs: figures.slice(ref.features.length),
    };
    if (against !== undefined) return report;
    const shared = await this.#recordStatus(report);
    // Every replica reports the shared overall status (its features show its own view).
    this.#last = { ...report, status: shared?.status ?? report.status, since: shared?.since ?? report.since };
    return this.#last;
  }

  #insufficient(b: DriftBins, samples: number): DriftFigure {
    return { name: b.name, kind: b.kind, status: 'insufficient', raw: 'insufficient', samples, psi: 0, js: 0, pValue: 1, top: [] };
  }

  /** A report while a baseline's bins are not fixed yet. */
  #collecting(): DriftReport {
    const spec = specOf(this.config);
    return {
      model: this.model,
      version: this.version,
      status: 'insufficient',
      since: null,
      reference: { kind: 'baseline', rows: 0, state: 'collecting-bins' },
      window: { kind: spec.kind, size: spec.size, mode: spec.mode, samples: 0, from: 0, to: 0 },
      thresholds: thresholdsOf(this.config),
      evaluatedAt: new Date().toISOString(),
      features: [],
      outputs: [],
    };
  }

  /** Whether this evaluation counts towards confirmation: the window moved on by CONFIRM_STEP of its size. */
  #counts(to: number, spec: WindowSpec): boolean {
    if (spec.kind === 'seconds') return true;
    if (to - this.#lastCounted < Math.max(1, spec.size * CONFIRM_STEP) && to >= this.#lastCounted) return false;
    this.#lastCounted = to;
    return true;
  }

  /** The live window's merged counts (compare mode). */
  async liveCounts(): Promise<{ counts: Float64Array; samples: number } | undefined> {
    await this.flush().catch(() => undefined);
    if (this.#window === undefined) return undefined;
    await this.#syncEpoch();
    const read = await this.#window.read(Date.now(), (await this.#baselineStart()));
    return { counts: read.counts, samples: read.samples };
  }

  /** Baseline mode: where the live window starts (after the baseline, in its epoch). */
  async #baselineStart(): Promise<ResetPoint | undefined> {
    return this.#baseline === undefined ? undefined : (await this.#baselineCounts())?.start;
  }

  /** Writes a change of the overall status to the shared record; the writer alerts. */
  /**
   * Writes a change of the overall status to the shared record; the writer alerts. A replica moves
   * the shared status only on its own evidence: its last `confirmations` counted evaluations all at
   * or beyond the new level (up) or all at or below it (down), as statistics.ts's StatusTracker
   * confirms a feature; a replica whose evaluations lag cannot undo another's change, so replicas
   * that judge at different moments do not flap the status (and the webhook) between them.
   * `insufficient` (a reset, an empty window) is taken at once.
   */
  async #recordStatus(report: DriftReport): Promise<SharedStatus | undefined> {
    const key = `drift:${this.version}:status`;
    const current = await this.#store.read(this.#scope, key);
    const stored = current?.value as SharedStatus | undefined;
    this.#shared = { status: stored, revision: current?.revision ?? 0 };
    const before: DriftStatus = stored?.status ?? 'insufficient';
    if (before === report.status) return stored;
    const level = STATUS_VALUE[report.status];
    const up = level > STATUS_VALUE[before];
    const recent = this.#recent;
    const evidence = report.status === 'insufficient'
      ? recent.at(-1) === 'insufficient'
      : recent.length >= this.config.thresholds.confirmations && recent.every((r) => (up ? STATUS_VALUE[r] >= level : STATUS_VALUE[r] <= level));
    if (!evidence) return stored;
    const next: SharedStatus = { status: report.status, since: report.evaluatedAt };
    const r = await this.#store.compareAndSet(this.#scope, key, current?.revision ?? 0, next);
    if (!r.ok) return stored;
    this.#shared = { status: next, revision: r.revision };
    this.#onChange({ ...report, since: next.since }, before);
    return next;
  }

  /** Starts a new window: the next epoch, on every replica (each learns it at its next flush or evaluation). */
  async reset(): Promise<{ epoch: number }> {
    const key = `drift:${this.version}:epoch`;
    const current = (await this.#store.get(this.#scope, key)) as { epoch?: unknown } | undefined;
    const epoch = (typeof current?.epoch === 'number' ? current.epoch : 0) + 1;
    await this.#store.set(this.#scope, key, { epoch, at: Date.now() });
    await this.#syncEpoch();
    return { epoch };
  }

  gaugeRows(): DriftGaugeRow[] {
    const r = this.#last;
    if (r === undefined) return [];
    const row = (f: DriftFigure): DriftGaugeRow => ({ model: this.model, version: this.version, feature: f.name, status: STATUS_VALUE[f.status], psi: f.psi, js: f.js, samples: f.samples });
    return [
      { model: this.model, version: this.version, feature: '*', status: STATUS_VALUE[r.status], psi: undefined, js: undefined, samples: r.window.samples },
      ...r.features.map(row),
      ...r.outputs.map(row),
    ];
  }
}

export interface DriftMonitorsOptions {
  readonly store: StateStore;
  readonly log: Logger;
  /** Told of every change of a version's overall status this replica recorded (webhook, audit). */
  readonly onChange?: (report: DriftReport, from: DriftStatus) => void;
  /** Random numbers for sampling (tests). */
  readonly random?: () => number;
}

export class DriftMonitors {
  readonly #store: StateStore;
  readonly #log: Logger;
  readonly #onChange: (report: DriftReport, from: DriftStatus) => void;
  readonly #random: () => number;
  readonly #monitors = new Map<string, VersionDrift>();
  readonly #byModel = new Map<string, Map<string, VersionDrift>>();
  #timer: NodeJS.Timeout | undefined;
  #evaluating: Promise<void> | undefined;
  #closed = false;
  #failing = false;

  constructor(opts: DriftMonitorsOptions) {
    this.#store = opts.store;
    this.#log = opts.log;
    this.#onChange = opts.onChange ?? (() => undefined);
    this.#random = opts.random ?? Math.random;
  }

  /** Starts, replaces or closes monitors to match the table's versions, profiles and drift sections. */
  follow(table: ModelTable, config: GatewayConfig): void {
    const wanted = new Map<string, { model: string; version: string; profile: Profile | undefined; drift: DriftConfig; inputs: readonly ProfileInput[] | undefined }>();
    for (const sv of table.allVersions()) {
      const drift = config.models[sv.model]?.drift;
      if (drift === undefined || !drift.enabled) continue;
      const profile = sv.artifacts.get('profile') as Profile | undefined;
      if (profile?.drift === undefined && drift.baseline === undefined) continue;
      const inputs = profile?.inputs ?? inputsOf(sv.metadata?.inputs);
      wanted.set(`${sv.model}\0${sv.version}`, { model: sv.model, version: sv.version, profile, drift, inputs });
    }
    for (const [key, m] of this.#monitors) {
      const w = wanted.get(key);
      if (w !== undefined && w.profile === m.profile && JSON.stringify(w.drift) === JSON.stringify(m.config)) continue;
      this.#monitors.delete(key);
      void m.flush().catch(() => undefined);
    }
    for (const [key, w] of wanted) {
      if (this.#monitors.has(key) || w.inputs === undefined) continue;
      this.#monitors.set(key, new VersionDrift({ ...w, config: w.drift, inputs: w.inputs, store: this.#store, log: this.#log, onChange: (r, from) => this.#changed(r, from) }));
    }
    this.#byModel.clear();
    for (const m of this.#monitors.values()) {
      const versions = this.#byModel.get(m.model) ?? new Map<string, VersionDrift>();
      versions.set(m.version, m);
      this.#byModel.set(m.model, versions);
    }
    this.#schedule();
  }

  /** The observer: counts answered requests of monitored versions, sampled; never throws or waits. */
  observer(): { readonly name: string; onEnd(end: RequestEnd): void } {
    return {
      name: 'drift',
      onEnd: (end) => {
        if (end.payload === undefined || end.answer === undefined || end.code !== undefined) return;
        const m = this.#byModel.get(end.model)?.get(end.version);
        if (m === undefined) return;
        const rate = m.config.sampleRate;
        if (rate < 1 && !(this.#random() < rate)) return;
        m.count(end);
      },
    };
  }

  /** Whether the model has a drift section that is on. */
  monitors(model: string): boolean {
    return this.#byModel.has(model);
  }

  #version(model: string, version: string): VersionDrift | undefined {
    return this.#byModel.get(model)?.get(version);
  }

  /** A fresh report of one version (`against`: compared with another version's live window). */
  async report(model: string, version: string, against?: string): Promise<DriftReport | 'unknown-version' | 'not-comparable'> {
    const m = this.#version(model, version);
    if (m === undefined) return 'unknown-version';
    if (against === undefined) return (await m.evaluate()) as DriftReport;
    const other = this.#version(model, against);
    if (other === undefined) return 'unknown-version';
    if (this.comparable(model, version, against) !== 'yes') return 'not-comparable';
    return (await m.evaluate(other)) as DriftReport;
  }

  async reset(model: string, version: string): Promise<{ epoch: number } | undefined> {
    return this.#version(model, version)?.reset();
  }

  /**
   * Whether two versions' live windows can be compared (`report(model, a, b)`): 'unknown' while a
   * reference is not known yet (a baseline still collecting its bins, a version not monitored).
   */
  comparable(model: string, a: string, b: string): 'yes' | 'no' | 'unknown' {
    const x = this.#version(model, a)?.reference;
    const y = this.#version(model, b)?.reference;
    if (x === undefined || y === undefined) return 'unknown';
    return layoutOf(x) === layoutOf(y) ? 'yes' : 'no';
  }

  gaugeRows(): DriftGaugeRow[] {
    return [...this.#monitors.values()].flatMap((m) => m.gaugeRows());
  }

  #changed(report: DriftReport, from: DriftStatus): void {
    const level = report.status === 'drift' ? 'warn' : 'info';
    this.#log[level]({ model: report.model, version: report.version, from, to: report.status, drifting: [...report.features, ...report.outputs].filter((f) => f.status === 'drift' || f.status === 'warning').map((f) => `${f.name} (${f.status}, PSI ${f.psi.toFixed(3)})`) }, 'drift status changed');
    try {
      this.#onChange(report, from);
    } catch (e) {
      this.#log.error({ problem: (e as Error).message }, 'drift: the status change could not be reported');
    }
  }

  #schedule(): void {
    if (this.#closed || this.#timer !== undefined || this.#monitors.size === 0) return;
    const every = Math.min(...[...this.#monitors.values()].map((m) => Math.min(m.config.flushMs, m.config.evaluateMs)));
    let sinceEvaluation = 0;
    this.#timer = setInterval(() => {
      sinceEvaluation += every;
      const evaluate = [...this.#monitors.values()].some((m) => sinceEvaluation >= m.config.evaluateMs);
      if (evaluate) sinceEvaluation = 0;
      this.#evaluating ??= this.#tick(evaluate).finally(() => {
        this.#evaluating = undefined;
      });
    }, every);
    this.#timer.unref();
  }

  async #tick(evaluate: boolean): Promise<void> {
    const problems: string[] = [];
    for (const m of this.#monitors.values()) {
      try {
        if (evaluate) await m.evaluate();
        else await m.flush();
      } catch (e) {
        problems.push(`${m.model}@${m.version}: ${(e as Error).message}`);
      }
    }
    // One warning per outage, one line when it ends: a store outage pauses merging, nothing else.
    if (problems.length > 0 && !this.#failing) this.#log.warn({ problems }, 'drift: the shared window could not be updated; counts are kept and merged when the store answers');
    if (problems.length === 0 && this.#failing) this.#log.info('drift: the shared window is updated again');
    this.#failing = problems.length > 0;
  }

  /** Stops the timer and flushes what is pending (bounded by the store's own timeouts). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    await this.#evaluating;
    await Promise.all([...this.#monitors.values()].map((m) => m.flush().catch(() => undefined)));
  }
}

/** A layout from the model's metadata (baseline mode without a profile). */
function inputsOf(tensors: readonly { name: string; datatype: string; shape: readonly number[] }[] | undefined): readonly ProfileInput[] | undefined {
  if (tensors === undefined) return undefined;
  let first = 0;
  const out: ProfileInput[] = [];
  for (const t of tensors) {
    const rowShape = t.shape.slice(1).map((d) => (d < 0 ? 1 : d));
    const featureCount = rowShape.reduce((a, b) => a * b, 1);
    out.push({ name: t.name, datatype: t.datatype, rowShape, firstFeature: first, featureCount });
    first += featureCount;
  }
  return out;
}
