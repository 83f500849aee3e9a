/**
 * What the extraction detector measures on each query row of a subject, against the model
 * version's reference profile (GUARDS-SPEC.md "Extraction detector"). A model is copied through its
 * API by queries unlike a user's: off the data manifold (uniform random probing), in tiny or regular
 * steps (PRADA's distances between successive queries, Juuti et al. 2019; line, lattice and boundary
 * sweeps; the fixed-size probes and moves of a Jacobian-based augmentation), covering the input
 * space systematically. Each row adds to counters (`SignalCounts`); the flag rule
 * (extraction-rule.ts) judges the counters, merged over time windows and replicas
 * (extraction-monitor.ts).
 *
 * Per row, with the subject's `QueryTrace` (its last 64 distinct queries in the OOD encoder's space):
 * - repeat: the row equals a recent query. It tells a copier nothing new about the model, so it
 *   counts as a row and a repeat and toward nothing else (a health probe sending one row all day is
 *   no evidence of anything), and it is not remembered again;
 * - off-manifold: the OOD score is above the profile's calibrated threshold;
 * - step: the difference from the nearest recent query (step-ring.ts); a tiny step when its length
 *   is below the profile's low step quantile; a lattice step when it repeats one of the subject's
 *   last 16 steps, to another point (a step reused from point after point: finite-difference
 *   probes, the moves of a Jacobian-based augmentation, a grid);
 * - line: the step from the previous query is collinear with the step before it (a line sweep, a
 *   lattice row, a bisection along a line);
 * - coverage: a coarse cell id (three fixed random projections, quantised), whose distinct count
 *   says how much of the space the subject visits (reported with a verdict, not part of the rule:
 *   the profile has no reference figure for it).
 *
 * The OOD model and encoder are reached through a `RowScorer` the caller builds from the profile
 * (extraction-scorer.ts), so this file does not depend on how they work.
 */
import type { Profile } from './profile.js';
import { STEP_RING, StepRing } from './step-ring.js';

/** A row as the detectors see it: its OOD score and its encoded vector. */
export interface ScoredRow {
  readonly score: number;
  /** `columns` values; the scorer may reuse the array between calls (it is copied at once). */
  readonly encoded: Float64Array;
}

/** Scores and encodes one row (of whatever form the caller's feature extraction gives). */
export type RowScorer<R> = (row: R) => ScoredRow;

/** The profile's figures the signals compare with. */
export interface SignalSettings {
  /** Width of the encoded vector. */
  readonly columns: number;
  /** An OOD score above it is off-manifold (the profile's calibrated OOD threshold). */
  readonly oodThreshold: number;
  /** Share of reference rows above it: the calibration's false-positive rate. */
  readonly offRate: number;
  /** A non-zero step below it is tiny (0: none is). */
  readonly tinyStep: number;
  /** Share of benign steps below `tinyStep`. */
  readonly tinyRate: number;
  /** Share of benign steps that are lattice steps. */
  readonly latticeRate: number;
}

/** The settings a profile gives: the OOD threshold and FPR from its calibration, the step figures as measured (steps.ts). */
export function signalSettings(profile: Profile): SignalSettings {
  const { tinyStep, tinyRate, latticeRate } = profile.extraction;
  return { columns: profile.ood.encoder.columns, oodThreshold: profile.calibration.ood, offRate: profile.calibration.targetFpr, tinyStep, tinyRate, latticeRate };
}

/** Distinct queries of a subject remembered per replica for the step signals. */
export const RING_SIZE = STEP_RING;
/** Two steps are collinear when 1 − |cos| is at most this (float32 inputs keep a sweep well within it). */
export const LINE_TOLERANCE = 1e-4;
/** Random projections for coverage cells, and how each is quantised. */
const PROJECTIONS = 3;
const CELL_LEVELS = 8;
/** Distinct cell ids: CELL_LEVELS ** PROJECTIONS. */
export const CELLS = CELL_LEVELS ** PROJECTIONS;

/** The counter names, as stored; coverage cells are buckets `c<id>` beside them. */
export const COUNT_NAMES = ['rows', 'untracked', 'off', 'steps', 'repeat', 'tiny', 'lattice', 'pairs', 'line'] as const;
export type CountName = (typeof COUNT_NAMES)[number];

/**
 * Counters of a subject over some rows. `rows` counts every row; `untracked` those of callers
 * opted out of tracking, of which nothing else is counted; `repeat` exact repeats of a recent query,
 * of which nothing else is counted either; `off` the other rows off the manifold; `steps` rows with
 * a recent query to compare with (repeats included), of which `tiny` were tiny steps and `lattice`
 * lattice steps; `pairs` rows whose non-zero step from the last query follows an earlier non-zero
 * step (of which `line` were collinear with it); `cells` distinct coverage cells.
 */
export class SignalCounts {
  rows = 0;
  untracked = 0;
  off = 0;
  steps = 0;
  repeat = 0;
  tiny = 0;
  lattice = 0;
  pairs = 0;
  line = 0;
  cells = 0;

  clear(): void {
    this.rows = this.untracked = this.off = this.steps = this.repeat = this.tiny = this.lattice = this.pairs = this.line = this.cells = 0;
  }

  /** Adds `o`'s counters (cells too: an upper bound on the distinct union, exact when disjoint). */
  add(o: SignalCounts): void {
    this.rows += o.rows;
    this.untracked += o.untracked;
    this.off += o.off;
    this.steps += o.steps;
    this.repeat += o.repeat;
    this.tiny += o.tiny;
    this.lattice += o.lattice;
    this.pairs += o.pairs;
    this.line += o.line;
    this.cells += o.cells;
  }

  copy(o: SignalCounts): void {
    this.clear();
    this.add(o);
  }

  /** Counters as store buckets (zeros left out), with `cells` as the per-cell counts given. */
  toBuckets(cells: ReadonlyMap<number, number>): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of COUNT_NAMES) if (this[name] !== 0) out[name] = this[name];
    for (const [id, n] of cells) out[`c${id}`] = n;
    return out;
  }

  /** Counters from summed buckets: `cells` becomes the number of distinct cell buckets. */
  setFromBuckets(b: Readonly<Record<string, number>>): void {
    this.clear();
    for (const [name, n] of Object.entries(b)) {
      if (name.charCodeAt(0) === 99 /* c */ && name !== 'c') this.cells++;
      else if ((COUNT_NAMES as readonly string[]).includes(name)) this[name as CountName] = n;
    }
  }
}

/**
 * The signals of one model version: its settings, how rows are scored, and the fixed random
 * projections of the coverage cells.
 */
export class ExtractionSignals<R> {
  readonly settings: SignalSettings;
  readonly scorer: RowScorer<R>;
  /** PROJECTIONS × columns, each a ±1/√columns vector from a fixed seed (the same on every replica). */
  readonly #projections: Float64Array;

  constructor(settings: SignalSettings, scorer: RowScorer<R>) {
    if (!(settings.columns > 0)) throw new RangeError(`encoded columns must be positive, got ${settings.columns}`);
    this.settings = settings;
    this.scorer = scorer;
    const c = settings.columns;
    this.#projections = new Float64Array(PROJECTIONS * c);
    let s = 0x9e3779b9;
    for (let i = 0; i < this.#projections.length; i++) {
      s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x297a2d39) >>> 0;
      this.#projections[i] = (s & 0x100 ? 1 : -1) / Math.sqrt(c);
    }
  }

  /**
   * The coverage cell of an encoded row: each projection (≈ unit variance for standardised columns)
   * quantised to unit cells over [−4, 4), clamped, combined into one id in [0, CELLS).
   */
  cell(x: Float64Array, at = 0): number {
    const c = this.settings.columns;
    let id = 0;
    for (let p = 0; p < PROJECTIONS; p++) {
      let v = 0;
      for (let j = 0; j < c; j++) v += this.#projections[p * c + j] * x[at + j];
      let q = Math.floor(v) + CELL_LEVELS / 2;
      q = q < 0 || q !== q ? 0 : q >= CELL_LEVELS ? CELL_LEVELS - 1 : q;
      id = id * CELL_LEVELS + q;
    }
    return id;
  }
}

/**
 * One subject's recent queries on one replica: a ring of its last RING_SIZE distinct encoded rows
 * and its last steps (step-ring.ts), the last non-zero step from the previous query and the one
 * before it. About (RING_SIZE + 11) × columns × 8 bytes.
 */
export class QueryTrace {
  readonly #cols: number;
  readonly #ring: StepRing;
  readonly #step: Float64Array;
  readonly #prevStep: Float64Array;
  #hasPrevStep = false;

  constructor(columns: number) {
    this.#cols = columns;
    this.#ring = new StepRing(columns, RING_SIZE);
    this.#step = new Float64Array(columns);
    this.#prevStep = new Float64Array(columns);
  }

  get columns(): number {
    return this.#cols;
  }

  /** Bytes this trace holds (for a memory budget). */
  get bytes(): number {
    return this.#ring.bytes + 2 * this.#cols * 8;
  }

  /** Scores and records each row (as `record`), counting the coverage cell of each row that is not a repeat in `cells`. */
  recordRows<R>(signals: ExtractionSignals<R>, rows: readonly R[], counts: SignalCounts, cells: Map<number, number>): void {
    for (let i = 0; i < rows.length; i++) {
      const cell = this.record(signals, signals.scorer(rows[i]), counts);
      if (cell >= 0) cells.set(cell, (cells.get(cell) ?? 0) + 1);
    }
  }

  /**
   * Measures a scored row against the recent queries, adds its signals to `counts` and remembers it.
   * Returns its coverage cell, or −1 for a repeat (counted as a row and a repeat only). Allocates nothing.
   */
  record<R>(signals: ExtractionSignals<R>, row: ScoredRow, counts: SignalCounts): number {
    const s = signals.settings;
    const x = row.encoded;
    const ring = this.#ring;
    counts.rows++;
    ring.measure(x);
    if (ring.distance2 === 0) {
      counts.steps++;
      counts.repeat++;
      return -1;
    }
    if (row.score > s.oodThreshold || row.score !== row.score) counts.off++;
    if (ring.count > 0) {
      counts.steps++;
      if (ring.distance2 < s.tinyStep * s.tinyStep) counts.tiny++;
      if (ring.lattice) counts.lattice++;
      this.#lineStep(x, counts);
    }
    ring.push(x);
    return signals.cell(x);
  }

  /**
   * The step from the last query remembered, compared with the step before: a line if collinear. A
   * step along a single column must also repeat the length (rows of a table often differ in one
   * column; a one-feature sweep repeats its step).
   */
  #lineStep(x: Float64Array, counts: SignalCounts): void {
    const c = this.#cols;
    const rows = this.#ring.rows;
    const last = this.#ring.lastAt;
    const step = this.#step;
    const prev = this.#prevStep;
    let nn = 0;
    let pp = 0;
    let np = 0;
    let moved = 0;
    for (let j = 0; j < c; j++) {
      const d = x[j] - rows[last + j];
      step[j] = d;
      nn += d * d;
      pp += prev[j] * prev[j];
      np += d * prev[j];
      if (d !== 0) moved++;
    }
    if (!(nn > 0)) return;
    if (this.#hasPrevStep) {
      counts.pairs++;
      const cos = Math.abs(np) / Math.sqrt(nn * pp);
      const sameLength = Math.abs(Math.sqrt(nn) - Math.sqrt(pp)) <= LINE_TOLERANCE * Math.sqrt(nn);
      if (1 - cos <= LINE_TOLERANCE && (moved >= 2 || sameLength)) counts.line++;
    }
    prev.set(step);
    this.#hasPrevStep = true;
  }
}
