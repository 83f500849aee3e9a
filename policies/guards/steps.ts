/**
 * Step distances of a benign stream of queries: for each query, the Euclidean distance (in the OOD
 * encoder's space) to the nearest of the `ring` queries before it. This is what the extraction
 * monitor measures per caller (PRADA, Juuti et al. 2019); `breakwater profile` measures it on the
 * reference rows in a random order (a benign caller replaying real data) and keeps its quantiles
 * (`Profile.extraction.stepQuantiles`), which a sweep's tiny, equal steps fall far below.
 */
import { encodeRows } from './ood.js';
import type { RowValues } from './features.js';
import type { EncoderSpec } from './profile.js';

/** How many earlier queries a step is measured against (the extraction monitor's ring). */
export const STEP_RING = 64;

/** The step distance of each row after the first (rows.length − 1 values). */
export function stepDistances(spec: EncoderSpec, rows: readonly RowValues[], ring = STEP_RING): number[] {
  const d = spec.columns;
  const x = encodeRows(spec, rows);
  const out: number[] = [];
  for (let i = 1; i < rows.length; i++) {
    let nearest = Infinity;
    for (let p = Math.max(0, i - ring); p < i; p++) {
      let s = 0;
      for (let j = 0; j < d && s < nearest; j++) {
        const t = x[i * d + j] - x[p * d + j];
        s += t * t;
      }
      if (s < nearest) nearest = s;
    }
    out.push(Math.sqrt(nearest));
  }
  return out;
}
