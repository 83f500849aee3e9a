/**
 * The real Titanic model (../shared/assets, onnxruntime-node in this process) served as an OIP v2
 * backend over HTTP on 127.0.0.1, whose behaviour a test switches: `normal` answers what the model
 * says; `fail` answers 500 (a backend that starts failing); `drift` answers every passenger as a
 * survivor at 0.97 (a backend whose outputs drift: what a broken feature pipeline in front of a
 * model looks like from outside). Built on the fake OIP backend of backends.ts, so calls are
 * recorded and counted.
 */
import { join } from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { ASSETS } from './assets.js';
import { error500, startFakeOipBackend, type FakeOipBackend, type OipInferRequestJson, type OipModelMetadataJson, type OipTensorJson } from './backends.js';

export const TITANIC_FILE = join(ASSETS, 'models/titanic_logreg_nozipmap.onnx');

export type TitanicMode = 'normal' | 'fail' | 'drift';

export interface TitanicBackend extends FakeOipBackend {
  setMode(mode: TitanicMode): void;
  mode(): TitanicMode;
}

export const TITANIC_METADATA: OipModelMetadataJson = {
  name: 'titanic',
  versions: ['1'],
  platform: 'onnxruntime',
  inputs: [
    { name: 'pclass', datatype: 'INT64', shape: [-1, 1] },
    { name: 'sex', datatype: 'BYTES', shape: [-1, 1] },
    { name: 'age', datatype: 'FP32', shape: [-1, 1] },
    { name: 'fare', datatype: 'FP32', shape: [-1, 1] },
    { name: 'embarked', datatype: 'BYTES', shape: [-1, 1] },
  ],
  outputs: [
    { name: 'label', datatype: 'INT64', shape: [-1] },
    { name: 'probabilities', datatype: 'FP32', shape: [-1, 2] },
  ],
};

function tensorOf(t: OipTensorJson): Tensor {
  const data = t.data.flat(Infinity as 1) as unknown[];
  if (t.datatype === 'INT64') return new Tensor('int64', BigInt64Array.from(data.map((v) => BigInt(v as number))), t.shape);
  if (t.datatype === 'FP32') return new Tensor('float32', Float32Array.from(data.map((v) => (v === 'NaN' ? Number.NaN : Number(v)))), t.shape);
  return new Tensor('string', data.map(String), t.shape);
}

export async function startTitanicBackend(file = TITANIC_FILE): Promise<TitanicBackend> {
  const session = await InferenceSession.create(file, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  let mode: TitanicMode = 'normal';
  const backend = await startFakeOipBackend(TITANIC_METADATA, async (req: OipInferRequestJson) => {
    const feeds: Record<string, Tensor> = {};
    for (const t of req.inputs) feeds[t.name] = tensorOf(t);
    const out = await session.run(feeds);
    const label = out.label as Tensor;
    const probs = out.probabilities as Tensor;
    const rows = probs.dims[0] as number;
    const labels = Array.from(label.data as BigInt64Array, Number);
    let p = Array.from(probs.data as Float32Array);
    if (mode === 'drift') {
      labels.fill(1);
      p = Array.from({ length: rows * 2 }, (_, i) => (i % 2 === 0 ? 0.03 : 0.97));
    }
    return {
      outputs: [
        { name: 'label', datatype: 'INT64', shape: [rows], data: labels },
        { name: 'probabilities', datatype: 'FP32', shape: [rows, 2], data: p },
      ],
    };
  });
  return Object.assign(backend, {
    setMode(next: TitanicMode): void {
      mode = next;
      backend.misbehave('infer', next === 'fail' ? error500('the model server lost its GPU') : undefined);
    },
    mode: () => mode,
  });
}
