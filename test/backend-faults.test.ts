/**
 * A backend that is down, slow, or answers garbage gets 503/504/502 with a code, within the
 * configured timeout, and nothing of the backend's own answer or address reaches the client.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import type { RunningGateway } from '../gateway/main.js';
import {
  error500, errorStatus, garbage, resetMidway, rowStatsHandler, ROW_STATS_METADATA, slow, startDownBackend, startFakeOipBackend,
  type FakeOipBackend,
} from './helpers/backends.js';
import { startInProcess } from './helpers/gateway.js';

const BACKEND_TIMEOUT_MS = 300;
const DEADLINE_MS = 200;
const BODY = JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] });

let backend: FakeOipBackend;
let gw: RunningGateway;

before(async () => {
  backend = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler);
  const down = await startDownBackend();
  // No breaker: each test maps one fault, one after another (overload.timing.test.ts shows the breaker).
  const version = (url: string) => ({ backend: { kind: 'oip-http', url, model: 'row-stats', timeoutMs: BACKEND_TIMEOUT_MS, connectTimeoutMs: 200, breakerFailures: 0 } });
  gw = await startInProcess({
    models: {
      // The backend's own timeout bounds the call.
      stats: { versions: { '1': version(backend.url) } },
      // The request's deadline is shorter than the backend timeout, and wins.
      hurried: { inferTimeoutMs: DEADLINE_MS, versions: { '1': version(backend.url) } },
      // Never reachable: answers MODEL_NOT_READY and is not ready.
      absent: { versions: { '1': version(down.url) } },
    },
  });
});

after(async () => {
  await gw.close();
  await backend.close();
});

async function infer(model: string) {
  const started = performance.now();
  const res = await request(`${gw.url}/v2/models/${model}/infer`, { method: 'POST', body: BODY });
  const text = await res.body.text();
  return { status: res.statusCode, text, body: JSON.parse(text) as { code?: string }, ms: performance.now() - started, headers: res.headers };
}

function assertClean(text: string) {
  assert.doesNotMatch(text, /127\.0\.0\.1|localhost|ECONN|\n\s+at |secret/i, 'no address, socket error, stack or backend text');
}

describe('backend faults', () => {
  test('a healthy backend answers through the gateway (control)', async () => {
    backend.misbehave('infer', undefined);
    const res = await infer('stats');
    assert.equal(res.status, 200, res.text);
  });

  test('a slow backend gets 504 BACKEND_TIMEOUT within the backend timeout', async () => {
    backend.misbehave('infer', slow());
    const res = await infer('stats');
    assert.equal(res.status, 504, res.text);
    assert.equal(res.body.code, 'BACKEND_TIMEOUT');
    assert.ok(res.ms < BACKEND_TIMEOUT_MS + 500, `answered after ${res.ms} ms`);
    assertClean(res.text);
  });

  test('the request deadline wins over a longer backend timeout', async () => {
    backend.misbehave('infer', slow());
    const res = await infer('hurried');
    assert.equal(res.status, 504, res.text);
    assert.equal(res.body.code, 'BACKEND_TIMEOUT');
    assert.ok(res.ms < DEADLINE_MS + 250, `answered after ${res.ms} ms`);
  });

  test('a caller\'s x-request-timeout-ms shortens the deadline and is passed on to the backend', async () => {
    backend.misbehave('infer', slow());
    const started = performance.now();
    const res = await request(`${gw.url}/v2/models/stats/infer`, { method: 'POST', body: BODY, headers: { 'x-request-timeout-ms': '120' } });
    const text = await res.body.text();
    assert.equal(res.statusCode, 504, text);
    assert.ok(performance.now() - started < 120 + 250, 'answered at the caller\'s deadline');
    const sent = Number(backend.inferCalls().at(-1)?.headers['x-request-timeout-ms']);
    assert.ok(sent > 0 && sent <= 120, `backend was told ${sent} ms`);
  });

  test('a caller cannot lengthen the deadline with x-request-timeout-ms', async () => {
    backend.misbehave('infer', slow());
    const started = performance.now();
    const res = await request(`${gw.url}/v2/models/hurried/infer`, { method: 'POST', body: BODY, headers: { 'x-request-timeout-ms': '60000' } });
    await res.body.dump();
    assert.equal(res.statusCode, 504);
    assert.ok(performance.now() - started < DEADLINE_MS + 250);
  });

  test('garbage from the backend gets 502 BACKEND_BAD_RESPONSE', async () => {
    backend.misbehave('infer', garbage('<html>secret internals</html>'));
    const res = await infer('stats');
    assert.equal(res.status, 502);
    assert.equal(res.body.code, 'BACKEND_BAD_RESPONSE');
    assertClean(res.text);
  });

  test('JSON without outputs gets 502 BACKEND_BAD_RESPONSE', async () => {
    backend.misbehave('infer', garbage('{"result": 1}'));
    const res = await infer('stats');
    assert.equal(res.status, 502);
    assert.equal(res.body.code, 'BACKEND_BAD_RESPONSE');
  });

  test('a backend error gets 502 BACKEND_ERROR without its text', async () => {
    backend.misbehave('infer', error500('secret stack at /srv/model.py line 3'));
    const res = await infer('stats');
    assert.equal(res.status, 502);
    assert.equal(res.body.code, 'BACKEND_ERROR');
    assertClean(res.text);
  });

  test('a backend saying 503 gets 503 BACKEND_UNAVAILABLE', async () => {
    backend.misbehave('infer', errorStatus(503, 'secret overloaded'));
    const res = await infer('stats');
    assert.equal(res.status, 503);
    assert.equal(res.body.code, 'BACKEND_UNAVAILABLE');
    assertClean(res.text);
  });

  test('a connection reset mid-request gets a 5xx backend code', async () => {
    backend.misbehave('infer', resetMidway);
    const res = await infer('stats');
    assert.ok([502, 503].includes(res.status), res.text);
    assert.match(String(res.body.code), /^BACKEND_/);
    assertClean(res.text);
  });

  test('a backend that was never reachable answers 503 MODEL_NOT_READY and readiness is false', async () => {
    const res = await infer('absent');
    assert.equal(res.status, 503);
    assert.equal(res.body.code, 'MODEL_NOT_READY');
    const ready = await request(`${gw.url}/v2/models/absent/ready`);
    assert.equal(ready.statusCode, 503);
    assert.deepEqual(await ready.body.json(), { name: 'absent', ready: false });
    const server = await request(`${gw.url}/v2/health/ready`);
    assert.equal(server.statusCode, 503);
    assert.deepEqual(await server.body.json(), { ready: false });
  });

  test('a backend that goes down gets 503 BACKEND_UNAVAILABLE quickly', async () => {
    backend.misbehave('infer', undefined);
    const second = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler);
    const local = await startInProcess({
      models: { stats: { versions: { '1': { backend: { kind: 'oip-http', url: second.url, model: 'row-stats', connectTimeoutMs: 200 } } } } },
    });
    try {
      await second.close();
      const started = performance.now();
      const res = await request(`${local.url}/v2/models/stats/infer`, { method: 'POST', body: BODY });
      const text = await res.body.text();
      assert.equal(res.statusCode, 503, text);
      assert.equal((JSON.parse(text) as { code: string }).code, 'BACKEND_UNAVAILABLE');
      assert.ok(performance.now() - started < 1000);
      assertClean(text);
    } finally {
      await local.close();
    }
  });
});
