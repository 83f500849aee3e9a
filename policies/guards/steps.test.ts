import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fitEncoder } from './encoder.js';
import type { FeatureProfile } from './profile.js';
import { STEP_RING } from './step-ring.js';
import { BENIGN_STEPS, benignSteps, TINY_STEP_PROB } from './steps.js';

const num = (name: string): FeatureProfile => ({ kind: 'numeric', name, input: name, integer: false, min: 0, max: 10, mean: 0, std: 1, quantiles: [], missingRate: 0 });
const spec = fitEncoder([num('x'), num('y')]);

function seeded(seed: number): () => number {
  let s = seed;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

test('benignSteps: the distances of a caller drawing rows at random, to the nearest of its distinct recent queries', () => {
  // Two rows 5 apart: every draw after the first two is a repeat, so there is one step, of 5.
  const two = benignSteps(spec, [[0, 0], [3, 4]], seeded(1));
  assert.deepEqual([two.distances, two.tinyStep, two.latticeRate], [[5], 5, 0]);
  const same = benignSteps(spec, [[1, 1], [1, 1]], seeded(1));
  assert.deepEqual([same.distances, same.tinyStep], [[], 0], 'identical rows: no step, none tiny');
  assert.deepEqual(benignSteps(spec, [], seeded(1)), { distances: [], tinyStep: 0, tinyRate: TINY_STEP_PROB, latticeRate: 0 });
});

test('benignSteps: many distinct rows give BENIGN_STEPS steps, none 0; seeded, so rebuilt alike', () => {
  const r = seeded(2);
  const rows = Array.from({ length: 500 }, () => [r() * 10, r() * 10]);
  const a = benignSteps(spec, rows, seeded(3));
  assert.equal(a.distances.length, BENIGN_STEPS);
  assert.ok(a.distances.every((d) => d > 0));
  // The 1 % quantile (draws with replacement repeat some distances: ties).
  assert.ok(a.distances.filter((d) => d < a.tinyStep).length <= BENIGN_STEPS * TINY_STEP_PROB);
  assert.ok(a.distances.filter((d) => d <= a.tinyStep).length >= BENIGN_STEPS * TINY_STEP_PROB);
  assert.equal(a.latticeRate, 0, 'continuous data repeats no step');
  assert.deepEqual(benignSteps(spec, rows, seeded(3)), a);
});

test('benignSteps: a caller of a dense neighbourhood takes more tiny steps, on a grid it repeats steps; the rates are the larger shares', () => {
  const r = seeded(6);
  const scatter = Array.from({ length: 8 * STEP_RING }, () => [100 + r() * 1000, r() * 1000]);
  const cluster = Array.from({ length: 2 * STEP_RING }, () => [r() * 5, r() * 5]);
  const grid = Array.from({ length: 144 }, (_, i) => [i % 12, Math.floor(i / 12)]);
  const sparse = benignSteps(spec, scatter, seeded(7));
  const dense = benignSteps(spec, [...cluster, ...scatter], seeded(7));
  const onGrid = benignSteps(spec, [...grid, ...scatter.slice(0, 4 * STEP_RING)], seeded(7));
  assert.ok(sparse.tinyRate >= TINY_STEP_PROB && sparse.tinyRate < 0.05, `scattered rows: tiny rate ${sparse.tinyRate}`);
  assert.ok(dense.tinyRate > 0.05, `with a dense cluster: tiny rate ${dense.tinyRate}`);
  assert.equal(sparse.latticeRate, 0);
  assert.ok(onGrid.latticeRate > 0.3, `with a grid: lattice rate ${onGrid.latticeRate}`);
});
