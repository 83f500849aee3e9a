import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileTail, fitTail, MIN_TAIL_SCORES, surprise } from './tail.js';

test('fitTail: sorted scores, t = max(10, n/10) largest, their mean excess over the next', () => {
  const scores = Array.from({ length: 200 }, (_, i) => 199 - i);
  const tail = fitTail(scores);
  assert.deepEqual(tail.scores, Array.from({ length: 200 }, (_, i) => i));
  assert.equal(tail.tailRows, 20);
  assert.equal(tail.tailMean, 10.5, 'excesses 1..20 over 179');
  assert.throws(() => fitTail(Array.from({ length: MIN_TAIL_SCORES - 1 }, (_, i) => i)), /at least 12 finite scores/);
  assert.throws(() => fitTail([...scores, Infinity]), /finite/);
});

test('surprise: −ln of the share at least as far, interpolated; exponential beyond the tail; monotone and continuous', () => {
  const n = 99;
  const tail = compileTail(fitTail(Array.from({ length: n }, (_, i) => i + 1))); // 1..99
  assert.equal(surprise(tail, 0), 0, 'below every reference score');
  assert.ok(Math.abs(surprise(tail, 50) - Math.log(2)) < 1e-12, 'the median: half the reference is at least as far');
  assert.ok(Math.abs(surprise(tail, 49.5) - -Math.log(1 - 49.5 / 100)) < 1e-12, 'between two scores');
  // t = 10, u = the 89th score (89): above it, ln(100 / 11) + (v − 89) / 5.5.
  assert.ok(Math.abs(surprise(tail, 89) - Math.log(100 / 11)) < 1e-12, 'continuous at u');
  assert.ok(Math.abs(surprise(tail, 89 + 11) - (Math.log(100 / 11) + 2)) < 1e-12);
  assert.ok(Math.abs(surprise(tail, 1000) - (Math.log(100 / 11) + 911 / 5.5)) < 1e-9, 'far beyond every reference score, still growing');
  let last = -Infinity;
  for (let v = -5; v < 130; v += 0.37) {
    const s = surprise(tail, v);
    assert.ok(s >= last, `monotone at ${v}`);
    last = s;
  }
  assert.equal(surprise(tail, NaN), Infinity);
  assert.equal(surprise(tail, Infinity), Infinity);
});

test('a tail whose largest scores are equal: anything above them is (almost) infinitely surprising', () => {
  const tail = compileTail(fitTail([...Array.from({ length: 30 }, (_, i) => i / 30), ...new Array(20).fill(1)]));
  assert.ok(surprise(tail, 1.01) > 1e6);
  assert.ok(Number.isFinite(surprise(tail, 1)));
});
