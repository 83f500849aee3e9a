import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InferResponse } from '../adapters/adapter.js';
import { coarsenAnswer } from './coarsen.js';

const answer: InferResponse = {
  outputs: [
    { name: 'label', datatype: 'INT64', shape: [2], data: new BigInt64Array([1n, 0n]) },
    { name: 'probabilities', datatype: 'FP32', shape: [2, 2], data: new Float32Array([0.114462, 0.885538, 0.61, 0.39]) },
  ],
};

test('scores are rounded to the configured decimals; other outputs are untouched', () => {
  const c = coarsenAnswer(answer, { decimals: 1, labelOnly: false });
  assert.equal(c.outputs[0], answer.outputs[0]);
  assert.deepEqual([...(c.outputs[1].data as Float32Array)].map((x) => Number(x.toFixed(6))), [0.1, 0.9, 0.6, 0.4]);
  assert.equal(c.outputs[1].datatype, 'FP32');
});

test('labelOnly turns each [N, K] score output into its argmax, INT64 [N]', () => {
  const c = coarsenAnswer(answer, { decimals: 1, labelOnly: true });
  assert.deepEqual(c.outputs[1].shape, [2]);
  assert.equal(c.outputs[1].datatype, 'INT64');
  assert.deepEqual([...(c.outputs[1].data as BigInt64Array)], [1n, 0n]);
});

test('an answer without float outputs is returned as it is', () => {
  const ints: InferResponse = { outputs: [answer.outputs[0]] };
  assert.equal(coarsenAnswer(ints, { decimals: 0, labelOnly: true }), ints);
});
