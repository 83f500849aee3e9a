import assert from 'node:assert/strict';
import { test } from 'node:test';
import { uniform } from '../../test/helpers/seeded-normal.js';
import { calibrateThreshold, confidentThreshold, MIN_HELD_OUT } from './calibrate.js';

test('many held-out rows: the empirical (1 - targetFpr) order statistic', () => {
  const scores = Array.from({ length: 2000 }, (_, i) => i + 1);
  assert.equal(calibrateThreshold(scores, 0.01), 1980, '20 of 2000 scores lie above it');
  assert.equal(calibrateThreshold([...scores].reverse(), 0.05), 1900, 'order does not matter');
});

test('few held-out rows: an exponential tail extrapolated to the target, near the true quantile on average', () => {
  const rand = uniform(7);
  const exp = () => -Math.log(1 - rand());
  const truth = Math.log(100); // the 99 % quantile of Exp(1)
  let sum = 0;
  const trials = 400;
  for (let t = 0; t < trials; t++) sum += calibrateThreshold(Array.from({ length: 45 }, exp), 0.01);
  const mean = sum / trials;
  assert.ok(Math.abs(mean - truth) / truth < 0.1, `mean threshold ${mean.toFixed(3)} vs the true quantile ${truth.toFixed(3)}`);
});

test('never below the empirical order statistic: far outliers in a small sample are not extrapolated away', () => {
  const scores = [...Array.from({ length: 28 }, (_, i) => i / 1000), 1.4, 1.5];
  assert.equal(calibrateThreshold(scores, 0.01), 1.5);
});

test('refuses too few rows and a target outside (0, 1); non-finite scores are left out', () => {
  assert.throws(() => calibrateThreshold(Array.from({ length: MIN_HELD_OUT - 1 }, (_, i) => i), 0.01), /at least 20 held-out rows/);
  assert.throws(() => calibrateThreshold(Array.from({ length: 50 }, (_, i) => i), 0), /targetFpr must be between 0 and 1/);
  const scores = Array.from({ length: 2000 }, (_, i) => i + 1);
  assert.equal(calibrateThreshold([...scores, Infinity, NaN], 0.01), 1980);
});

test('confidentThreshold: with 500 scores at 1 %, the second largest; more scores, more of them above it', () => {
  const scores = Array.from({ length: 500 }, (_, i) => i + 1);
  assert.equal(confidentThreshold(scores, 0.01), 499, 'P(Bin(500, 1 %) <= 1) = 0.040 <= 0.1 < P(<= 2) = 0.124');
  // Bin(2000, 1 %): P(<= 13) = 0.064 <= 0.1 < P(<= 14) = 0.105: 13 scores above the threshold.
  assert.equal(confidentThreshold(Array.from({ length: 2000 }, (_, i) => i + 1), 0.01), 1987);
  assert.equal(confidentThreshold([...scores].reverse(), 0.01), 499, 'order does not matter');
});

test('confidentThreshold: the false-positive rate exceeds the target in at most 1 − confidence of calibrations', () => {
  const rand = uniform(11);
  let over = 0;
  const trials = 2000;
  for (let t = 0; t < trials; t++) {
    // Scores uniform on (0, 1): the false-positive rate of threshold τ is 1 − τ.
    if (1 - confidentThreshold(Array.from({ length: 500 }, rand), 0.01) > 0.01) over++;
  }
  assert.ok(over / trials <= 0.1, `${over} of ${trials} thresholds flag more than 1 %`);
  assert.ok(over / trials > 0.02, `${over} of ${trials}: about P(Bin(500, 1 %) <= 1) = 0.040, not far fewer (the rule is exact, not needlessly strict)`);
});

test('confidentThreshold: too few scores for the confidence: the largest, or the extrapolated quantile if higher', () => {
  const scores = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(confidentThreshold(scores, 0.01), Math.max(100, calibrateThreshold(scores, 0.01)));
  assert.ok(confidentThreshold(scores, 0.01) >= 100);
});
