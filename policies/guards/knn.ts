/**
 * k nearest neighbours: the mean Euclidean distance from a vector to its k nearest reference rows.
 * The out-of-distribution detector uses it on raw pixels (ood.ts) and on the image detector's edge
 * descriptors (image-ood.ts). Scoring runs on the request path and allocates nothing; fitting a
 * detector and cross-fitting its threshold (image-ood.ts) work from one matrix of the distances
 * between the reference rows, so no distance is computed twice.
 */

/** Columns summed between two checks against the current k-th best (early abandon). */
const BLOCK = 16;
/** Below this share of non-zero values a vector is compared through its non-zero values only. */
const SPARSE_SHARE = 0.5;

/** Reference rows ready to search, with the buffers one search needs. */
export interface KnnReference {
  readonly rows: number;
  readonly columns: number;
  /** rows × columns, row-major. */
  readonly reference: Float64Array;
  /** The same, column-major (columns × rows): a query's non-zero value meets every row in one sweep. */
  readonly byColumn: Float64Array;
  /** Each reference row's squared length. */
  readonly norms: Float64Array;
  /** Each row's dot product with the query. */
  readonly dots: Float64Array;
  /** The k smallest squared distances so far (k = its length). */
  readonly best: Float64Array;
  /** The indices of the query's non-zero values. */
  readonly nonZero: Int32Array;
}

export function knnReference(reference: Float64Array, rows: number, columns: number, k: number): KnnReference {
  const norms = new Float64Array(rows);
  const byColumn = new Float64Array(rows * columns);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < columns; j++) {
      const v = reference[r * columns + j];
      s += v * v;
      byColumn[j * rows + r] = v;
    }
    norms[r] = s;
  }
  return { rows, columns, reference, byColumn, norms, dots: new Float64Array(rows), best: new Float64Array(k), nonZero: new Int32Array(columns) };
}

/** Keeps `s` among the k smallest in `best` (ascending). */
function insert(best: Float64Array, s: number): void {
  let at = best.length - 1;
  if (s >= best[at]) return;
  while (at > 0 && best[at - 1] > s) {
    best[at] = best[at - 1];
    at--;
  }
  best[at] = s;
}

function meanRoot(best: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < best.length; i++) sum += Math.sqrt(best[i]);
  return sum / best.length;
}

/**
 * The mean distance from `x` to its k nearest reference rows. Infinite when `x` has a non-finite
 * value. A mostly blank vector (an image's background) is compared through its non-zero values,
 * ‖x − r‖² = ‖x‖² + ‖r‖² − 2 x·r, each meeting every reference row in one sweep of a column; a dense
 * one row by row, abandoning a row once it is farther than the k-th best. Allocates nothing.
 */
export function knnMeanDistance(x: Float64Array, knn: KnnReference): number {
  const { rows, columns: d, reference: ref, best, nonZero } = knn;
  let nz = 0;
  let norm = 0;
  for (let j = 0; j < d; j++) {
    const v = x[j];
    if (!Number.isFinite(v)) return Infinity;
    if (v !== 0) {
      nonZero[nz++] = j;
      norm += v * v;
    }
  }
  best.fill(Infinity);
  if (nz <= SPARSE_SHARE * d) {
    const { byColumn, norms, dots } = knn;
    dots.fill(0);
    for (let i = 0; i < nz; i++) {
      const j = nonZero[i];
      const v = x[j];
      const base = j * rows;
      for (let r = 0; r < rows; r++) dots[r] += v * byColumn[base + r];
    }
    for (let r = 0; r < rows; r++) {
      const s = norm + norms[r] - 2 * dots[r];
      insert(best, s > 0 ? s : 0);
    }
    return meanRoot(best);
  }
  for (let r = 0; r < rows; r++) {
    const base = r * d;
    const worst = best[best.length - 1];
    let s = 0;
    let j = 0;
    while (j < d && s < worst) {
      const end = Math.min(d, j + BLOCK);
      for (; j < end; j++) {
        const t = x[j] - ref[base + j];
        s += t * t;
      }
    }
    insert(best, s);
  }
  return meanRoot(best);
}

/** The squared Euclidean distances between the n rows of `x` (d columns, row-major): n × n, row-major. */
export function squaredDistances(x: Float64Array, n: number, d: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let a = 0; a < n; a++) {
    for (let b = a + 1; b < n; b++) {
      let s = 0;
      for (let j = 0; j < d; j++) {
        const t = x[a * d + j] - x[b * d + j];
        s += t * t;
      }
      out[a * n + b] = s;
      out[b * n + a] = s;
    }
  }
  return out;
}

/**
 * What knnMeanDistance gives for row `row` against the rows `among` (indices into an n × n matrix of
 * squared distances), leaving `row` itself out if it is among them; `best` is scratch of length k.
 */
export function knnFromDistances(squared: Float64Array, n: number, row: number, among: readonly number[], best: Float64Array): number {
  best.fill(Infinity);
  for (const r of among) if (r !== row) insert(best, squared[row * n + r]);
  return meanRoot(best);
}
