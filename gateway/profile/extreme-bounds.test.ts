import assert from 'node:assert/strict';
import { test } from 'node:test';
import { extremeBounds, extremeRank, TAIL_PROBABILITY } from './extreme-bounds.js';

test('extremeRank: k = ceil(1/(p(n+1))), between 1 and n', () => {
  assert.equal(TAIL_PROBABILITY, 0.001);
  assert.equal(extremeRank(105), 10, 'iris-sized data: 1/(0.001 × 106) = 9.4');
  assert.equal(extremeRank(917), 2);
  assert.equal(extremeRank(999), 1, 'from a thousand values on, the extremes themselves');
  assert.equal(extremeRank(392_000), 1);
  assert.equal(extremeRank(3), 3, 'never more than the values there are');
  assert.equal(extremeRank(105, 0.01), 1);
});

test('extremeBounds: each side widened by the spacing of its k most extreme values', () => {
  // n = 12 → k = 12: the whole range on each side.
  const twelve = Array.from({ length: 12 }, (_, i) => i);
  assert.deepEqual(extremeBounds(twelve, false), [-11, 22]);
  // p = 0.05, n = 12: k = ceil(1/0.65) = 2: the spacing of the two lowest (1) and highest (5).
  assert.deepEqual(extremeBounds([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15], false, 0.05), [-1, 20]);
  assert.deepEqual(extremeBounds([7], false), [7, 7]);
  assert.throws(() => extremeBounds([], false), /no values/);
});

test('extremeBounds: ties at an edge (a discrete feature, a saturated pixel) give no margin', () => {
  const classes = [...new Array(50).fill(1), ...new Array(40).fill(2), ...new Array(60).fill(3)];
  assert.deepEqual(extremeBounds(classes, false), [1, 3]);
});

test('extremeBounds: FP32 bounds are rounded outward to FP32 values, so decimal data at the bound passes', () => {
  // 2.2 − (2.4 − 2.2) is 2.0000000000000004 in float64: a reported 2.0 would fall below it.
  const widths = [2.2, 2.2, 2.3, 2.4, 2.8, 3, 3.1, 3.4];
  // p = 1/30, n = 8: k = ceil(30/9) = 4.
  const [low64] = extremeBounds(widths, false, 1 / 30);
  assert.ok(low64 > 2, `float64 arithmetic: ${low64}`);
  const [low, high] = extremeBounds(widths, true, 1 / 30);
  assert.equal(low, 2);
  assert.equal(high, Math.fround(high), 'an FP32 value');
  assert.ok(high >= 3.4 + (3.4 - 3), `${high}`);
  assert.ok(Math.fround(2) >= low && Math.fround(3.8) <= high);
  // Outward also for negative values and at zero.
  // p = 0.1, n = 4: k = 2.
  const [negLow, negHigh] = extremeBounds([-0.3, -0.2, -0.1, 0], true, 0.1);
  assert.ok(negLow <= -0.4 && negLow === Math.fround(negLow), `${negLow}`);
  assert.ok(negHigh >= 0.1 && negHigh === Math.fround(negHigh), `${negHigh}`);
});
