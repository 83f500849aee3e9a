import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InferResponse } from '../../adapters/adapter.js';
import { ArmFigures, MAX_CLASSES } from './arm-figures.js';

const labels = (data: unknown[]): InferResponse => ({ outputs: [{ name: 'label', datatype: 'INT64', shape: [data.length], data }] });
const scores = (rows: number[][]): InferResponse => ({ outputs: [{ name: 'p', datatype: 'FP32', shape: [rows.length, rows[0]?.length ?? 0], data: Float32Array.from(rows.flat()) }] });

test('counts requests, errors by code, latency percentiles and labels per version', () => {
  const f = new ArmFigures();
  for (let i = 0; i < 98; i++) f.record('m', '1', 2, undefined, undefined, labels([0, 1]));
  f.record('m', '1', 500, 'backend', 'BACKEND_TIMEOUT', undefined);
  f.record('m', '1', 3, 'backend', 'BACKEND_ERROR', undefined);
  f.record('m', '2', 1, undefined, undefined, scores([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]));
  const s = f.summary('m').versions;
  assert.equal(s['1']?.requests, 100);
  assert.equal(s['1']?.errors, 2);
  assert.equal(s['1']?.errorRate, 0.02);
  assert.deepEqual(s['1']?.errorsByCode, { BACKEND_TIMEOUT: 1, BACKEND_ERROR: 1 });
  const lat = s['1']?.latencyMs;
  assert.ok(lat !== null && lat !== undefined);
  // Bucket bounds are 1.25× apart: a percentile is within 25 % above the true value.
  assert.ok(lat.p50 >= 2 && lat.p50 <= 2.5, `p50 ${lat.p50}`);
  assert.ok(lat.p99 >= 3 && lat.p99 <= 3.75, `p99 ${lat.p99}`);
  assert.deepEqual(s['1']?.predictions, { output: 'label', counts: { '0': 98, '1': 98 } });
  assert.deepEqual(s['2']?.predictions, { output: 'p', counts: { '1': 2, '0': 1 } }, 'arg-max of each row of scores');
});

test('a continuous output cannot grow the label table past its cap', () => {
  const f = new ArmFigures();
  for (let i = 0; i < 100; i++) f.record('m', '1', 1, undefined, undefined, labels([`class-${i}`]));
  const counts = f.summary('m').versions['1']?.predictions?.counts ?? {};
  assert.equal(Object.keys(counts).length, MAX_CLASSES + 1);
  assert.equal(counts.other, 100 - MAX_CLASSES);
});

test('a float per row (a regression, one probability) has no label and is not counted', () => {
  const f = new ArmFigures();
  f.record('m', '1', 1, undefined, undefined, { outputs: [{ name: 'y', datatype: 'FP64', shape: [2], data: Float64Array.from([0.2, 0.9]) }] });
  assert.deepEqual(f.summary('m').versions['1']?.predictions, { output: 'y', counts: {} });
});

test('client mistakes are counted apart: a burst of 400s leaves the error rate and the latency untouched', () => {
  const f = new ArmFigures();
  for (let i = 0; i < 10; i++) f.record('m', '1', 40, undefined, undefined, labels([1]));
  for (let i = 0; i < 1000; i++) f.record('m', '1', 0.1, 'client', 'SHAPE_MISMATCH', undefined);
  const s = f.summary('m').versions['1'];
  assert.equal(s?.requests, 1010);
  assert.equal(s?.clientErrors, 1000);
  assert.equal(s?.errors, 0);
  assert.equal(s?.errorRate, 0);
  assert.ok((s?.latencyMs?.p50 ?? 0) >= 40, 'quick refusals do not make the version look fast');
  assert.deepEqual(s?.errorsByCode, { SHAPE_MISMATCH: 1000 });
});

test('the error rate is the share of requests that reached the version and failed there; gateway faults are apart', () => {
  const f = new ArmFigures();
  for (let i = 0; i < 3; i++) f.record('m', '1', 1, undefined, undefined, labels([1]));
  f.record('m', '1', 1, 'backend', 'BACKEND_ERROR', undefined);
  f.record('m', '1', 1, 'gateway', 'QUOTA_STORE_UNAVAILABLE', undefined);
  f.record('m', '1', 1, 'client', 'RATE_LIMITED', undefined);
  const s = f.summary('m').versions['1'];
  assert.equal(s?.errorRate, 0.25);
  assert.equal(s?.gatewayErrors, 1);
});

test('figures of models and versions a reload removed are forgotten', () => {
  const f = new ArmFigures();
  f.record('gone', '1', 1, undefined, undefined, labels([1]));
  f.record('m', '1', 1, undefined, undefined, labels([1]));
  f.record('m', '2', 1, undefined, undefined, labels([1]));
  f.retain(new Map([['m', { versions: new Map([['2', {}]]) }]]));
  assert.deepEqual(f.summary('gone').versions, {});
  assert.deepEqual(Object.keys(f.summary('m').versions), ['2']);
});
