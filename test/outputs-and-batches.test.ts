/**
 * What a backend answers beyond its model's metadata never reaches the client, and empty tensors
 * reach a backend only when the model says it takes empty batches, through a real gateway and real
 * OIP backends on 127.0.0.1 (issue 8, finding classes 4 and 9).
 *
 * - `leaky` is a backend that adds an undeclared `embedding` to every answer and ignores the
 *   request's output selection: the client gets the declared (and requested) outputs only, in JSON
 *   and binary answers, and each dropped output is counted in `breakwater.outputs.dropped`.
 * - `ragged` has a fully dynamic input and `allowEmptyBatch: true`: an empty batch is forwarded
 *   (and charged one row), a zero anywhere else is refused; `leaky` keeps the default and refuses
 *   every zero-size dimension, JSON or binary, before its backend is called.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { metrics } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type DataPoint } from '@opentelemetry/sdk-metrics';
import type { RunningGateway } from '../gateway/main.js';
import type { Observer, RequestEnd } from '../gateway/observers.js';
import { METRIC } from '../gateway/telemetry/metrics.js';
import {
  ROW_STATS_METADATA, rowStatsHandler, startFakeOipBackend, type FakeOipBackend, type InferHandler, type OipInferResponseJson,
} from './helpers/backends.js';
import { REPO_ROOT, startInProcess } from './helpers/gateway.js';
import { decodeAnswer, inferBinary, inferJson, inferPath, json, type HttpAnswer, type OipRequest } from './helpers/oip-client.js';

/** Only the undeclared output holds this value: finding it in an answer is a leak. */
const SECRET = 31337.5;
const SECRET_BYTES = Buffer.from(new Float32Array([SECRET]).buffer);

/** Row-stats answers, every output whatever was asked, plus one the metadata does not declare. */
const leakyHandler: InferHandler = async (req, call) => {
  const all = (await rowStatsHandler({ ...req, outputs: undefined }, call)) as OipInferResponseJson;
  const rows = req.inputs[0].shape[0];
  return { outputs: [...all.outputs, { name: 'embedding', datatype: 'FP32', shape: [rows, 2], data: new Array(rows * 2).fill(SECRET) }] };
};

const RAGGED = {
  name: 'ragged',
  platform: 'fake-oip',
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, -1] }],
  outputs: [{ name: 'rows', datatype: 'FP32', shape: [-1] }],
};
const raggedHandler: InferHandler = (req) => {
  const n = req.inputs[0].shape[0];
  return { outputs: [{ name: 'rows', datatype: 'FP32', shape: [n], data: new Array(n).fill(1) }] };
};

const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
const provider = new MeterProvider({ readers: [reader] });
const ends: RequestEnd[] = [];
const recording: Observer = { name: 'recording', onEnd: (e) => void ends.push(e) };

let leaky: FakeOipBackend;
let ragged: FakeOipBackend;
let gw: RunningGateway;

before(async () => {
  metrics.setGlobalMeterProvider(provider);
  leaky = await startFakeOipBackend(ROW_STATS_METADATA, leakyHandler);
  ragged = await startFakeOipBackend(RAGGED, raggedHandler);
  const backend = (b: FakeOipBackend, model: string) => ({ kind: 'oip-http', url: b.url, model, connections: 4 });
  gw = await startInProcess({
    models: {
      leaky: { versions: { '1': { backend: backend(leaky, 'row-stats') } } },
      ragged: { allowEmptyBatch: true, versions: { '1': { backend: backend(ragged, 'ragged') } } },
    },
  }, REPO_ROOT, { observers: [recording] });
});

after(async () => {
  await gw?.close();
  await Promise.all([leaky?.close(), ragged?.close()]);
  await provider.shutdown();
});

const ROWS: OipRequest = { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 3], data: [1, 2, 3, -1, 0, 4] }] };
const names = (a: HttpAnswer) => decodeAnswer(a).json.outputs.map((o) => o.name);

function assertNoLeak(a: HttpAnswer): void {
  assert.equal(a.status, 200, a.body.toString());
  assert.ok(!a.body.includes('embedding'), 'the undeclared output is named in the answer');
  assert.ok(!a.body.includes(String(SECRET)) && !a.body.includes(SECRET_BYTES), 'the undeclared output\'s values are in the answer');
}

async function droppedCount(): Promise<number | undefined> {
  await reader.forceFlush();
  const found = exporter.getMetrics().flatMap((rm) => rm.scopeMetrics).flatMap((sm) => sm.metrics).filter((m) => m.descriptor.name === METRIC.outputsDropped);
  const points: DataPoint<unknown>[] = found.at(-1)?.dataPoints ?? [];
  const p = points.find((d) => d.attributes.model === 'leaky' && d.attributes.model_version === '1');
  assert.equal(points.length, p === undefined ? 0 : 1, 'one series, by model and version only');
  return p?.value as number | undefined;
}

test('a JSON answer carries the declared outputs only, however many the backend adds', async () => {
  const a = await inferJson(inferPath(gw.url, 'leaky'), ROWS);
  assertNoLeak(a);
  assert.deepEqual(names(a), ['sum', 'scaled', 'positive']);
  assert.equal(leaky.calls(), 1);
  // The observers see the answer the client got, and how much was dropped from it.
  const end = ends.at(-1);
  assert.deepEqual(end?.answer?.outputs.map((o) => o.name), ['sum', 'scaled', 'positive']);
  assert.equal(end?.droppedOutputs, 1);
});

test('with outputs requested, only those reach the client, even from a backend that ignores the selection', async () => {
  const a = await inferJson(inferPath(gw.url, 'leaky'), { ...ROWS, outputs: [{ name: 'scaled' }] });
  assertNoLeak(a);
  assert.deepEqual(names(a), ['scaled']);
  assert.deepEqual(decodeAnswer(a).json.outputs[0].data, [2, 4, 6, -2, 0, 8]);
});

test('binary answers carry the declared outputs only, with and without a selection', async () => {
  const all = await inferJson(inferPath(gw.url, 'leaky'), { ...ROWS, parameters: { binary_data_output: true } });
  assertNoLeak(all);
  assert.ok(decodeAnswer(all).headerLength !== undefined, 'a binary answer');
  assert.deepEqual(names(all), ['sum', 'scaled', 'positive']);
  // Binary in, binary out for one output; the backend still answers all four.
  const one = await inferBinary(inferPath(gw.url, 'leaky'), { ...ROWS, outputs: [{ name: 'sum', parameters: { binary_data: true } }] });
  assertNoLeak(one);
  const decoded = decodeAnswer(one);
  assert.deepEqual(decoded.json.outputs.map((o) => o.name), ['sum']);
  assert.deepEqual(decoded.json.outputs[0].data, [6, 3]);
  assert.ok(decoded.raw.has('sum'));
});

test('every undeclared output dropped is counted by model and version', async () => {
  const before = (await droppedCount()) ?? 0;
  for (let i = 0; i < 3; i++) assertNoLeak(await inferJson(inferPath(gw.url, 'leaky'), i === 1 ? { ...ROWS, outputs: [{ name: 'sum' }] } : ROWS));
  assert.equal(await droppedCount(), before + 3);
  // A backend that adds nothing drops nothing.
  const r = await inferJson(inferPath(gw.url, 'ragged'), { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: [1] }] });
  assert.equal(r.status, 200);
  assert.equal(ends.at(-1)?.droppedOutputs, 0);
  assert.equal(await droppedCount(), before + 3);
});

test('a zero-size dimension is refused by default, in JSON and binary, and never reaches the backend', async () => {
  const calls = leaky.calls();
  const empty: OipRequest = { inputs: [{ name: 'x', datatype: 'FP32', shape: [0, 3], data: [] }] };
  for (const a of [await inferJson(inferPath(gw.url, 'leaky'), empty), await inferBinary(inferPath(gw.url, 'leaky'), empty)]) {
    assert.equal(a.status, 400, a.body.toString());
    assert.equal(json(a).code, 'EMPTY_TENSOR');
  }
  assert.equal(leaky.calls(), calls, 'the backend was not called');
});

test('a model that allows empty batches gets one, charged one row; a zero elsewhere is still refused', async () => {
  const calls = ragged.calls();
  const a = await inferJson(inferPath(gw.url, 'ragged'), { inputs: [{ name: 'x', datatype: 'FP32', shape: [0, 5], data: [] }] });
  assert.equal(a.status, 200, a.body.toString());
  assert.deepEqual(json(a).outputs, [{ name: 'rows', datatype: 'FP32', shape: [0], data: [] }]);
  assert.equal(ragged.calls(), calls + 1);
  assert.deepEqual(JSON.parse(ragged.inferCalls().at(-1)?.body.toString() ?? '{}').inputs[0].shape, [0, 5]);
  assert.equal(ends.at(-1)?.rows, 1, 'an empty batch is not free');
  for (const shape of [[2, 0], [0, 0]]) {
    const r = await inferJson(inferPath(gw.url, 'ragged'), { inputs: [{ name: 'x', datatype: 'FP32', shape, data: [] }] });
    assert.equal(r.status, 400, `${JSON.stringify(shape)}: ${r.body.toString()}`);
    assert.equal(json(r).code, 'EMPTY_TENSOR');
  }
  assert.equal(ragged.calls(), calls + 1);
});
