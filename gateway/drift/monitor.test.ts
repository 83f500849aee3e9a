/**
 * The drift monitors without HTTP: counting never throws or waits, a store outage only pauses
 * merging (the counts are kept and merged once it answers), sampling, requests without a payload
 * (opted out of tracking) never counted, and the gauges of the last evaluation.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { pino } from 'pino';
import type { InferRequest, InferResponse } from '../../adapters/adapter.js';
import type { ModelTable } from '../../adapters/registry.js';
import type { Profile } from '../../policies/guards/profile.js';
import type { GatewayConfig } from '../config.js';
import { buildConfig } from '../config.js';
import type { RequestEnd } from '../observers.js';
import { MemoryStore } from '../state/memory-store.js';
import { StoreUnavailableError, type StateStore } from '../state/store.js';
import { DriftMonitors } from './monitor.js';

const PROFILE = JSON.parse(readFileSync(new URL('../../../demo/profiles/iris.json', import.meta.url), 'utf8')) as Profile;
const log = pino({ level: 'silent' });

/** A memory store that can be taken down: every call then fails as Redis would. */
function flaky(inner: MemoryStore): { store: StateStore; setDown(down: boolean): void } {
  let down = false;
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        if (down && prop !== 'close' && prop !== 'healthy') return Promise.reject(new StoreUnavailableError('redis is down'));
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as unknown as StateStore;
  return { store, setDown: (d) => (down = d) };
}

function setup(store: StateStore, drift: Record<string, unknown>, random?: () => number, profiles: Record<string, Profile> = { '1': PROFILE }) {
  const versions = Object.fromEntries(Object.keys(profiles).map((v) => [v, { backend: { kind: 'onnx', path: 'iris.onnx' }, profile: `${v}.json` }]));
  const config = buildConfig({ auth: { insecureNoAuth: true }, models: { iris: { versions, drift } } }, '/base');
  const table = { allVersions: () => Object.entries(profiles).map(([version, p]) => ({ model: 'iris', version, metadata: undefined, artifacts: new Map([['profile', p]]) })) } as unknown as ModelTable;
  const monitors = new DriftMonitors({ store, log, ...(random === undefined ? {} : { random }) });
  monitors.follow(table, config as GatewayConfig);
  return monitors;
}

function end(row: number[], payload = true, version = '1'): RequestEnd {
  const request: InferRequest = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: row }] } as unknown as InferRequest;
  const answer: InferResponse = { model_name: 'iris', outputs: [{ name: 'output', datatype: 'FP32', shape: [1, 3], data: [8.6, 2.6, -13] }] } as unknown as InferResponse;
  return { model: 'iris', version, code: undefined, payload: payload ? request : undefined, answer: payload ? answer : undefined } as unknown as RequestEnd;
}

test('a store outage pauses merging only: counting neither throws nor waits, and the counts are merged once the store answers', async () => {
  const inner = new MemoryStore({ pruneIntervalMs: 0 });
  const { store, setDown } = flaky(inner);
  const monitors = setup(store, { flushMs: 60_000, evaluateMs: 60_000 });
  const observer = monitors.observer();
  setDown(true);
  for (let i = 0; i < 300; i++) assert.equal(observer.onEnd(end([5.1, 3.5, 1.4, 0.2])), undefined, 'synchronous, nothing to await');
  await assert.rejects(monitors.report('iris', '1'), StoreUnavailableError, 'the report says the store is down');
  setDown(false);
  const r = await monitors.report('iris', '1');
  assert.ok(typeof r === 'object');
  assert.equal(r.window.samples, 300, 'every row counted during the outage was kept and merged');
  await monitors.close();
  await inner.close();
});

test('past half a window during an outage, the early flush fails quietly (no unhandled rejection); the counts are kept', async () => {
  const inner = new MemoryStore({ pruneIntervalMs: 0 });
  const { store, setDown } = flaky(inner);
  const monitors = setup(store, { flushMs: 60_000, evaluateMs: 60_000 });
  const observer = monitors.observer();
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    setDown(true);
    // 1,200 rows: the default window is 1,000, so a flush starts at 500 and again at 1,000.
    for (let i = 0; i < 1200; i++) observer.onEnd(end([5.1, 3.5, 1.4, 0.2]));
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(unhandled, [], 'a failed early flush is not an unhandled rejection');
    setDown(false);
    const r = await monitors.report('iris', '1');
    assert.ok(typeof r === 'object');
    assert.equal(r.window.samples, 1200);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    await monitors.close();
    await inner.close();
  }
});

test('sampleRate: about that share of answered requests is counted; a request without payload (opted out of tracking) never is', async () => {
  const store = new MemoryStore({ pruneIntervalMs: 0 });
  let k = 0;
  const monitors = setup(store, { sampleRate: 0.25, flushMs: 60_000, evaluateMs: 60_000 }, () => ((k++ * 0.618034) % 1));
  const observer = monitors.observer();
  for (let i = 0; i < 1000; i++) observer.onEnd(end([5.1, 3.5, 1.4, 0.2]));
  for (let i = 0; i < 1000; i++) observer.onEnd(end([5.1, 3.5, 1.4, 0.2], false));
  const r = await monitors.report('iris', '1');
  assert.ok(typeof r === 'object');
  assert.ok(Math.abs(r.window.samples - 250) <= 10, `${r.window.samples} of 1000 sampled at 0.25`);
  await monitors.close();
  await store.close();
});

test('the gauges: the overall status (feature "*") and each feature and output of the last evaluation', async () => {
  const store = new MemoryStore({ pruneIntervalMs: 0 });
  const monitors = setup(store, { flushMs: 60_000, evaluateMs: 60_000, thresholds: { minSamples: 100 } });
  assert.deepEqual(monitors.gaugeRows(), [], 'nothing before an evaluation');
  const observer = monitors.observer();
  // Setosa only: the petals and the class drift.
  // Two evaluations a tenth of a window (100 rows) apart confirm it; a third right after counts for nothing.
  for (let i = 0; i < 150; i++) observer.onEnd(end([5.0, 3.4, 1.4 + (i % 5) / 10, 0.2]));
  const first = await monitors.report('iris', '1');
  assert.ok(typeof first === 'object' && first.status === 'ok' && first.features[2]?.raw === 'drift', 'raw drift, not confirmed yet');
  for (let i = 0; i < 50; i++) observer.onEnd(end([5.0, 3.4, 1.4 + (i % 5) / 10, 0.2]));
  const early = await monitors.report('iris', '1');
  assert.ok(typeof early === 'object' && early.status === 'ok', 'polling again after 50 rows confirms nothing');
  for (let i = 0; i < 50; i++) observer.onEnd(end([5.0, 3.4, 1.4 + (i % 5) / 10, 0.2]));
  await monitors.report('iris', '1');
  const rows = monitors.gaugeRows();
  assert.deepEqual(rows.map((r) => r.feature), ['*', 'input[0]', 'input[1]', 'input[2]', 'input[3]', 'output:class', 'output:score']);
  const byName = new Map(rows.map((r) => [r.feature, r]));
  assert.equal(byName.get('input[2]')?.status, 2, 'drift');
  assert.ok((byName.get('input[2]')?.psi ?? 0) > 0.2);
  assert.equal(byName.get('*')?.status, 2);
  assert.equal(byName.get('*')?.samples, 250);
  await monitors.close();
  await store.close();
});

test('two versions compared (canary against stable): the other version\'s live window is the reference; bins that differ cannot be compared', async () => {
  const store = new MemoryStore({ pruneIntervalMs: 0 });
  const other = JSON.parse(JSON.stringify(PROFILE)) as Profile & { drift: { features: { edges?: number[] }[] } };
  other.drift.features[0].edges = [5, 6, 7];
  other.drift.features[0] = { ...other.drift.features[0], counts: [10, 50, 50, 40, 0] } as never;
  const monitors = setup(store, { flushMs: 60_000, evaluateMs: 60_000, thresholds: { minSamples: 100 } }, undefined, { '1': PROFILE, '2': PROFILE, '3': other });
  const observer = monitors.observer();
  const flowers = [[5.1, 3.5, 1.4, 0.2], [6.4, 3.2, 4.5, 1.5], [6.3, 3.3, 6.0, 2.5]];
  for (let i = 0; i < 300; i++) observer.onEnd(end(flowers[i % 3]!, true, '1'));
  for (let i = 0; i < 300; i++) observer.onEnd(end(flowers[0]!, true, '2'));
  const r = await monitors.report('iris', '2', '1');
  assert.ok(typeof r === 'object');
  assert.deepEqual(r.reference, { kind: 'version', version: '1', rows: 300 });
  const petal = r.features.find((f) => f.name === 'input[2]');
  assert.equal(petal?.raw, 'drift', 'the canary sees only setosa-like petals; the stable version all three species');
  assert.ok((petal?.psi ?? 0) > 0.2);
  const same = await monitors.report('iris', '1', '1');
  assert.ok(typeof same === 'object' && [...same.features, ...same.outputs].every((f) => f.psi < 1e-9), 'a version against itself');
  assert.equal(await monitors.report('iris', '3', '1'), 'not-comparable');
  assert.equal(await monitors.report('iris', '2', '9'), 'unknown-version');
  await monitors.close();
  await store.close();
});
