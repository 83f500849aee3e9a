/**
 * A Gaussian mixture over encoded tabular rows: the out-of-distribution detector's model of data
 * that forms several groups (iris's three species, Titanic's classes and sexes). One Gaussian around
 * all the data puts its mass between the groups, so a row made of one group's values for some
 * features and another's for the rest (each value in range, the combination never seen) scores as
 * usual; a mixture gives each group its own centre and shape, and such a row lies far from all.
 *
 * Fitting is deterministic (no random start): for each K from 1 to MAX_COMPONENTS, the rows are
 * split into K equal groups along their first principal direction, then refined by hard EM (each row
 * to the component under which it is likeliest, each component refitted on its rows with the
 * Ledoit–Wolf shrunk covariance of covariance.ts, until no row moves; a component left with fewer
 * than minRows rows is dropped). K is chosen by the Bayesian information criterion of the mixture's
 * likelihood. The score of a row is its negative log-density under the mixture (without the 2π
 * constant): low-density rows score high, whichever group they are near.
 */
import { mahalanobis, shrunkPrecision } from './covariance.js';
import type { MixtureComponent } from './profile.js';

/** Most components tried. */
export const MAX_COMPONENTS = 4;
/** Hard-EM passes at most (it stops earlier once no row moves). */
const MAX_PASSES = 50;


/** Least rows a component is fitted on: twice the columns, and at least 10. */
export function minComponentRows(d: number): number {
  return Math.max(10, 2 * d);
}

interface Fit {
  readonly components: MixtureComponent[];
  readonly logLikelihood: number;
}

/** The first principal direction of rows x (n × d), by power iteration on their covariance. */
function principalDirection(x: Float64Array, n: number, d: number): Float64Array {
  const mean = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) mean[j] += x[r * d + j] / n;
  const cov = new Float64Array(d * d);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < d; i++) {
      const ci = x[r * d + i] - mean[i];
      for (let j = 0; j < d; j++) cov[i * d + j] += ci * (x[r * d + j] - mean[j]);
    }
  }
  let v = new Float64Array(d).fill(1 / Math.sqrt(d));
  for (let it = 0; it < 100; it++) {
    const w = new Float64Array(d);
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) w[i] += cov[i * d + j] * v[j];
    let norm = 0;
    for (let i = 0; i < d; i++) norm += w[i] * w[i];
    norm = Math.sqrt(norm);
    if (!(norm > 0)) return v;
    for (let i = 0; i < d; i++) w[i] /= norm;
    v = w;
  }
  return v;
}

function fitComponent(x: Float64Array, members: readonly number[], n: number, d: number): MixtureComponent {
  const rows = new Float64Array(members.length * d);
  members.forEach((r, i) => rows.set(x.subarray(r * d, (r + 1) * d), i * d));
  const { mean, precision, logDet } = shrunkPrecision(rows, members.length, d);
  const weight = members.length / n;
  return { weight, mean: [...mean], precision: [...precision], logNorm: Math.log(weight) - logDet / 2 };
}

/** Each component's log-density at row `x` (written into `out`); `scratch` is a d-vector. */
function componentLogDensities(components: readonly CompiledComponent[], x: Float64Array, scratch: Float64Array, out: Float64Array): void {
  for (let k = 0; k < components.length; k++) {
    const c = components[k];
    scratch.set(x);
    const m = mahalanobis(scratch, c.mean, c.precision, x.length);
    out[k] = c.logNorm - (m * m) / 2;
  }
}

interface CompiledComponent {
  readonly mean: Float64Array;
  readonly precision: Float64Array;
  readonly logNorm: number;
}

function compileComponents(components: readonly MixtureComponent[]): CompiledComponent[] {
  return components.map((c) => ({ mean: Float64Array.from(c.mean), precision: Float64Array.from(c.precision), logNorm: c.logNorm }));
}

/** ln Σ exp(v[k]), stably. */
function logSumExp(v: Float64Array, k: number): number {
  let max = -Infinity;
  for (let i = 0; i < k; i++) if (v[i] > max) max = v[i];
  if (max === -Infinity || max === Infinity || Number.isNaN(max)) return max;
  let s = 0;
  for (let i = 0; i < k; i++) s += Math.exp(v[i] - max);
  return max + Math.log(s);
}

function fitK(x: Float64Array, n: number, d: number, k: number, minRows: number): Fit | undefined {
  // Start: K equal groups along the first principal direction.
  const dir = principalDirection(x, n, d);
  const proj = Array.from({ length: n }, (_, r) => {
    let s = 0;
    for (let j = 0; j < d; j++) s += x[r * d + j] * dir[j];
    return s;
  });
  const order = Array.from({ length: n }, (_, r) => r).sort((a, b) => proj[a] - proj[b] || a - b);
  let groups: number[][] = Array.from({ length: k }, (_, g) => order.slice(Math.round((g * n) / k), Math.round(((g + 1) * n) / k)));
  if (groups.some((g) => g.length < minRows)) return undefined;
  const assignment = new Int32Array(n).fill(-1);
  let components: MixtureComponent[] = [];
  const scratch = new Float64Array(d);
  const dens = new Float64Array(k);
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    components = groups.map((g) => fitComponent(x, g, n, d));
    const compiled = compileComponents(components);
    const next: number[][] = components.map(() => []);
    let moved = 0;
    for (let r = 0; r < n; r++) {
      componentLogDensities(compiled, x.subarray(r * d, (r + 1) * d), scratch, dens);
      let best = 0;
      for (let c = 1; c < compiled.length; c++) if (dens[c] > dens[best]) best = c;
      next[best].push(r);
      if (assignment[r] !== best) moved++;
      assignment[r] = best;
    }
    const kept = next.filter((g) => g.length >= minRows);
    if (kept.length < next.length) {
      // A component lost its rows: refit without it (its rows go to the others on the next pass).
      if (kept.length === 0) return undefined;
      const orphans = next.filter((g) => g.length < minRows).flat();
      kept[0].push(...orphans);
      assignment.fill(-1);
      groups = kept;
      continue;
    }
    groups = next;
    if (moved === 0) break;
  }
  components = groups.map((g) => fitComponent(x, g, n, d));
  const compiled = compileComponents(components);
  let logLikelihood = 0;
  for (let r = 0; r < n; r++) {
    componentLogDensities(compiled, x.subarray(r * d, (r + 1) * d), scratch, dens);
    logLikelihood += logSumExp(dens, compiled.length);
  }
  return { components, logLikelihood };
}

export interface FittedMixture {
  readonly components: MixtureComponent[];
  /** The criterion of each K tried (index K − 1; NaN where K could not be fitted). */
  readonly bic: number[];
}

/**
 * The mixture of encoded rows `x` (n × d) with the K (1 to maxComponents) of least BIC =
 * −2·ln L + p·ln n, p = K·(d + d(d+1)/2) + K − 1 free parameters.
 */
export function fitMixture(x: Float64Array, n: number, d: number, maxComponents = MAX_COMPONENTS, minRows = minComponentRows(d)): FittedMixture {
  const bic: number[] = [];
  let best: Fit | undefined;
  let bestBic = Infinity;
  for (let k = 1; k <= maxComponents; k++) {
    const fit = k === 1 ? { components: [fitComponent(x, Array.from({ length: n }, (_, r) => r), n, d)], logLikelihood: NaN } : fitK(x, n, d, k, minRows);
    if (fit === undefined) {
      bic.push(NaN);
      continue;
    }
    let ll = fit.logLikelihood;
    if (k === 1) {
      const compiled = compileComponents(fit.components);
      const scratch = new Float64Array(d);
      const dens = new Float64Array(1);
      ll = 0;
      for (let r = 0; r < n; r++) {
        componentLogDensities(compiled, x.subarray(r * d, (r + 1) * d), scratch, dens);
        ll += dens[0];
      }
    }
    const k2 = fit.components.length;
    const p = k2 * (d + (d * (d + 1)) / 2) + k2 - 1;
    const value = -2 * ll + p * Math.log(n);
    bic.push(value);
    if (value < bestBic) {
      bestBic = value;
      best = { components: fit.components, logLikelihood: ll };
    }
  }
  if (best === undefined) throw new Error('the mixture could not be fitted');
  return { components: best.components, bic };
}

/** A mixture ready to score: typed arrays and the buffers one score needs. */
export interface CompiledMixture {
  readonly components: readonly CompiledComponent[];
  readonly scratch: Float64Array;
  readonly densities: Float64Array;
}

export function compileMixture(components: readonly MixtureComponent[], d: number): CompiledMixture {
  return { components: compileComponents(components), scratch: new Float64Array(d), densities: new Float64Array(components.length) };
}

/**
 * The negative log-density of encoded row `x` under the mixture (without the 2π term): Infinity
 * for a row with an infinite or NaN value. Allocates nothing.
 */
export function mixtureScore(m: CompiledMixture, x: Float64Array): number {
  componentLogDensities(m.components, x, m.scratch, m.densities);
  const ll = logSumExp(m.densities, m.components.length);
  return Number.isNaN(ll) ? Infinity : -ll;
}
