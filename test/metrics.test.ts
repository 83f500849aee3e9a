/**
 * Metrics go through the OpenTelemetry API: with a MeterProvider registered, every inference is
 * counted per model, version and outcome code, and its duration recorded.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { metrics } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics';
import { request } from 'undici';
import type { RunningGateway } from '../gateway/main.js';
import { METRIC } from '../gateway/telemetry/metrics.js';
import { ASSETS } from './helpers/assets.js';
import { startInProcess } from './helpers/gateway.js';

const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
const provider = new MeterProvider({ readers: [reader] });
let gw: RunningGateway;

before(async () => {
  metrics.setGlobalMeterProvider(provider);
  const iris = { kind: 'onnx', path: join(ASSETS, 'models/iris_mlp_dynamic.onnx') };
  gw = await startInProcess({
    models: {
      iris: { versions: { '1': { backend: iris } } },
      // A rollout declared in the configuration: started with the gateway, shown by the rollout gauges.
      rolled: {
        stable: '1',
        versions: { '1': { backend: iris }, '2': { backend: iris } },
        rollout: { canary: '2', steps: [{ weight: 10, minRequests: 1000 }, { weight: 100, minRequests: 1000 }], criteria: { errorRate: { minSamples: 100 } } },
      },
    },
  });
});

after(async () => {
  await gw.close();
  await provider.shutdown();
});

const good = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] });
const bad = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP64', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] });

async function post(body: string) {
  const res = await request(`${gw.url}/v2/models/iris/infer`, { method: 'POST', body });
  await res.body.dump();
}

function points(name: string): DataPoint<unknown>[] {
  const found = exporter.getMetrics().flatMap((rm) => rm.scopeMetrics).flatMap((sm) => sm.metrics).filter((m) => m.descriptor.name === name);
  return found.at(-1)?.dataPoints ?? [];
}

test('inferences are counted by model, version and code, with their duration', async () => {
  for (let i = 0; i < 3; i++) await post(good);
  await post(bad);
  await reader.forceFlush();
  const requests = points(METRIC.requests);
  const ok = requests.find((p) => p.attributes.code === 'OK');
  const mismatch = requests.find((p) => p.attributes.code === 'DATATYPE_MISMATCH');
  assert.equal(ok?.value, 3);
  assert.deepEqual(ok?.attributes, { model: 'iris', model_version: '1', code: 'OK' });
  assert.equal(mismatch?.value, 1);
  const errors = points(METRIC.errors);
  assert.equal(errors.length, 1);
  assert.equal(errors[0]?.value, 1);
  const duration = points(METRIC.duration).find((p) => p.attributes.code === 'OK');
  const h = duration?.value as Histogram | undefined;
  assert.equal(h?.count, 3);
  assert.ok((h?.sum ?? 0) > 0);
});

test('unknown model names do not become metric attributes', async () => {
  for (let i = 0; i < 3; i++) {
    const res = await request(`${gw.url}/v2/models/random-${i}/infer`, { method: 'POST', body: good });
    await res.body.dump();
  }
  const res = await request(`${gw.url}/v2/models/iris/versions/bogus-version/infer`, { method: 'POST', body: good });
  await res.body.dump();
  await reader.forceFlush();
  const requests = points(METRIC.requests);
  assert.ok(!requests.some((p) => String(p.attributes.model).startsWith('random-')), 'no series per unknown name');
  assert.ok(!requests.some((p) => p.attributes.model_version === 'bogus-version'), 'no series per unknown version');
  assert.equal(requests.find((p) => p.attributes.model === '(unknown)' && p.attributes.code === 'MODEL_NOT_FOUND')?.value, 3);
  assert.equal(requests.find((p) => p.attributes.model === 'iris' && p.attributes.code === 'VERSION_NOT_FOUND')?.value, 1);
});

test('a rollout declared in the configuration starts with the gateway; its weight and state are gauges', async () => {
  await reader.forceFlush();
  const weight = points(METRIC.rolloutWeight);
  const state = points(METRIC.rolloutState);
  assert.deepEqual(weight.map((p) => [p.attributes, p.value]), [[{ model: 'rolled', model_version: '2' }, 10]]);
  assert.deepEqual(state.map((p) => [p.attributes, p.value]), [[{ model: 'rolled', model_version: '2' }, 0]]);
});
