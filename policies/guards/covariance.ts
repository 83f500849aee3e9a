/**
 * The shrunk covariance of a few hundred rows (Ledoit & Wolf, 2004), inverted: what a Mahalanobis
 * distance needs when the rows are few, or columns are linearly dependent (one-hot columns) or never
 * vary (a category never seen, an image statistic the reference always shares). Used by the tabular
 * out-of-distribution detector (ood.ts) and by the image detector's statistics (image-ood.ts).
 */

/** Least shrinkage towards the scaled identity: keeps the covariance invertible with few rows. */
const MIN_SHRINKAGE = 0.01;

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
 * (trace / d)·I by the Ledoit–Wolf intensity (at least MIN_SHRINKAGE), then inverted; `logDet` is
 * the natural log of the shrunk covariance's determinant (a Gaussian density's normaliser).
 */
export function shrunkPrecision(x: Float64Array, n: number, d: number): { mean: Float64Array; precision: Float64Array; shrinkage: number; logDet: number } {
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
    if (l !== undefined) {
      let logDet = 0;
      for (let i = 0; i < d; i++) logDet += 2 * Math.log(l[i * d + i]);
      return { mean, precision: inverseFromCholesky(l, d), shrinkage, logDet };
    }
    shrinkage = Math.min(1, shrinkage * 2);
  }
}

/**
 * The Mahalanobis distance of `x` (d values) from `center` under `precision` (d × d, row-major,
 * symmetric). Centres `x` in place (it is the caller's scratch buffer); allocates nothing.
 */
export function mahalanobis(x: Float64Array, center: Float64Array, precision: Float64Array, d: number): number {
  for (let i = 0; i < d; i++) x[i] -= center[i];
  let q = 0;
  for (let i = 0; i < d; i++) {
    const xi = x[i];
    const row = i * d;
    let cross = 0;
    for (let j = i + 1; j < d; j++) cross += precision[row + j] * x[j];
    q += xi * (precision[row + i] * xi + 2 * cross);
  }
  // NaN (an infinite value met an opposite one) is as far as it gets.
  return q >= 0 ? Math.sqrt(q) : q < 0 ? 0 : Infinity;
}
