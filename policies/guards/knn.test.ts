import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normal } from '../../test/helpers/seeded-normal.js';
import { knnFromDistances, knnMeanDistance, knnReference, squaredDistances } from './knn.js';

/** The mean of the k smallest Euclidean distances, the plain way. */
function brute(x: Float64Array, ref: Float64Array, rows: number, d: number, k: number): number {
  const dist = Array.from({ length: rows }, (_, r) => Math.sqrt(x.reduce((s, v, j) => s + (v - ref[r * d + j]) ** 2, 0))).sort((a, b) => a - b);
  return dist.slice(0, k).reduce((a, b) => a + b, 0) / k;
}

test('knnMeanDistance: the mean distance to the k nearest rows, for a mostly blank query (through its non-zero values) and a dense one', () => {
  const z = normal(11);
  const rows = 200;
  const d = 60;
  // Sparse rows, like images on a blank background.
  const ref = Float64Array.from({ length: rows * d }, () => (z() > 0.8 ? Math.abs(z()) : 0));
  const knn = knnReference(ref, rows, d, 5);
  for (let t = 0; t < 10; t++) {
    const sparse = Float64Array.from({ length: d }, () => (z() > 0.9 ? Math.abs(z()) : 0));
    const dense = Float64Array.from({ length: d }, () => z());
    assert.ok(Math.abs(knnMeanDistance(sparse, knn) - brute(sparse, ref, rows, d, 5)) < 1e-9);
    assert.ok(Math.abs(knnMeanDistance(dense, knn) - brute(dense, ref, rows, d, 5)) < 1e-9);
  }
  const row7 = ref.slice(7 * d, 8 * d);
  assert.ok(Math.abs(knnMeanDistance(row7, knn) - brute(row7, ref, rows, d, 5)) < 1e-9, 'a reference row itself (one distance is 0)');
  assert.equal(knnMeanDistance(new Float64Array(d).fill(0), knn), brute(new Float64Array(d), ref, rows, d, 5), 'a blank query');
  const broken = new Float64Array(d);
  broken[3] = NaN;
  assert.equal(knnMeanDistance(broken, knn), Infinity);
});

test('knnFromDistances: from the matrix of squared distances, the same as knnMeanDistance against the chosen rows, leaving the row itself out', () => {
  const z = normal(12);
  const n = 60;
  const d = 8;
  const x = Float64Array.from({ length: n * d }, () => z());
  const squared = squaredDistances(x, n, d);
  assert.ok(Math.abs(squared[3 * n + 5] - x.slice(3 * d, 4 * d).reduce((s, v, j) => s + (v - x[5 * d + j]) ** 2, 0)) < 1e-12);
  const among = Array.from({ length: n }, (_, i) => i).filter((i) => i % 3 !== 0);
  const chosen = Float64Array.from(among.flatMap((i) => [...x.slice(i * d, (i + 1) * d)]));
  const knn = knnReference(chosen, among.length, d, 4);
  const best = new Float64Array(4);
  for (const row of [0, 3, 30]) assert.ok(Math.abs(knnFromDistances(squared, n, row, among, best) - knnMeanDistance(x.slice(row * d, (row + 1) * d), knn)) < 1e-9, `row ${row}, not among them`);
  const others = among.filter((i) => i !== 4);
  const rest = knnReference(Float64Array.from(others.flatMap((i) => [...x.slice(i * d, (i + 1) * d)])), others.length, d, 4);
  assert.ok(Math.abs(knnFromDistances(squared, n, 4, among, best) - knnMeanDistance(x.slice(4 * d, 5 * d), rest)) < 1e-9, 'row 4, among them: its own distance left out');
});
