import assert from 'node:assert/strict';
import { test } from 'node:test';
import { uniform } from '../../test/helpers/seeded-normal.js';
import { binStats, DEFAULT_DRIFT_THRESHOLDS, overallStatus, rawStatus, StatusTracker } from './statistics.js';
import type { BinStats, DriftStatus } from './statistics.js';

const close = (actual: number, expected: number, tolerance: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} is not within ${tolerance} of ${expected}`);

/** Counts of `n` draws from `shares` into `bins` bins (bins beyond the shares, e.g. missing, stay 0). */
function draw(next: () => number, shares: readonly number[], n: number, bins: number): Float64Array {
  const counts = new Float64Array(bins);
  const sum = shares.reduce((a, b) => a + b, 0);
  for (let i = 0; i < n; i++) {
    let v = next() * sum;
    let j = 0;
    while (j < shares.length - 1 && v >= shares[j]) v -= shares[j++];
    counts[j]++;
  }
  return counts;
}

// A 10-bin reference distribution: numeric (9 edges → 10 value bins + missing = 11 bins) or
// categorical (9 categories + other = 10 bins, + missing = 11). The missing bin stays empty.
const SHARES = [0.04, 0.06, 0.08, 0.1, 0.12, 0.25, 0.12, 0.1, 0.08, 0.05];
const BINS = 11;
const T = DEFAULT_DRIFT_THRESHOLDS;
const TESTS = 15;

test('PSI and JS distance of a small case, computed by hand', () => {
  // Shares 0.5/0.3/0.2 against 0.3/0.3/0.4. PSI smoothed: every bin + 0.5, so both sides are
  // (count + 0.5) / 101.5 and the middle bin contributes 0:
  //   (30.5 − 50.5)/101.5 · ln(30.5/50.5) + (40.5 − 20.5)/101.5 · ln(40.5/20.5) = 0.099359 + 0.134163.
  const s = binStats('categorical', [50, 30, 20], [30, 30, 40]);
  close(s.psi, (20 / 101.5) * (Math.log(50.5 / 30.5) + Math.log(40.5 / 20.5)), 1e-12, 'PSI formula');
  close(s.psi, 0.233522, 1e-6, 'PSI value');
  // JS on raw shares, M = (0.4, 0.3, 0.3): KL(P‖M) = 0.5·log2(1.25) + 0.2·log2(2/3) = 0.0439712,
  // KL(Q‖M) = 0.3·log2(0.75) + 0.4·log2(4/3) = 0.0415037; distance √((0.0439712 + 0.0415037)/2).
  close(s.js, Math.sqrt((0.0439712 + 0.0415037) / 2), 1e-6, 'JS distance');
  close(s.js, 0.206731, 1e-6, 'JS value');
  assert.equal(s.samples, 100);
  assert.deepEqual(s.top.map((t) => t.bin), [2, 0], 'bins by contribution, the unchanged bin left out');
  assert.deepEqual([s.top[0].reference, s.top[0].live], [0.2, 0.4], 'top reports shares, not counts');
  close(s.top[0].contribution + s.top[1].contribution, s.psi, 1e-12, 'contributions add up to PSI');
});

test('with large counts the pseudo-count is negligible: PSI is the textbook value', () => {
  // 0.5/0.3/0.2 → 0.3/0.3/0.4: PSI = 0.2·ln(5/3) + 0.2·ln 2 = 0.240795.
  const s = binStats('categorical', [5000, 3000, 2000], [3000, 3000, 4000]);
  close(s.psi, 0.2 * Math.log(5 / 3) + 0.2 * Math.LN2, 2e-4, 'PSI');
});

test('identical shares: JS 0, p-values 1, PSI 0 on equal totals and only the pseudo-count\'s trace on unequal ones', () => {
  for (const kind of ['numeric', 'categorical'] as const) {
    const same = binStats(kind, [100, 200, 300, 0], [100, 200, 300, 0]);
    assert.deepEqual([same.psi, same.js, same.pValue, same.top], [0, 0, 1, []]);
    // 60 vs 600 rows: the pseudo-count pulls the 60-row side a little more toward uniform.
    const s = binStats(kind, [10, 20, 30, 0], [100, 200, 300, 0]);
    assert.ok(s.psi > 0 && s.psi < 2e-4, `PSI ${s.psi}`);
    assert.equal(s.js, 0);
    assert.equal(s.pValue, 1);
  }
});

test('a bin the reference never saw gives a large but finite PSI, and is the top contributor', () => {
  const s = binStats('categorical', [100, 0, 100], [90, 20, 90]);
  assert.ok(Number.isFinite(s.psi) && s.psi > 0.2, `PSI ${s.psi}`);
  assert.ok(s.js > 0 && s.js < 1, `JS ${s.js}`);
  assert.deepEqual(s.top[0], { bin: 1, reference: 0, live: 0.1, contribution: s.top[0].contribution });
  // (0.1 smoothed: 20.5/201.5 vs 0.5/201.5) → (20/201.5)·ln 41 dominates.
  close(s.top[0].contribution, (20 / 201.5) * Math.log(41), 1e-12, 'the new bin');
});

test('a live window of 0 samples and an empty reference give no evidence: PSI 0, p 1, never judged', () => {
  const empty = binStats('numeric', [10, 20, 30], [0, 0, 0]);
  assert.deepEqual(empty, { samples: 0, psi: 0, js: 0, ks: { statistic: 0, pValue: 1 }, pValue: 1, top: [] });
  assert.equal(rawStatus(empty, T, TESTS), 'insufficient');
  const noReference = binStats('categorical', [0, 0, 0], [300, 300, 400]);
  assert.equal(noReference.samples, 1000);
  assert.deepEqual([noReference.psi, noReference.js, noReference.pValue], [0, 0, 1]);
  assert.equal(rawStatus(noReference, T, TESTS), 'ok', 'no reference cannot alarm');
});

test('reference and live counts of different lengths are a programming error', () => {
  assert.throws(() => binStats('numeric', [1, 2, 3], [1, 2]), RangeError);
});

test('KS statistic: the largest gap between the binned CDFs, p-value at √(n·m/(n+m))·D', () => {
  // CDFs 0.1/0.3/0.6/1 and 0.4/0.7/0.9/1: the gap is 0.4 at the second bin.
  const s = binStats('numeric', [10, 20, 30, 40], [40, 30, 20, 10]);
  assert.ok(s.ks);
  close(s.ks.statistic, 0.4, 1e-12, 'D');
  // n = m = 100 → effective 50; λ = √50 · 0.4 = 2√2; P = 2e^−16 − 2e^−64 + …
  close(s.ks.pValue, 2 * Math.exp(-16), 1e-15, 'p');
  assert.equal(s.pValue, s.ks.pValue, 'numeric features report the KS p-value');
  assert.equal(s.chiSquare, undefined);
  // Unequal sizes: n = 300, m = 600 → effective 200; a gap of 0.1 → λ = √200 · 0.1 = 1.414.
  const u = binStats('numeric', [90, 90, 120], [120, 180, 300]);
  close(u.ks!.statistic, 0.1, 1e-12, 'D, unequal sizes');
  close(u.ks!.pValue, 0.036632, 2e-6, 'p, unequal sizes (Kolmogorov table at λ = √2)');
});

test('KS sees a change in the missing share: missing is the last bin, above every edge', () => {
  const s = binStats('numeric', [50, 50, 0], [40, 40, 20]);
  close(s.ks!.statistic, 0.2, 1e-12, 'D at the last value bin');
});

test('chi-square: the two-sample statistic of a 2 × 2 table, by hand', () => {
  // Reference 60/40, live 40/60 (100 each): expected 50 in every cell, χ² = 4 · 10²/50 = 8, df 1.
  const s = binStats('categorical', [60, 40, 0, 0], [40, 60, 0, 0]);
  assert.deepEqual({ ...s.chiSquare, pValue: 0 }, { statistic: 8, df: 1, pValue: 0 });
  close(s.chiSquare!.pValue, 0.0046777, 1e-6, 'p of χ²(1) = 8');
  assert.equal(s.pValue, s.chiSquare!.pValue, 'categorical features report the chi-square p-value');
  assert.equal(s.ks, undefined);
});

test('chi-square pools bins whose expected count is below 5 (and folds a pool still below 5 into the smallest bin)', () => {
  // Bins 2 and 3 expect 2 and 3 (< 5): pooled they expect 5, kept as one group → 4 groups, df 3.
  const pooled = binStats('categorical', [500, 400, 3, 2, 95], [500, 400, 1, 4, 95]);
  assert.equal(pooled.chiSquare!.df, 3);
  // Pooled, the small bins are 5 vs 5 — no difference — so only bins 0, 1, 4 (equal) count: χ² = 0.
  close(pooled.chiSquare!.statistic, 0, 1e-12, 'statistic');
  // Here the pool expects 3: it is folded into bin 1 → 2 groups, df 1. Empty bins add nothing.
  const folded = binStats('categorical', [500, 495, 3, 2, 0, 0], [500, 499, 1, 0, 0, 0]);
  assert.equal(folded.chiSquare!.df, 1);
  // Nothing left to compare: every bin tiny → df 0, p 1.
  const tiny = binStats('categorical', [2, 1, 1], [1, 2, 1]);
  assert.deepEqual(tiny.chiSquare, { statistic: 0, df: 0, pValue: 1 });
});

test('null behaviour: 200 windows of 2,000 samples from the reference distribution stay well below PSI 0.1 and never alarm', () => {
  const next = uniform(1);
  const reference = draw(next, SHARES, 900, BINS); // the reference is itself a sample of ~900 rows
  const empirical = Array.from(reference.subarray(0, SHARES.length));
  // PSI under the null is about (k − 1)(1/R + 1/L) = 9 · (1/900 + 1/2000) ≈ 0.0145.
  for (const kind of ['numeric', 'categorical'] as const) {
    // Live windows from the distribution the reference was drawn from, and resampled from the
    // reference rows themselves (what the evaluation's control streams do).
    for (const [source, shares] of [['true shares', SHARES], ['reference rows', empirical]] as const) {
      let maxPsi = 0;
      let sumPsi = 0;
      let minP = 1;
      const tracker = new StatusTracker(T.confirmations);
      for (let w = 0; w < 200; w++) {
        const s = binStats(kind, reference, draw(next, shares, 2000, BINS));
        maxPsi = Math.max(maxPsi, s.psi);
        sumPsi += s.psi;
        minP = Math.min(minP, s.pValue);
        const raw = rawStatus(s, T, TESTS);
        assert.equal(raw, 'ok', `${kind}, ${source}, window ${w}: PSI ${s.psi}, p ${s.pValue}`);
        tracker.update(raw);
      }
      const what = `${kind}, live from the ${source}`;
      assert.ok(maxPsi < 0.06, `${what}: max PSI ${maxPsi}`);
      assert.ok(sumPsi / 200 < 0.03, `${what}: mean PSI ${sumPsi / 200}`);
      assert.ok(minP > T.alpha / TESTS, `${what}: no p-value below the Bonferroni level (min ${minP})`);
      assert.equal(tracker.status, 'ok');
    }
  }
});

test('a real shift (a 25 % bin doubled to 50 %) with 2,000 samples is drift, confirmed on the second window', () => {
  const next = uniform(2);
  const reference = draw(next, SHARES, 900, BINS);
  const shifted = SHARES.map((p, i) => (i === 5 ? 0.5 : (p * 0.5) / 0.75));
  for (const kind of ['numeric', 'categorical'] as const) {
    const tracker = new StatusTracker(T.confirmations);
    const first = binStats(kind, reference, draw(next, shifted, 2000, BINS));
    assert.ok(first.psi > T.psiDrift, `${kind}: PSI ${first.psi}`);
    assert.ok(first.pValue < 1e-6, `${kind}: p ${first.pValue}`);
    assert.equal(first.top[0].bin, 5, 'the doubled bin contributes most');
    assert.equal(rawStatus(first, T, TESTS), 'drift');
    assert.equal(tracker.update(rawStatus(first, T, TESTS)), 'ok', 'one window is not enough');
    const second = binStats(kind, reference, draw(next, shifted, 2000, BINS));
    assert.equal(tracker.update(rawStatus(second, T, TESTS)), 'drift');
  }
});

test('at volume a significant but tiny change is ok: p-values alone would alarm', () => {
  // A bin's share 10 % → 11 % over a million requests: p ≈ 1e-22 (chi-square), 3e-8 (KS), PSI 0.001.
  for (const kind of ['numeric', 'categorical'] as const) {
    const s = binStats(kind, [10_000, 90_000, 0], [110_000, 890_000, 0]);
    assert.ok(s.pValue < 1e-7, `${kind}: p ${s.pValue}`);
    assert.ok(s.psi < 0.002, `${kind}: PSI ${s.psi}`);
    assert.equal(rawStatus(s, T, TESTS), 'ok');
  }
});

test('a large PSI from a small reference is not drift unless significant after the Bonferroni correction', () => {
  // A 40-row reference: PSI 0.32, chi-square p 0.0014 — below alpha for one test, not for 15.
  const s = binStats('categorical', [25, 10, 5, 0, 0], [350, 350, 300, 0, 0]);
  assert.ok(s.psi > T.psiDrift, `PSI ${s.psi}`);
  assert.ok(s.pValue < T.alpha && s.pValue > T.alpha / TESTS, `p ${s.pValue}`);
  assert.equal(rawStatus(s, T, 1), 'drift');
  assert.equal(rawStatus(s, T, TESTS), 'ok');
});

test('rawStatus: PSI thresholds pick the level, minSamples gives insufficient', () => {
  const stats = (samples: number, psi: number, pValue: number): BinStats => ({ samples, psi, js: 0, pValue, top: [] });
  assert.equal(rawStatus(stats(499, 0.9, 1e-30), T, TESTS), 'insufficient', 'below minSamples nothing is judged');
  assert.equal(rawStatus(stats(500, 0.9, 1e-30), T, TESTS), 'drift');
  assert.equal(rawStatus(stats(2000, 0.2, 1e-9), T, TESTS), 'drift', 'psiDrift is inclusive');
  assert.equal(rawStatus(stats(2000, 0.15, 1e-9), T, TESTS), 'warning');
  assert.equal(rawStatus(stats(2000, 0.09, 1e-9), T, TESTS), 'ok');
  assert.equal(rawStatus(stats(2000, 0.5, 0.005), T, 1), 'drift', 'p 0.005 < 0.01 for one test');
  assert.equal(rawStatus(stats(2000, 0.5, 0.005), T, TESTS), 'ok', 'p 0.005 > 0.01/15');
  assert.equal(rawStatus(stats(2000, 0.5, 0.005), { ...T, minSamples: 5000 }, 1), 'insufficient');
});

test('the documented defaults', () => {
  assert.deepEqual({ ...DEFAULT_DRIFT_THRESHOLDS }, { psiWarning: 0.1, psiDrift: 0.2, alpha: 0.01, minSamples: 500, confirmations: 2 });
  assert.ok(Object.isFrozen(DEFAULT_DRIFT_THRESHOLDS));
});

function run(tracker: StatusTracker, raws: readonly DriftStatus[]): DriftStatus[] {
  return raws.map((r) => tracker.update(r));
}

test('StatusTracker: a level is reported after `confirmations` consecutive raw statuses at or above it', () => {
  assert.equal(new StatusTracker(2).status, 'insufficient', 'nothing judged yet');
  assert.deepEqual(run(new StatusTracker(2), ['ok', 'drift', 'drift']), ['ok', 'ok', 'drift']);
  assert.deepEqual(run(new StatusTracker(2), ['warning', 'drift', 'drift']), ['ok', 'warning', 'drift'], 'drift is evidence of warning too');
  assert.deepEqual(run(new StatusTracker(3), ['drift', 'drift', 'drift']), ['ok', 'ok', 'drift']);
  assert.deepEqual(run(new StatusTracker(2), ['drift', 'ok', 'drift', 'ok', 'drift', 'ok']), ['ok', 'ok', 'ok', 'ok', 'ok', 'ok'], 'alternating noise never raises');
});

test('StatusTracker: it steps down the same way, after `confirmations` raw statuses at or below a level', () => {
  const t = new StatusTracker(2);
  run(t, ['drift', 'drift']);
  assert.deepEqual(run(t, ['ok', 'drift', 'ok', 'warning', 'ok', 'ok']), ['drift', 'drift', 'drift', 'warning', 'warning', 'ok']);
});

test('StatusTracker: insufficient is reported at once and forgets; confirmations 1 passes raw statuses through', () => {
  const t = new StatusTracker(2);
  run(t, ['drift', 'drift']);
  assert.equal(t.update('insufficient'), 'insufficient', 'a reset window is not judged');
  assert.deepEqual(run(t, ['drift', 'drift']), ['ok', 'drift'], 'after it, drift needs confirming again');
  assert.deepEqual(run(new StatusTracker(1), ['ok', 'drift', 'warning', 'insufficient', 'ok']), ['ok', 'drift', 'warning', 'insufficient', 'ok']);
  assert.throws(() => new StatusTracker(0), RangeError);
});

test('overallStatus is the worst status; insufficient only when every one is', () => {
  assert.equal(overallStatus(['ok', 'drift', 'warning', 'insufficient']), 'drift');
  assert.equal(overallStatus(['ok', 'warning', 'insufficient']), 'warning');
  assert.equal(overallStatus(['insufficient', 'ok']), 'ok');
  assert.equal(overallStatus(['insufficient', 'insufficient']), 'insufficient');
  assert.equal(overallStatus([]), 'insufficient');
});
