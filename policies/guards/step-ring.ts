/**
 * A caller's recent distinct queries, encoded, and the steps that reached them: what each new
 * query is measured against (steps.ts), by the extraction monitor per caller (extraction-signals.ts
 * QueryTrace) and by `breakwater profile` on its simulated benign caller, so that both measure a
 * step the same way. A query's step is its difference from the nearest query held.
 *
 * - distance: the step's length (PRADA, Juuti et al. 2019); 0 is an exact repeat, which tells a
 *   copier nothing new about the model: the caller does not push it, so the rows held are distinct;
 * - lattice: the step equals (±, within LATTICE_TOLERANCE of its length) one of the last
 *   LATTICE_STEPS steps that led to another point. Real rows reach their nearest neighbours by steps
 *   that differ; a copier reuses a few fixed steps from point after point: the finite-difference
 *   probes of a Jacobian estimate (x + h·e_i for each direction i, base after base), the moves of an
 *   augmentation (x ± λ·e_i), a grid's lattice vectors. Re-sending rows cannot produce it: a row
 *   re-sent within STEP_RING distinct queries is a repeat, and one re-sent later that is reached by
 *   the same step as before (or the pair of rows taken the other way round) leads to a point the
 *   remembered step touched (told by a hash of their encodings), not to another point.
 */

/** How many earlier distinct queries a step is measured against (the extraction monitor's ring). */
export const STEP_RING = 64;
/**
 * Steps remembered for the lattice test: a Jacobian estimate along d directions reuses each probe
 * step every d + 1 queries, so models with up to 15 numeric directions per probe round are covered.
 */
export const LATTICE_STEPS = 16;
/** Two steps are the same when they differ by at most this share of the step's length (float32 inputs stay well within it). */
export const LATTICE_TOLERANCE = 1e-4;

/** A caller's last `size` distinct encoded queries and its last LATTICE_STEPS steps. */
export class StepRing {
  readonly #cols: number;
  readonly #size: number;
  readonly #rows: Float64Array;
  #count = 0;
  /** The slot the next row goes to; the last row is at head − 1. */
  #head = 0;
  /** The last steps, as float32 (the tolerance is far above its precision). */
  readonly #steps: Float32Array;
  /** Hashes of the points each step led from and to, two per step. */
  readonly #stepEnds: Uint32Array;
  #stepCount = 0;
  #stepHead = 0;
  /** The step of the row measured last, and the hashes of its nearest row and of itself, kept for `push`. */
  readonly #step: Float64Array;
  #start = 0;
  #end = 0;
  #hasStep = false;
  /** What `measure` found: the squared distance to the nearest row held (Infinity when empty; 0: a repeat)… */
  distance2 = Infinity;
  /** …and whether the step to it repeats a remembered step. */
  lattice = false;

  constructor(columns: number, size = STEP_RING) {
    this.#cols = columns;
    this.#size = size;
    this.#rows = new Float64Array(size * columns);
    this.#steps = new Float32Array(LATTICE_STEPS * columns);
    this.#stepEnds = new Uint32Array(2 * LATTICE_STEPS);
    this.#step = new Float64Array(columns);
  }

  /** Distinct queries held (at most the ring's size). */
  get count(): number {
    return this.#count;
  }

  get bytes(): number {
    return this.#rows.length * 8 + this.#steps.length * 4 + this.#stepEnds.length * 4 + this.#step.length * 8;
  }

  /** The rows, row-major; the last one pushed starts at `lastAt`. */
  get rows(): Float64Array {
    return this.#rows;
  }

  get lastAt(): number {
    return ((this.#head + this.#size - 1) % this.#size) * this.#cols;
  }

  /** Measures `x` (at `at`) against the rows and steps held: sets `distance2` and `lattice`. Allocates nothing. */
  measure(x: ArrayLike<number>, at = 0): void {
    const c = this.#cols;
    const ring = this.#rows;
    let nearest = Infinity;
    let from = -1;
    for (let k = 0; k < this.#count; k++) {
      const base = k * c;
      let d = 0;
      for (let j = 0; j < c && d < nearest; j++) {
        const e = x[at + j] - ring[base + j];
        d += e * e;
      }
      if (d < nearest) {
        nearest = d;
        from = base;
      }
    }
    this.distance2 = nearest;
    this.lattice = false;
    this.#hasStep = from >= 0 && nearest > 0 && nearest < Infinity;
    if (!this.#hasStep) return;
    const step = this.#step;
    for (let j = 0; j < c; j++) step[j] = x[at + j] - ring[from + j];
    this.#start = hashRow(ring, from, c);
    this.#end = hashRow(x, at, c);
    const limit = LATTICE_TOLERANCE * LATTICE_TOLERANCE * nearest;
    const steps = this.#steps;
    for (let k = 0; k < this.#stepCount && !this.lattice; k++) {
      if (this.#stepEnds[2 * k] === this.#end || this.#stepEnds[2 * k + 1] === this.#end) continue;
      const base = k * c;
      let same = 0;
      let opposite = 0;
      for (let j = 0; j < c && (same <= limit || opposite <= limit); j++) {
        const u = steps[base + j];
        same += (step[j] - u) * (step[j] - u);
        opposite += (step[j] + u) * (step[j] + u);
      }
      this.lattice = same <= limit || opposite <= limit;
    }
  }

  /** Remembers `x` (at `at`), measured last, and its step; the oldest row (and step) go when full. */
  push(x: ArrayLike<number>, at = 0): void {
    const base = this.#head * this.#cols;
    for (let j = 0; j < this.#cols; j++) this.#rows[base + j] = x[at + j];
    this.#head = (this.#head + 1) % this.#size;
    if (this.#count < this.#size) this.#count++;
    if (!this.#hasStep) return;
    this.#steps.set(this.#step, this.#stepHead * this.#cols);
    this.#stepEnds[2 * this.#stepHead] = this.#start;
    this.#stepEnds[2 * this.#stepHead + 1] = this.#end;
    this.#stepHead = (this.#stepHead + 1) % LATTICE_STEPS;
    if (this.#stepCount < LATTICE_STEPS) this.#stepCount++;
    this.#hasStep = false;
  }
}

const bits = new Float64Array(1);
const words = new Uint32Array(bits.buffer);

/** FNV-1a over the float64 bits of x[at … at + c). */
function hashRow(x: ArrayLike<number>, at: number, c: number): number {
  let h = 0x811c9dc5;
  for (let j = 0; j < c; j++) {
    bits[0] = x[at + j];
    h = Math.imul(h ^ words[0], 0x01000193);
    h = Math.imul(h ^ words[1], 0x01000193);
  }
  return h >>> 0;
}
