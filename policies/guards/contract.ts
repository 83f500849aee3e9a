/**
 * The data contract: what every row must satisfy, read from the reference profile, with no score
 * and no threshold. A number where the reference had numbers, finite, within the reference range
 * widened on each side by the larger of `tolerance` × (max − min) (re-measured real data lands just
 * outside) and the profile's own margin (`low`, `high`: a sample's extremes fall short of the
 * population's, by more the smaller the sample; gateway/profile/extreme-bounds.ts); a category the
 * reference had (exact string); a value where the reference never lacked one.
 *
 * An image input's range is its pixels' range taken together (every pixel of every reference image):
 * a border pixel that happened to be 0 in every reference image is no contract that it stays 0.
 */
import { isImageInput, type RowValues } from './features.js';
import type { Profile } from './profile.js';

export type ContractViolation = 'type' | 'non-finite' | 'range' | 'category' | 'missing';

/** The first feature of a row that breaks the contract, and how. */
export interface ContractFinding {
  readonly feature: number;
  readonly name: string;
  readonly violation: ContractViolation;
}

interface Bounds {
  readonly tolerance: number;
  readonly lo: Float64Array;
  readonly hi: Float64Array;
}

const bounds = new WeakMap<Profile, Bounds>();

/** Each numeric feature's accepted interval under `tolerance` (computed once per profile and tolerance). */
function boundsOf(profile: Profile, tolerance: number): Bounds {
  const cached = bounds.get(profile);
  if (cached !== undefined && cached.tolerance === tolerance) return cached;
  const n = profile.features.length;
  const min = new Float64Array(n).fill(NaN);
  const max = new Float64Array(n).fill(NaN);
  const low = new Float64Array(n).fill(NaN);
  const high = new Float64Array(n).fill(NaN);
  profile.features.forEach((f, i) => {
    if (f.kind !== 'numeric') return;
    min[i] = f.min;
    max[i] = f.max;
    low[i] = f.low ?? f.min;
    high[i] = f.high ?? f.max;
  });
  for (const input of profile.inputs) {
    if (!isImageInput(input)) continue;
    const from = input.firstFeature;
    const end = from + input.featureCount;
    for (const [a, lowest] of [[min, true], [max, false], [low, true], [high, false]] as const) {
      let m = a[from];
      for (let i = from + 1; i < end; i++) if (lowest ? a[i] < m : a[i] > m) m = a[i];
      a.fill(m, from, end);
    }
  }
  const lo = new Float64Array(n);
  const hi = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const margin = tolerance * (max[i] - min[i]);
    lo[i] = Math.min(min[i] - margin, low[i]);
    hi[i] = Math.max(max[i] + margin, high[i]);
  }
  const b = { tolerance, lo, hi };
  bounds.set(profile, b);
  return b;
}

/** The first contract violation of `row` (features in profile order), or undefined when it keeps the contract. */
export function checkContract(profile: Profile, row: RowValues, tolerance: number): ContractFinding | undefined {
  const { lo, hi } = boundsOf(profile, tolerance);
  const fs = profile.features;
  for (let i = 0; i < fs.length; i++) {
    const f = fs[i];
    const v = row[i];
    let violation: ContractViolation | undefined;
    if (v === null || v === undefined) {
      if (f.missingRate === 0) violation = 'missing';
    } else if (f.kind === 'numeric') {
      if (typeof v !== 'number') violation = 'type';
      else if (v - v !== 0) violation = 'non-finite';
      else if (v < lo[i] || v > hi[i]) violation = 'range';
    } else if (typeof v !== 'string') {
      violation = 'type';
    } else if (!Object.hasOwn(f.categories, v)) {
      violation = 'category';
    }
    if (violation !== undefined) return { feature: i, name: f.name, violation };
  }
  return undefined;
}
