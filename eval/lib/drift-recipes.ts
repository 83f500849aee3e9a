/**
 * The team's drift streams (issue 11): what each one is and how its rows are drawn, from the
 * reference rows the profiles are built from (eval/reference/<model>.csv). "Unshifted" means a row
 * drawn uniformly, with replacement, from the reference: the distribution the profile's drift
 * reference counts. A shifted row is drawn from a subset of the reference (one passenger class,
 * one port, one species…) or is a reference row transformed (ages in months, fares in cents).
 *
 * Every stream draws from its own seeded random stream (random.ts: `drift/<stream name>`), one
 * request at a time in order, so a stream's first n requests do not depend on its length, and the
 * same seed always writes the same bytes.
 *
 * Iris species: the reference CSV has no label column, so a row's species is read from its petal
 * length (input[2], cm): setosa below 2.5, versicolor below 4.85, virginica from 4.85 (the split
 * the data's species overlap least on; 32 / 37 / 36 of the 105 reference rows).
 */
import { requestOf, type ModelSpec, type Row } from './models.js';
import { Rng } from './random.js';
import type { StreamKind } from './drift-streams.js';

export type IrisSpecies = 'setosa' | 'versicolor' | 'virginica';

/** An iris row's species by petal length (the reference has no label column; see the header). */
export function irisSpecies(row: Row): IrisSpecies {
  const petalLength = row[2] as number;
  return petalLength < 2.5 ? 'setosa' : petalLength < 4.85 ? 'versicolor' : 'virginica';
}

/** How a shifted row is made: drawn from the reference rows that pass `keep`, or a reference row passed through `map`. */
export type Shift =
  | { readonly kind: 'subset'; readonly keep: (row: Row) => boolean }
  | { readonly kind: 'map'; readonly map: (row: Row) => Row };

export interface Recipe {
  /** The stream's name; its file is `<name>.jsonl.gz` (under `cache/` when built on demand). */
  readonly name: string;
  readonly model: 'titanic' | 'iris';
  readonly kind: StreamKind;
  readonly requests: number;
  /** As in the manifest: [] for a control, [c] sudden, [start, end] of a gradual ramp. */
  readonly changeAt: readonly number[];
  readonly shift?: Shift;
  /** The share of shifted rows once the change is complete (default 1: every row). */
  readonly share?: number;
  /** Too large to commit: built on demand into the streams' cache. */
  readonly onDemand?: boolean;
  readonly description: string;
}

/** Numbers as a CSV would hold them (4 decimals), so a rescaled value does not print as 11.000399999999999. */
const round4 = (x: number): number => Math.round(x * 1e4) / 1e4;
const scaled = (index: number, factor: number) => (row: Row): Row => row.map((v, k) => (k === index && typeof v === 'number' ? round4(v * factor) : v));

const STREAM = 10_000;
const CHANGE = 3_000;
/** Gradual shifts: the shifted share rises linearly from 0 to 100 % over this many requests. */
const RAMP = 5_000;

const sudden = (model: Recipe['model'], name: string, shift: Shift, description: string, share?: number): Recipe =>
  ({ name: `${model}-sudden-${name}`, model, kind: 'sudden', requests: STREAM, changeAt: [CHANGE], shift, ...(share === undefined ? {} : { share }), description });
const gradual = (model: Recipe['model'], name: string, shift: Shift, description: string): Recipe =>
  ({ name: `${model}-gradual-${name}`, model, kind: 'gradual', requests: STREAM, changeAt: [CHANGE, CHANGE + RAMP], shift, description });

// Titanic rows: [pclass, sex, age, fare, embarked].
const FIRST_CLASS: Shift = { kind: 'subset', keep: (r) => r[0] === 1 };
const THIRD_CLASS: Shift = { kind: 'subset', keep: (r) => r[0] === 3 };
const CHERBOURG: Shift = { kind: 'subset', keep: (r) => r[4] === 'C' };
const SOUTHAMPTON: Shift = { kind: 'subset', keep: (r) => r[4] === 'S' };
const AGE_MONTHS: Shift = { kind: 'map', map: scaled(2, 12) };
const FARE_CENTS: Shift = { kind: 'map', map: scaled(3, 100) };
const FARE_RISE: Shift = { kind: 'map', map: scaled(3, 1.1) };
const NO_SETOSA: Shift = { kind: 'subset', keep: (r) => irisSpecies(r) !== 'setosa' };
const VIRGINICA: Shift = { kind: 'subset', keep: (r) => irisSpecies(r) === 'virginica' };
const SETOSA: Shift = { kind: 'subset', keep: (r) => irisSpecies(r) === 'setosa' };

export const RECIPES: readonly Recipe[] = [
  { name: 'iris-control-1m', model: 'iris', kind: 'control', requests: 1_000_000, changeAt: [], onDemand: true, description: 'unshifted: reference rows resampled with replacement' },
  { name: 'titanic-control-200k', model: 'titanic', kind: 'control', requests: 200_000, changeAt: [], onDemand: true, description: 'unshifted: reference rows resampled with replacement' },
  { name: 'iris-control', model: 'iris', kind: 'control', requests: STREAM, changeAt: [], description: 'unshifted: reference rows resampled with replacement' },
  { name: 'titanic-control', model: 'titanic', kind: 'control', requests: STREAM, changeAt: [], description: 'unshifted: reference rows resampled with replacement' },
  sudden('titanic', 'first-class', FIRST_CLASS, 'first-class passengers only (pclass 1)'),
  sudden('titanic', 'third-class', THIRD_CLASS, 'third-class passengers only (pclass 3, the majority class)'),
  sudden('titanic', 'port-cherbourg', CHERBOURG, 'passengers who embarked at Cherbourg only (C)'),
  sudden('titanic', 'port-southampton', SOUTHAMPTON, 'passengers who embarked at Southampton only (S, the majority port)'),
  sudden('titanic', 'age-months', AGE_MONTHS, 'ages sent in months (×12); a missing age stays missing'),
  sudden('titanic', 'fare-cents', FARE_CENTS, 'fares sent in cents (×100)'),
  sudden('titanic', 'fare-rise-10pct', FARE_RISE, 'every fare 10 % higher (fares bunch at a few prices, so a 10 % rise moves most of them across a decile edge)'),
  sudden('titanic', 'more-first-class', FIRST_CLASS, 'a fifth of the requests replaced by first-class passengers (a moderate shift, PSI about 0.1: below the floor the targets judge)', 0.2),
  sudden('iris', 'drop-setosa', NO_SETOSA, 'setosa dropped: versicolor and virginica only (by petal length)'),
  sudden('iris', 'virginica-only', VIRGINICA, 'virginica only (by petal length): the predicted-class mix changes'),
  sudden('iris', 'setosa-only', SETOSA, 'setosa only (by petal length): the predicted-class mix changes'),
  gradual('titanic', 'first-class', FIRST_CLASS, 'the share of first-class-only rows rises linearly from 0 to 100 %'),
  gradual('titanic', 'fare-cents', FARE_CENTS, 'the share of fares in cents rises linearly from 0 to 100 %'),
  gradual('iris', 'virginica-only', VIRGINICA, 'the share of virginica-only rows rises linearly from 0 to 100 %'),
  gradual('iris', 'drop-setosa', NO_SETOSA, 'the share of rows drawn without setosa rises linearly from 0 to 100 %'),
];

/**
 * The share of shifted rows at request `i`: 0 before the change, then a step (sudden) or a linear
 * ramp (gradual) up to the recipe's `share` (default 1).
 */
export function shiftedShare(recipe: Pick<Recipe, 'kind' | 'changeAt' | 'share'>, i: number): number {
  const [start, end] = recipe.changeAt;
  const full = recipe.share ?? 1;
  if (recipe.kind === 'control' || i < start) return 0;
  if (recipe.kind === 'sudden' || i >= end) return full;
  return (full * (i - start)) / (end - start);
}

/**
 * The stream's request bodies, one JSON line each, in chunks of at most `chunk` lines (a generator:
 * a million-line control is written as it is drawn). `limit` stops early (the first `limit` lines
 * are those of the full stream).
 */
export function* recipeLines(recipe: Recipe, spec: ModelSpec, reference: readonly Row[], seed: string, chunk = 10_000, limit = recipe.requests): Generator<string[]> {
  const rng = new Rng(`drift/${recipe.name}`, seed);
  const shift = recipe.shift;
  const pool = shift?.kind === 'subset' ? reference.filter(shift.keep) : reference;
  if (pool.length === 0) throw new Error(`${recipe.name}: no reference row passes the shift's filter`);
  const n = Math.min(limit, recipe.requests);
  for (let from = 0; from < n; from += chunk) {
    const lines: string[] = [];
    for (let i = from; i < Math.min(n, from + chunk); i++) {
      // One draw decides the mix and one picks the row, whatever the kind: the draws stay aligned.
      const shifted = rng.next() < shiftedShare(recipe, i);
      const pick = rng.next();
      let row = (shifted ? pool : reference)[Math.floor(pick * (shifted ? pool : reference).length)];
      if (shifted && shift?.kind === 'map') row = shift.map(row);
      lines.push(JSON.stringify(requestOf(spec, [row])));
    }
    yield lines;
  }
}
