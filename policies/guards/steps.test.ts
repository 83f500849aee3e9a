import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fitEncoder } from './encoder.js';
import type { FeatureProfile } from './profile.js';
import { stepDistances } from './steps.js';

const num = (name: string): FeatureProfile => ({ kind: 'numeric', name, input: name, integer: false, min: 0, max: 10, mean: 0, std: 1, quantiles: [], missingRate: 0 });

test('stepDistances: the distance to the nearest of the last `ring` rows, in the encoder space', () => {
  const spec = fitEncoder([num('x'), num('y')]);
  const rows = [[0, 0], [3, 4], [0, 1], [10, 10]];
  assert.deepEqual(stepDistances(spec, rows), [5, 1, Math.sqrt(85)]);
  assert.deepEqual(stepDistances(spec, rows, 1), [5, Math.sqrt(18), Math.sqrt(181)], 'a ring of one: successive rows only');
  assert.deepEqual(stepDistances(spec, [[1, 1]]), []);
});
