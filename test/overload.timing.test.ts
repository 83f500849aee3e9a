/**
 * Overload and failing backends (issue 8, finding class 5), against real HTTP backends on 127.0.0.1:
 * past a backend's slots and queue, calls are refused in milliseconds with 503 OVERLOADED and
 * Retry-After instead of waiting for their deadline, and the backend never sees more than its
 * `connections`; a backend that keeps failing gets a handful of calls (the breaker's threshold and
 * its probes), clients get a fast 503 BACKEND_UNAVAILABLE, and traffic resumes once it recovers.
 * The figures show it in the admin view and the metrics.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { metrics } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type DataPoint } from '@opentelemetry/sdk-metrics';
import { request } from 'undici';
import type { BackendGuardFigures } from '../adapters/backend-guard.js';
import type { RunningGateway } from '../gateway/main.js';
import { METRIC } from '../gateway/telemetry/metrics.js';
import { error500, resetMidway, rowStatsHandler, ROW_STATS_METADATA, slow, startFakeOipBackend, type FakeOipBackend } from './helpers/backends.js';
import { spawnGateway, startInProcess, stopWithin, writeTempFile, type ChildGateway } from './helpers/gateway.js';
import { AUDIENCE, bigAgent, countingBackend, ISSUER, testIssuer } from './helpers/load.js';

const BODY = JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] });
const CONNECTIONS = 32;
const QUEUE = 32;
const CLIENTS = 200;
const BACKEND_MS = 1000;
const DEADLINE_MS = 10_000;
const THRESHOLD = 3;
const COOLDOWN_MS = 200;

const issuer = testIssuer();
const ADMIN = issuer.sign({ sub: 'po-anna', scope: 'admin:traffic', exp: Math.floor(Date.now() / 1000) + 600 });
const CLIENT = issuer.sign({ sub: 'app', scope: 'predict:*', exp: Math.floor(Date.now() / 1000) + 600 });

const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
const provider = new MeterProvider({ readers: [reader] });

let slowBackend: Awaited<ReturnType<typeof countingBackend>>;
let tightBackend: FakeOipBackend;
let failing: FakeOipBackend;
/**
 * The burst's gateway runs in a process of its own, as in production: in this one, the test's own
 * 200 clients and the backend would share its thread, and every answer would wait for all of them.
 */
let burstGateway: ChildGateway;
let gw: RunningGateway;
/** The test's own sockets: one per concurrent request, none pooled behind another. */
const client = bigAgent(CLIENTS + 10);

const remote = (url: string, extra: Record<string, unknown>) => ({ backend: { kind: 'oip-http', url, model: ROW_STATS_METADATA.name, ...extra } });

before(async () => {
  metrics.setGlobalMeterProvider(provider);
  slowBackend = await countingBackend(BACKEND_MS);
  tightBackend = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler, { infer: slow(300) });
  failing = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler);
  const file = await writeTempFile('overload.yaml', JSON.stringify({
    server: { host: '127.0.0.1', port: 0 },
    auth: { insecureNoAuth: true },
    models: {
      // The queue's wait is longer than one backend call here, so the 32 queued calls are served.
      slow: { inferTimeoutMs: DEADLINE_MS, versions: { '1': remote(slowBackend.url, { connections: CONNECTIONS, queue: QUEUE, queueTimeoutMs: 5000 }) } },
    },
  }));
  burstGateway = await spawnGateway(['serve', '--config', file, '--port', '0']);
  gw = await startInProcess({
    auth: { issuer: ISSUER, audience: AUDIENCE, keys: [issuer.keyConfig] },
    models: {
      tight: { versions: { '1': remote(tightBackend.url, { connections: 1, queue: 0 }) } },
      flaky: { versions: { '1': remote(failing.url, { breakerFailures: THRESHOLD, breakerCooldownMs: COOLDOWN_MS, breakerMaxCooldownMs: COOLDOWN_MS }) } },
    },
  });
});

after(async () => {
  await Promise.all([stopWithin(burstGateway, 5000), gw.close()]);
  await Promise.all([slowBackend.close(), tightBackend.close(), failing.close(), client.close()]);
  await provider.shutdown();
});

interface Answer { readonly status: number; readonly code: string | undefined; readonly retryAfter: string | undefined; readonly ms: number }

async function infer(model: string, base = gw.url): Promise<Answer> {
  const started = performance.now();
  const res = await request(`${base}/v2/models/${model}/infer`, {
    method: 'POST', body: BODY, dispatcher: client, headers: { authorization: `Bearer ${CLIENT}` },
  });
  const ms = performance.now() - started;
  const body = (await res.body.json()) as { code?: string };
  const retryAfter = res.headers['retry-after'];
  return { status: res.statusCode, code: body.code, retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined, ms };
}

/** This replica's backend figures of a model's version 1, from the per-version view. */
async function viewed(base: string, model: string, auth?: string): Promise<BackendGuardFigures | undefined> {
  const res = await request(`${base}/admin/models/${model}`, { dispatcher: client, headers: auth === undefined ? {} : { authorization: `Bearer ${auth}` } });
  const json = (await res.body.json()) as { figures?: { backends?: Record<string, BackendGuardFigures> } };
  assert.equal(res.statusCode, 200);
  return json.figures?.backends?.['1'];
}

function points(name: string): DataPoint<unknown>[] {
  const found = exporter.getMetrics().flatMap((rm) => rm.scopeMetrics).flatMap((sm) => sm.metrics).filter((m) => m.descriptor.name === name);
  return found.at(-1)?.dataPoints ?? [];
}

const pointOf = (name: string, attrs: Record<string, string>) =>
  points(name).find((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v))?.value;

/**
 * One keep-alive socket per client, opened before the burst, each sending its request as raw bytes
 * and timed from its own write to the end of its answer: what is measured is the gateway, not the
 * test's HTTP client (which would stamp all 200 requests before writing the first).
 */
class RawClient {
  readonly #socket: Socket;
  #buffer = Buffer.alloc(0);
  #waiting: ((a: Answer) => void) | undefined;
  #sentAt = 0;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
  }

  static open(base: string): Promise<RawClient> {
    const { hostname, port } = new URL(base);
    return new Promise((resolve, reject) => {
      const socket = connect({ host: hostname, port: Number(port), noDelay: true }, () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  send(bytes: Buffer): Promise<Answer> {
    return new Promise((resolve) => {
      this.#waiting = resolve;
      this.#sentAt = performance.now();
      this.#socket.write(bytes);
    });
  }

  #onData(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    const end = this.#buffer.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = this.#buffer.subarray(0, end).toString('latin1');
    const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    if (this.#buffer.length < end + 4 + length) return;
    const ms = performance.now() - this.#sentAt;
    const body = this.#buffer.subarray(end + 4, end + 4 + length).toString('utf8');
    this.#buffer = this.#buffer.subarray(end + 4 + length);
    const status = Number(head.slice(9, 12));
    const retryAfter = /\r\nretry-after:\s*([^\r]*)/i.exec(head)?.[1];
    const code = (JSON.parse(body) as { code?: string }).code;
    const done = this.#waiting;
    this.#waiting = undefined;
    done?.({ status, code, retryAfter, ms });
  }

  close(): void {
    this.#socket.destroy();
  }
}

describe('overload: a backend capped at 32 connections with a queue of 32', () => {
  test('200 concurrent requests: the excess is refused 503 OVERLOADED within 100 ms each, the 64 admitted succeed, the backend never sees more than 32', async () => {
    const base = burstGateway.url;
    const { host } = new URL(base);
    const request1 = Buffer.from(
      `POST /v2/models/slow/infer HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(BODY)}\r\n\r\n${BODY}`,
    );
    const live = Buffer.from(`GET /v2/health/live HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => RawClient.open(base)));
    try {
      // Every socket accepted and used once, and the gateway's sockets to the backend opened: the
      // burst measures admission, not TCP set-up.
      await Promise.all(clients.map((c) => c.send(live)));
      const warm = await Promise.all(clients.slice(0, CONNECTIONS).map((c) => c.send(request1)));
      assert.ok(warm.every((a) => a.status === 200));
      // The machine is shared: `npm test` runs the `*.timing.test` files last and alone, but other
      // processes may still be busy. Every burst must answer the counts, codes and headers below,
      // and the slowest refusal of the best of up to six bursts (~2 s each, enough to outlast a
      // neighbour's busy spell) must be under 100 ms. A gateway that holds the excess (in
      // undici's queue, until a deadline) fails every one by seconds, not milliseconds.
      const slowest: number[] = [];
      for (let burst = 0; burst < 6; burst++) {
        slowBackend.resetMax();
        const started = performance.now();
        const answers = await Promise.all(clients.map((c) => c.send(request1)));
        const total = performance.now() - started;
        const ok = answers.filter((a) => a.status === 200);
        const shed = answers.filter((a) => a.status !== 200);
        assert.equal(ok.length, CONNECTIONS + QUEUE, `admitted: ${ok.length}`);
        assert.equal(shed.length, CLIENTS - CONNECTIONS - QUEUE);
        const sorted = shed.map((a) => a.ms).sort((x, y) => x - y);
        console.log(`# burst ${burst + 1}: ${shed.length} refused in ${sorted[0]?.toFixed(1)}–${sorted.at(-1)?.toFixed(1)} ms (median ${sorted[sorted.length >> 1]?.toFixed(1)}); the burst took ${total.toFixed(0)} ms`);
        for (const a of shed) {
          assert.equal(a.status, 503);
          assert.equal(a.code, 'OVERLOADED');
          assert.ok(Number(a.retryAfter) >= 1 && Number.isInteger(Number(a.retryAfter)), `Retry-After ${a.retryAfter}`);
          assert.ok(a.ms < 1000, `refused after ${a.ms.toFixed(1)} ms: it waited`);
        }
        assert.ok(slowBackend.maxInFlight() <= CONNECTIONS, `the backend saw ${slowBackend.maxInFlight()} calls at once`);
        assert.equal(slowBackend.maxInFlight(), CONNECTIONS, 'every slot was used');
        // Two rounds of backend calls, then done: nobody waited for the 10 s deadline.
        assert.ok(total < 2 * BACKEND_MS + 1500, `the burst took ${total.toFixed(0)} ms`);
        slowest.push(sorted.at(-1) ?? 0);
        if (slowest.at(-1)! < 100) break;
      }
      assert.ok(Math.min(...slowest) < 100, `the slowest refusal of each burst: ${slowest.map((m) => m.toFixed(1)).join(', ')} ms`);
    } finally {
      for (const c of clients) c.close();
    }

    const f = await viewed(base, 'slow');
    assert.equal(f?.inFlight, 0);
    assert.equal(f?.queued, 0);
    assert.equal((f?.shed.queueFull ?? 0) % (CLIENTS - CONNECTIONS - QUEUE), 0, 'every burst shed its excess, counted');
    assert.ok((f?.shed.queueFull ?? 0) >= CLIENTS - CONNECTIONS - QUEUE);
    assert.equal(f?.breaker.state, 'closed', 'shedding is not a backend failure');
  });

  test('refusals and queue depth are metrics', async () => {
    const answers = await Promise.all([infer('tight'), infer('tight'), infer('tight')]);
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 503, 503]);
    await reader.forceFlush();
    assert.equal(pointOf(METRIC.backendShed, { model: 'tight', model_version: '1', reason: 'queue_full' }), 2);
    assert.equal(pointOf(METRIC.backendQueueDepth, { model: 'tight', model_version: '1' }), 0);
    assert.equal(pointOf(METRIC.backendInFlight, { model: 'tight', model_version: '1' }), 0);
    assert.equal(pointOf(METRIC.backendBreakerState, { model: 'tight', model_version: '1' }), 0);
  });
});

describe('a backend that fails 50 times in a row, behind a circuit breaker', () => {
  test('gets at most a handful of calls, clients get fast 503 BACKEND_UNAVAILABLE, and traffic resumes after it recovers', async () => {
    failing.misbehave('infer', (n) => (n % 2 === 0 ? resetMidway : error500('secret stack')));
    const before = failing.calls();
    const answers: Answer[] = [];
    // 60 requests over ~600 ms: three cool-downs, so the breaker probes (and re-opens) a few times.
    for (let i = 0; i < 60; i++) {
      answers.push(await infer('flaky'));
      await sleep(10);
    }
    const attempts = failing.calls() - before;
    const elapsed = answers.reduce((s, a) => s + a.ms, 0) + 600;
    const probes = Math.ceil(elapsed / COOLDOWN_MS) + 1;
    assert.ok(attempts <= THRESHOLD + probes, `the backend got ${attempts} calls for 60 requests`);
    assert.ok(attempts >= THRESHOLD + 1, 'it was probed after the cool-down');
    const refused = answers.slice(THRESHOLD).filter((a) => a.code === 'BACKEND_UNAVAILABLE' && a.status === 503 && a.retryAfter !== undefined);
    assert.ok(refused.length >= 60 - attempts, `${refused.length} refused by the breaker`);
    for (const a of answers.slice(THRESHOLD)) assert.ok(a.status >= 500 && a.ms < 100, `${a.status} ${a.code} after ${a.ms.toFixed(1)} ms`);
    // The per-version view shows it.
    const open = await viewed(gw.url, 'flaky', ADMIN);
    assert.notEqual(open?.breaker.state, 'closed');
    assert.ok((open?.breaker.opens ?? 0) >= 2, `opened ${open?.breaker.opens} times (first, then after failed probes)`);
    assert.ok((open?.breaker.rejected ?? 0) >= 60 - attempts);
    assert.ok((open?.shed.breakerOpen ?? 0) >= 60 - attempts);

    // Recovered: after a cool-down the probe succeeds and every request is served again.
    failing.misbehave('infer', undefined);
    await sleep(COOLDOWN_MS + 50);
    const resumed = [];
    for (let i = 0; i < 5; i++) resumed.push(await infer('flaky'));
    assert.deepEqual(resumed.map((a) => a.status), [200, 200, 200, 200, 200]);
    assert.equal((await viewed(gw.url, 'flaky', ADMIN))?.breaker.state, 'closed');

    await reader.forceFlush();
    assert.ok(Number(pointOf(METRIC.backendShed, { model: 'flaky', model_version: '1', reason: 'breaker_open' })) >= 60 - attempts);
    assert.ok(Number(pointOf(METRIC.backendBreakerTransitions, { model: 'flaky', model_version: '1', state: 'open' })) >= 2);
    assert.equal(pointOf(METRIC.backendBreakerTransitions, { model: 'flaky', model_version: '1', state: 'closed' }), 1);
    assert.equal(pointOf(METRIC.backendBreakerState, { model: 'flaky', model_version: '1' }), 0);
  });
});
