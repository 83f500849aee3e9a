import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InferResponse, InferTensor } from '../../adapters/adapter.js';
import { pairedClasses, rowClasses } from './labels.js';

const tensor = (name: string, datatype: InferTensor['datatype'], shape: number[], data: InferTensor['data']): InferTensor => ({ name, datatype, shape, data });

test('scores [N, 3]: the arg-max of each row, the first on a tie', () => {
  const t = tensor('probabilities', 'FP32', [4, 3], Float32Array.from([0.1, 0.7, 0.2, 0.9, 0.05, 0.05, 0.2, 0.3, 0.5, 0.4, 0.4, 0.2]));
  assert.deepEqual(rowClasses(t), ['1', '0', '2', '0']);
  // FP64 as a plain JSON array.
  assert.deepEqual(rowClasses(tensor('p', 'FP64', [2, 2], [0.3, 0.7, 0.6, 0.4])), ['1', '0']);
  // A small move of the scores that keeps the decision keeps the class.
  const moved = tensor('probabilities', 'FP32', [4, 3], Float32Array.from([0.12, 0.66, 0.22, 0.85, 0.1, 0.05, 0.2, 0.35, 0.45, 0.41, 0.39, 0.2]));
  assert.deepEqual(rowClasses(moved), rowClasses(t));
});

test('a row of scores with a NaN has the class NaN, never a real class', () => {
  // A broken canary answering NaN must disagree with stable: an arg-max starting at 0 made every
  // NaN row "class 0", which agrees with a stable version that mostly predicts class 0.
  const t = tensor('p', 'FP32', [4, 2], Float32Array.from([Number.NaN, Number.NaN, Number.NaN, 0.9, 0.2, Number.NaN, 0.9, 0.1]));
  assert.deepEqual(rowClasses(t), ['NaN', 'NaN', 'NaN', '0']);
  const stable = tensor('p', 'FP32', [2, 2], Float32Array.from([0.9, 0.1, 0.8, 0.2]));
  const broken = tensor('p', 'FP32', [2, 2], Float32Array.from([Number.NaN, Number.NaN, Number.NaN, Number.NaN]));
  assert.deepEqual(pairedClasses({ outputs: [broken] }, { outputs: [stable] }), { canary: ['NaN', 'NaN'], stable: ['0', '0'] });
  // A regression's NaN is NaN too.
  assert.deepEqual(rowClasses(tensor('y', 'FP32', [1, 1], [Number.NaN])), ['NaN']);
});

test('labels: INT64 [N], BYTES as strings or bytes, BOOL', () => {
  assert.deepEqual(rowClasses(tensor('label', 'INT64', [3], BigInt64Array.from([0n, 2n, 1n]))), ['0', '2', '1']);
  assert.deepEqual(rowClasses(tensor('label', 'INT32', [2, 1], Int32Array.from([7, 8]))), ['7', '8']);
  assert.deepEqual(rowClasses(tensor('label', 'BYTES', [3], ['cat', 'dog', 'cat'])), ['cat', 'dog', 'cat']);
  const enc = new TextEncoder();
  assert.deepEqual(rowClasses(tensor('label', 'BYTES', [2], [enc.encode('chat'), enc.encode('chien')])), ['chat', 'chien']);
  assert.deepEqual(rowClasses(tensor('ok', 'BOOL', [2], [true, false])), ['true', 'false']);
  // An integer output of several values per row keeps them all, in order.
  assert.deepEqual(rowClasses(tensor('top2', 'INT64', [2, 2], BigInt64Array.from([3n, 1n, 0n, 2n]))), ['3,1', '0,2']);
});

test('one float per row (a regression): the number at 6 significant digits', () => {
  const t = tensor('y', 'FP32', [4, 1], Float64Array.from([0.123456789, 1234567.8, 2, -0.000012345678]));
  assert.deepEqual(rowClasses(t), ['0.123457', '1.23457e+6', '2.00000', '-0.0000123457']);
  // Equal within 1e-6 relative: the same class; beyond it, not.
  assert.deepEqual(rowClasses(tensor('y', 'FP64', [1], [0.1234561])), rowClasses(tensor('y', 'FP64', [1], [0.1234564])));
  assert.notDeepEqual(rowClasses(tensor('y', 'FP64', [1], [0.123456])), rowClasses(tensor('y', 'FP64', [1], [0.123457])));
});

test('a tensor without rows, or whose data do not fill its rows, has no classes', () => {
  assert.equal(rowClasses(tensor('y', 'FP32', [0, 3], new Float32Array(0))), undefined);
  assert.equal(rowClasses(tensor('y', 'FP32', [2, 3], new Float32Array(5))), undefined);
  assert.equal(rowClasses(tensor('y', 'FP32', [3], new Float32Array(0))), undefined);
  assert.equal(rowClasses(tensor('y', 'INT64', [], [1])), undefined);
});

test('pairedClasses: the first output of the canary\'s answer that stable\'s has too', () => {
  const scores = (v: number[]) => tensor('probabilities', 'FP32', [2, 2], Float32Array.from(v));
  const label = (v: string[]) => tensor('label', 'BYTES', [2], v);
  const canary: InferResponse = { outputs: [tensor('extra', 'FP32', [2, 1], [1, 2]), label(['a', 'b']), scores([0.9, 0.1, 0.2, 0.8])] };
  const stable: InferResponse = { outputs: [scores([0.1, 0.9, 0.3, 0.7]), label(['a', 'a'])] };
  assert.deepEqual(pairedClasses(canary, stable), { canary: ['a', 'b'], stable: ['a', 'a'] }, 'label comes first in the canary\'s answer');
  assert.deepEqual(pairedClasses(stable, canary), { canary: ['1', '1'], stable: ['0', '1'] }, 'in the other order, the scores');
  assert.equal(pairedClasses(canary, { outputs: [tensor('other', 'INT64', [2], [1, 2])] }), undefined, 'no shared output');
  // A shared output whose row counts differ cannot be compared row by row.
  assert.equal(pairedClasses({ outputs: [label(['a', 'b'])] }, { outputs: [tensor('label', 'BYTES', [3], ['a', 'b', 'c'])] }), undefined);
  assert.equal(pairedClasses({ outputs: [] }, stable), undefined);
});
