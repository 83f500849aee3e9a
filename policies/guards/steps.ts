/**
 * The steps of a benign caller, which `breakwater profile` keeps in the profile (`Profile.extraction`)
 * for the extraction monitor to compare callers with: for each query, its difference (in the OOD
 * encoder's space) from the nearest of the caller's last STEP_RING distinct queries, measured by
 * the monitor's own `StepRing` (step-ring.ts; an exact repeat is no step). Its distances' quantiles
 * mark a tiny step (a sweep's or a finite difference's steps fall far below them); its share of
 * lattice steps is how often real rows happen to repeat a step.
 */
import { encodeRows } from './ood.js';
import type { RowValues } from './features.js';
import type { EncoderSpec } from './profile.js';
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

/** What benign callers' steps look like (`benignSteps`). */
export interface BenignSteps {
  /** The step distances of the caller replaying the whole reference (repeats are no steps). */
  readonly distances: number[];
  /** The share of lattice steps (step-ring.ts): the larger of the whole-reference caller's and the neighbourhood callers' (pooled). */
  readonly latticeRate: number;
}

/**
 * Replays rows drawn uniformly at random (`random`, [0, 1)) from `pool` (indices into the encoded
 * rows `x`) against a fresh ring, as the extraction monitor measures a caller, until `samples` steps
 * were measured or 20 × `samples` rows drawn (a pool of few distinct rows is soon all repeats).
 * Returns the number of lattice steps; each step's distance goes to `distances` when given.
 */
function replay(x: Float64Array, d: number, pool: readonly number[], random: () => number, samples: number, distances?: number[]): { steps: number; lattice: number } {
  const ring = new StepRing(d);
  let steps = 0;
  let lattice = 0;
  for (let draws = 0; steps < samples && draws < 20 * samples && pool.length > 0; draws++) {
    const at = pool[Math.min(pool.length - 1, Math.floor(random() * pool.length))] * d;
    ring.measure(x, at);
    if (ring.distance2 === 0) continue;
    if (ring.distance2 < Infinity) {
      steps++;
      distances?.push(Math.sqrt(ring.distance2));
      if (ring.lattice) lattice++;
    }
    ring.push(x, at);
  }
  return { steps, lattice };
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
 * drawing rows at random from all of `rows` (its step distances, and its share of lattice steps),
 * and LOCAL_CALLERS each drawing from one neighbourhood of them (their share of lattice steps).
 * Data on a grid (integer ages, prices from a list, measurements to 0.1 cm) repeats steps by
 * coincidence, and most where its rows are dense, as a caller querying a narrow slice of the data
 * finds: the lattice null takes the larger share.
 */
export function benignSteps(spec: EncoderSpec, rows: readonly RowValues[], random: () => number): BenignSteps {
  const d = spec.columns;
  const x = encodeRows(spec, rows);
  const distances: number[] = [];
  const whole = replay(x, d, Array.from({ length: rows.length }, (_, i) => i), random, BENIGN_STEPS, distances);
  let steps = 0;
  let lattice = 0;
  for (let c = 0; c < LOCAL_CALLERS && rows.length > 0; c++) {
    const local = replay(x, d, neighbourhood(x, d, rows.length, Math.min(rows.length - 1, Math.floor(random() * rows.length))), random, LOCAL_STEPS);
    steps += local.steps;
    lattice += local.lattice;
  }
  const share = (k: number, n: number): number => (n === 0 ? 0 : k / n);
  return { distances, latticeRate: Math.max(share(whole.lattice, whole.steps), share(lattice, steps)) };
}
