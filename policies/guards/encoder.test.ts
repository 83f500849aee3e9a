import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encode, fitEncoder } from './encoder.js';
import type { FeatureProfile } from './profile.js';

const num = (name: string, mean: number, std: number, missingRate = 0, input = name): FeatureProfile => ({ kind: 'numeric', name, input, integer: false, min: 0, max: 1, mean, std, quantiles: [], missingRate });
const cat = (name: string, categories: string[], missingRate = 0): FeatureProfile => ({ kind: 'categorical', name, input: name, categories: Object.fromEntries(categories.map((c) => [c, 1 / categories.length])), missingRate });

test('fitEncoder: standardised numbers, missing indicators where the reference had missing values, sorted one-hot with unknown', () => {
  const spec = fitEncoder([num('age', 30, 10, 0.2), cat('sex', ['male', 'female']), num('c', 5, 0)]);
  assert.equal(spec.columns, 2 + 3 + 1);
  assert.deepEqual(spec.features, [
    { kind: 'numeric', center: 30, scale: 10, column: 0, missingColumn: 1 },
    { kind: 'categorical', column: 2, categories: ['female', 'male'], unknownColumn: 4, missingColumn: null },
    { kind: 'numeric', center: 5, scale: 1, column: 5, missingColumn: null },
  ]);
});

test('fitEncoder: an image input keeps raw values (centre 0, scale 1)', () => {
  const inputs = [{ name: 'im', datatype: 'FP32', rowShape: [1, 8, 8], firstFeature: 0, featureCount: 64 }];
  const spec = fitEncoder([num('im[0]', 0.3, 0.01, 0, 'im')], inputs);
  assert.deepEqual(spec.features[0], { kind: 'numeric', center: 0, scale: 1, column: 0, missingColumn: null });
});

test('encode: values, missing, unknown categories, a number where a category belongs; the buffer is overwritten', () => {
  const spec = fitEncoder([num('age', 30, 10, 0.2), cat('sex', ['male', 'female']), num('fare', 10, 5)]);
  const out = new Float64Array(spec.columns).fill(9);
  encode(spec, [40, 'male', 0], out);
  assert.deepEqual([...out], [1, 0, 0, 1, 0, -2]);
  encode(spec, [null, 'other', null], out);
  assert.deepEqual([...out], [0, 1, 0, 0, 1, 0], 'missing age: indicator; unknown sex; missing fare with no indicator: the centre');
  encode(spec, [Infinity, 3, 'text'], out);
  assert.deepEqual([...out], [Infinity, 0, 0, 0, 1, 0]);
  encode(spec, [30, null, 10], out);
  assert.deepEqual([...out], [0, 0, 0, 0, 0, 0], 'a missing category with no indicator is all zeros');
});

test('encode: many categories are looked up by a map, with the same result as a scan', () => {
  const names = Array.from({ length: 40 }, (_, i) => `c${i}`);
  const spec = fitEncoder([cat('id', names, 0.1)]);
  const out = new Float64Array(spec.columns);
  const sorted = [...names].sort();
  for (const c of ['c0', 'c17', 'c39']) {
    encode(spec, [c], out);
    assert.equal(out[sorted.indexOf(c)], 1);
    assert.equal(out.reduce((a, b) => a + b, 0), 1);
  }
  encode(spec, ['__proto__'], out);
  assert.equal(out[40], 1, 'unknown');
  encode(spec, [null], out);
  assert.equal(out[41], 1, 'missing');
});
