import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { InferRequest, ModelMetadata, TensorMetadata } from '../adapters/adapter.js';
import { ASSETS } from '../test/helpers/assets.js';
import { isGatewayError, type ErrorCode } from './errors.js';
import { parseInferRequest } from './infer-request.js';
import { validateAgainstMetadata } from './validate-request.js';

interface Sample {
  oip_metadata: { platform: string; inputs: TensorMetadata[]; outputs: (TensorMetadata & { non_tensor?: boolean })[] };
  request: unknown;
}
const samples = JSON.parse(
  readFileSync(join(ASSETS, 'samples/model-samples.json'), 'utf8'),
) as Record<string, Sample>;

/** The sample's metadata as the adapters report it: non-tensor outputs listed apart. */
function metadataOf(name: string): ModelMetadata {
  const md = samples[name].oip_metadata;
  return {
    platform: md.platform,
    inputs: md.inputs,
    outputs: md.outputs.filter((o) => o.non_tensor !== true),
    nonTensorOutputs: md.outputs.filter((o) => o.non_tensor === true).map((o) => o.name),
  };
}

function requestOf(json: unknown): InferRequest {
  return parseInferRequest(Buffer.from(JSON.stringify(json)), undefined, { maxElements: 1e6, nonFinite: 'allow', maxJsonDepth: 64, unknownMembers: 'refuse' });
}

const titanicMd = metadataOf('titanic_logreg_nozipmap');
const titanicJson = samples.titanic_logreg_nozipmap.request as { inputs: { name: string; shape: number[]; datatype: string; data: unknown[] }[] };

/** The titanic request with one input changed. */
function titanicWith(name: string, change: Record<string, unknown>): InferRequest {
  return requestOf({ ...titanicJson, inputs: titanicJson.inputs.map((t) => (t.name === name ? { ...t, ...change } : t)) });
}

function rejects(fn: () => unknown, code: ErrorCode, detail?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isGatewayError(e), String(e));
    assert.equal(e.code, code, e.message);
    assert.equal(e.status, 400);
    if (detail !== undefined) assert.match(e.detail ?? '', detail);
    return true;
  });
}

test('each model sample request is valid for its model', () => {
  for (const name of ['iris_mlp_dynamic', 'mnist_cntk_opset7', 'titanic_logreg_nozipmap']) {
    const md = metadataOf(name);
    const req = requestOf(samples[name].request);
    validateAgainstMetadata(req, md);
    validateAgainstMetadata(req, md); // the second call reads the cached lookups
  }
});

test('inputs may come in any order', () => {
  validateAgainstMetadata(requestOf({ inputs: [...titanicJson.inputs].reverse() }), titanicMd);
});

test('an input the model does not have is UNKNOWN_INPUT', () => {
  const req = requestOf({ inputs: [...titanicJson.inputs, { name: 'cabin', datatype: 'BYTES', shape: [3, 1], data: ['a', 'b', 'c'] }] });
  rejects(() => validateAgainstMetadata(req, titanicMd), 'UNKNOWN_INPUT', /'cabin'/);
});

test('a model input left out is MISSING_INPUT', () => {
  const req = requestOf({ inputs: titanicJson.inputs.filter((t) => t.name !== 'fare') });
  rejects(() => validateAgainstMetadata(req, titanicMd), 'MISSING_INPUT', /'fare'/);
});

test('a datatype other than the model\'s is DATATYPE_MISMATCH naming both', () => {
  rejects(() => validateAgainstMetadata(titanicWith('age', { datatype: 'FP64' }), titanicMd), 'DATATYPE_MISMATCH', /'age': expected FP32, got FP64/);
});

test('a different rank or fixed dimension is SHAPE_MISMATCH, a dynamic dimension takes any size', () => {
  rejects(() => validateAgainstMetadata(titanicWith('age', { shape: [3], data: [1, 2, 3] }), titanicMd), 'SHAPE_MISMATCH', /expected \[-1,1\], got \[3\]/);
  rejects(() => validateAgainstMetadata(titanicWith('age', { shape: [1, 3], data: [1, 2, 3] }), titanicMd), 'SHAPE_MISMATCH');
  const mnist = metadataOf('mnist_cntk_opset7');
  rejects(() => validateAgainstMetadata(requestOf({ inputs: [{ name: 'Input3', datatype: 'FP32', shape: [2, 1, 28, 28], data: new Array(2 * 784).fill(0) }] }), mnist), 'SHAPE_MISMATCH');
  const iris = metadataOf('iris_mlp_dynamic');
  validateAgainstMetadata(requestOf({ inputs: [{ name: 'input', datatype: 'FP32', shape: [0, 4], data: [] }] }), iris, true);
  validateAgainstMetadata(requestOf({ inputs: [{ name: 'input', datatype: 'FP32', shape: [5, 4], data: new Array(20).fill(1) }] }), iris);
});

test('a zero-size dimension is EMPTY_TENSOR unless the model allows empty batches, and then only in a dynamic batch dimension', () => {
  const md: ModelMetadata = {
    platform: 'test',
    inputs: [{ name: 'a', datatype: 'FP32', shape: [-1, -1] }, { name: 'b', datatype: 'FP32', shape: [-1, 2] }],
    outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }],
  };
  const ones = (shape: number[]) => new Array(shape.reduce((n, d) => n * d, 1)).fill(1);
  const req = (a: number[], b: number[]) => requestOf({
    inputs: [{ name: 'a', datatype: 'FP32', shape: a, data: ones(a) }, { name: 'b', datatype: 'FP32', shape: b, data: ones(b) }],
  });
  rejects(() => validateAgainstMetadata(req([0, 3], [0, 2]), md), 'EMPTY_TENSOR', /'a' has an empty batch/);
  rejects(() => validateAgainstMetadata(req([0, 3], [0, 2]), md, false), 'EMPTY_TENSOR');
  validateAgainstMetadata(req([0, 3], [0, 2]), md, true);
  // Allowed in the batch dimension only: a zero elsewhere empties every row.
  rejects(() => validateAgainstMetadata(req([0, 0], [0, 2]), md, true), 'EMPTY_TENSOR', /'a' has a zero-size dimension 1/);
  rejects(() => validateAgainstMetadata(req([1, 0], [1, 2]), md, true), 'EMPTY_TENSOR', /dimension 1/);
  // The other inputs still have to agree on the batch.
  rejects(() => validateAgainstMetadata(req([0, 3], [1, 2]), md, true), 'BATCH_MISMATCH');
  // A batch dimension the metadata fixes is not the model's to leave empty (even a fixed 0).
  const fixed: ModelMetadata = { ...md, inputs: [{ name: 'a', datatype: 'FP32', shape: [0, 3] }] };
  rejects(() => validateAgainstMetadata(requestOf({ inputs: [{ name: 'a', datatype: 'FP32', shape: [0, 3], data: [] }] }), fixed, true), 'EMPTY_TENSOR', /zero-size dimension 0/);
  // A mismatch of rank or fixed dimension is still a SHAPE_MISMATCH first.
  rejects(() => validateAgainstMetadata(req([0, 3], [0, 3]), md, true), 'SHAPE_MISMATCH');
});

test('inputs that disagree on a dynamic batch dimension are BATCH_MISMATCH', () => {
  const req = titanicWith('fare', { shape: [2, 1], data: [[1], [2]] });
  rejects(() => validateAgainstMetadata(req, titanicMd), 'BATCH_MISMATCH', /'pclass' has batch 3, input 'fare' has 2/);
});

test('a model with fixed or single dynamic batch dimensions has no batch check to fail', () => {
  const md: ModelMetadata = {
    platform: 'test',
    inputs: [{ name: 'a', datatype: 'FP32', shape: [-1, 2] }, { name: 'b', datatype: 'FP32', shape: [3] }],
    outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }],
  };
  validateAgainstMetadata(requestOf({ inputs: [{ name: 'a', datatype: 'FP32', shape: [1, 2], data: [1, 2] }, { name: 'b', datatype: 'FP32', shape: [3], data: [1, 2, 3] }] }), md);
});

test('a requested output the model does not have is UNKNOWN_OUTPUT', () => {
  rejects(() => validateAgainstMetadata(requestOf({ ...titanicJson, outputs: [{ name: 'label' }, { name: 'score' }] }), titanicMd), 'UNKNOWN_OUTPUT', /'score'/);
  validateAgainstMetadata(requestOf({ ...titanicJson, outputs: [{ name: 'probabilities' }] }), titanicMd);
});

test('requesting a non-tensor output is UNKNOWN_OUTPUT saying it is not a tensor', () => {
  const md = metadataOf('iris_rf_zipmap');
  assert.deepEqual(md.nonTensorOutputs, ['output_probability']);
  const inputs = [{ name: 'float_input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }];
  validateAgainstMetadata(requestOf({ inputs, outputs: [{ name: 'output_label' }] }), md);
  rejects(() => validateAgainstMetadata(requestOf({ inputs, outputs: [{ name: 'output_probability' }] }), md), 'UNKNOWN_OUTPUT', /not a tensor/);
});

test('the same request validates differently against different metadata objects', () => {
  const req = requestOf({ inputs: [{ name: 'x', datatype: 'INT32', shape: [2], data: [1, 2] }] });
  const a: ModelMetadata = { platform: 't', inputs: [{ name: 'x', datatype: 'INT32', shape: [-1] }], outputs: [] };
  const b: ModelMetadata = { platform: 't', inputs: [{ name: 'y', datatype: 'INT32', shape: [-1] }], outputs: [] };
  validateAgainstMetadata(req, a);
  rejects(() => validateAgainstMetadata(req, b), 'UNKNOWN_INPUT');
  validateAgainstMetadata(req, a);
});
