/**
 * The drift monitor's bins: how one feature's or output's values are counted, the same way in the
 * reference profile (gateway/profile/drift-reference.ts) and in the live windows (monitor). A
 * numeric feature has edges e0 < e1 < … < e(k−1) (distinct quantiles of the reference) and k + 2
 * bins: below e0, [e0, e1), …, [e(k−1), +∞), and missing (NaN, null). A categorical feature has a
 * bin per reference category, one for any other string, and one for missing. Binning a value is a
 * binary search or a Map lookup: it runs for every sampled request.
 */
import type { DriftBins } from '../../policies/guards/profile.js';

export type { DriftBins, DriftReference, DriftOutput } from '../../policies/guards/profile.js';

/** The number of bins of `b` (the length of its counts). */
export function binCount(b: DriftBins): number {
  return b.kind === 'numeric' ? b.edges.length + 2 : b.categories.length + 2;
}

/** The bin of a numeric value: the count of edges ≤ x; missing (NaN, null, non-number) is the last bin. */
export function numericBin(edges: readonly number[], x: unknown): number {
  if (typeof x !== 'number' || Number.isNaN(x)) return edges.length + 1;
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (edges[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A categorical feature's value → bin lookup, built once per feature. */
export function categoryIndex(categories: readonly string[]): ReadonlyMap<string, number> {
  return new Map(categories.map((c, i) => [c, i]));
}

/** The bin of a categorical value: its category's, else `other` (categories.length), missing (null, '') last. */
export function categoricalBin(index: ReadonlyMap<string, number>, categories: number, v: unknown): number {
  if (v === null || v === undefined || v === '') return categories + 1;
  const i = index.get(typeof v === 'string' ? v : String(v));
  return i === undefined ? categories : i;
}
