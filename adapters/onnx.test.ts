import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { GatewayError, type ErrorCode } from '../gateway/errors.js';
import { adapterContract } from '../test/helpers/adapter-contract.js';
import { ASSETS } from '../test/helpers/assets.js';
import type { Datatype, InferOptions, InferTensor, TensorData } from './adapter.js';
import { OnnxAdapter, type OnnxBackendOptions } from './onnx.js';

// dist/adapters/ → repo root (/work/main) → ../shared

interface JsonTensor { name: string; datatype: Datatype; shape: number[]; data: unknown[] }
interface ModelSample {
  model_file: string;
  oip_metadata: { platform: string; inputs: JsonTensor[]; outputs: (JsonTensor & { non_tensor?: boolean })[] };
  request: { inputs: JsonTensor[]; outputs?: { name: string }[] };
  expected_outputs: JsonTensor[];
  tolerance?: number;
}
interface DtypeCase {
  model_file: string;
  request: { inputs: JsonTensor[] };
  expected_outputs: JsonTensor[];
  fp16_raw_hex_le?: { inputs: string[]; outputs: string[] };
}

const readJson = (rel: string): unknown => JSON.parse(readFileSync(join(ASSETS, rel), 'utf8'));
const SAMPLES = readJson('samples/model-samples.json') as Record<string, ModelSample>;
const CASES = (readJson('samples/onnx-node-dtype-cases.json') as { cases: DtypeCase[] }).cases;

function options(path: string): OnnxBackendOptions {
  return { kind: 'onnx', path, intraOpThreads: 1, interOpThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' };
}

const opened: OnnxAdapter[] = [];
async function open(rel: string): Promise<OnnxAdapter> {
  const adapter = new OnnxAdapter(options(join(ASSETS, rel)));
  opened.push(adapter);
  await adapter.load();
  return adapter;
}
after(async () => {
  await Promise.all(opened.map((a) => a.close()));
});

function inferOptions(signal = new AbortController().signal, deadline = Date.now() + 60_000): InferOptions {
  return { signal, deadline, requestId: 'test' };
}

/** The gateway hands adapters flat, row-major data. */
function flat(t: JsonTensor): InferTensor {
  return { name: t.name, datatype: t.datatype, shape: t.shape, data: t.data.flat(Infinity) };
}

function hexToUint16(hex: string): Uint16Array {
  const bytes = Buffer.from(hex, 'hex');
  return Uint16Array.from({ length: bytes.length / 2 }, (_, i) => bytes.readUInt16LE(2 * i));
}

/** The typed form a binary request decodes to. */
function typed(t: InferTensor, fp16Hex?: string): InferTensor {
  const d = t.data as unknown[];
  const map: Partial<Record<Datatype, () => TensorData>> = {
    BOOL: () => Uint8Array.from(d, (v) => (v === true ? 1 : 0)),
    INT64: () => BigInt64Array.from(d, (v) => BigInt(v as number)),
    UINT64: () => BigUint64Array.from(d, (v) => BigInt(v as number)),
    FP16: () => hexToUint16(fp16Hex ?? ''),
    INT16: () => Int16Array.from(d as number[]),
    FP32: () => Float32Array.from(d as number[]),
  };
  const make = map[t.datatype];
  return make === undefined ? t : { ...t, data: make() };
}

function assertClose(actual: ArrayLike<number>, expected: readonly number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/** Compares an adapter output with a recorded JSON output, checking onnxruntime's array types. */
function assertOutput(out: InferTensor, exp: JsonTensor, tol: number, fp16Hex?: string): void {
  assert.equal(out.name, exp.name);
  assert.equal(out.datatype, exp.datatype);
  assert.deepEqual(out.shape, exp.shape);
  const want = exp.data.flat(Infinity);
  const d = out.data;
  switch (exp.datatype) {
    case 'INT64':
    case 'UINT64':
      assert.ok(d instanceof (exp.datatype === 'INT64' ? BigInt64Array : BigUint64Array), `${exp.name} array type`);
      assert.deepEqual(Array.from(d as BigInt64Array, Number), want);
      break;
    case 'BOOL':
      assert.ok(d instanceof Uint8Array);
      assert.deepEqual(Array.from(d), want.map((b) => (b === true ? 1 : 0)));
      break;
    case 'FP16':
      assert.ok(d instanceof Uint16Array);
      assert.deepEqual(Array.from(d), Array.from(hexToUint16(fp16Hex ?? '')));
      break;
    case 'BYTES':
      assert.ok(Array.isArray(d));
      assert.deepEqual(d, want);
      break;
    default:
      assert.ok(ArrayBuffer.isView(d), `${exp.name} is a typed array`);
      assertClose(d as ArrayLike<number>, want as number[], tol, exp.name);
  }
}

const isCode = (code: ErrorCode) => (e: unknown) => e instanceof GatewayError && e.code === code;

// The shared adapter contract, on a mixed-type model and on one with a non-tensor (ZipMap) output.
for (const key of ['titanic_logreg_nozipmap', 'iris_rf_zipmap']) {
  const s = SAMPLES[key];
  adapterContract(`onnx ${key}`, async () => ({
    adapter: new OnnxAdapter(options(join(ASSETS, s.model_file))),
    sample: {
      request: { inputs: s.request.inputs.map(flat) },
      expected: s.expected_outputs.map((o) => ({ ...o, data: o.data.flat(Infinity) as number[] })),
      tolerance: s.tolerance ?? 1e-4,
    },
  }));
}

describe('OnnxAdapter metadata', () => {
  for (const [key, sample] of Object.entries(SAMPLES)) {
    it(`${key}: reports the recorded OIP metadata`, async () => {
      const md = (await open(sample.model_file)).metadata();
      const recorded = sample.oip_metadata;
      assert.equal(md.platform, 'onnx_onnxv1');
      assert.deepEqual(md.inputs, recorded.inputs);
      assert.deepEqual(md.outputs, recorded.outputs.filter((o) => o.non_tensor !== true));
      const nonTensor = recorded.outputs.filter((o) => o.non_tensor === true).map((o) => o.name);
      assert.deepEqual(md.nonTensorOutputs ?? [], nonTensor);
    });
  }

  it('maps dynamic dims to -1, unnamed ("", titanic) and named (batch_size, iris mlp)', async () => {
    const md = (await open('models/titanic_logreg_nozipmap.onnx')).metadata();
    assert.deepEqual(md.inputs.map((t) => [t.name, t.datatype, t.shape]), [
      ['pclass', 'INT64', [-1, 1]], ['sex', 'BYTES', [-1, 1]], ['age', 'FP32', [-1, 1]],
      ['fare', 'FP32', [-1, 1]], ['embarked', 'BYTES', [-1, 1]],
    ]);
    assert.deepEqual(md.outputs.map((t) => t.shape), [[-1], [-1, 2]]);
    const iris = (await open('models/iris_mlp_dynamic.onnx')).metadata();
    assert.deepEqual(iris.inputs, [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }]);
  });

  it('lists the ZipMap output as non-tensor and leaves it out of outputs (iris rf)', async () => {
    const md = (await open('models/iris_rf_zipmap.onnx')).metadata();
    assert.deepEqual(md.outputs, [{ name: 'output_label', datatype: 'INT64', shape: [-1] }]);
    assert.deepEqual(md.nonTensorOutputs, ['output_probability']);
  });

  it('keeps fixed dims as they are (mnist [1,1,28,28])', async () => {
    const md = (await open('models/mnist_cntk_opset7.onnx')).metadata();
    assert.deepEqual(md.inputs, [{ name: 'Input3', datatype: 'FP32', shape: [1, 1, 28, 28] }]);
    assert.deepEqual(md.outputs, [{ name: 'Plus214_Output_0', datatype: 'FP32', shape: [1, 10] }]);
    assert.equal(md.nonTensorOutputs, undefined);
  });
});

describe('OnnxAdapter inference', () => {
  for (const [key, sample] of Object.entries(SAMPLES)) {
    it(`${key}: the verified sample gives the expected outputs`, async () => {
      const adapter = await open(sample.model_file);
      const res = await adapter.infer({ inputs: sample.request.inputs.map(flat), outputs: sample.request.outputs }, inferOptions());
      assert.equal(res.outputs.length, sample.expected_outputs.length);
      sample.expected_outputs.forEach((exp, i) => assertOutput(res.outputs[i], exp, sample.tolerance ?? 1e-4));
    });
  }

  for (const c of CASES) {
    const name = c.model_file.split('/').at(-2) ?? c.model_file;
    it(`${name}: JSON values and typed arrays both give the recorded outputs`, async () => {
      const adapter = await open(c.model_file);
      const hex = c.fp16_raw_hex_le;
      const json = c.request.inputs.map(flat);
      const bin = json.map((t, i) => typed(t, hex?.inputs[i]));
      for (const inputs of [json, bin]) {
        const res = await adapter.infer({ inputs }, inferOptions());
        assert.equal(res.outputs.length, c.expected_outputs.length);
        c.expected_outputs.forEach((exp, i) => assertOutput(res.outputs[i], exp, 0, hex?.outputs[i]));
      }
    });
  }

  it('fetches only the requested output', async () => {
    const sample = SAMPLES.titanic_logreg_nozipmap;
    const adapter = await open(sample.model_file);
    const res = await adapter.infer({ inputs: sample.request.inputs.map(flat), outputs: [{ name: 'probabilities' }] }, inferOptions());
    assert.deepEqual(res.outputs.map((o) => o.name), ['probabilities']);
    assertOutput(res.outputs[0], sample.expected_outputs[1], 1e-4);
  });

  it('fetches all tensor outputs but never the ZipMap when no outputs are named', async () => {
    const sample = SAMPLES.iris_rf_zipmap;
    const adapter = await open(sample.model_file);
    const res = await adapter.infer({ inputs: sample.request.inputs.map(flat) }, inferOptions());
    assert.deepEqual(res.outputs.map((o) => o.name), ['output_label']);
  });

  it('rejects a request for the non-tensor output with UNKNOWN_OUTPUT', async () => {
    const sample = SAMPLES.iris_rf_zipmap;
    const adapter = await open(sample.model_file);
    const req = { inputs: sample.request.inputs.map(flat), outputs: [{ name: 'output_probability' }] };
    await assert.rejects(adapter.infer(req, inferOptions()), isCode('UNKNOWN_OUTPUT'));
  });

  it('turns a failure inside onnxruntime into BACKEND_ERROR without onnxruntime\'s text', async () => {
    const sample = SAMPLES.titanic_logreg_nozipmap;
    const adapter = await open(sample.model_file);
    // Batch 3 for every input but `age` (batch 2): only the graph's Concat notices.
    const inputs = sample.request.inputs.map(flat).map((t) => (t.name === 'age' ? { ...t, shape: [2, 1], data: [29, 2] } : t));
    await assert.rejects(adapter.infer({ inputs }, inferOptions()), (e: unknown) => {
      assert.ok(isCode('BACKEND_ERROR')(e));
      assert.ok(!(e as Error).message.includes('Concat'));
      assert.ok((e as Error).cause instanceof Error);
      return true;
    });
    const res = await adapter.infer({ inputs: sample.request.inputs.map(flat) }, inferOptions());
    assert.equal(res.outputs.length, 2);
  });

  it('rejects with BACKEND_TIMEOUT when the signal is already aborted or the deadline passed', async () => {
    const sample = SAMPLES.iris_mlp_dynamic;
    const adapter = await open(sample.model_file);
    const req = { inputs: sample.request.inputs.map(flat) };
    await assert.rejects(adapter.infer(req, inferOptions(AbortSignal.abort())), isCode('BACKEND_TIMEOUT'));
    await assert.rejects(adapter.infer(req, inferOptions(undefined, Date.now() - 1)), isCode('BACKEND_TIMEOUT'));
  });

  it('rejects with BACKEND_TIMEOUT when aborted before the run starts, and keeps serving', async () => {
    const sample = SAMPLES.iris_mlp_dynamic;
    const adapter = await open(sample.model_file);
    const req = { inputs: sample.request.inputs.map(flat) };
    const controller = new AbortController();
    const pending = adapter.infer(req, inferOptions(controller.signal));
    controller.abort();
    await assert.rejects(pending, isCode('BACKEND_TIMEOUT'));
    const res = await adapter.infer(req, inferOptions());
    assertOutput(res.outputs[0], sample.expected_outputs[0], 1e-4);
  });
});

describe('OnnxAdapter lifecycle', () => {
  const IRIS = join(ASSETS, 'models/iris_mlp_dynamic.onnx');

  it('is ready only between load and close; infer after close gives MODEL_NOT_READY', async () => {
    await new OnnxAdapter(options(IRIS)).close(); // closing a never-loaded adapter is fine
    const adapter = new OnnxAdapter(options(IRIS));
    assert.equal(await adapter.ready(), false);
    await adapter.load();
    assert.equal(await adapter.ready(), true);
    await adapter.close();
    assert.equal(await adapter.ready(), false);
    await adapter.close(); // idempotent
    const req = { inputs: SAMPLES.iris_mlp_dynamic.request.inputs.map(flat) };
    await assert.rejects(adapter.infer(req, inferOptions()), isCode('MODEL_NOT_READY'));
  });

  it('lets a run already started finish before close releases the session', async () => {
    const adapter = new OnnxAdapter(options(IRIS));
    await adapter.load();
    const sample = SAMPLES.iris_mlp_dynamic;
    const pending = adapter.infer({ inputs: sample.request.inputs.map(flat) }, inferOptions());
    const closing = adapter.close();
    const res = await pending;
    await closing;
    assertOutput(res.outputs[0], sample.expected_outputs[0], 1e-4);
  });

  it('rejects a broken model file with MODEL_LOAD_FAILED without revealing its path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bw-onnx-'));
    const file = join(dir, 'model.onnx');
    try {
      await writeFile(file, 'this is not an ONNX model \x00\x01\x02');
      const adapter = new OnnxAdapter(options(file));
      await assert.rejects(adapter.load(), (e: unknown) => {
        assert.ok(isCode('MODEL_LOAD_FAILED')(e));
        const err = e as GatewayError;
        assert.equal(err.status, 503);
        assert.ok(!err.message.includes(dir), err.message);
        assert.ok(!JSON.stringify(err.toJSON()).includes(dir));
        return true;
      });
      assert.equal(await adapter.ready(), false);
      await adapter.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects a missing model file with MODEL_LOAD_FAILED without revealing its path', async () => {
    const missing = join(tmpdir(), 'bw-no-such-dir', 'model.onnx');
    await assert.rejects(new OnnxAdapter(options(missing)).load(), (e: unknown) => {
      assert.ok(isCode('MODEL_LOAD_FAILED')(e));
      assert.ok(!(e as Error).message.includes('bw-no-such-dir'), (e as Error).message);
      return true;
    });
  });
});
