/**
 * The steps of a benign caller, which `breakwater profile` keeps in the profile (`Profile.extraction`)
 * for the extraction monitor to compare callers with: for each query, its difference (in the OOD
 * encoder's space) from the nearest of the caller's last STEP_RING distinct queries, measured by
 * the monitor's own `StepRing` (step-ring.ts; an exact repeat is no step): how short a tiny step
 * is (a sweep's or a finite difference's steps fall far below real ones), and how often real rows
 * take tiny steps and repeat a step.
 */
import { encodeRows } from './ood.js';
import type { RowValues } from './features.js';
import type { EncoderSpec } from './profile.js';
import { quantilesOf } from './quantiles.js';
import { STEP_RING, StepRing } from './step-ring.js';

/** Steps a profile measures on its benign caller replaying the whole reference. */
export const BENIGN_STEPS = 10_000;
/** Benign callers that each replay one neighbourhood of the reference, and the steps measured on each. */
export const LOCAL_CALLERS = 16;
export const LOCAL_STEPS = 1_000;
/**
 * A neighbourhood: the rows nearest a random row, twice the ring: the narrowest caller whose
 * queries are not soon all repeats.
 */
export const LOCAL_POOL = 2 * STEP_RING;

/** The benign step quantile whose probability this is marks a tiny step. */
export const TINY_STEP_PROB = 0.01;

/** What benign callers' steps look like (`benignSteps`). */
export interface BenignSteps {
  /** The step distances of the caller replaying the whole reference (repeats are no steps). */
  readonly distances: number[];
  /** A step shorter than this is tiny: the whole-reference caller's TINY_STEP_PROB quantile (0 without steps: none is tiny). */
  readonly tinyStep: number;
  /** The share of tiny steps: the larger of TINY_STEP_PROB and the neighbourhood callers' share (pooled). */
  readonly tinyRate: number;
  /** The share of lattice steps (step-ring.ts): the larger of the whole-reference caller's and the neighbourhood callers' (pooled). */
  readonly latticeRate: number;
}

/**
 * Replays rows drawn uniformly at random (`random`, [0, 1)) from `pool` (indices into the encoded
 * rows `x`) against a fresh ring, as the extraction monitor measures a caller, until `samples` steps
 * were measured or 20 × `samples` rows drawn (a pool of few distinct rows is soon all repeats).
 * Each step's distance goes to `distances`; returns the number of lattice steps.
 */
function replay(x: Float64Array, d: number, pool: readonly number[], random: () => number, samples: number, distances: number[]): number {
  const ring = new StepRing(d);
  let lattice = 0;
  const start = distances.length;
  for (let draws = 0; distances.length - start < samples && draws < 20 * samples && pool.length > 0; draws++) {
    const at = pool[Math.min(pool.length - 1, Math.floor(random() * pool.length))] * d;
    ring.measure(x, at);
    if (ring.distance2 === 0) continue;
    if (ring.distance2 < Infinity) {
      distances.push(Math.sqrt(ring.distance2));
      if (ring.lattice) lattice++;
    }
    ring.push(x, at);
  }
  return lattice;
}

/** The LOCAL_POOL rows nearest row `seed` (itself included). */
function neighbourhood(x: Float64Array, d: number, n: number, seed: number): number[] {
  const dist = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += (x[i * d + j] - x[seed * d + j]) ** 2;
    dist[i] = s;
  }
  return Array.from({ length: n }, (_, i) => i).sort((a, b) => dist[a] - dist[b] || a - b).slice(0, LOCAL_POOL);
}

/**
 * Benign callers replaying real data, measured as the extraction monitor measures a caller: one
 * drawing rows at random from all of `rows`, and LOCAL_CALLERS each drawing from one neighbourhood
 * of them. The first gives the step distances and what a tiny step is; the null rates of the tiny
 * and lattice steps are the larger of its share and the neighbourhood callers'. A caller querying a
 * narrow slice of the data sees its rows closer together than the whole data's (images of one
 * digit), and data on a grid (integer ages, prices from a list, measurements to 0.1 cm) repeats
 * steps by coincidence, most where its rows are dense.
 */
export function benignSteps(spec: EncoderSpec, rows: readonly RowValues[], random: () => number): BenignSteps {
  const d = spec.columns;
  const x = encodeRows(spec, rows);
  const distances: number[] = [];
  const wholeLattice = replay(x, d, Array.from({ length: rows.length }, (_, i) => i), random, BENIGN_STEPS, distances);
  const local: number[] = [];
  let localLattice = 0;
  for (let c = 0; c < LOCAL_CALLERS && rows.length > 0; c++) {
    localLattice += replay(x, d, neighbourhood(x, d, rows.length, Math.min(rows.length - 1, Math.floor(random() * rows.length))), random, LOCAL_STEPS, local);
  }
  const share = (k: number, n: number): number => (n === 0 ? 0 : k / n);
  const tinyStep = distances.length === 0 ? 0 : quantilesOf(distances, [TINY_STEP_PROB])[0];
  const localTiny = local.filter((v) => v < tinyStep).length;
  return {
    distances,
    tinyStep,
    tinyRate: Math.max(TINY_STEP_PROB, share(localTiny, local.length)),
    latticeRate: Math.max(share(wholeLattice, distances.length), share(localLattice, local.length)),
  };
}
