/**
 * What an oip-http backend's calls tell its circuit breaker, against real HTTP backends: its faults
 * open it, and nothing a client alone controls does (a backend's 4xx, a deadline the client cut
 * short, a call the caller gave up). Refusals are OVERLOADED or BACKEND_UNAVAILABLE with Retry-After.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isGatewayError, type GatewayError } from '../gateway/errors.js';
import type { InferRequest } from './adapter.js';
import { isShed } from './backend-guard.js';
import { OipHttpAdapter, type OipHttpBackendOptions } from './oip-http.js';
import { ROW_STATS_METADATA, error500, errorStatus, rowStatsHandler, slow, startFakeOipBackend, type FakeOipBackend } from '../test/helpers/backends.js';

const ROWS: InferRequest = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: new Float32Array([1, 2, 3]) }] };
const call = (adapter: OipHttpAdapter, deadlineMs = 5000) => adapter.infer(ROWS, { deadline: Date.now() + deadlineMs, requestId: 'r' });

async function withAdapter(o: Partial<OipHttpBackendOptions>, body: (a: OipHttpAdapter, b: FakeOipBackend) => Promise<void>): Promise<void> {
  const backend = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler);
  const adapter = new OipHttpAdapter({
    kind: 'oip-http', url: backend.url, model: ROW_STATS_METADATA.name, connectTimeoutMs: 300, timeoutMs: 300,
    connections: 2, keepAliveTimeoutMs: 1000, healthIntervalMs: 100, breakerFailures: 3, breakerCooldownMs: 60_000, ...o,
  });
  try {
    await adapter.load();
    await body(adapter, backend);
  } finally {
    await adapter.close();
    await backend.close();
  }
}

async function codeOf(p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isGatewayError(e), String(e));
    return e;
  }
  assert.fail('expected a rejection');
}

test('backend faults in a row open the breaker: then refused at once, nothing sent, with Retry-After', () =>
  withAdapter({}, async (adapter, backend) => {
    backend.misbehave('infer', error500());
    for (let i = 0; i < 3; i++) assert.equal((await codeOf(call(adapter))).code, 'BACKEND_ERROR');
    const sent = backend.calls();
    const refused = await codeOf(call(adapter));
    assert.equal(refused.code, 'BACKEND_UNAVAILABLE');
    assert.ok(isShed(refused));
    assert.equal(refused.headers?.['retry-after'], '60');
    assert.equal(backend.calls(), sent, 'nothing reached the backend');
    assert.equal(adapter.guardFigures().breaker.state, 'open');
  }));

test('a backend\'s 4xx, a deadline the client cut short and a call given up do not open it', () =>
  withAdapter({}, async (adapter, backend) => {
    backend.misbehave('infer', errorStatus(400, 'bad input'));
    for (let i = 0; i < 5; i++) assert.equal((await codeOf(call(adapter))).code, 'BACKEND_ERROR');
    backend.misbehave('infer', slow());
    for (let i = 0; i < 5; i++) assert.equal((await codeOf(call(adapter, 20))).code, 'BACKEND_TIMEOUT');
    for (let i = 0; i < 5; i++) {
      const ac = new AbortController();
      const p = adapter.infer(ROWS, { deadline: Date.now() + 5000, requestId: 'r', signal: ac.signal });
      setTimeout(() => ac.abort(), 10);
      assert.equal((await codeOf(p)).code, 'BACKEND_TIMEOUT');
    }
    assert.equal(adapter.guardFigures().breaker.state, 'closed');
    // A timeout with the backend's whole timeoutMs is its fault.
    for (let i = 0; i < 3; i++) assert.equal((await codeOf(call(adapter))).code, 'BACKEND_TIMEOUT');
    assert.equal(adapter.guardFigures().breaker.state, 'open');
  }));

test('past its slots and queue, a call is refused OVERLOADED at once; shedding does not open the breaker', () =>
  withAdapter({ connections: 1, queue: 1, timeoutMs: 2000 }, async (adapter, backend) => {
    backend.misbehave('infer', slow(200));
    const first = call(adapter);
    const second = call(adapter);
    const started = performance.now();
    const third = await codeOf(call(adapter));
    assert.ok(performance.now() - started < 50);
    assert.equal(third.code, 'OVERLOADED');
    assert.equal(third.status, 503);
    assert.equal(third.headers?.['retry-after'], '1');
    assert.ok(isShed(third));
    await Promise.all([first, second]);
    assert.equal(backend.calls(), 2);
    const f = adapter.guardFigures();
    assert.deepEqual({ ...f, breaker: f.breaker.state }, { inFlight: 0, queued: 0, shed: { queueFull: 1, queueTimeout: 0, breakerOpen: 0 }, breaker: 'closed' });
  }));
