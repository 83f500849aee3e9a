/**
 * SimBA (Guo et al., "Simple Black-box Adversarial Attacks", ICML 2019), untargeted, in the
 * coordinate (pixel) basis under an L∞ budget: it only sees the served model's probabilities.
 * Coordinates are taken in a random order; each is moved by −ε, or else +ε, and the move is kept
 * when the probability of the original answer drops. It stops when the answer flips, when the query
 * budget is spent, or after a whole pass that changed nothing (low-dimensional tabular inputs get
 * further passes; a coordinate never leaves [x − ε, x + ε] (give or take the rounding of what is
 * sent: half a unit of `decimals`), nor its feature's bounds).
 */
import { argmax, type Row } from './models.js';
import type { Rng } from './random.js';

export interface SimbaOptions {
  /** ε per feature; 0 leaves the feature unchanged (categories, integers, missing values). */
  readonly eps: readonly number[];
  /** Per feature, the bounds a perturbed value stays within (pixels: [0, 1]; tabular: the reference's range). */
  readonly bounds: readonly (readonly [number, number])[];
  readonly maxQueries: number;
  /** Perturbed values are rounded to this many decimals before they are sent (what is queried is what is stored). */
  readonly decimals: number;
  readonly rng: Rng;
}

export interface SimbaResult {
  readonly row: Row;
  readonly flipped: boolean;
  /** Rows sent, the first (unperturbed) query included. */
  readonly queries: number;
  readonly from: number;
  readonly to: number;
}

/** Runs SimBA on one row against `probabilities` (one row in, one probability vector out). */
export async function simba(row: Row, probabilities: (row: Row) => Promise<number[]>, o: SimbaOptions): Promise<SimbaResult> {
  let p = await probabilities(row);
  let queries = 1;
  const from = argmax(p);
  let x = row.slice();
  const coords: number[] = [];
  for (let i = 0; i < row.length; i++) if (o.eps[i] > 0 && typeof row[i] === 'number' && Number.isFinite(row[i])) coords.push(i);
  const scale = 10 ** o.decimals;
  for (;;) {
    let improved = false;
    for (const i of o.rng.shuffle(coords)) {
      const orig = row[i] as number;
      const [lo, hi] = o.bounds[i];
      for (const sign of [-1, 1]) {
        if (queries >= o.maxQueries) return { row: x, flipped: false, queries, from, to: from };
        const offset = (x[i] as number) - orig + sign * o.eps[i];
        const bounded = Math.min(Math.max(offset, -o.eps[i]), o.eps[i]);
        const v = Math.round(Math.min(Math.max(orig + bounded, lo), hi) * scale) / scale;
        if (v === x[i]) continue;
        const candidate = x.slice();
        candidate[i] = v;
        const q = await probabilities(candidate);
        queries++;
        const to = argmax(q);
        if (to !== from) return { row: candidate, flipped: true, queries, from, to };
        if (q[from] < p[from]) {
          x = candidate;
          p = q;
          improved = true;
          break;
        }
      }
    }
    if (!improved) return { row: x, flipped: false, queries, from, to: from };
  }
}
