/**
 * When a subject's queries are flagged as model extraction: a one-sided binomial test per signal on
 * the subject's counters (extraction-signals.ts), merged over the live time windows and replicas.
 * Exact repeats of a recent query count toward no signal (they are in no denominator). Under the
 * null hypothesis (a caller whose queries look like the reference data) a row is off-manifold with
 * the calibrated false-positive rate, a step is tiny or a lattice step with the shares the profile
 * measured on benign callers (steps.ts), and collinear steps are rare. A signal fires when its count is so far above that, given at least `minRows` rows, that the
 * chance of as many or more is below `alpha` (1e-6). The null rates are inflated by `nullFactor`
 * (10×; at least `minNullRate` each), so that real callers who differ somewhat from the reference (a
 * sorted backfill, a seasonal shift, a narrow slice of the data) are not taken for copiers: the
 * rule looks for shares far above what the reference allows, not merely above it.
 *
 * Because the counters are cumulative over the windows and re-tested as rows arrive, this is a
 * sequential test; the tiny alpha keeps repeated looks from adding up to a false flag. Flags decay
 * as windows expire and the counts drop.
 */
import type { SignalCounts, SignalSettings } from './extraction-signals.js';

export type SignalName = 'off-manifold' | 'tiny-steps' | 'lattice' | 'line-sweep';

export interface RuleSettings {
  /** Rows (of a signal's denominator) before that signal may fire. */
  readonly minRows: number;
  /** The binomial tail below which a signal fires. */
  readonly alpha: number;
  /** How far above the reference rate the null is set. */
  readonly nullFactor: number;
  /** The least null rate per signal, before the factor (a reference rate of 0 allows nothing). */
  readonly minNullRate: number;
}

export const DEFAULT_RULE: RuleSettings = Object.freeze({ minRows: 20, alpha: 1e-6, nullFactor: 10, minNullRate: 0.01 });

/** The null probability of each signal per row. */
export interface NullRates {
  readonly off: number;
  readonly tiny: number;
  readonly lattice: number;
  /** No reference figure: collinear steps among real rows are rare, so the floor applies. */
  readonly line: number;
}

export function nullRates(s: SignalSettings, rule: RuleSettings = DEFAULT_RULE): NullRates {
  const inflate = (rate: number) => Math.min(0.5, Math.max(rate, rule.minNullRate) * rule.nullFactor);
  return { off: inflate(s.offRate), tiny: inflate(s.tinyRate), lattice: inflate(s.latticeRate), line: inflate(0) };
}

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x ≥ 0.5 (Lanczos, g = 7: about 15 significant digits). */
export function logGamma(x: number): number {
  const y = x - 1;
  let a = LANCZOS[0];
  for (let i = 1; i < LANCZOS.length; i++) a += LANCZOS[i] / (y + i);
  const t = y + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (y + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Terms summed at most: beyond, the tail is large anyway (the ratio of terms is then near 1). */
const MAX_TERMS = 10_000;

/**
 * ln P(X ≥ k) for X ~ Binomial(n, p). At or below the expected count (k ≤ np) it returns 0 (a tail
 * of 1, rounded up from about ½): nothing to see there. Above, the exact sum of the pmf from k,
 * whose terms then shrink geometrically.
 */
export function logBinomialTail(k: number, n: number, p: number): number {
  if (k <= 0 || k <= n * p) return 0;
  if (k > n || p <= 0) return -Infinity;
  if (p >= 1) return 0;
  const first = logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1) + k * Math.log(p) + (n - k) * Math.log1p(-p);
  const r = p / (1 - p);
  let term = 1;
  let sum = 1;
  for (let i = k, m = 0; i < n && m < MAX_TERMS; i++, m++) {
    term *= ((n - i) / (i + 1)) * r;
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return first + Math.log(sum);
}

/** 0 (no evidence) … 1 (the signal fires): ln tail / ln alpha, clamped; 0 below minRows. */
function signalScore(k: number, n: number, p: number, rule: RuleSettings): number {
  if (n < rule.minRows) return 0;
  const s = logBinomialTail(k, n, p) / Math.log(rule.alpha);
  return s >= 1 ? 1 : s > 0 ? s : 0;
}

/** Does any signal fire? Allocates nothing (the request path asks it as rows arrive). */
export function isFlagged(c: SignalCounts, nulls: NullRates, rule: RuleSettings = DEFAULT_RULE): boolean {
  return signalScore(c.off, c.rows - c.untracked - c.repeat, nulls.off, rule) >= 1
    || signalScore(c.tiny, c.steps - c.repeat, nulls.tiny, rule) >= 1
    || signalScore(c.lattice, c.steps - c.repeat, nulls.lattice, rule) >= 1
    || signalScore(c.line, c.pairs, nulls.line, rule) >= 1;
}

/** A subject's standing, as the admin list and the guard's annotation report it. */
export interface Verdict {
  readonly flagged: boolean;
  /** The largest signal score, 0..1 (1: flagged). */
  readonly score: number;
  /** The signals that fired, in a fixed order. */
  readonly signals: readonly SignalName[];
  readonly scores: Readonly<Record<SignalName, number>>;
  /** Rows counted in the live windows (untracked callers' included). */
  readonly rows: number;
  /** Distinct coverage cells visited (extraction-signals.ts CELLS at most). */
  readonly cells: number;
}

export const UNFLAGGED: Verdict = Object.freeze({
  flagged: false, score: 0, signals: Object.freeze([]), scores: Object.freeze({ 'off-manifold': 0, 'tiny-steps': 0, lattice: 0, 'line-sweep': 0 }), rows: 0, cells: 0,
});

export function judge(c: SignalCounts, nulls: NullRates, rule: RuleSettings = DEFAULT_RULE): Verdict {
  const scores: Record<SignalName, number> = {
    'off-manifold': signalScore(c.off, c.rows - c.untracked - c.repeat, nulls.off, rule),
    'tiny-steps': signalScore(c.tiny, c.steps - c.repeat, nulls.tiny, rule),
    lattice: signalScore(c.lattice, c.steps - c.repeat, nulls.lattice, rule),
    'line-sweep': signalScore(c.line, c.pairs, nulls.line, rule),
  };
  const signals = (Object.keys(scores) as SignalName[]).filter((s) => scores[s] >= 1);
  return { flagged: signals.length > 0, score: Math.max(...Object.values(scores)), signals, scores, rows: c.rows, cells: c.cells };
}
