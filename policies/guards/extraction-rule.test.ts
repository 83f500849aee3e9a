import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_RULE, isFlagged, judge, logBinomialTail, logGamma, nullRates } from './extraction-rule.js';
import { SignalCounts } from './extraction-signals.js';

/** ln P(X ≥ k), X ~ Bin(n, p), by summing the pmf from log factorials added up term by term. */
function referenceLogTail(k: number, n: number, p: number): number {
  const lnFact = [0];
  for (let i = 1; i <= n; i++) lnFact.push(lnFact[i - 1] + Math.log(i));
  const logs: number[] = [];
  for (let i = k; i <= n; i++) logs.push(lnFact[n] - lnFact[i] - lnFact[n - i] + i * Math.log(p) + (n - i) * Math.log(1 - p));
  const max = Math.max(...logs);
  return max + Math.log(logs.reduce((a, l) => a + Math.exp(l - max), 0));
}

function counts(fields: Partial<SignalCounts>): SignalCounts {
  return Object.assign(new SignalCounts(), fields);
}

describe('binomial tail', () => {
  it('logGamma(n + 1) is ln n!', () => {
    assert.ok(Math.abs(logGamma(11) - Math.log(3628800)) < 1e-12);
    assert.ok(Math.abs(logGamma(1) - 0) < 1e-12);
    const ln100 = Array.from({ length: 100 }, (_, i) => Math.log(i + 1)).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(logGamma(101) - ln100) < 1e-9);
  });

  it('matches the summed pmf: 12 of 20 at p = 0.05 (about 3e-11), 700 of 10 000 at p = 0.05', () => {
    const small = logBinomialTail(12, 20, 0.05);
    assert.ok(Math.abs(small - referenceLogTail(12, 20, 0.05)) < 1e-9, `${small}`);
    assert.ok(Math.exp(small) > 2e-11 && Math.exp(small) < 4e-11, `${Math.exp(small)}`);
    const large = logBinomialTail(700, 10_000, 0.05);
    assert.ok(Math.abs(large - referenceLogTail(700, 10_000, 0.05)) < 1e-7, `${large}`);
    assert.ok(Math.abs(logBinomialTail(20, 20, 0.1) - 20 * Math.log(0.1)) < 1e-9);
  });

  it('at or below the expected count the tail is taken as 1; impossible counts as 0', () => {
    assert.equal(logBinomialTail(5, 100, 0.05), 0);
    assert.equal(logBinomialTail(0, 100, 0.05), 0);
    assert.equal(logBinomialTail(3, 100, 0), -Infinity);
    assert.equal(logBinomialTail(101, 100, 0.5), -Infinity);
  });
});

describe('flag rule', () => {
  const nulls = nullRates({ columns: 4, oodThreshold: 3, offRate: 0.01, tinyStep: 0.1, tinyRate: 0.01, latticeRate: 0.004 });

  it('null rates: the reference rate × 10 with a floor of 1 % before the factor, at most ½', () => {
    assert.deepEqual(nulls, { off: 0.1, tiny: 0.1, lattice: 0.1, line: 0.1 });
    assert.deepEqual(nullRates({ columns: 4, oodThreshold: 3, offRate: 0.001, tinyStep: 0.1, tinyRate: 0.2, latticeRate: 0.032 }), { off: 0.1, tiny: 0.5, lattice: 0.32, line: 0.1 });
  });

  it('off-manifold: 12 of 20 rows fire (tail ≈ 6e-8 under a 10 % null); 19 of 19 do not (fewer than 20 rows)', () => {
    assert.ok(Math.exp(logBinomialTail(12, 20, 0.1)) < DEFAULT_RULE.alpha);
    assert.equal(isFlagged(counts({ rows: 20, off: 12 }), nulls), true);
    assert.equal(isFlagged(counts({ rows: 19, off: 19 }), nulls), false);
    assert.equal(isFlagged(counts({ rows: 20, off: 9 }), nulls), false, 'P(≥ 9 of 20 | 10 %) ≈ 6e-5');
  });

  it('a benign share stays unflagged however many rows: 4 % off-manifold of 100 000', () => {
    assert.equal(isFlagged(counts({ rows: 100_000, off: 4_000, steps: 99_999, tiny: 3_000, pairs: 99_990, line: 500 }), nulls), false);
  });

  it('untracked rows count as rows but not as evidence either way', () => {
    assert.equal(isFlagged(counts({ rows: 1_000, untracked: 990, off: 10 }), nulls), false, '10 tracked rows are too few');
    assert.equal(isFlagged(counts({ rows: 1_020, untracked: 1_000, off: 15 }), nulls), true, '15 of 20 tracked rows');
  });

  it('tiny and lattice steps are judged among non-repeat steps; lines among step pairs', () => {
    assert.equal(isFlagged(counts({ rows: 200, steps: 199, repeat: 150, tiny: 20 }), nulls), true, '20 of 49 non-repeat steps');
    assert.equal(isFlagged(counts({ rows: 200, steps: 199, repeat: 0, tiny: 20 }), nulls), false, '20 of 199');
    assert.equal(isFlagged(counts({ rows: 200, steps: 199, repeat: 150, lattice: 20 }), nulls), true, '20 of 49 non-repeat steps');
    assert.equal(isFlagged(counts({ rows: 200, steps: 199, repeat: 0, lattice: 20 }), nulls), false, '20 of 199');
    assert.equal(isFlagged(counts({ rows: 30, pairs: 28, line: 28 }), nulls), true);
  });

  it('exact repeats are evidence of nothing: off-manifold is judged among the rows that are not repeats', () => {
    // A health probe whose one row happens to lie off the manifold: 1 novel row, then 999 repeats of it.
    assert.equal(isFlagged(counts({ rows: 1_000, off: 1, steps: 999, repeat: 999 }), nulls), false);
    assert.equal(judge(counts({ rows: 1_000, off: 1, steps: 999, repeat: 999 }), nulls).score, 0);
    // Repeats do not dilute either: 15 of 20 novel rows off the manifold fire among 1 000 rows.
    assert.equal(isFlagged(counts({ rows: 1_000, off: 15, steps: 999, repeat: 980 }), nulls), true);
  });

  it('the verdict: scores 0..1 per signal, the signals that fired, rows and cells', () => {
    const v = judge(counts({ rows: 40, off: 1, steps: 39, tiny: 30, lattice: 2, pairs: 38, line: 8, cells: 17 }), nulls);
    assert.equal(v.flagged, true);
    assert.deepEqual(v.signals, ['tiny-steps']);
    assert.equal(v.score, 1);
    assert.equal(v.scores['tiny-steps'], 1);
    assert.equal(v.scores['off-manifold'], 0);
    assert.equal(v.scores.lattice, 0, '2 of 39 is below the null');
    assert.deepEqual(Object.keys(v.scores), ['off-manifold', 'tiny-steps', 'lattice', 'line-sweep']);
    // 8 of 38 at 10 %: tail ≈ 0.032 → ln 0.032 / ln 1e-6 ≈ 0.25.
    assert.ok(v.scores['line-sweep'] > 0.2 && v.scores['line-sweep'] < 0.35, `${v.scores['line-sweep']}`);
    assert.equal(v.rows, 40);
    assert.equal(v.cells, 17);
    const quiet = judge(counts({ rows: 10, off: 10 }), nulls);
    assert.deepEqual([quiet.flagged, quiet.score, quiet.signals], [false, 0, []]);
  });
});
