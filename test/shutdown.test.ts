/**
 * SIGTERM drains: the gateway (a real child process in front of a real, slow OIP v2 backend) stops
 * taking new work, lets the request in flight finish, and exits 0, and it exits within its grace
 * time even when a backend never answers.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, describe, test } from 'node:test';
import { Agent, Client, request } from 'undici';
import { stringify } from 'yaml';
import { ROW_STATS_METADATA, rowStatsHandler, slow, startFakeOipBackend, type FakeOipBackend } from './helpers/backends.js';
import { spawnGateway, stopWithin, waitForOutput, writeTempFile, type ChildGateway } from './helpers/gateway.js';

const BODY = JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 3], data: [1, 2, 3, -1, 0, 4] }] });

const gateways: ChildGateway[] = [];
const backends: FakeOipBackend[] = [];
const agents: Agent[] = [];

after(async () => {
  await Promise.all(gateways.map((gw) => stopWithin(gw)));
  await Promise.all(backends.map((b) => b.close()));
  await Promise.all(agents.map((a) => a.close()));
});

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** A gateway serving the fake backend's row-stats model as "rowstats". */
async function gatewayInFrontOf(backend: FakeOipBackend, server: Record<string, unknown>): Promise<ChildGateway> {
  const file = await writeTempFile('breakwater.yaml', stringify({
    auth: { insecureNoAuth: true },
    server: { host: '127.0.0.1', port: 0, ...server },
    models: { rowstats: { versions: { '1': { backend: { kind: 'oip-http', url: backend.url, model: 'row-stats' } } } } },
  }));
  const gw = await spawnGateway(['serve', '--config', file]);
  gateways.push(gw);
  return gw;
}

/** GET on a connection of its own: the status, or the socket error's code (e.g. ECONNREFUSED). */
async function onNewConnection(url: string, path: string, method: 'GET' | 'POST' = 'GET', body?: string): Promise<{ status?: number; body?: string; error?: string }> {
  const client = new Client(url, { connect: { timeout: 2_000 }, headersTimeout: 5_000, bodyTimeout: 5_000 });
  try {
    const res = await client.request({ path, method, body });
    return { status: res.statusCode, body: await res.body.text() };
  } catch (e) {
    return { error: (e as NodeJS.ErrnoException).code ?? (e as Error).message };
  } finally {
    await client.destroy();
  }
}

interface Settled { status?: number; body?: string; error?: string; at: number }

function inferInFlight(gw: ChildGateway, agent: Agent): Promise<Settled> {
  return request(`${gw.url}/v2/models/rowstats/infer`, {
    method: 'POST', body: BODY, headers: { 'content-type': 'application/json' }, dispatcher: agent,
    headersTimeout: 15_000, bodyTimeout: 15_000,
  }).then(
    async (res) => ({ status: res.statusCode, body: await res.body.text(), at: Date.now() }),
    (e: unknown) => ({ error: (e as NodeJS.ErrnoException).code ?? (e as Error).message, at: Date.now() }),
  );
}

describe('shutting down on SIGTERM', { timeout: 60_000 }, () => {
  test('a request in flight to a slow backend completes, new work is refused, and the process exits 0 within the grace', { timeout: 30_000 }, async (t) => {
    const graceMs = 5_000;
    const backend = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler, { infer: slow(600) });
    backends.push(backend);
    const gw = await gatewayInFrontOf(backend, { shutdownGraceMs: graceMs });
    const agent = new Agent({ connections: 4 });
    agents.push(agent);
    await waitUntil('readiness', async () => (await onNewConnection(gw.url, '/v2/health/ready')).status === 200);

    let settled: Settled | undefined;
    const inflight = inferInFlight(gw, agent).then((s) => (settled = s));
    await waitUntil('the backend to receive the request', () => backend.calls() === 1);

    const exited = once(gw.process, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const from = gw.output().length;
    const termAt = Date.now();
    gw.process.kill('SIGTERM');
    await waitForOutput(gw, /shutting down/, { from, timeoutMs: 2_000 });

    // While the request is still in flight: not ready, and new connections get nowhere.
    const ready = await onNewConnection(gw.url, '/v2/health/ready');
    const infer = await onNewConnection(gw.url, '/v2/models/rowstats/infer', 'POST', BODY);
    assert.equal(settled, undefined, 'the in-flight request was still pending while readiness was checked');
    for (const [what, r] of [['readiness', ready], ['a new infer', infer]] as const) {
      assert.ok(r.error === 'ECONNREFUSED' || r.status === 503, `${what} after SIGTERM: ${JSON.stringify(r)}`);
    }
    if (ready.status === 503) assert.equal(ready.body, '{"ready":false}');

    const done = await inflight;
    assert.equal(done.status, 200, `the in-flight request: ${JSON.stringify(done)}`);
    const out = JSON.parse(done.body ?? '') as { outputs: { name: string; data: unknown[] }[] };
    assert.deepEqual(out.outputs.find((o) => o.name === 'sum')?.data, [6, 3]);
    assert.ok(done.at - termAt >= 300, 'it was answered after SIGTERM, by the slow backend');

    const [code, signal] = await exited;
    const exitMs = Date.now() - termAt;
    t.diagnostic(`answered ${done.at - termAt} ms and exited ${exitMs} ms after SIGTERM`);
    assert.deepEqual({ code, signal }, { code: 0, signal: null });
    assert.ok(exitMs < graceMs, `exited ${exitMs} ms after SIGTERM; the grace is ${graceMs} ms`);
    await waitForOutput(gw, /shut down cleanly/, { from, timeoutMs: 1_000 });
    assert.doesNotMatch(gw.output().slice(from), /did not finish in time/);
    assert.equal(backend.calls(), 1, 'nothing else reached the backend');
  });

  test('once the last in-flight request is answered, a keep-alive client does not hold the process open until the grace runs out', { timeout: 30_000 }, async (t) => {
    // Behind a load balancer the server keep-alive is set above the balancer's idle timeout (e.g.
    // 60 s on AWS ALB), and the balancer keeps its idle connections open for as long as allowed.
    const graceMs = 6_000;
    const backend = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler, { infer: slow(600) });
    backends.push(backend);
    const gw = await gatewayInFrontOf(backend, { shutdownGraceMs: graceMs, keepAliveTimeoutMs: 30_000 });
    const agent = new Agent({ connections: 4, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000, keepAliveTimeoutThreshold: 0 });
    agents.push(agent);
    await waitUntil('readiness', async () => (await onNewConnection(gw.url, '/v2/health/ready')).status === 200);

    let connectionHeader: unknown;
    const inflight = request(`${gw.url}/v2/models/rowstats/infer`, {
      method: 'POST', body: BODY, headers: { 'content-type': 'application/json' }, dispatcher: agent,
      headersTimeout: 15_000, bodyTimeout: 15_000,
    }).then(async (res) => {
      connectionHeader = res.headers.connection;
      await res.body.text();
      return { status: res.statusCode, at: Date.now() };
    });
    await waitUntil('the backend to receive the request', () => backend.calls() === 1);

    const exited = once(gw.process, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const from = gw.output().length;
    const termAt = Date.now();
    gw.process.kill('SIGTERM');
    const done = await inflight;
    assert.equal(done.status, 200);
    const limit = new Promise<'late'>((res) => setTimeout(() => res('late'), graceMs + 2_000).unref());
    const first = await Promise.race([exited, limit]);
    const exitMs = Date.now() - termAt;
    t.diagnostic(`answered ${done.at - termAt} ms and exited ${exitMs} ms after SIGTERM; the answer said "connection: ${String(connectionHeader)}"`);
    assert.notEqual(first, 'late', 'the process exited');
    assert.ok(
      Date.now() - done.at < 1_500,
      `the process exited ${exitMs - (done.at - termAt)} ms after its last request was answered (${exitMs} ms after SIGTERM, grace ${graceMs} ms); ` +
      `the drained answer carried "connection: ${String(connectionHeader)}" and the idle keep-alive connection held the shutdown:\n${gw.output().slice(from)}`,
    );
    assert.doesNotMatch(gw.output().slice(from), /did not finish in time/, 'nothing was in flight when the grace ran out');
  });

  test('with a small shutdownGraceMs and a backend that never answers, SIGTERM still exits within the grace plus 2 s', { timeout: 30_000 }, async (t) => {
    const graceMs = 300;
    const backend = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler, { infer: slow() });
    backends.push(backend);
    const gw = await gatewayInFrontOf(backend, { shutdownGraceMs: graceMs });
    const agent = new Agent({ connections: 4 });
    agents.push(agent);
    await waitUntil('readiness', async () => (await onNewConnection(gw.url, '/v2/health/ready')).status === 200);

    const inflight = inferInFlight(gw, agent);
    await waitUntil('the backend to receive the request', () => backend.calls() === 1);

    const exited = once(gw.process, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const from = gw.output().length;
    const termAt = Date.now();
    gw.process.kill('SIGTERM');
    const limit = new Promise<'late'>((res) => setTimeout(() => res('late'), graceMs + 2_000).unref());
    const first = await Promise.race([exited, limit]);
    const exitMs = Date.now() - termAt;
    t.diagnostic(`exited ${exitMs} ms after SIGTERM`);
    assert.notEqual(first, 'late', `still running ${graceMs + 2_000} ms after SIGTERM:\n${gw.output().slice(from)}`);
    const [code, signal] = first as [number | null, NodeJS.Signals | null];
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, gw.output().slice(from));
    assert.ok(exitMs >= graceMs - 50, `it waited for the grace before giving up (exited after ${exitMs} ms)`);

    // The abandoned request ends (its connection is closed) instead of hanging.
    const done = await inflight;
    assert.notEqual(done.status, 200, JSON.stringify(done));
    assert.match(gw.output().slice(from), /did not finish in time/);
  });
});
