/**
 * A real, profile-like setting for the extraction detector's tests, built here from the iris data
 * (../shared/assets/datasets/iris.csv) as `breakwater profile` builds one: rows split by a seeded
 * shuffle into reference (70 %) and held-out (30 %); features standardised by the reference mean
 * and std; a Mahalanobis distance under the reference's shrunk correlation as the OOD score, its
 * threshold at the held-out 99th percentile; benign step quantiles and share of lattice steps from
 * the reference replayed once in a random order against the monitor's ring (step-ring.ts). Plus the
 * traffic the tests send: benign replays of real rows and attackers.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RowScorer, SignalSettings } from '../../policies/guards/extraction-signals.js';
import { StepRing } from '../../policies/guards/step-ring.js';
import { ASSETS } from './assets.js';

/** A seeded uniform [0, 1) generator (mulberry32), so every run sends the same traffic. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffled<T>(xs: readonly T[], random: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** The 150 iris rows (4 measurements in cm), in file order (sorted by species). */
export function irisRows(): number[][] {
  const lines = readFileSync(join(ASSETS, 'datasets/iris.csv'), 'utf8').trim().split('\n').slice(1);
  return lines.map((l) => l.split(',').slice(1, 5).map(Number));
}

function invert(m: number[][]): number[][] {
  const n = m.length;
  const a = m.map((row, i) => [...row, ...Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r;
    [a[c], a[p]] = [a[p], a[c]];
    const d = a[c][c];
    for (let j = 0; j < 2 * n; j++) a[c][j] /= d;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r][c];
      for (let j = 0; j < 2 * n; j++) a[r][j] -= f * a[c][j];
    }
  }
  return a.map((row) => row.slice(n));
}

const QUANTILE_PROBS = [0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1];

function quantile(sorted: readonly number[], p: number): number {
  const at = p * (sorted.length - 1);
  const lo = Math.floor(at);
  return lo + 1 < sorted.length ? sorted[lo] + (at - lo) * (sorted[lo + 1] - sorted[lo]) : sorted[lo];
}

export interface IrisSetting {
  readonly reference: number[][];
  readonly heldOut: number[][];
  readonly settings: SignalSettings;
  readonly scorer: RowScorer<readonly number[]>;
  /** Per feature: min and max over all rows (the box a uniform attacker samples). */
  readonly min: number[];
  readonly max: number[];
}

export function irisSetting(seed = 10): IrisSetting {
  const rows = shuffled(irisRows(), seeded(seed));
  const cut = Math.round(rows.length * 0.7);
  const reference = rows.slice(0, cut);
  const heldOut = rows.slice(cut);
  const d = 4;
  const mean = Array.from({ length: d }, (_, j) => reference.reduce((a, r) => a + r[j], 0) / reference.length);
  const std = Array.from({ length: d }, (_, j) => Math.sqrt(reference.reduce((a, r) => a + (r[j] - mean[j]) ** 2, 0) / (reference.length - 1)));
  const z = (r: readonly number[], out: Float64Array) => {
    for (let j = 0; j < d; j++) out[j] = (r[j] - mean[j]) / std[j];
    return out;
  };
  const zs = reference.map((r) => z(r, new Float64Array(d)));
  const shrink = 0.05;
  const corr = Array.from({ length: d }, (_, i) => Array.from({ length: d }, (_, j) => {
    const c = zs.reduce((a, v) => a + v[i] * v[j], 0) / (zs.length - 1);
    return (1 - shrink) * c + (i === j ? shrink : 0);
  }));
  const precision = invert(corr);
  const encoded = new Float64Array(d);
  const scorer: RowScorer<readonly number[]> = (row) => {
    z(row, encoded);
    let m = 0;
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) m += encoded[i] * precision[i][j] * encoded[j];
    return { score: Math.sqrt(m), encoded };
  };
  const held = heldOut.map((r) => scorer(r).score).sort((a, b) => a - b);
  // Benign steps: the reference replayed in a random order, measured by the monitor's own ring
  // (exact repeats are no steps), and the share of them that are lattice steps.
  const ring = new StepRing(d);
  const steps: number[] = [];
  let lattice = 0;
  for (const r of shuffled(reference, seeded(seed + 1))) {
    const x = z(r, new Float64Array(d));
    ring.measure(x);
    if (ring.distance2 === 0) continue;
    if (ring.distance2 < Infinity) {
      steps.push(Math.sqrt(ring.distance2));
      if (ring.lattice) lattice++;
    }
    ring.push(x);
  }
  steps.sort((a, b) => a - b);
  const stepQuantiles = QUANTILE_PROBS.map((p) => quantile(steps, p));
  const at = QUANTILE_PROBS.indexOf(0.01);
  const all = irisRows();
  return {
    reference, heldOut, scorer,
    settings: { columns: d, oodThreshold: quantile(held, 0.99), offRate: 0.01, tinyStep: stepQuantiles[at], tinyRate: QUANTILE_PROBS[at], latticeRate: lattice / steps.length },
    min: Array.from({ length: d }, (_, j) => Math.min(...all.map((r) => r[j]))),
    max: Array.from({ length: d }, (_, j) => Math.max(...all.map((r) => r[j]))),
  };
}

/** Rows in the box [min, max] per feature, uniformly at random. */
export function uniformAttack(s: IrisSetting, n: number, random: () => number): number[][] {
  return Array.from({ length: n }, () => s.min.map((lo, j) => lo + random() * (s.max[j] - lo)));
}

/** Rows along straight lines between random real rows, `perLine` evenly spaced points each. */
export function lineSweep(s: IrisSetting, n: number, perLine: number, random: () => number): number[][] {
  const out: number[][] = [];
  while (out.length < n) {
    const a = s.heldOut[Math.floor(random() * s.heldOut.length)];
    const b = s.heldOut[Math.floor(random() * s.heldOut.length)];
    for (let i = 0; i < perLine && out.length < n; i++) out.push(a.map((v, j) => Math.fround(v + ((b[j] - v) * i) / perLine)));
  }
  return out;
}
