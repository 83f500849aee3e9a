/**
 * Tail surprise: how unusual a score is among the scores of reference rows, as −ln of the share of
 * reference rows scoring at least as high. It puts scores on different scales (a pixel distance, an
 * edge distance, a Mahalanobis distance of image statistics) on one scale so that the image
 * detector (image-ood.ts) can add them up (Fisher's way of combining p-values, halved).
 *
 * The share is the reference's empirical one, interpolated between neighbouring scores; above the
 * t = max(10, ⌈n/10⌉) largest scores it is extrapolated as an exponential tail, like calibrate.ts
 * does: excesses over the (t+1)-th largest score u have mean β, so a score s > u has surprise
 * ln((n+1)/(t+1)) + (s − u)/β, growing without bound (a far score is never capped at "rarer than
 * every reference row").
 */

/** A tail as the profile stores it. */
export interface Tail {
  /** The reference rows' scores, ascending (each scored by a detector that had not seen it). */
  readonly scores: readonly number[];
  /** t: how many of the largest scores the exponential tail is fitted to. */
  readonly tailRows: number;
  /** β: their mean excess over the next score down. */
  readonly tailMean: number;
}

/** Least number of scores a tail is fitted from. */
export const MIN_TAIL_SCORES = 12;

/** The tail of `scores` (any order, all finite). */
export function fitTail(scores: readonly number[]): Tail {
  const sorted = Float64Array.from(scores).sort();
  const n = sorted.length;
  if (n < MIN_TAIL_SCORES || !sorted.every(Number.isFinite)) throw new Error(`a tail needs at least ${MIN_TAIL_SCORES} finite scores (got ${n})`);
  const t = Math.min(n - 1, Math.max(10, Math.ceil(n / 10)));
  const u = sorted[n - t - 1];
  let excess = 0;
  for (let i = n - t; i < n; i++) excess += sorted[i] - u;
  // Equal top scores have no spread: any score above them is then (almost) infinitely surprising.
  const tailMean = Math.max(excess / t, 1e-9 * Math.max(1, Math.abs(u)));
  return { scores: [...sorted], tailRows: t, tailMean };
}

/** A tail ready to score with: its scores as a typed array. */
export interface CompiledTail {
  readonly sorted: Float64Array;
  readonly tailRows: number;
  readonly tailMean: number;
}

export function compileTail(tail: Tail): CompiledTail {
  return { sorted: Float64Array.from(tail.scores), tailRows: tail.tailRows, tailMean: tail.tailMean };
}

/** −ln of the share of reference scores at least `v` (above: the rule in the file's comment). NaN is infinitely surprising. */
export function surprise(tail: CompiledTail, v: number): number {
  const s = tail.sorted;
  const n = s.length;
  const t = tail.tailRows;
  const u = s[n - t - 1];
  if (!(v <= u)) return v !== v ? Infinity : Math.log((n + 1) / (t + 1)) + (v - u) / tail.tailMean;
  if (v < s[0]) return 0;
  // The last i with s[i] <= v; the empirical CDF is (i + 1) / (n + 1) at s[i], linear in between.
  let lo = 0;
  let hi = n - t - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (s[mid] <= v) lo = mid;
    else hi = mid - 1;
  }
  const gap = s[lo + 1] - s[lo];
  const cdf = (lo + 1 + (gap > 0 ? (v - s[lo]) / gap : 0)) / (n + 1);
  return -Math.log(1 - cdf);
}
