import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encode } from './encoder.js';
import type { RowValues } from './features.js';
import { fitOod, fitOodForCalibration, KNN_MAX_REFERENCE, MIXTURE_FOLDS, oodScore } from './ood.js';
import type { FeatureProfile } from './profile.js';
import { normal } from '../../test/helpers/seeded-normal.js';

const num = (name: string, mean = 0, std = 1, input = name): FeatureProfile => ({ kind: 'numeric', name, input, integer: false, min: -10, max: 10, mean, std, quantiles: [], missingRate: 0 });

test('tabular: one Gaussian group gives a one-component mixture, the score half the squared Mahalanobis distance above the mean\'s', () => {
  const z = normal(1);
  // x ~ N(0, 1); y = 0.8 x + 0.6 e: unit variances, correlation 0.8
  const rows: RowValues[] = Array.from({ length: 5000 }, () => {
    const x = z();
    return [x, 0.8 * x + 0.6 * z()];
  });
  const model = fitOod([num('x'), num('y')], rows);
  assert.equal(model.method, 'mixture');
  assert.equal(model.method === 'mixture' && model.components.length, 1, 'one group: one component');
  const exact = (x: number, y: number) => (x * x - 1.6 * x * y + y * y) / (1 - 0.64);
  const atMean = oodScore(model, [0, 0]);
  for (const [x, y] of [[1, 1], [1, -1], [2, 0], [0, 0.5]] as const) {
    const s = 2 * (oodScore(model, [x, y]) - atMean);
    assert.ok(Math.abs(s - exact(x, y)) / exact(x, y) < 0.12, `(${x}, ${y}): ${s} vs ${exact(x, y)}`);
  }
  assert.ok(oodScore(model, [1, -1]) - atMean > 3 * (oodScore(model, [1, 1]) - atMean), 'against the correlation is far');
});

test('tabular: rows in groups get a component each; a row mixing two groups\' values is far though each value is usual', () => {
  const z = normal(11);
  // Two groups on the diagonal, like two species: (−3, −3) and (3, 3), each with spread 0.5.
  const rows: RowValues[] = Array.from({ length: 400 }, (_, i) => {
    const c = i % 2 === 0 ? -3 : 3;
    return [c + 0.5 * z(), c + 0.5 * z()];
  });
  const model = fitOod([num('x'), num('y')], rows);
  assert.equal(model.method === 'mixture' && model.components.length, 2);
  const worst = Math.max(...rows.map((r) => oodScore(model, r)));
  assert.ok(oodScore(model, [-3, 3]) > worst + 10, 'one group\'s x with the other\'s y');
  assert.ok(oodScore(model, [0, 0]) > worst, 'between the groups, where one Gaussian would put its centre');
  assert.ok(oodScore(model, [3.2, 2.9]) < worst);
});

test('tabular on mixed features: an unknown category and an infinite value are far', () => {
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

test('fitOodForCalibration, tabular: the mixture on every row, each row scored by the mixture fitted without its tenth', () => {
  const z = normal(5);
  const rows: RowValues[] = Array.from({ length: 300 }, () => [z(), z()]);
  const features = [num('x'), num('y')];
  const fitted = fitOodForCalibration(features, rows.slice(0, 200), rows.slice(200));
  assert.equal(fitted.crossFitted, true);
  assert.deepEqual(fitted.model, fitOod(features, rows));
  assert.equal(fitted.scores.length, 300);
  for (const i of [0, 7, 199, 200, 299]) {
    const without = fitOod(features, rows.filter((_, j) => j % MIXTURE_FOLDS !== i % MIXTURE_FOLDS));
    assert.equal(fitted.scores[i], oodScore(without, rows[i]), `row ${i}: scored without its fold`);
  }
  const json = JSON.parse(JSON.stringify(fitted.model)) as typeof fitted.model;
  assert.equal(oodScore(json, [0.3, -1]), oodScore(fitted.model, [0.3, -1]), 'read back from JSON, the same score');
});

test('profiles written before the mixture (one Gaussian, method mahalanobis) are scored as before', () => {
  const encoder = { columns: 2, features: [num('x'), num('y')].map((_, i) => ({ kind: 'numeric' as const, center: 0, scale: 1, column: i, missingColumn: null })) };
  const model = { method: 'mahalanobis' as const, encoder, mean: [1, 0], precision: [4, 0, 0, 1] };
  assert.equal(oodScore(model, [1, 0]), 0);
  assert.equal(oodScore(model, [2, 0]), 2);
  assert.equal(oodScore(model, [1, 3]), 3);
});

test('fitOodForCalibration, one image input: the image detector on every row, cross-fitted; past 1000 rows the rest scored as held out', () => {
  const z = normal(6);
  const side = 9;
  const d = side * side;
  const inputs = [{ name: 'im', datatype: 'FP32', rowShape: [1, side, side], firstFeature: 0, featureCount: d }];
  const features = Array.from({ length: d }, (_, i) => num(`im[${i}]`, 0, 1, 'im'));
  // A blob of ink near the centre, a little different each time.
  const blob = (): RowValues => {
    const cy = 4 + z() * 0.5;
    const cx = 4 + z() * 0.5;
    const r = 2 + Math.abs(z()) * 0.3;
    return Array.from({ length: d }, (_, i) => Math.max(0, Math.min(1, r + 0.5 - Math.hypot(Math.floor(i / side) - cy, (i % side) - cx))));
  };
  const rows = Array.from({ length: KNN_MAX_REFERENCE + 40 }, blob);
  const fitted = fitOodForCalibration(features, rows.slice(0, 700), rows.slice(700), inputs);
  assert.equal(fitted.crossFitted, true);
  assert.equal(fitted.model.method === 'knn' && fitted.model.rows, KNN_MAX_REFERENCE);
  assert.ok(fitted.model.method === 'knn' && fitted.model.image !== undefined);
  assert.equal(fitted.scores.length, rows.length);
  assert.deepEqual(fitted.scores.slice(KNN_MAX_REFERENCE), rows.slice(KNN_MAX_REFERENCE).map((r) => oodScore(fitted.model, r)));
  const worst = Math.max(...fitted.scores);
  assert.ok(oodScore(fitted.model, new Array(d).fill(0)) > worst, 'a blank image');
  assert.ok(oodScore(fitted.model, Array.from({ length: d }, (_, i) => (i % side < 3 ? 1 : 0))) > worst, 'a bar on the left');
  assert.equal(oodScore(fitted.model, [Infinity, ...new Array(d - 1).fill(0)]), Infinity);
  const json = JSON.parse(JSON.stringify(fitted.model)) as typeof fitted.model;
  assert.equal(oodScore(json, rows[3]), oodScore(fitted.model, rows[3]), 'read back from JSON, the same score');
  // Two inputs, or features that are not raw pixels: the plain knn detector, calibrated on held-out rows.
  const twoInputs = [inputs[0], { name: 'x', datatype: 'FP32', rowShape: [1], firstFeature: d, featureCount: 1 }];
  const plain = fitOodForCalibration([...features, num('x')], rows.slice(0, 100).map((r) => [...r, 0]), rows.slice(100, 150).map((r) => [...r, 0]), twoInputs);
  assert.equal(plain.crossFitted, false);
  assert.equal(plain.model.method === 'knn' && plain.model.image, undefined);
});
