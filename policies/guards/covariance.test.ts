import assert from 'node:assert/strict';
import { test } from 'node:test';
import { shrunkPrecision } from './covariance.js';
import { normal } from '../../test/helpers/seeded-normal.js';

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
