/**
 * The drift monitor's reference (policies/guards/profile.ts DriftReference): the bins of every
 * feature and of the model's class-score output, and how many rows of the data fall into each,
 * counted over **every row** (the statistics compare shares, and every row is the steadiest share).
 *
 * Numeric edges come from the deciles (0.1 … 0.9) of the finite values, each taken as an order
 * statistic (the value at 0-based position ⌊p·n⌋ of the sorted values, so that a share p of distinct
 * values lies below it) rather than interpolated, and only distinct ones kept: a feature of three
 * values gets at most three edges, a constant one a single edge. An edge is not put on the value
 * itself but halfway down to the next smaller value seen (for the smallest value, as far below it as
 * halfway up to the next value; for a constant, half its magnitude, at least ½): no reference value
 * sits on an edge, so a value sent as FP32 (binary) and the same value sent as a JSON double fall
 * into one bin, and discrete values (classes, one-decimal measurements) each get a bin of their own.
 * The bins below the smallest value and of missing values may be empty in the reference: a live
 * value there is new.
 *
 * Categorical bins are the profile's categories, sorted as the encoder sorts them. The outputs' bins
 * (a [N, classes] probability or logit output) are the predicted class ("0" … "classes−1") and the
 * top probability (edges by the rule above), from the model's answers to the rows. The counting is
 * gateway/drift/bin-row.ts's, the very code the live windows count with.
 */
import { binCount } from '../drift/bins.js';
import { classCategories, compileDrift, outputBinNames, topProbability } from '../drift/bin-row.js';
import type { RowValues } from '../../policies/guards/features.js';
import type { DriftBins, DriftOutput, DriftReference, FeatureProfile } from '../../policies/guards/profile.js';

/** The deciles numeric edges are taken at: k/10 for k = 1 … 9. */
const DECILES = 10;

/** The model's answers to the rows of the data, one vector of `output.classes` scores per answered row. */
export interface DriftAnswers {
  readonly output: DriftOutput;
  readonly rows: readonly ArrayLike<number>[];
}

/** Index of the first element of ascending `sorted` that is ≥ x (upper: > x). */
function bound(sorted: Float64Array, x: number, upper: boolean): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (upper ? sorted[mid] <= x : sorted[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Where the edge below value `v` of ascending `sorted` goes: between it and its neighbour below (header). */
function edgeBelow(sorted: Float64Array, v: number): number {
  const at = bound(sorted, v, false);
  if (at > 0) return sorted[at - 1] + (v - sorted[at - 1]) / 2;
  const above = bound(sorted, v, true);
  const gap = above < sorted.length ? sorted[above] - v : Math.max(Math.abs(v), 1);
  return v - gap / 2;
}

/** The edges of ascending finite `sorted` (header): strictly ascending, at most 9, none for no value. */
export function driftEdges(sorted: Float64Array): number[] {
  const n = sorted.length;
  const edges: number[] = [];
  let last = NaN;
  for (let k = 1; k < DECILES; k++) {
    const v = sorted[Math.floor((k * n) / DECILES)];
    if (v === undefined || v === last) continue;
    last = v;
    const e = edgeBelow(sorted, v);
    // Halfway between neighbouring doubles may round onto one of them; edges stay strictly ascending.
    if (edges.length === 0 || e > (edges[edges.length - 1] as number)) edges.push(e);
  }
  return edges;
}

function ascending(values: number[]): Float64Array {
  return Float64Array.from(values).sort();
}

/** The finite values of feature `f` over `rows`, ascending. */
function finiteValues(rows: readonly RowValues[], f: number): Float64Array {
  const values: number[] = [];
  for (const row of rows) {
    const v = row[f];
    if (typeof v === 'number' && Number.isFinite(v)) values.push(v);
  }
  return ascending(values);
}

/** The bins (counts still empty) of each feature. */
function featureBins(features: readonly FeatureProfile[], rows: readonly RowValues[]): DriftBins[] {
  return features.map((f, i): DriftBins => (f.kind === 'numeric'
    ? { name: f.name, kind: 'numeric', edges: driftEdges(finiteValues(rows, i)), counts: [] }
    : { name: f.name, kind: 'categorical', categories: Object.keys(f.categories).sort(), counts: [] }));
}

/** The class and score bins (counts still empty) of the answers. */
function outputBins(answers: DriftAnswers): DriftBins[] {
  const { output } = answers;
  const scores: number[] = [];
  for (const a of answers.rows) {
    const s = topProbability(a, 0, a.length, output.logits);
    if (Number.isFinite(s)) scores.push(s);
  }
  const names = outputBinNames(output.name);
  return [
    { name: names.class, kind: 'categorical', categories: classCategories(output.classes), counts: [] },
    { name: names.score, kind: 'numeric', edges: driftEdges(ascending(scores)), counts: [] },
  ];
}

/**
 * The drift reference of `features` (the profile's, in order) from every row of the data and, for a
 * model with a class-score output, its answers to them.
 */
export function driftReference(features: readonly FeatureProfile[], rows: readonly RowValues[], answers?: DriftAnswers): DriftReference {
  const empty: DriftReference = {
    rows: rows.length,
    features: featureBins(features, rows),
    ...(answers === undefined ? {} : { output: answers.output }),
    outputs: answers === undefined ? [] : outputBins(answers),
  };
  const compiled = compileDrift(empty);
  const counts = new Float64Array(compiled.binsTotal);
  for (const row of rows) compiled.addFeatures(row, counts);
  for (const a of answers?.rows ?? []) compiled.addOutputRow(a, 0, a.length, counts);
  const filled = (b: DriftBins, i: number): DriftBins => {
    const from = compiled.offsets[i] as number;
    return { ...b, counts: Array.from(counts.subarray(from, from + binCount(b))) };
  };
  return {
    ...empty,
    features: empty.features.map((b, i) => filled(b, i)),
    outputs: empty.outputs.map((b, i) => filled(b, features.length + i)),
  };
}
