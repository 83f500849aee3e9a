/**
 * The drift monitor's statistics: one feature's (or output's) live bin counts against its reference
 * counts (same bins, gateway/drift/bins.ts), the verdict of one evaluation, and the confirmation that
 * turns verdicts into the status the monitor reports. Pure: no I/O, no clock, no allocation beyond a
 * few small arrays; it runs about once per second per feature, not per request.
 *
 * Why alarms need an effect size AND a corrected significance, confirmed over evaluations:
 * - A p-value answers "is there any difference at all?", and with enough samples there always is:
 *   real traffic is never exactly the reference distribution, and the reference itself is a finite
 *   sample. At production volumes p-values shrink to nothing for differences nobody cares about, so
 *   tools that alarm on p < 0.05 report every feature as drifting (evidently #50 and #20,
 *   alibi-detect #646). The alarm is therefore on the *size* of the change: the population stability
 *   index (PSI), with the industry's convention (< 0.1 stable, 0.1–0.25 moderate, > 0.25 major).
 * - Effect size alone false-alarms the other way: on a small window (or a small reference) sampling
 *   noise alone can make PSI large. So a level is raised only when the supporting test also says the
 *   difference is not noise, at a family-wise alpha split over every feature and output tested
 *   (Bonferroni: alpha / tests), because with 15 features each tested at 0.01 one of them "drifts"
 *   on one evaluation in seven by chance. Below `minSamples` live samples nothing is judged.
 * - One noisy evaluation must not page anyone: `StatusTracker` reports a level only after
 *   `confirmations` consecutive evaluations agree (and steps down the same way, so it does not flap).
 *
 * The statistics (k bins; R reference rows, L live samples; r_i, l_i counts):
 * - PSI = Σ (q_i − p_i) ln(q_i / p_i) over shares smoothed with a pseudo-count of 0.5 added to every
 *   bin that is non-empty on either side (p_i = (r_i + 0.5) / (R + 0.5·k'), k' those bins), so a bin
 *   the reference never saw (a new category, values beyond every edge) gives a large but finite term
 *   instead of ∞. Bins empty on both sides carry no information and are left out. With windows of
 *   ≥ 500 samples the pseudo-count moves any non-empty bin's share by < 0.1 percentage points; it
 *   pulls the smaller side a little more toward uniform, so identical shares on unequal totals give
 *   a trace of PSI (1e-4 for 60 vs 600 rows), negligible against the 0.1 warning level.
 * - JS: the Jensen–Shannon distance √JSD (log base 2, so 0..1) on the raw shares; it is bounded and
 *   needs no smoothing.
 * - KS (numeric): the largest gap between the two binned CDFs, the bins in their order in bins.ts
 *   (missing, the last bin, counts as a value above every edge, so a change in the missing share
 *   moves the statistic too). p-value: the asymptotic Kolmogorov distribution at √(R·L/(R+L))·D.
 *   On binned (tied) data the KS test is conservative: its p-values are larger than exact ones.
 * - Chi-square (categorical): the two-sample test of homogeneity on the 2 × k table (the reference is
 *   a sample too; treating its shares as exact would overstate significance on a small reference).
 *   Bins whose smaller expected count is below 5 are merged into one pooled bin before testing (and
 *   the pool into the smallest other bin if it is still below 5), the usual validity rule for the
 *   chi-square approximation; df = groups − 1. p-value: the regularised upper incomplete gamma.
 *   Numeric features use KS only: one supporting test per feature keeps the Bonferroni count honest.
 * A live window of 0 samples, or an empty reference, gives PSI = JS = 0 and p = 1: no evidence, so
 * it can never alarm (with 0 samples `rawStatus` says 'insufficient').
 */
import { chiSquareSurvival, kolmogorovSurvival } from './distributions.js';

/** One feature or output, reference vs live counts (same bins). */
export interface BinStats {
  /** Live total. */
  readonly samples: number;
  /** Population stability index, on shares smoothed with a pseudo-count of 0.5 per bin. */
  readonly psi: number;
  /** Jensen–Shannon distance (√ of the divergence, log base 2), 0..1. */
  readonly js: number;
  /** Numeric only: on the binned CDFs, two-sample, n = reference rows, m = live samples. */
  readonly ks?: { readonly statistic: number; readonly pValue: number };
  /** Categorical only: two-sample homogeneity, bins with expected count < 5 pooled. */
  readonly chiSquare?: { readonly statistic: number; readonly df: number; readonly pValue: number };
  /** The supporting test's p-value (KS for numeric, chi-square for categorical). */
  readonly pValue: number;
  /** Up to 3 bins with the largest PSI contribution (shares, not counts), largest first. */
  readonly top: readonly { readonly bin: number; readonly reference: number; readonly live: number; readonly contribution: number }[];
}

/** Config `drift.thresholds`. */
export interface DriftThresholds {
  readonly psiWarning: number;
  readonly psiDrift: number;
  readonly alpha: number;
  readonly minSamples: number;
  readonly confirmations: number;
}

export const DEFAULT_DRIFT_THRESHOLDS: DriftThresholds = Object.freeze({
  // The industry convention: PSI < 0.1 stable, 0.1–0.25 moderate, > 0.25 major. Drift at 0.2, not
  // 0.25, so a shift the issue calls major (true PSI ≥ 0.2) is caught despite sampling noise.
  psiWarning: 0.1,
  psiDrift: 0.2,
  // Family-wise: each test runs at alpha / (features + outputs). 0.01 rather than 0.05 because the
  // test is repeated every evaluation; the effect-size and confirmation gates do the rest.
  alpha: 0.01,
  // Under the null, PSI's noise is about (k − 1)(1/R + 1/L): with 10 bins, a reference of ~900 rows
  // and 500 samples, ~0.03, well below the warning level. Fewer samples are not judged.
  minSamples: 500,
  // Two consecutive evaluations: one noisy window does not alarm, and a real shift costs one extra
  // evaluation (about a second) of delay.
  confirmations: 2,
});

export type DriftStatus = 'insufficient' | 'ok' | 'warning' | 'drift';

const PSEUDO_COUNT = 0.5;
const MIN_EXPECTED = 5;
const TOP = 3;

function total(counts: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < counts.length; i++) s += counts[i];
  return s;
}

/** Σ (q − p) ln(q/p) on smoothed shares, and the bins contributing most. */
function psiAndTop(reference: ArrayLike<number>, live: ArrayLike<number>, R: number, L: number): Pick<BinStats, 'psi' | 'top'> {
  let used = 0;
  for (let i = 0; i < reference.length; i++) if (reference[i] > 0 || live[i] > 0) used++;
  const rDen = R + PSEUDO_COUNT * used;
  const lDen = L + PSEUDO_COUNT * used;
  let psi = 0;
  const top: { bin: number; reference: number; live: number; contribution: number }[] = [];
  for (let i = 0; i < reference.length; i++) {
    if (!(reference[i] > 0 || live[i] > 0)) continue;
    const p = (reference[i] + PSEUDO_COUNT) / rDen;
    const q = (live[i] + PSEUDO_COUNT) / lDen;
    const contribution = (q - p) * Math.log(q / p);
    psi += contribution;
    if (!(contribution > 0)) continue;
    if (top.length === TOP && contribution <= top[TOP - 1].contribution) continue;
    const entry = { bin: i, reference: reference[i] / R, live: live[i] / L, contribution };
    let at = top.length === TOP ? TOP - 1 : top.length;
    top[at] = entry;
    while (at > 0 && top[at - 1].contribution < contribution) {
      top[at] = top[at - 1];
      top[at - 1] = entry;
      at--;
    }
  }
  return { psi, top };
}

/** Jensen–Shannon distance on raw shares, log base 2. */
function jsDistance(reference: ArrayLike<number>, live: ArrayLike<number>, R: number, L: number): number {
  let divergence = 0;
  for (let i = 0; i < reference.length; i++) {
    const p = reference[i] / R;
    const q = live[i] / L;
    const m = (p + q) / 2;
    if (p > 0) divergence += p * Math.log2(p / m);
    if (q > 0) divergence += q * Math.log2(q / m);
  }
  return Math.sqrt(Math.min(1, Math.max(0, divergence / 2)));
}

/** Two-sample KS on the binned CDFs (bins in order, missing last). */
function ks(reference: ArrayLike<number>, live: ArrayLike<number>, R: number, L: number): { statistic: number; pValue: number } {
  let cr = 0;
  let cl = 0;
  let d = 0;
  for (let i = 0; i < reference.length; i++) {
    cr += reference[i];
    cl += live[i];
    d = Math.max(d, Math.abs(cr / R - cl / L));
  }
  const effective = (R * L) / (R + L);
  return { statistic: d, pValue: kolmogorovSurvival(Math.sqrt(effective) * d) };
}

/** Two-sample chi-square of homogeneity (2 × k), bins with an expected count below 5 pooled. */
function chiSquare(reference: ArrayLike<number>, live: ArrayLike<number>, R: number, L: number): { statistic: number; df: number; pValue: number } {
  // In a 2-row table the smaller expected count of a column with c = r + l is min(R, L)·c/N, and the
  // column's two cells add up to (r·L − l·R)² / (R·L·c).
  const N = R + L;
  const smaller = Math.min(R, L);
  const term = (r: number, l: number): number => ((r * L - l * R) ** 2) / (R * L * (r + l));
  let poolR = 0;
  let poolL = 0;
  let statistic = 0;
  let groups = 0;
  let smallest = -1; // the kept bin with the smallest column total, for folding a still-small pool into
  for (let i = 0; i < reference.length; i++) {
    const c = reference[i] + live[i];
    if ((smaller * c) / N < MIN_EXPECTED) {
      poolR += reference[i];
      poolL += live[i];
      continue;
    }
    statistic += term(reference[i], live[i]);
    groups++;
    if (smallest < 0 || c < reference[smallest] + live[smallest]) smallest = i;
  }
  const pooled = poolR + poolL;
  if (pooled > 0) {
    if ((smaller * pooled) / N >= MIN_EXPECTED || smallest < 0) {
      statistic += term(poolR, poolL);
      groups++;
    } else {
      statistic -= term(reference[smallest], live[smallest]);
      statistic += term(reference[smallest] + poolR, live[smallest] + poolL);
    }
  }
  const df = groups - 1;
  if (df < 1) return { statistic: 0, df: 0, pValue: 1 };
  statistic = Math.max(0, statistic);
  return { statistic, df, pValue: chiSquareSurvival(statistic, df) };
}

/** The statistics of one feature or output: reference vs live counts over the same bins. */
/** The PSI of `live` against `reference` (same bins), smoothed as binStats's: the one definition the monitor and the evaluation share. */
export function psi(reference: ArrayLike<number>, live: ArrayLike<number>): number {
  return psiAndTop(reference, live, total(reference), total(live)).psi;
}

export function binStats(kind: 'numeric' | 'categorical', reference: ArrayLike<number>, live: ArrayLike<number>): BinStats {
  if (reference.length !== live.length) {
    throw new RangeError(`drift bins differ: reference has ${reference.length}, live has ${live.length}`);
  }
  const R = total(reference);
  const L = total(live);
  if (!(R > 0) || !(L > 0)) {
    const samples = L > 0 ? L : 0;
    return kind === 'numeric'
      ? { samples, psi: 0, js: 0, ks: { statistic: 0, pValue: 1 }, pValue: 1, top: [] }
      : { samples, psi: 0, js: 0, chiSquare: { statistic: 0, df: 0, pValue: 1 }, pValue: 1, top: [] };
  }
  const { psi, top } = psiAndTop(reference, live, R, L);
  const js = jsDistance(reference, live, R, L);
  if (kind === 'numeric') {
    const k = ks(reference, live, R, L);
    return { samples: L, psi, js, ks: k, pValue: k.pValue, top };
  }
  const c = chiSquare(reference, live, R, L);
  return { samples: L, psi, js, chiSquare: c, pValue: c.pValue, top };
}

/**
 * One evaluation's raw verdict for one feature: 'insufficient' below `minSamples`; otherwise the
 * highest level whose PSI threshold is reached AND whose supporting test is significant at
 * alpha / tests (Bonferroni over every feature and output judged); else 'ok'.
 */
export function rawStatus(s: BinStats, t: DriftThresholds, tests: number): DriftStatus {
  if (!(s.samples >= t.minSamples) || s.samples === 0) return 'insufficient';
  const significant = s.pValue < t.alpha / Math.max(1, tests);
  if (!significant) return 'ok';
  if (s.psi >= t.psiDrift) return 'drift';
  if (s.psi >= t.psiWarning) return 'warning';
  return 'ok';
}

const LEVEL: Readonly<Record<DriftStatus, number>> = { insufficient: -1, ok: 0, warning: 1, drift: 2 };
const BY_LEVEL: readonly DriftStatus[] = ['ok', 'warning', 'drift'];

/**
 * The confirmation state machine of one feature. Feed it each evaluation's raw status; it reports:
 * - 'insufficient' at once when the raw status is (a reset or a thin window: nothing to judge), and
 *   forgets the evaluations before it; leaving it, the status starts at 'ok';
 * - up: level X once the last `confirmations` raw statuses are all at X or above (a raw 'drift'
 *   counts as evidence of 'warning' too, so warning, drift, drift → warning, then drift);
 * - down: level X once the last `confirmations` raw statuses are all at X or below (the same rule
 *   mirrored, so one clean window inside a drift does not clear it, nor one noisy window raise it).
 * With confirmations = 1 the confirmed status is the raw status.
 */
export class StatusTracker {
  readonly #confirmations: number;
  readonly #recent: number[] = []; // levels of the last `confirmations` sufficient raw statuses, oldest first
  #status: DriftStatus = 'insufficient';

  constructor(confirmations: number) {
    if (!Number.isInteger(confirmations) || confirmations < 1) {
      throw new RangeError(`confirmations must be an integer ≥ 1, got ${confirmations}`);
    }
    this.#confirmations = confirmations;
  }

  get status(): DriftStatus {
    return this.#status;
  }

  update(raw: DriftStatus): DriftStatus {
    if (raw === 'insufficient') {
      this.#recent.length = 0;
      this.#status = 'insufficient';
      return this.#status;
    }
    if (this.#status === 'insufficient') this.#status = 'ok';
    this.#recent.push(LEVEL[raw]);
    if (this.#recent.length > this.#confirmations) this.#recent.shift();
    if (this.#recent.length < this.#confirmations) return this.#status;
    const lowest = Math.min(...this.#recent);
    const highest = Math.max(...this.#recent);
    const current = LEVEL[this.#status];
    if (lowest > current) this.#status = BY_LEVEL[lowest];
    else if (highest < current) this.#status = BY_LEVEL[highest];
    return this.#status;
  }
}

/** The overall status: the worst confirmed one; 'insufficient' only if every one is (or there is none). */
export function overallStatus(statuses: readonly DriftStatus[]): DriftStatus {
  let worst: DriftStatus = 'insufficient';
  for (const s of statuses) if (LEVEL[s] > LEVEL[worst]) worst = s;
  return worst;
}
