/**
 * The contract's range of a numeric feature before its tolerance (`NumericFeature.low`, `.high`): a
 * sample's minimum and maximum fall short of the population's (a new draw lands beyond the largest
 * of n with probability 1/(n+1)), and more so the smaller the sample, so each side is widened by the
 * spacing of the k most extreme values: low = x(1) − (x(k) − x(1)), high = x(n) + (x(n) − x(n−k+1)).
 *
 * How likely a clean value lands beyond, per side: where the tail beyond the k-th most extreme value
 * is exponential, the top spacings are independent exponentials (Rényi: the j-th from the top has
 * scale β/j), a new draw exceeds x(n) with probability 1/(n+1) and then by more than the margin D
 * with probability E[exp(−D/β)] = ∏_{j<k} j/(j+1) = 1/k: in all 1/(k(n+1)). So k = ⌈1/(p(n+1))⌉
 * holds it to p. Tails lighter than exponential (bounded measurements, pixels) do better (a density
 * flat up to a hard edge: 2^−(k−1)/(n+1)); heavier tails do worse, but their spacings, and so the
 * margins, grow with them. Ties (values recorded to a resolution, or a bounded range's edge reached
 * often) give a margin of 0: a discrete feature's edges are its edges.
 *
 * With p = 1/1000 per side: 105 iris rows give k = 10; 900 Titanic rows k = 2; an image's pixels
 * (taken together, hundreds of thousands of values) k = 1, the range itself.
 */

/** The chance per side that a clean value lands beyond the bound, under an exponential tail. */
export const TAIL_PROBABILITY = 0.001;

/** k for n values: ⌈1/(p(n+1))⌉, at least 1 and at most n. */
export function extremeRank(n: number, p = TAIL_PROBABILITY): number {
  return Math.max(1, Math.min(n, Math.ceil(1 / (p * (n + 1)))));
}

/** The nearest FP32 value at or beyond `x` in the direction `down` (a bound FP32 data is compared with). */
function fp32Outward(x: number, down: boolean): number {
  const f = Math.fround(x);
  if (down ? f <= x : f >= x) return f;
  const cell = new Float32Array([f]);
  const bits = new Int32Array(cell.buffer);
  if (f === 0) return down ? -(2 ** -149) : 2 ** -149;
  bits[0] += (f > 0) === down ? -1 : 1;
  return cell[0];
}

/**
 * [low, high] for `sorted` (ascending, finite, not empty). For FP32 data the bounds are rounded
 * outward to FP32 values, so that a value written like a reference value (2.0 against a computed
 * 2.0000000000000004) is not refused for the arithmetic's last bit.
 */
export function extremeBounds(sorted: ArrayLike<number>, fp32: boolean, p = TAIL_PROBABILITY): [number, number] {
  const n = sorted.length;
  if (n === 0) throw new RangeError('no values to bound');
  const k = extremeRank(n, p);
  const low = sorted[0] - (sorted[k - 1] - sorted[0]);
  const high = sorted[n - 1] + (sorted[n - 1] - sorted[n - k]);
  return fp32 ? [fp32Outward(low, true), fp32Outward(high, false)] : [low, high];
}
