/**
 * Calibration: a guard's threshold from the scores of held-out reference rows (rows the detector
 * was not fitted on), set so that about `targetFpr` of clean rows score above it. A row is flagged
 * when its score is strictly greater than the threshold.
 *
 * The rule: the (1 − targetFpr) quantile of the n held-out scores. When the sample holds at least
 * 10 scores above that quantile (n·targetFpr ≥ 10), it is the empirical order statistic: the
 * ⌈(1 − targetFpr)·n⌉-th smallest score. Below that, the empirical quantile is little more than
 * the sample's maximum (with 300 rows and 1 %, 3 rows above it; with 45 rows, none), so the tail is
 * extrapolated: excesses of the t = max(10, ⌈n/10⌉) largest scores over the next one, u, are taken
 * as exponential with their mean β (peaks over threshold with a light tail, as distances and
 * probability gaps have), and the threshold is u + β·ln((t/n) / targetFpr), but never below the
 * empirical order statistic (a tail with a few far outliers, such as clean digits whose answer a
 * squeezer flips, is not exponential, and the estimate would fall among them).
 *
 * That rule aims at targetFpr: on new clean rows about half of such thresholds flag a little more
 * than targetFpr, half a little less. Where the scores are plentiful (the image detector's
 * cross-fitted scores of every reference row), `confidentThreshold` aims below it instead, so that
 * the rate exceeds targetFpr only with a stated small probability: the (l+1)-th largest of the n
 * scores, l the largest count with P(Binomial(n, targetFpr) ≤ l) ≤ 1 − CALIBRATION_CONFIDENCE. For
 * exchangeable scores the rate above the (l+1)-th largest exceeds targetFpr exactly as often as
 * that probability (the order statistic's rate is Beta-distributed: Vovk 2012, training-conditional
 * validity of conformal predictors). With 500 scores at 1 %: the second largest; at least 230 are
 * needed (the largest score is then the threshold).
 */

/** Least number of held-out rows a threshold is set from. */
export const MIN_HELD_OUT = 20;
/** Scores above the quantile from which the empirical quantile is trusted as is. */
const EMPIRICAL_EXCEEDANCES = 10;

/** The rule above, in words, for the profile (`Calibration.method`). */
export const CALIBRATION_METHOD = 'threshold = the (1 - targetFpr) quantile of the held-out rows\' scores: the empirical order statistic when '
  + `n*targetFpr >= ${EMPIRICAL_EXCEEDANCES}, else the exponential tail of the t = max(10, ceil(n/10)) largest scores extrapolated to it `
  + '(u + mean excess * ln((t/n)/targetFpr)) and never below the order statistic; a row is flagged when its score is above the threshold';

/**
 * The threshold for `scores` (any order) at `targetFpr`. Non-finite scores are left out: such a row
 * is flagged whatever the threshold, and one of them would make the extrapolation infinite.
 */
export function calibrateThreshold(scores: readonly number[], targetFpr: number): number {
  if (!(targetFpr > 0 && targetFpr < 1)) throw new Error(`targetFpr must be between 0 and 1 (got ${targetFpr})`);
  const sorted = Float64Array.from(scores.filter(Number.isFinite)).sort();
  const n = sorted.length;
  if (n < MIN_HELD_OUT) throw new Error(`a threshold needs at least ${MIN_HELD_OUT} held-out rows with a finite score (got ${n})`);
  const t = Math.min(n - 1, Math.max(EMPIRICAL_EXCEEDANCES, Math.ceil(n / 10)));
  const empirical = sorted[Math.max(0, Math.ceil((1 - targetFpr) * n) - 1)];
  if (n * targetFpr >= EMPIRICAL_EXCEEDANCES || targetFpr >= t / n) return empirical;
  const u = sorted[n - t - 1];
  let excess = 0;
  for (let i = n - t; i < n; i++) excess += sorted[i] - u;
  return Math.max(empirical, u + (excess / t) * Math.log(t / n / targetFpr));
}

/** How sure confidentThreshold is that the false-positive rate does not exceed targetFpr. */
export const CALIBRATION_CONFIDENCE = 0.9;

/** The confident rule, in words, for the profile (`Calibration.method`). */
export const CONFIDENT_METHOD = `threshold = the (l+1)-th largest of the n scores, l the largest count with P(Binomial(n, targetFpr) <= l) <= ${(1 - CALIBRATION_CONFIDENCE).toFixed(2)}, `
  + `so that the false-positive rate exceeds targetFpr with probability at most ${(1 - CALIBRATION_CONFIDENCE).toFixed(2)}; `
  + 'with too few scores for that (n < ln(0.1)/ln(1 - targetFpr)), the larger of the largest score and the extrapolated quantile above';

/**
 * The threshold for `scores` (any order) at `targetFpr` by the confident rule (the file's comment).
 * Non-finite scores are left out, as in calibrateThreshold.
 */
export function confidentThreshold(scores: readonly number[], targetFpr: number, confidence = CALIBRATION_CONFIDENCE): number {
  const sorted = Float64Array.from(scores.filter(Number.isFinite)).sort();
  const n = sorted.length;
  const fallback = calibrateThreshold(scores, targetFpr);
  // P(Binomial(n, targetFpr) <= l), term by term.
  let term = (1 - targetFpr) ** n;
  let cdf = term;
  if (cdf > 1 - confidence) return Math.max(fallback, sorted[n - 1]);
  let l = 0;
  while (l + 1 < n) {
    term *= ((n - l) / (l + 1)) * (targetFpr / (1 - targetFpr));
    if (cdf + term > 1 - confidence) break;
    cdf += term;
    l++;
  }
  return sorted[n - 1 - l];
}
