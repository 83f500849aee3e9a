import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encode } from './encoder.js';
import type { RowValues } from './features.js';
import { fitOod, KNN_MAX_REFERENCE, oodScore, shrunkPrecision } from './ood.js';
import type { FeatureProfile } from './profile.js';

/** A seeded standard normal stream (mulberry32 + Box-Muller). */
function normal(seed: number): () => number {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297;
  };
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

const num = (name: string, mean = 0, std = 1, input = name): FeatureProfile => ({ kind: 'numeric', name, input, integer: false, min: -10, max: 10, mean, std, quantiles: [], missingRate: 0 });

test('mahalanobis: with plenty of rows the score is the distance under the sample covariance', () => {
  const z = normal(1);
  // x ~ N(0, 1); y = 0.8 x + 0.6 e: unit variances, correlation 0.8
  const rows: RowValues[] = Array.from({ length: 5000 }, () => {
    const x = z();
    return [x, 0.8 * x + 0.6 * z()];
  });
  const model = fitOod([num('x'), num('y')], rows);
  assert.equal(model.method, 'mahalanobis');
  const exact = (x: number, y: number) => Math.sqrt((x * x - 1.6 * x * y + y * y) / (1 - 0.64));
  for (const [x, y] of [[1, 1], [1, -1], [2, 0], [0, 0.5]] as const) {
    const s = oodScore(model, [x, y]);
    assert.ok(Math.abs(s - exact(x, y)) / exact(x, y) < 0.08, `(${x}, ${y}): ${s} vs ${exact(x, y)}`);
  }
  assert.ok(oodScore(model, [1, -1]) > 3 * oodScore(model, [1, 1]), 'against the correlation is far');
});

test('shrunkPrecision: the inverse of the shrunk covariance, symmetric, even for linearly dependent columns', () => {
  const z = normal(2);
  const n = 200;
  const d = 3;
  const x = new Float64Array(n * d);
  for (let r = 0; r < n; r++) {
    const a = z() > 0 ? 1 : 0;
    x[r * d] = a;
    x[r * d + 1] = 1 - a; // one-hot pair: the columns sum to 1
    x[r * d + 2] = z();
  }
  const { precision: p, shrinkage } = shrunkPrecision(x, n, d);
  assert.ok(shrinkage >= 0.01 && shrinkage <= 1);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) assert.ok(Math.abs(p[i * d + j] - p[j * d + i]) < 1e-9);
  for (const v of p) assert.ok(Number.isFinite(v));
});

test('mahalanobis on mixed features: an unknown category and an infinite value are far', () => {
  const z = normal(3);
  const sex: FeatureProfile = { kind: 'categorical', name: 'sex', input: 'sex', categories: { female: 0.4, male: 0.6 }, missingRate: 0 };
  const rows: RowValues[] = Array.from({ length: 600 }, () => [z() * 14 + 30, z() > 0.25 ? 'male' : 'female']);
  const model = fitOod([num('age', 30, 14), sex], rows);
  const worst = Math.max(...rows.map((r) => oodScore(model, r)));
  assert.ok(oodScore(model, [30, 'unknown']) > 2 * worst, `unknown: ${oodScore(model, [30, 'unknown'])} vs the reference's worst ${worst}`);
  assert.equal(oodScore(model, [Infinity, 'male']), Infinity);
  assert.equal(oodScore(model, [-Infinity, 'male']), Infinity);
});

test('knn above 64 encoded columns: the mean distance to the 5 nearest reference rows, exactly', () => {
  const z = normal(4);
  const d = 100;
  const inputs = [{ name: 'im', datatype: 'FP32', rowShape: [1, 10, 10], firstFeature: 0, featureCount: d }];
  const features = Array.from({ length: d }, (_, i) => num(`im[${i}]`, 0, 1, 'im'));
  const rows: RowValues[] = Array.from({ length: 300 }, () => Array.from({ length: d }, () => z() * 0.1));
  const model = fitOod(features, rows, inputs);
  assert.equal(model.method, 'knn');
  if (model.method !== 'knn') return;
  assert.equal(model.k, 5);
  assert.equal(model.rows, 300);
  const brute = (row: RowValues) => {
    const q = new Float64Array(d);
    encode(model.encoder, row, q);
    const dist = rows.map((r) => Math.sqrt(r.reduce<number>((s, v, j) => s + ((v as number) - q[j]) ** 2, 0))).sort((a, b) => a - b);
    return dist.slice(0, 5).reduce((a, b) => a + b, 0) / 5;
  };
  for (let t = 0; t < 5; t++) {
    const probe = Array.from({ length: d }, () => z() * 0.1);
    assert.ok(Math.abs(oodScore(model, probe) - brute(probe)) < 1e-9);
  }
  const near = oodScore(model, Array.from({ length: d }, () => z() * 0.1));
  const noise = oodScore(model, Array.from({ length: d }, () => z()));
  assert.ok(noise > 3 * near, `noise ${noise} vs a row like the reference ${near}`);
  assert.equal(oodScore(model, [Infinity, ...new Array(d - 1).fill(0)]), Infinity);
});

test('knn keeps at most 1000 reference rows (the first given); fitting needs two rows', () => {
  const d = 70;
  const features = Array.from({ length: d }, (_, i) => num(`v[${i}]`));
  const rows: RowValues[] = Array.from({ length: KNN_MAX_REFERENCE + 50 }, (_, r) => new Array(d).fill(r));
  const model = fitOod(features, rows);
  assert.equal(model.method === 'knn' && model.rows, KNN_MAX_REFERENCE);
  assert.equal(model.method === 'knn' && model.reference.length, KNN_MAX_REFERENCE * d);
  assert.throws(() => fitOod(features, rows.slice(0, 1)), /at least 2 reference rows/);
});
