/**
 * What the generator needs to know about the reference rows of a model: per feature, the range and
 * spread of its numbers (SimBA's budgets are fractions of the std; the extraction attackers sample
 * the min–max box) or the values it takes (categories, and integer inputs such as pclass, which an
 * attacker enumerates rather than perturbs).
 */
import type { ModelSpec, Row } from './models.js';

export type FeatureStats =
  | { readonly kind: 'continuous'; readonly min: number; readonly max: number; readonly mean: number; readonly std: number }
  | { readonly kind: 'discrete'; readonly values: readonly (number | string)[] };

/** Statistics of each feature over the reference rows (missing values left out). */
export function referenceStats(spec: ModelSpec, rows: readonly Row[]): FeatureStats[] {
  const out: FeatureStats[] = [];
  let f = 0;
  for (const input of spec.inputs) {
    for (let k = 0; k < input.features.length; k++, f++) {
      const values = rows.map((r) => r[f]).filter((v): v is number | string => v !== null);
      if (input.datatype !== 'FP32') {
        out.push({ kind: 'discrete', values: [...new Set(values)].sort() });
        continue;
      }
      const xs = values as number[];
      const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
      const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1));
      out.push({ kind: 'continuous', min: Math.min(...xs), max: Math.max(...xs), mean, std });
    }
  }
  return out;
}
