import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fitEncoder } from './encoder.js';
import type { FeatureProfile } from './profile.js';
import { STEP_RING } from './step-ring.js';
import { BENIGN_STEPS, benignSteps } from './steps.js';

const num = (name: string): FeatureProfile => ({ kind: 'numeric', name, input: name, integer: false, min: 0, max: 10, mean: 0, std: 1, quantiles: [], missingRate: 0 });
const spec = fitEncoder([num('x'), num('y')]);

function seeded(seed: number): () => number {
  let s = seed;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

test('benignSteps: the distances of a caller drawing rows at random, to the nearest of its distinct recent queries', () => {
  // Two rows 5 apart: every draw after the first two is a repeat, so there is one step, of 5.
  const two = benignSteps(spec, [[0, 0], [3, 4]], seeded(1));
  assert.deepEqual(two.distances, [5]);
  assert.equal(two.latticeRate, 0);
  assert.deepEqual(benignSteps(spec, [[1, 1], [1, 1]], seeded(1)).distances, [], 'identical rows: no step');
  assert.deepEqual(benignSteps(spec, [], seeded(1)), { distances: [], latticeRate: 0 });
});

test('benignSteps: many distinct rows give BENIGN_STEPS steps, none 0; seeded, so rebuilt alike', () => {
  const r = seeded(2);
  const rows = Array.from({ length: 500 }, () => [r() * 10, r() * 10]);
  const a = benignSteps(spec, rows, seeded(3));
  assert.equal(a.distances.length, BENIGN_STEPS);
  assert.ok(a.distances.every((d) => d > 0));
  assert.equal(a.latticeRate, 0, 'continuous data repeats no step');
  assert.deepEqual(benignSteps(spec, rows, seeded(3)), a);
});

test('benignSteps: data on a grid repeats steps by coincidence, most in its dense neighbourhoods; the lattice rate is the larger share', () => {
  // A dense 12 × 12 grid of unit spacing (a caller of one neighbourhood steps along it) and a sparse scatter.
  const r = seeded(4);
  const grid = Array.from({ length: 144 }, (_, i) => [i % 12, Math.floor(i / 12)]);
  const scatter = Array.from({ length: 4 * STEP_RING }, () => [100 + r() * 1000, r() * 1000]);
  const s = benignSteps(spec, [...grid, ...scatter], seeded(5));
  assert.ok(s.latticeRate > 0.3, `lattice rate ${s.latticeRate}`);
});
