import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QUANTILE_PROBS, quantilesOf, sortedQuantile } from './quantiles.js';

test('quantiles interpolate linearly between order statistics (numpy\'s default)', () => {
  const s = [1, 2, 3, 4];
  assert.equal(sortedQuantile(s, 0.5), 2.5);
  assert.ok(Math.abs(sortedQuantile(s, 0.1) - 1.3) < 1e-12);
  assert.equal(sortedQuantile(s, 0), 1);
  assert.equal(sortedQuantile(s, 1), 4);
  assert.ok(Number.isNaN(sortedQuantile([], 0.5)));
  assert.deepEqual(quantilesOf([4, NaN, 1, Infinity, 3, 2], [0.5]), [2.5], 'any order; non-finite values left out');
  assert.ok(QUANTILE_PROBS.includes(0.01), 'the extraction monitor reads the 1 % quantile');
});
