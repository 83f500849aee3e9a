import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { GatewayError, isGatewayError, type ErrorCode } from '../gateway/errors.js';
import type { InferOptions, InferRequest } from './adapter.js';
import { OipHttpAdapter, type OipHttpBackendOptions, type OipHttpLimits } from './oip-http.js';
import { adapterContract } from '../test/helpers/adapter-contract.js';
import {
  ROW_STATS_METADATA, error500, errorStatus, garbage, notHttp, resetMidway, rowStatsHandler, slow, startDownBackend,
  startFakeOipBackend, type FakeOipBackend, type FakeOipOptions,
} from '../test/helpers/backends.js';

function options(url: string, o: Partial<OipHttpBackendOptions> = {}): OipHttpBackendOptions {
  return {
    kind: 'oip-http', url, model: ROW_STATS_METADATA.name, connectTimeoutMs: 300, timeoutMs: 300,
    // No breaker: these tests map one fault after another (backend-guard.test.ts tests the breaker).
    connections: 4, keepAliveTimeoutMs: 1000, healthIntervalMs: 100, breakerFailures: 0, ...o,
  };
}

const ROWS: InferRequest = {
  inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 3], data: new Float32Array([1, -2, 0.5, 0, 3.25, -1]) }],
};
const opts = (o: Partial<InferOptions> = {}): InferOptions =>
  ({ signal: new AbortController().signal, deadline: Date.now() + 5_000, requestId: 'req-1', ...o });

adapterContract('oip-http', async () => {
  const backend = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler);
  return {
    adapter: new OipHttpAdapter(options(backend.url)),
    runs: backend.calls,
    cleanup: backend.close,
    sample: {
      request: ROWS,
      tolerance: 1e-6,
      expected: [
        { name: 'sum', datatype: 'FP32', shape: [2], data: [-0.5, 2.25] },
        { name: 'scaled', datatype: 'FP32', shape: [2, 3], data: [2, -4, 1, 0, 6.5, -2] },
        { name: 'positive', datatype: 'BOOL', shape: [2, 3], data: [true, false, true, false, true, false] },
      ],
    },
  };
});

/** A loaded adapter against a fresh row-stats backend; both are closed afterwards. */
async function withLoaded(
  setup: { backend?: FakeOipOptions; adapter?: Partial<OipHttpBackendOptions>; limits?: OipHttpLimits },
  body: (adapter: OipHttpAdapter, backend: FakeOipBackend) => Promise<void>,
): Promise<void> {
  const backend = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler, setup.backend);
  const adapter = new OipHttpAdapter(options(backend.url, setup.adapter), setup.limits);
  try {
    await adapter.load();
    await body(adapter, backend);
  } finally {
    await adapter.close();
    await backend.close();
  }
}

/** Awaits a rejection with `code`, checks no address leaks into the message, returns it and the time taken. */
async function failure(call: () => Promise<unknown>, code: ErrorCode, url?: string): Promise<{ error: GatewayError; ms: number }> {
  const started = performance.now();
  const error = await call().then(() => assert.fail(`expected ${code}, got an answer`), (e: unknown) => e);
  const ms = performance.now() - started;
  assert.ok(isGatewayError(error), `expected a GatewayError, got ${String(error)}`);
  assert.equal(error.code, code, `code (message: ${error.message})`);
  assert.doesNotMatch(error.message, /ECONN|ENOTFOUND|EAI_|UND_ERR|HPE_/, 'socket error codes stay in cause');
  if (url !== undefined) {
    const { hostname, port } = new URL(url);
    for (const leak of [hostname, port, url]) assert.ok(!error.message.includes(leak), `message leaks ${leak}: ${error.message}`);
  }
  return { error, ms };
}

describe('OipHttpAdapter', () => {
  it('uses versioned routes when a backend version is configured', () =>
    withLoaded({ backend: { version: '7' }, adapter: { version: '7' } }, async (adapter, backend) => {
      assert.equal(adapter.metadata().platform, 'fake-oip');
      await adapter.infer(ROWS, opts());
      assert.equal(backend.inferCalls()[0].path, '/v2/models/row-stats/versions/7/infer');
    }));

  it('keeps the non-tensor outputs another Breakwater advertises in its metadata', async () => {
    const md = { ...ROW_STATS_METADATA, platform: '', parameters: { non_tensor_outputs: ['zipmap'] } };
    const backend = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler, { metadata: garbage(JSON.stringify(md)) });
    const adapter = new OipHttpAdapter(options(backend.url));
    await adapter.load();
    const { inputs, outputs } = ROW_STATS_METADATA;
    assert.deepEqual(adapter.metadata(), { platform: 'oip-http', inputs, outputs, nonTensorOutputs: ['zipmap'] });
    await adapter.close();
    await backend.close();
  });

  it('load() rejects metadata that is not an OIP model description with BACKEND_BAD_RESPONSE', async () => {
    const bodies = ['not json', '{"inputs":[]}', '{"inputs":[{"name":"x"}],"outputs":[]}',
      '{"inputs":[{"name":"x","datatype":"FP33","shape":[1]}],"outputs":[]}',
      '{"inputs":[{"name":"x","datatype":"FP32","shape":[1.5]}],"outputs":[]}'];
    for (const body of bodies) {
      const backend = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler, { metadata: garbage(body) });
      const adapter = new OipHttpAdapter(options(backend.url));
      await failure(() => adapter.load(), 'BACKEND_BAD_RESPONSE', backend.url);
      await adapter.close();
      await backend.close();
    }
  });

  it('load() against a closed port fails fast with 503 BACKEND_UNAVAILABLE', async () => {
    const down = await startDownBackend();
    const adapter = new OipHttpAdapter(options(down.url, { timeoutMs: 5_000 }));
    const { error, ms } = await failure(() => adapter.load(), 'BACKEND_UNAVAILABLE', down.url);
    assert.equal(error.status, 503);
    assert.ok(ms < 1_000, `took ${ms} ms`);
    assert.equal(await adapter.ready(), false);
    await adapter.close();
  });

  it('infer against a backend that went down fails fast with 503 BACKEND_UNAVAILABLE', () =>
    withLoaded({ adapter: { timeoutMs: 5_000 } }, async (adapter, backend) => {
      await backend.close();
      const { ms } = await failure(() => adapter.infer(ROWS, opts()), 'BACKEND_UNAVAILABLE', backend.url);
      assert.ok(ms < 1_000, `took ${ms} ms`);
      assert.equal(await adapter.ready(), false);
    }));

  it('a backend that never answers gives 504 BACKEND_TIMEOUT after timeoutMs', () =>
    withLoaded({ backend: { infer: slow() }, adapter: { timeoutMs: 200 } }, async (adapter, backend) => {
      const { error, ms } = await failure(() => adapter.infer(ROWS, opts()), 'BACKEND_TIMEOUT', backend.url);
      assert.equal(error.status, 504);
      assert.ok(ms >= 180 && ms < 200 + 500, `took ${ms} ms`);
    }));

  it('a deadline shorter than timeoutMs wins', () =>
    withLoaded({ backend: { infer: slow() }, adapter: { timeoutMs: 5_000 } }, async (adapter) => {
      const { ms } = await failure(() => adapter.infer(ROWS, opts({ deadline: Date.now() + 150 })), 'BACKEND_TIMEOUT');
      assert.ok(ms >= 130 && ms < 150 + 500, `took ${ms} ms`);
    }));

  it('a deadline already past fails without calling the backend', () =>
    withLoaded({}, async (adapter, backend) => {
      await failure(() => adapter.infer(ROWS, opts({ deadline: Date.now() - 1 })), 'BACKEND_TIMEOUT');
      assert.equal(backend.calls(), 0);
    }));

  it("the caller's AbortSignal cancels an in-flight call", () =>
    withLoaded({ backend: { infer: slow() }, adapter: { timeoutMs: 5_000 } }, async (adapter, backend) => {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 50);
      const { ms } = await failure(() => adapter.infer(ROWS, opts({ signal: controller.signal })), 'BACKEND_TIMEOUT');
      assert.ok(ms < 500, `took ${ms} ms`);
      assert.equal(backend.calls(), 1);
    }));

  it('a 2xx that is not a valid inference response is 502 BACKEND_BAD_RESPONSE', () =>
    withLoaded({}, async (adapter, backend) => {
      const tensor = (t: string) => `{"outputs":[${t}]}`;
      const bodies = ['<html>oops</html>', '{"model_name":"row-stats"}', '{"outputs":{}}', '[1,2]',
        tensor('{"name":"sum","datatype":"FP32","shape":[2]}'),
        tensor('{"name":"sum","datatype":"FLOAT","shape":[2],"data":[1,2]}'),
        tensor('{"name":"sum","datatype":"FP32","shape":[3],"data":[1,2]}'),
        tensor('{"name":"sum","datatype":"FP32","shape":[2],"data":[1,{"a":1}]}'),
        tensor('{"name":"sum","datatype":"BYTES","shape":[1],"data":[1]}'),
        // The same output twice: a client would read one or the other.
        tensor('{"name":"sum","datatype":"FP32","shape":[1],"data":[1]},{"name":"sum","datatype":"FP32","shape":[1],"data":[2]}')];
      for (const body of bodies) {
        backend.misbehave('infer', garbage(body));
        const { error } = await failure(() => adapter.infer(ROWS, opts()), 'BACKEND_BAD_RESPONSE', backend.url);
        assert.equal(error.status, 502);
      }
      backend.misbehave('infer', garbage('{"outputs":[{"name":"sum","datatype":"FP32","shape":[1],"data":[1]}]}'));
      await failure(() => adapter.infer({ ...ROWS, outputs: [{ name: 'scaled' }] }, opts()), 'BACKEND_BAD_RESPONSE');
    }));

  it('a reply that is not HTTP is 502 BACKEND_BAD_RESPONSE', () =>
    withLoaded({ backend: { infer: notHttp() } }, async (adapter, backend) => {
      await failure(() => adapter.infer(ROWS, opts()), 'BACKEND_BAD_RESPONSE', backend.url);
    }));

  it('flattens nested data and returns plain JSON arrays', () =>
    withLoaded({}, async (adapter) => {
      const response = await adapter.infer(ROWS, opts());
      const scaled = response.outputs.find((o) => o.name === 'scaled');
      assert.deepEqual(scaled?.data, [2, -4, 1, 0, 6.5, -2]);
    }));

  it('an answer over the size cap is BACKEND_BAD_RESPONSE, with or without content-length', () =>
    withLoaded({ limits: { maxResponseBytes: 4096 } }, async (adapter, backend) => {
      const big = JSON.stringify({ outputs: [{ name: 'sum', datatype: 'FP32', shape: [2], data: [1, 2] }], pad: 'x'.repeat(64 * 1024) });
      for (const chunked of [false, true]) {
        backend.misbehave('infer', garbage(big, 200, chunked));
        await failure(() => adapter.infer(ROWS, opts()), 'BACKEND_BAD_RESPONSE');
      }
    }));

  it('a backend 500 is 502 BACKEND_ERROR without its text or address in the message', () =>
    withLoaded({}, async (adapter, backend) => {
      const secret = 'db-password=hunter2 at 10.1.2.3:5432';
      backend.misbehave('infer', error500(secret));
      const { error } = await failure(() => adapter.infer(ROWS, opts()), 'BACKEND_ERROR', backend.url);
      assert.equal(error.status, 502);
      assert.ok(!error.message.includes('hunter2') && !JSON.stringify(error.toJSON()).includes('hunter2'));
      assert.match(String((error.cause as Error).message), /hunter2/, 'the backend text is kept in cause for the log');
    }));

  it('maps backend statuses: 400 → BACKEND_ERROR, 503 → BACKEND_UNAVAILABLE', () =>
    withLoaded({}, async (adapter, backend) => {
      backend.misbehave('infer', errorStatus(400, 'bad input'));
      await failure(() => adapter.infer(ROWS, opts()), 'BACKEND_ERROR', backend.url);
      backend.misbehave('infer', errorStatus(503, 'overloaded'));
      await failure(() => adapter.infer(ROWS, opts()), 'BACKEND_UNAVAILABLE', backend.url);
    }));

  it('a connection reset mid-way is 503 BACKEND_UNAVAILABLE and is not retried', () =>
    withLoaded({ backend: { infer: resetMidway } }, async (adapter, backend) => {
      await failure(() => adapter.infer(ROWS, opts()), 'BACKEND_UNAVAILABLE', backend.url);
      await sleep(50);
      assert.equal(backend.calls(), 1);
    }));

  it('never retries a failed inference', () =>
    withLoaded({ backend: { infer: (n) => (n === 1 ? error500() : undefined) } }, async (adapter, backend) => {
      await failure(() => adapter.infer(ROWS, opts()), 'BACKEND_ERROR');
      await sleep(50);
      assert.equal(backend.calls(), 1);
      await adapter.infer(ROWS, opts());
      assert.equal(backend.calls(), 2);
    }));

  it('forwards rawJson byte for byte, with x-request-id', () =>
    withLoaded({}, async (adapter, backend) => {
      const rawJson = Buffer.from('{ "id":"r-1",\n  "inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[[1,2,3.5]]}]}\n');
      const request: InferRequest = { id: 'r-1', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3.5] }], rawJson };
      const response = await adapter.infer(request, opts({ requestId: 'trace-42' }));
      const call = backend.inferCalls()[0];
      assert.ok(call.body.equals(rawJson), 'the backend saw different bytes');
      assert.equal(call.headers['x-request-id'], 'trace-42');
      assert.deepEqual(response.outputs.find((o) => o.name === 'sum')?.data, [6.5]);
    }));

  it('never asks the backend for binary or shared-memory tensors', () =>
    withLoaded({}, async (adapter, backend) => {
      // The parser offers no rawJson for such a request (gateway/infer-request.ts), so it is re-encoded.
      const request: InferRequest = {
        inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3], parameters: { shared_memory_region: 'r' } }],
        parameters: { binary_data_output: true, priority: 1 },
      };
      await adapter.infer(request, opts());
      const sent = JSON.parse(backend.inferCalls()[0].body.toString()) as Record<string, unknown>;
      assert.deepEqual(sent.parameters, { priority: 1 });
      assert.ok(!JSON.stringify(sent).includes('shared_memory'));
    }));

  it('releases the socket after error answers, so a pool of one keeps working', () =>
    withLoaded({ adapter: { connections: 1 }, limits: { maxResponseBytes: 1024 } }, async (adapter, backend) => {
      for (let i = 0; i < 3; i++) {
        backend.misbehave('infer', error500('x'.repeat(64 * 1024)));
        await failure(() => adapter.infer(ROWS, opts()), 'BACKEND_ERROR');
        backend.misbehave('infer', garbage(`{"pad":"${'x'.repeat(8 * 1024)}"}`, 200, true));
        await failure(() => adapter.infer(ROWS, opts()), 'BACKEND_BAD_RESPONSE');
      }
      backend.misbehave('infer', undefined);
      const response = await adapter.infer(ROWS, opts());
      assert.equal(response.outputs.length, 3);
    }));

  it('caches ready() for healthIntervalMs and answers false on failure without throwing', () =>
    withLoaded({ adapter: { healthIntervalMs: 150, connectTimeoutMs: 200 } }, async (adapter, backend) => {
      assert.equal(await adapter.ready(), true);
      backend.misbehave('ready', errorStatus(503, 'loading'));
      assert.equal(await adapter.ready(), true, 'a fresh cached answer is reused');
      await sleep(170);
      assert.equal(await adapter.ready(), false);
      backend.misbehave('ready', slow());
      await sleep(170);
      const started = performance.now();
      assert.equal(await adapter.ready(), false);
      assert.ok(performance.now() - started < 200 + 300, 'the probe is bounded by connectTimeoutMs');
    }));
});
