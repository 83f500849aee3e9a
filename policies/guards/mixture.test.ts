import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normal } from '../../test/helpers/seeded-normal.js';
import { compileMixture, fitMixture, MAX_COMPONENTS, minComponentRows, mixtureScore } from './mixture.js';

/** n rows of d columns around the given centres (in turn), spread `sd`. */
function groups(seed: number, n: number, centres: readonly (readonly number[])[], sd: number): Float64Array {
  const z = normal(seed);
  const d = centres[0].length;
  const x = new Float64Array(n * d);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) x[r * d + j] = centres[r % centres.length][j] + sd * z();
  return x;
}

test('fitMixture: the number of groups is found by BIC (one, two, three), deterministically', () => {
  const one = fitMixture(groups(1, 600, [[0, 0, 0]], 1), 600, 3);
  assert.equal(one.components.length, 1);
  const two = fitMixture(groups(2, 600, [[-4, 0, 0], [4, 0, 0]], 1), 600, 3);
  assert.equal(two.components.length, 2);
  const three = groups(3, 600, [[-5, 0, 0], [0, 5, 0], [5, 0, 0]], 1);
  const fit = fitMixture(three, 600, 3);
  assert.equal(fit.components.length, 3);
  assert.equal(fit.bic.length, MAX_COMPONENTS);
  assert.ok(fit.bic[2] < fit.bic[0] && fit.bic[2] < fit.bic[1], `BIC ${fit.bic.join(', ')}`);
  const weights = fit.components.map((c) => c.weight);
  assert.ok(Math.abs(weights.reduce((a, b) => a + b, 0) - 1) < 1e-12, 'weights sum to 1');
  for (const w of weights) assert.ok(Math.abs(w - 1 / 3) < 0.02, `each group a third: ${w}`);
  const means = fit.components.map((c) => c.mean.map((v) => Math.round(v) + 0)).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  assert.deepEqual(means, [[-5, 0, 0], [0, 5, 0], [5, 0, 0]]);
  assert.deepEqual(fitMixture(three, 600, 3), fit, 'the same rows, the same mixture');
});

test('fitMixture: a component is never fitted on fewer than minComponentRows rows', () => {
  assert.equal(minComponentRows(2), 10);
  assert.equal(minComponentRows(12), 24);
  // 25 rows in two clear groups of 13 and 12: enough for two components.
  const small = fitMixture(groups(4, 25, [[-6, 0], [6, 0]], 0.5), 25, 2);
  assert.equal(small.components.length, 2);
  // 15 rows: no split leaves two groups of 10.
  const tiny = fitMixture(groups(5, 15, [[-6, 0], [6, 0]], 0.5), 15, 2);
  assert.equal(tiny.components.length, 1);
  assert.ok(Number.isNaN(tiny.bic[1]), 'K = 2 could not be fitted');
});

test('mixtureScore: the negative log-density; low between and off the groups; Infinity for infinite or NaN values; no allocation', () => {
  const x = groups(6, 800, [[-4, -4], [4, 4]], 0.6);
  const fit = fitMixture(x, 800, 2);
  assert.equal(fit.components.length, 2);
  const m = compileMixture(fit.components, 2);
  const score = (...v: number[]) => mixtureScore(m, Float64Array.from(v));
  // Under one component far from the other, the score is −logNorm + ½ d² of that component.
  const [c] = fit.components;
  const at = Float64Array.from(c.mean);
  assert.ok(Math.abs(mixtureScore(m, at) + c.logNorm) < 1e-6, 'at a component\'s mean: −logNorm');
  let worst = -Infinity;
  for (let r = 0; r < 800; r++) worst = Math.max(worst, mixtureScore(m, x.subarray(r * 2, r * 2 + 2)));
  assert.ok(score(0, 0) > worst, 'between the groups');
  assert.ok(score(-4, 4) > worst + 20, 'one group\'s first value with the other\'s second');
  assert.equal(score(Infinity, 0), Infinity);
  assert.equal(score(NaN, 0), Infinity);
  assert.equal(score(-Infinity, Infinity), Infinity);
  const probe = Float64Array.from([1, 1]);
  const before = process.memoryUsage().heapUsed;
  let sink = 0;
  for (let i = 0; i < 100_000; i++) sink += mixtureScore(m, probe);
  assert.ok(Number.isFinite(sink));
  assert.ok(process.memoryUsage().heapUsed - before < 2_000_000, 'scoring allocates nothing to speak of');
});
