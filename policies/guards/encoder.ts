/**
 * The encoder: a row of mixed features (numbers, category strings, missing) as a vector of numbers,
 * the space the distance-based detectors work in (the OOD model, the extraction monitor's steps).
 * Fitted once from the features' statistics (profile.ts EncoderSpec says the rule); encoding a row
 * writes into the caller's buffer and allocates nothing.
 */
import { isImageInput } from './features.js';
import type { RowValues } from './features.js';
import type { EncodedFeature, EncoderSpec, FeatureProfile, ProfileInput } from './profile.js';

/**
 * The encoder of `features`. Numeric features are standardised by their mean and standard deviation
 * (a constant feature by 1); features of an image input (`inputs`, features.ts isImageInput) keep
 * their raw values, because distances between pixels are meaningful in the pixels' own unit and
 * standardising a border pixel that is almost always 0 would turn a speck of noise into a huge
 * distance. A feature with missing values in the reference gets a missing-indicator column; a
 * categorical feature gets one column per reference category (sorted) and an `unknown` column.
 */
export function fitEncoder(features: readonly FeatureProfile[], inputs: readonly ProfileInput[] = []): EncoderSpec {
  const raw = new Set(inputs.filter(isImageInput).map((i) => i.name));
  let columns = 0;
  const encoded: EncodedFeature[] = features.map((f) => {
    if (f.kind === 'numeric') {
      const column = columns++;
      const missingColumn = f.missingRate > 0 ? columns++ : null;
      if (raw.has(f.input)) return { kind: 'numeric', center: 0, scale: 1, column, missingColumn };
      return { kind: 'numeric', center: f.mean, scale: f.std > 0 ? f.std : 1, column, missingColumn };
    }
    const categories = Object.keys(f.categories).sort();
    const column = columns;
    columns += categories.length;
    const unknownColumn = columns++;
    const missingColumn = f.missingRate > 0 ? columns++ : null;
    return { kind: 'categorical', column, categories, unknownColumn, missingColumn };
  });
  return { columns, features: encoded };
}

/** Past this many categories a lookup goes through a Map (built once per feature) rather than a scan. */
const SCAN_LIMIT = 16;
const lookups = new WeakMap<object, ReadonlyMap<string, number>>();

function categoryIndex(f: Extract<EncodedFeature, { kind: 'categorical' }>, v: string): number {
  const cats = f.categories;
  if (cats.length <= SCAN_LIMIT) {
    for (let i = 0; i < cats.length; i++) if (cats[i] === v) return i;
    return -1;
  }
  let map = lookups.get(f);
  if (map === undefined) {
    map = new Map(cats.map((c, i) => [c, i]));
    lookups.set(f, map);
  }
  return map.get(v) ?? -1;
}

/**
 * Writes the encoding of `row` into `out` (at least spec.columns long). A missing value encodes as
 * the centre (0) with its indicator set when the reference had missing values; an unknown category
 * (or a number where a category belongs) sets the `unknown` column; a string where a number belongs
 * encodes as missing. ±Infinity stays infinite: every distance to it is infinite.
 */
export function encode(spec: EncoderSpec, row: RowValues, out: Float64Array): void {
  out.fill(0, 0, spec.columns);
  const fs = spec.features;
  for (let i = 0; i < fs.length; i++) {
    const f = fs[i];
    const v = row[i];
    if (f.kind === 'numeric') {
      if (typeof v === 'number') out[f.column] = (v - f.center) / f.scale;
      else if (f.missingColumn !== null) out[f.missingColumn] = 1;
    } else if (v === null || v === undefined) {
      if (f.missingColumn !== null) out[f.missingColumn] = 1;
    } else {
      const at = typeof v === 'string' ? categoryIndex(f, v) : -1;
      out[at < 0 ? f.unknownColumn : f.column + at] = 1;
    }
  }
}
