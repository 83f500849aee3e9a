import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { buildConfig, type GatewayConfig, type TrafficConfig } from '../config.js';
import { MemoryStore } from '../state/memory-store.js';
import { StoreUnavailableError } from '../state/store.js';
import { GatewayError } from '../errors.js';
import { TrafficRoutes } from './traffic-routes.js';

const silent = pino({ level: 'silent' });
const onnx = { backend: { kind: 'onnx', path: '/abs/m.onnx' } };

function config(versions: string[], traffic?: unknown): GatewayConfig {
  return buildConfig({ auth: { insecureNoAuth: true }, models: { m: { versions: Object.fromEntries(versions.map((v) => [v, onnx])), stable: versions[0], traffic } } }, '/');
}

async function start(store: MemoryStore, cfg: GatewayConfig) {
  const seen: ReadonlyMap<string, TrafficConfig>[] = [];
  const routes = await TrafficRoutes.start({ store, log: silent, config: { ...cfg, state: { ...cfg.state, reconcileMs: 60_000 } }, onChange: (o) => seen.push(o) });
  return { routes, seen };
}

test('a change is stored, applied here at once and picked up by another replica from the store', async () => {
  const store = new MemoryStore();
  const cfg = config(['1', '2'], { routes: [{ version: '1', weight: 100 }] });
  const a = await start(store, cfg);
  const b = await start(store, cfg);
  try {
    const change = await a.routes.set('m', { routes: [{ version: '2', weight: 100 }] }, 'anna', 'rollout');
    assert.equal(change.revision, 1);
    assert.deepEqual(change.before?.routes, [{ version: '1', weight: 100 }]);
    assert.deepEqual(a.routes.overrides.get('m')?.routes, [{ version: '2', weight: 100 }]);
    // The announcement reaches b asynchronously; b re-reads the record.
    for (let i = 0; i < 50 && b.routes.overrides.get('m') === undefined; i++) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(b.routes.overrides.get('m')?.routes, [{ version: '2', weight: 100 }]);
    assert.equal(b.routes.live('m').updatedBy, 'anna');
    const undo = await a.routes.reset('m', 'anna', 'undo');
    assert.equal(a.routes.live('m').source, 'config');
    assert.ok(undo.revision > change.revision, 'a reset has a revision of its own');
    assert.equal(await b.routes.revision('m'), undo.revision);
    for (let i = 0; i < 50 && b.routes.overrides.get('m') !== undefined; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(b.routes.live('m').source, 'config', 'the reset reaches b');
  } finally {
    await a.routes.close();
    await b.routes.close();
  }
});

test('invalid routes are refused with INVALID_TRAFFIC and nothing is stored', async () => {
  const store = new MemoryStore();
  const { routes } = await start(store, config(['1', '2']));
  try {
    await assert.rejects(routes.set('m', { routes: [{ version: '3', weight: 100 }] }, 'anna', 'x'), (e: unknown) => e instanceof GatewayError && e.code === 'INVALID_TRAFFIC' && /version "3"/.test(e.message));
    assert.equal(await store.get('traffic', 'm'), undefined);
    assert.equal(routes.live('m').source, 'none');
  } finally {
    await routes.close();
  }
});

test('stored routes naming a version the configuration lost are set aside, and the file\'s serve', async () => {
  const store = new MemoryStore();
  const first = await start(store, config(['1', '2']));
  await first.routes.set('m', { routes: [{ version: '2', weight: 100 }] }, 'anna', 'x');
  await first.routes.close();
  // A later configuration without version 2.
  const second = await start(store, config(['1'], { routes: [{ version: '1', weight: 100 }] }));
  try {
    assert.equal(second.routes.live('m').source, 'config');
    assert.equal(second.routes.overrides.size, 0);
    // A reload that brings version 2 back picks the stored routes up again.
    await second.routes.reconfigure(config(['1', '2'], { routes: [{ version: '1', weight: 100 }] }));
    assert.equal(second.routes.live('m').source, 'admin');
  } finally {
    await second.routes.close();
  }
});

test('when the store fails, the last known routes stand and a write says nothing changed', async () => {
  const store = new MemoryStore();
  const { routes } = await start(store, config(['1', '2']));
  try {
    await routes.set('m', { routes: [{ version: '2', weight: 100 }] }, 'anna', 'x');
    // What a real store throws when Redis is gone, for reads of one record and of the whole scope.
    const broken = store as unknown as { get: unknown; read: unknown; records: unknown };
    broken.get = broken.read = broken.records = async () => {
      throw new StoreUnavailableError('store down');
    };
    await routes.reconcile();
    assert.deepEqual(routes.overrides.get('m')?.routes, [{ version: '2', weight: 100 }]);
    await assert.rejects(routes.set('m', { routes: [{ version: '1', weight: 100 }] }, 'anna', 'y'), (e: unknown) => e instanceof GatewayError && e.code === 'STATE_STORE_UNAVAILABLE');
    assert.deepEqual(routes.overrides.get('m')?.routes, [{ version: '2', weight: 100 }]);
  } finally {
    await routes.close();
  }
});

test('a change made while a reconcile reads is not undone by its older snapshot', async () => {
  const store = new MemoryStore();
  const { routes, seen } = await start(store, config(['1', '2'], { routes: [{ version: '1', weight: 100 }] }));
  try {
    // The next full read takes its snapshot, then waits until the test lets it finish.
    let release: (() => void) | undefined;
    const records = store.records.bind(store);
    (store as unknown as { records: unknown }).records = async (scope: string) => {
      const snapshot = await records(scope);
      await new Promise<void>((res) => (release = res));
      return snapshot;
    };
    const reconciling = routes.reconcile();
    for (let i = 0; i < 100 && release === undefined; i++) await new Promise((r) => setTimeout(r, 5));
    await routes.set('m', { routes: [{ version: '2', weight: 100 }] }, 'anna', 'during a reconcile');
    release?.();
    await reconciling;
    assert.deepEqual(routes.overrides.get('m')?.routes, [{ version: '2', weight: 100 }]);
    assert.ok(seen.every((o, i) => i === 0 || o.get('m') !== undefined), 'the split never went back to the file\'s routes');
  } finally {
    await routes.close();
  }
});

test('concurrent changes each get their own revision and replace exactly what the one before wrote; a stale revision is refused', async () => {
  const store = new MemoryStore();
  const cfg = config(['1', '2', '3']);
  const a = await start(store, cfg);
  const b = await start(store, cfg);
  try {
    const weights = Array.from({ length: 10 }, (_, i) => i * 10);
    const changes = await Promise.all(weights.map((w, i) => (i % 2 === 0 ? a : b).routes.set('m', { routes: [{ version: '1', weight: 100 - w }, { version: '2', weight: w }] }, `po-${i}`, `step ${i}`)));
    const revisions = changes.map((c) => c.revision);
    assert.equal(new Set(revisions).size, changes.length, 'no two changes share a revision');
    // In revision order, each change's before is the previous change's after: none was lost.
    const ordered = [...changes].sort((x, y) => x.revision - y.revision);
    for (let i = 1; i < ordered.length; i++) assert.deepEqual(ordered[i].before, ordered[i - 1].after, `change ${ordered[i].revision}`);
    const current = await a.routes.revision('m');
    assert.equal(current, ordered[ordered.length - 1].revision);
    await assert.rejects(b.routes.set('m', { routes: [{ version: '3', weight: 100 }] }, 'late', 'stale', current - 1), (e: unknown) => e instanceof GatewayError && e.code === 'REVISION_CONFLICT' && e.headers?.etag === `"${current}"`);
    const fresh = await b.routes.set('m', { routes: [{ version: '3', weight: 100 }] }, 'late', 'fresh', current);
    assert.ok(fresh.revision > current);
  } finally {
    await a.routes.close();
    await b.routes.close();
  }
});
