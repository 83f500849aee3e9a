/**
 * The OOD score runs on the request path: an iris row (4 features, a Gaussian mixture of up to 4
 * components) must cost well under two microseconds (about 0.15 µs with iris's two components), and an MNIST row against 1000 reference images (knn over 784 pixels) a fraction of
 * a millisecond. Bounds are loose (a loaded CI machine), the typical figures are far below them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RowValues } from './features.js';
import { fitOod, fitOodForCalibration, oodScore } from './ood.js';
import type { FeatureProfile } from './profile.js';

const num = (name: string, input = name): FeatureProfile => ({ kind: 'numeric', name, input, integer: false, min: 0, max: 8, mean: 3, std: 1.5, quantiles: [], missingRate: 0 });

function perCallNs(score: () => number, calls: number): number {
  let sink = 0;
  for (let i = 0; i < Math.min(calls, 10_000); i++) sink += score();
  const start = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) sink += score();
  const ns = Number(process.hrtime.bigint() - start) / calls;
  assert.ok(!Number.isNaN(sink));
  return ns;
}

test('an iris row (4 features, a Gaussian mixture) scores in well under two microseconds', () => {
  const rows: RowValues[] = Array.from({ length: 105 }, (_, i) => [4 + (i % 30) / 8, 2 + (i % 17) / 7, 1 + (i % 50) / 8, (i % 25) / 10]);
  const model = fitOod([0, 1, 2, 3].map((i) => num(`input[${i}]`, 'input')), rows);
  const row: RowValues = [5.1, 3.5, 1.4, 0.2];
  const ns = perCallNs(() => oodScore(model, row), 1_000_000);
  assert.ok(ns < 2000, `${ns.toFixed(0)} ns per score`);
});

test('an MNIST row against 1000 reference images (knn, 784 pixels) scores in under 5 ms', () => {
  const d = 784;
  const inputs = [{ name: 'Input3', datatype: 'FP32', rowShape: [1, 28, 28], firstFeature: 0, featureCount: d }];
  const features = Array.from({ length: d }, (_, i) => num(`Input3[${i}]`, 'Input3'));
  const rows: RowValues[] = Array.from({ length: 1000 }, (_, r) => Array.from({ length: d }, (_, j) => ((r * 31 + j * 17) % 97) / 97));
  const model = fitOod(features, rows, inputs);
  const row: RowValues = Array.from({ length: d }, (_, j) => ((j * 13) % 89) / 89);
  const ns = perCallNs(() => oodScore(model, row), 200);
  assert.ok(ns < 5e6, `${(ns / 1e6).toFixed(2)} ms per score`);
});

test('an MNIST-sized row against 500 reference images with the image detector (pixels, edges, statistics) scores in under 5 ms', () => {
  const d = 784;
  const inputs = [{ name: 'Input3', datatype: 'FP32', rowShape: [1, 28, 28], firstFeature: 0, featureCount: d }];
  const features = Array.from({ length: d }, (_, i) => num(`Input3[${i}]`, 'Input3'));
  // Strokes on a blank background, a little different in each image.
  const image = (r: number): RowValues => Array.from({ length: d }, (_, j) => {
    const y = Math.floor(j / 28);
    const x = j % 28;
    return y > 3 && y < 24 && Math.abs(x - 14 - ((r % 7) - 3) * (y - 14) / 10) < 2 ? 1 : 0;
  });
  const rows = Array.from({ length: 500 }, (_, r) => image(r));
  const fitted = fitOodForCalibration(features, rows.slice(0, 350), rows.slice(350), inputs);
  assert.ok(fitted.model.method === 'knn' && fitted.model.image !== undefined);
  const row = image(3);
  const ns = perCallNs(() => oodScore(fitted.model, row), 500);
  assert.ok(ns < 5e6, `${(ns / 1e6).toFixed(2)} ms per score`);
});
