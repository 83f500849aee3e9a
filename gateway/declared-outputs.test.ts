import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InferRequest, InferResponse, InferTensor, ModelMetadata } from '../adapters/adapter.js';
import { minimiseOutputs, undeclaredOutputs } from './declared-outputs.js';

const MD: ModelMetadata = {
  platform: 'test',
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3] }],
  outputs: [{ name: 'label', datatype: 'INT64', shape: [-1] }, { name: 'probabilities', datatype: 'FP32', shape: [-1, 2] }],
  nonTensorOutputs: ['zipmap'],
};
const t = (name: string): InferTensor => ({ name, datatype: 'FP32', shape: [1], data: [1] });
const REQ: InferRequest = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] };
const names = (r: InferResponse) => r.outputs.map((o) => o.name);

test('an answer of declared outputs only is returned as it is, not copied', () => {
  const resp: InferResponse = { outputs: [t('label'), t('probabilities')] };
  assert.equal(minimiseOutputs(resp, MD, REQ), resp);
  assert.equal(minimiseOutputs(resp, MD, { ...REQ, outputs: [{ name: 'probabilities' }, { name: 'label' }] }), resp);
});

test('outputs the model does not declare are dropped wherever they are, and counted', () => {
  for (const order of [['embedding', 'label', 'probabilities'], ['label', 'logits', 'probabilities', 'embedding'], ['label', 'probabilities', 'zipmap']]) {
    const resp: InferResponse = { outputs: order.map(t), parameters: { sequence_end: true } };
    const out = minimiseOutputs(resp, MD, REQ);
    assert.deepEqual(names(out), ['label', 'probabilities'], order.join());
    assert.deepEqual(out.parameters, { sequence_end: true });
    assert.equal(undeclaredOutputs(resp, MD), order.length - 2, 'a non-tensor output is not declared as a tensor either');
  }
  assert.equal(undeclaredOutputs({ outputs: [t('label')] }, MD), 0);
});

test('with outputs requested, only those reach the client: declared ones not asked for are trimmed, not counted', () => {
  const resp: InferResponse = { outputs: [t('label'), t('probabilities'), t('embedding')] };
  const out = minimiseOutputs(resp, MD, { ...REQ, outputs: [{ name: 'probabilities' }] });
  assert.deepEqual(names(out), ['probabilities']);
  assert.equal(out.parameters, undefined);
  assert.equal(undeclaredOutputs(resp, MD), 1);
});

test('each metadata object is its own set of names (a reload with new metadata is read anew)', () => {
  const other: ModelMetadata = { ...MD, outputs: [{ name: 'embedding', datatype: 'FP32', shape: [-1, 8] }] };
  const resp: InferResponse = { outputs: [t('label'), t('embedding')] };
  assert.deepEqual(names(minimiseOutputs(resp, MD, REQ)), ['label']);
  assert.deepEqual(names(minimiseOutputs(resp, other, REQ)), ['embedding']);
  assert.deepEqual(names(minimiseOutputs(resp, MD, REQ)), ['label']);
});
