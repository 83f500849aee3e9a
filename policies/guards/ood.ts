/**
 * The out-of-distribution detector: how far a row lies from the reference data, in the encoder's
 * space (encoder.ts). Low-dimensional inputs (tabular: at most 64 encoded columns) use the
 * Mahalanobis distance to the reference mean under a shrunk covariance (Ledoit & Wolf, 2004), which
 * copes with one-hot columns that are linearly dependent and with categories never seen (their
 * `unknown` column has no variance in the reference, so any weight on it is far). High-dimensional
 * inputs (images) use the mean Euclidean distance to the k = 5 nearest of at most 1000 reference
 * rows: a covariance of 784 pixels cannot be estimated from a few hundred images.
 *
 * Scoring runs on the request path: the fitted model is compiled once (per model object) into typed
 * arrays and preallocated buffers, and a call allocates nothing.
 */
import { encode, fitEncoder } from './encoder.js';
import type { RowValues } from './features.js';
import type { EncoderSpec, FeatureProfile, OodModel, ProfileInput } from './profile.js';

/** Encoded columns up to which the Mahalanobis distance is used; above it, k nearest neighbours. */
export const MAHALANOBIS_MAX_COLUMNS = 64;
export const KNN_K = 5;
/** Reference rows kept for k nearest neighbours: bounds the cost of a score (rows × columns). */
export const KNN_MAX_REFERENCE = 1000;
/** Least shrinkage towards the scaled identity: keeps the covariance invertible with few rows. */
const MIN_SHRINKAGE = 0.01;

/** The reference rows encoded, row-major. */
export function encodeRows(spec: EncoderSpec, rows: readonly RowValues[]): Float64Array {
  const d = spec.columns;
  const out = new Float64Array(rows.length * d);
  for (let r = 0; r < rows.length; r++) encode(spec, rows[r], out.subarray(r * d, (r + 1) * d));
  return out;
}

/** Lower-triangular L with L Lᵀ = a (d × d, row-major), or undefined when a is not positive definite. */
function cholesky(a: Float64Array, d: number): Float64Array | undefined {
  const l = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * d + j];
      for (let k = 0; k < j; k++) s -= l[i * d + k] * l[j * d + k];
      if (i === j) {
        if (!(s > 0)) return undefined;
        l[i * d + i] = Math.sqrt(s);
      } else {
        l[i * d + j] = s / l[j * d + j];
      }
    }
  }
  return l;
}

/** (L Lᵀ)⁻¹ = L⁻ᵀ L⁻¹ for lower-triangular L. */
function inverseFromCholesky(l: Float64Array, d: number): Float64Array {
  const inv = new Float64Array(d * d); // L⁻¹, lower triangular
  for (let i = 0; i < d; i++) {
    inv[i * d + i] = 1 / l[i * d + i];
    for (let j = 0; j < i; j++) {
      let s = 0;
      for (let k = j; k < i; k++) s -= l[i * d + k] * inv[k * d + j];
      inv[i * d + j] = s / l[i * d + i];
    }
  }
  const p = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < d; k++) s += inv[k * d + i] * inv[k * d + j];
      p[i * d + j] = s;
      p[j * d + i] = s;
    }
  }
  return p;
}

/**
 * Mean and precision of encoded rows `x` (n × d): the sample covariance shrunk towards
 * (trace / d)·I by the Ledoit–Wolf intensity (at least MIN_SHRINKAGE), then inverted.
 */
export function shrunkPrecision(x: Float64Array, n: number, d: number): { mean: Float64Array; precision: Float64Array; shrinkage: number } {
  const mean = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) mean[j] += x[r * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  const c = new Float64Array(n * d);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) c[r * d + j] = x[r * d + j] - mean[j];
  const s = new Float64Array(d * d);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < d; i++) {
      const ci = c[r * d + i];
      if (ci === 0) continue;
      for (let j = 0; j <= i; j++) s[i * d + j] += ci * c[r * d + j];
    }
  }
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      s[i * d + j] /= n;
      s[j * d + i] = s[i * d + j];
    }
  }
  let mu = 0;
  for (let i = 0; i < d; i++) mu += s[i * d + i];
  mu = mu > 0 ? mu / d : 1;
  // Ledoit & Wolf (2004), with the Frobenius norm scaled by 1/d: δ² = ‖S − μI‖², β̄² = Σ‖x xᵀ − S‖² / n².
  let delta2 = 0;
  let sNorm2 = 0;
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      const v = s[i * d + j];
      sNorm2 += v * v;
      const t = i === j ? v - mu : v;
      delta2 += t * t;
    }
  }
  let beta2 = 0;
  for (let r = 0; r < n; r++) {
    let norm2 = 0;
    let quad = 0;
    for (let i = 0; i < d; i++) {
      const ci = c[r * d + i];
      norm2 += ci * ci;
      let row = 0;
      for (let j = 0; j < d; j++) row += s[i * d + j] * c[r * d + j];
      quad += ci * row;
    }
    beta2 += norm2 * norm2 - 2 * quad + sNorm2;
  }
  beta2 /= n * n;
  let shrinkage = delta2 > 0 ? Math.min(1, Math.max(MIN_SHRINKAGE, Math.min(beta2, delta2) / delta2)) : 1;
  for (;;) {
    const a = new Float64Array(d * d);
    for (let i = 0; i < d * d; i++) a[i] = (1 - shrinkage) * s[i];
    for (let i = 0; i < d; i++) a[i * d + i] += shrinkage * mu;
    const l = cholesky(a, d);
    if (l !== undefined) return { mean, precision: inverseFromCholesky(l, d), shrinkage };
    shrinkage = Math.min(1, shrinkage * 2);
  }
}

/**
 * Fits the detector on reference rows (features in profile order). For k nearest neighbours the
 * first KNN_MAX_REFERENCE rows are kept: give them in a random order (build.ts: the seeded split).
 */
export function fitOod(features: readonly FeatureProfile[], referenceRows: readonly RowValues[], inputs: readonly ProfileInput[] = []): OodModel {
  if (referenceRows.length < 2) throw new Error(`the out-of-distribution model needs at least 2 reference rows (got ${referenceRows.length})`);
  const encoder = fitEncoder(features, inputs);
  const d = encoder.columns;
  if (d <= MAHALANOBIS_MAX_COLUMNS) {
    const x = encodeRows(encoder, referenceRows);
    const { mean, precision } = shrunkPrecision(x, referenceRows.length, d);
    return { method: 'mahalanobis', encoder, mean: [...mean], precision: [...precision] };
  }
  const kept = referenceRows.slice(0, KNN_MAX_REFERENCE);
  return { method: 'knn', encoder, k: Math.min(KNN_K, kept.length), rows: kept.length, reference: [...encodeRows(encoder, kept)] };
}

/** A fitted model as typed arrays, with the buffers one score needs. */
interface Compiled {
  readonly x: Float64Array;
  readonly center: Float64Array;
  /** Mahalanobis: the precision; knn: the reference rows. */
  readonly matrix: Float64Array;
  /** knn: the k smallest squared distances so far. */
  readonly best: Float64Array;
}

const compiled = new WeakMap<OodModel, Compiled>();

function compile(model: OodModel): Compiled {
  const d = model.encoder.columns;
  const c: Compiled = model.method === 'mahalanobis'
    ? { x: new Float64Array(d), center: Float64Array.from(model.mean), matrix: Float64Array.from(model.precision), best: new Float64Array(0) }
    : { x: new Float64Array(d), center: new Float64Array(0), matrix: Float64Array.from(model.reference), best: new Float64Array(model.k) };
  compiled.set(model, c);
  return c;
}

function mahalanobis(c: Compiled, d: number): number {
  const { x, center, matrix: p } = c;
  for (let i = 0; i < d; i++) x[i] -= center[i];
  let q = 0;
  for (let i = 0; i < d; i++) {
    const xi = x[i];
    const row = i * d;
    let cross = 0;
    for (let j = i + 1; j < d; j++) cross += p[row + j] * x[j];
    q += xi * (p[row + i] * xi + 2 * cross);
  }
  // NaN (an infinite value met an opposite one) is as far as it gets.
  return q >= 0 ? Math.sqrt(q) : q < 0 ? 0 : Infinity;
}

/** Columns summed between two checks against the current k-th best (early abandon). */
const BLOCK = 16;

function knn(c: Compiled, d: number, rows: number): number {
  const { x, matrix: ref, best } = c;
  for (let i = 0; i < d; i++) if (!Number.isFinite(x[i])) return Infinity;
  const k = best.length;
  best.fill(Infinity);
  for (let r = 0; r < rows; r++) {
    const base = r * d;
    const worst = best[k - 1];
    let s = 0;
    let j = 0;
    while (j < d && s < worst) {
      const end = Math.min(d, j + BLOCK);
      for (; j < end; j++) {
        const t = x[j] - ref[base + j];
        s += t * t;
      }
    }
    if (s >= worst) continue;
    let at = k - 1;
    while (at > 0 && best[at - 1] > s) {
      best[at] = best[at - 1];
      at--;
    }
    best[at] = s;
  }
  let sum = 0;
  for (let i = 0; i < k; i++) sum += Math.sqrt(best[i]);
  return sum / k;
}

/**
 * How far `row` lies from the reference: the Mahalanobis distance, or the mean distance to the k
 * nearest reference rows. Infinite for a row with an infinite value. Allocates nothing.
 */
export function oodScore(model: OodModel, row: RowValues): number {
  const c = compiled.get(model) ?? compile(model);
  encode(model.encoder, row, c.x);
  const d = model.encoder.columns;
  return model.method === 'mahalanobis' ? mahalanobis(c, d) : knn(c, d, model.rows);
}
