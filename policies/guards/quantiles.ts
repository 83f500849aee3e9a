/**
 * Quantiles, one rule everywhere a profile states them (feature quantiles, step distances): linear
 * interpolation between order statistics (Hyndman & Fan type 7, numpy's default), so a profile's
 * figures can be checked with any statistics package.
 */

/** The probabilities a profile states quantiles at (`Profile.quantileProbs`); 0.01 is the extraction monitor's "tiny step". */
export const QUANTILE_PROBS: readonly number[] = Object.freeze([0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999]);

/** The `p` quantile of ascending `sorted` (NaN when it is empty). */
export function sortedQuantile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * Math.min(1, Math.max(0, p));
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/** Quantiles of `values` (any order; non-finite values left out) at each of `probs`. */
export function quantilesOf(values: readonly number[], probs: readonly number[] = QUANTILE_PROBS): number[] {
  const sorted = Float64Array.from(values.filter(Number.isFinite)).sort();
  return probs.map((p) => sortedQuantile(sorted, p));
}
