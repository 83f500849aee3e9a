import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Adapter, InferRequest, InferOptions, InferResponse, ModelMetadata } from '../../adapters/adapter.js';
import { createAdapter } from '../../adapters/registry.js';
import { profileInputs } from '../../policies/guards/features.js';
import { ASSETS } from '../../test/helpers/assets.js';
import { buildConfig } from '../config.js';
import { areProbabilities, modelAnswers, scoreOutput } from './answers.js';
import { featureProfiles, squeezeCalibration } from './build.js';
import { readReferenceData } from './read-data.js';

test('scoreOutput and areProbabilities: which output holds class scores, and whether they are logits', () => {
  assert.equal(scoreOutput([{ name: 'label', datatype: 'INT64', shape: [-1] }, { name: 'probabilities', datatype: 'FP32', shape: [-1, 2] }])?.name, 'probabilities');
  assert.equal(scoreOutput([{ name: 'Plus214_Output_0', datatype: 'FP32', shape: [1, 10] }])?.name, 'Plus214_Output_0');
  assert.equal(scoreOutput([{ name: 'y', datatype: 'FP32', shape: [-1, 1] }, { name: 'l', datatype: 'INT64', shape: [-1, 3] }]), undefined);
  assert.equal(areProbabilities([Float64Array.of(0.2, 0.8), Float64Array.of(1, 0)]), true);
  assert.equal(areProbabilities([Float64Array.of(0.2, 0.8), Float64Array.of(8.6, -13)]), false);
});

/** The real adapter, counting its inference calls. */
function counting(real: Adapter): { adapter: Adapter; calls: () => number } {
  let calls = 0;
  const adapter: Adapter = {
    kind: real.kind,
    load: () => real.load(),
    metadata: () => real.metadata(),
    infer(request: InferRequest, options: InferOptions): Promise<InferResponse> {
      calls++;
      return real.infer(request, options);
    },
    ready: () => real.ready(),
    close: () => real.close(),
  };
  return { adapter, calls: () => calls };
}

test('modelAnswers: the iris model answers every row once, and the squeeze calibration reuses those answers', async () => {
  const config = buildConfig({ auth: { insecureNoAuth: true }, models: { iris: { versions: { '1': { backend: { kind: 'onnx', path: join(ASSETS, 'models/iris_mlp_dynamic.onnx') } } } } } }, '/');
  const backend = config.models.iris?.versions['1']?.backend;
  assert.ok(backend !== undefined);
  const { adapter, calls } = counting(createAdapter(backend));
  await adapter.load();
  try {
    const metadata = adapter.metadata();
    const inputs = profileInputs(metadata.inputs);
    const data = await readReferenceData(join(ASSETS, 'datasets/iris.csv'), inputs, metadata, { input: ['SepalLengthCm', 'SepalWidthCm', 'PetalLengthCm', 'PetalWidthCm'] });
    const answers = await modelAnswers(adapter, metadata, inputs, data.rows, 10_000);
    assert.ok(answers !== undefined);
    assert.deepEqual([answers.output, answers.classes, answers.logits, answers.batch], ['output', 3, true, -1]);
    assert.equal(answers.rows.length, 150);
    assert.ok(answers.rows.every((r) => r.length === 3));
    assert.equal(calls(), 1, '150 rows: one call of a dynamic batch');
    const squeezed = await squeezeCalibration(adapter, answers, inputs, featureProfiles(inputs, data.rows), 0.01, 10_000);
    assert.equal(squeezed?.rows, 150);
    assert.equal(calls(), 2, 'the squeeze calibration asks only for the squeezed copies (one squeezer-major batch)');

    const labelsOnly: ModelMetadata = { ...metadata, outputs: [{ name: 'label', datatype: 'INT64', shape: [-1] }] };
    assert.equal(await modelAnswers(adapter, labelsOnly, inputs, data.rows, 10_000), undefined);
    assert.equal(calls(), 2, 'a model without a class-score output is not asked');
  } finally {
    await adapter.close();
  }
});
