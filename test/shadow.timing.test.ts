/**
 * Shadow traffic through a real gateway and real HTTP backends on 127.0.0.1: every request of a
 * model with `traffic.shadow` at 100 % is copied to version 2 and the answers compared, while the
 * primary's answers stay those of version 1. The must-show: a dead or slow shadow backend leaves the
 * primary's error count at zero and its p99 within noise of the same model without a shadow,
 * measured in the same run with interleaved rounds; a slow shadow (never suspended here) never has
 * more than `maxConcurrent` copies in flight at its backend, and a dead one is suspended by the
 * breaker after a few failures.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { metrics } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics';
import { Agent, request } from 'undici';
import type { RunningGateway } from '../gateway/main.js';
import type { ShadowFigures } from '../gateway/shadow-figures.js';
import { METRIC } from '../gateway/telemetry/metrics.js';
import { ROW_STATS_METADATA, rowStatsHandler, startFakeOipBackend, type FakeOipBackend, type OipInferResponseJson } from './helpers/backends.js';
import { startInProcess } from './helpers/gateway.js';
import { until } from './helpers/load.js';

const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
const provider = new MeterProvider({ readers: [reader] });

const BODY = JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }] });
const EXPECTED = rowStatsHandler(JSON.parse(BODY), { method: 'POST', path: '', headers: {}, body: Buffer.alloc(0) }) as OipInferResponseJson;
/** Slow shadows: far longer than their deadline, which is far longer than a primary answer takes here. */
const SLOW_BACKEND_MS = 3000;
const SLOW_TIMEOUT_MS = 300;
const SLOW_MAX_CONCURRENT = 4;

/** A row-stats backend that holds every infer request `delayMs`, counting those still open (not answered, not abandoned). */
interface HeldBackend {
  readonly url: string;
  received(): number;
  maxOpen(): number;
  close(): Promise<void>;
}

async function startHeldBackend(delayMs: number): Promise<HeldBackend> {
  let open = 0;
  let max = 0;
  let received = 0;
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const send = (body: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.method !== 'POST') {
      req.resume();
      send(req.url?.endsWith('/ready') === true || req.url?.startsWith('/v2/health') === true ? { ready: true } : ROW_STATS_METADATA);
      return;
    }
    received++;
    open++;
    max = Math.max(max, open);
    req.resume();
    const timer = setTimeout(() => {
      timers.delete(timer);
      send({ model_name: ROW_STATS_METADATA.name, outputs: EXPECTED.outputs });
    }, delayMs);
    timers.add(timer);
    // 'close' comes when the answer is out or the client gave up (the gateway's deadline).
    res.once('close', () => {
      open--;
      clearTimeout(timer);
      timers.delete(timer);
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received: () => received,
    maxOpen: () => max,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

let gw: RunningGateway;
let fast: FakeOipBackend;
let twin: FakeOipBackend;
let differs: FakeOipBackend;
let dying: FakeOipBackend;
let held: HeldBackend;
let heldParallel: HeldBackend;
const agent = new Agent({ connections: 32, pipelining: 1, keepAliveTimeout: 10_000 });

const version = (b: { url: string }) => ({ backend: { kind: 'oip-http', url: b.url, model: ROW_STATS_METADATA.name } });
const onlyV1 = [{ version: '1', weight: 100 }];

before(async () => {
  metrics.setGlobalMeterProvider(provider);
  fast = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler);
  twin = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler);
  // A model that answers the same question differently: every row sum one too high.
  differs = await startFakeOipBackend(ROW_STATS_METADATA, async (req, call) => {
    const out = await rowStatsHandler(req, call);
    return { outputs: out.outputs.map((t) => (t.name === 'sum' ? { ...t, data: (t.data as number[]).map((v) => v + 1) } : t)) };
  });
  dying = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler);
  held = await startHeldBackend(SLOW_BACKEND_MS);
  heldParallel = await startHeldBackend(SLOW_BACKEND_MS);
  const slowShadow = { version: '2', percent: 100, timeoutMs: SLOW_TIMEOUT_MS, maxConcurrent: SLOW_MAX_CONCURRENT };
  // The slow shadow is never suspended, so it stays slow for the whole run: what bounds it is
  // maxConcurrent and its deadline. The dead one has the default breaker (suspended after 5 failures).
  const slowUnbroken = { ...slowShadow, suspendAfter: 0 };
  gw = await startInProcess({
    models: {
      same: { stable: '1', versions: { '1': version(fast), '2': version(twin) }, traffic: { routes: onlyV1, shadow: { version: '2', percent: 100 } } },
      differs: { stable: '1', versions: { '1': version(fast), '2': version(differs) }, traffic: { routes: onlyV1, shadow: { version: '2', percent: 100 } } },
      // The baseline: the same primary, the same routing, no shadow.
      base: { stable: '1', versions: { '1': version(fast), '2': version(twin) }, traffic: { routes: onlyV1 } },
      dead: { stable: '1', versions: { '1': version(fast), '2': version(dying) }, traffic: { routes: onlyV1, shadow: slowShadow } },
      slow: { stable: '1', versions: { '1': version(fast), '2': version(held) }, traffic: { routes: onlyV1, shadow: slowUnbroken } },
      parallel: {
        stable: '1',
        versions: { '1': version(fast), '2': version(heldParallel) },
        traffic: { routes: onlyV1, shadow: { version: '2', percent: 100, mode: 'parallel', timeoutMs: 1000, maxConcurrent: 16 } },
      },
    },
  });
  // Dead after its metadata was read: every copy now meets a closed port.
  await dying.close();
});

after(async () => {
  await gw?.close();
  await agent.close();
  await Promise.all([fast, twin, differs, dying].map((b) => b?.close()));
  await Promise.all([held, heldParallel].map((b) => b?.close()));
  await provider.shutdown();
});

interface Answer {
  readonly status: number;
  readonly version: string | undefined;
  readonly ms: number;
  readonly body: string;
}

/** One infer request, never longer than 10 s; a failure without an answer is status 0. */
async function infer(model: string): Promise<Answer> {
  const t0 = performance.now();
  try {
    const res = await request(`${gw.url}/v2/models/${model}/infer`, {
      method: 'POST', body: BODY, headers: { 'content-type': 'application/json' }, dispatcher: agent, signal: AbortSignal.timeout(10_000),
    });
    const body = await res.body.text();
    return { status: res.statusCode, version: res.headers['x-model-version'] as string | undefined, ms: performance.now() - t0, body };
  } catch (e) {
    return { status: 0, version: undefined, ms: performance.now() - t0, body: (e as Error).message };
  }
}

/** `n` requests to `model`, `concurrency` at a time, stopping early after `budgetMs`. */
async function round(model: string, n: number, concurrency: number, budgetMs = 10_000): Promise<Answer[]> {
  const out: Answer[] = [];
  const stopAt = Date.now() + budgetMs;
  let sent = 0;
  const worker = async () => {
    while (sent < n && Date.now() < stopAt) {
      sent++;
      out.push(await infer(model));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return out;
}

function percentile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];
}

/** Waits for every copy in flight or waiting to end (bounded). */
async function settled(timeoutMs = 10_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('copies still in flight')), timeoutMs)));
  try {
    await Promise.race([gw.shadow.idle(), late]);
  } finally {
    clearTimeout(timer);
  }
}

function figures(model: string): ShadowFigures {
  const f = gw.shadow.figures(model);
  assert.ok(f !== undefined, `figures of ${model}`);
  return f;
}

async function points(name: string): Promise<DataPoint<unknown>[]> {
  await reader.forceFlush();
  const found = exporter.getMetrics().flatMap((rm) => rm.scopeMetrics).flatMap((sm) => sm.metrics).filter((m) => m.descriptor.name === name);
  return found.at(-1)?.dataPoints ?? [];
}

function assertPrimaryAnswer(a: Answer, model: string): void {
  assert.equal(a.status, 200, a.body);
  assert.equal(a.version, '1');
  const json = JSON.parse(a.body) as { model_name: string; model_version: string; outputs: unknown[] };
  assert.equal(json.model_name, model);
  assert.deepEqual(json.outputs.map((o) => (o as { name: string }).name), ['sum', 'scaled', 'positive']);
}

test('a shadow answering the same is counted as agreement, and the primary answer is unchanged', async () => {
  const answers: Answer[] = [];
  for (let i = 0; i < 20; i++) answers.push(await infer('same'));
  for (const a of answers) assertPrimaryAnswer(a, 'same');
  // The primary's answer is byte for byte what the model without a shadow answers (name aside).
  const plain = await infer('base');
  assert.equal(answers[0].body.replace('"same"', '"base"'), plain.body);
  await settled();
  const f = figures('same');
  assert.deepEqual({ sent: f.sent, agreed: f.agreed, disagreed: f.disagreed, errors: f.errors }, { sent: 20, agreed: 20, disagreed: 0, errors: 0 });
  assert.ok(f.latencyMs.shadowMean !== null && f.latencyMs.primaryMean !== null);
  assert.equal(twin.calls(), 20, 'every copy reached version 2');
  assert.equal(twin.inferCalls()[0].body.toString(), BODY, 'the copy is the client request');
  const agree = (await points(METRIC.shadowRequests)).find((p) => p.attributes.model === 'same');
  assert.deepEqual(agree?.attributes, { model: 'same', model_version: '2', outcome: 'agree' });
  assert.equal(agree?.value, 20);
  const duration = (await points(METRIC.shadowDuration)).find((p) => p.attributes.model === 'same');
  assert.equal((duration?.value as Histogram | undefined)?.count, 20);
});

test('a shadow answering differently is counted as disagreement', async () => {
  for (let i = 0; i < 10; i++) assertPrimaryAnswer(await infer('differs'), 'differs');
  await settled();
  const f = figures('differs');
  assert.deepEqual({ sent: f.sent, agreed: f.agreed, disagreed: f.disagreed }, { sent: 10, agreed: 0, disagreed: 10 });
  const disagree = (await points(METRIC.shadowRequests)).find((p) => p.attributes.model === 'differs');
  assert.deepEqual({ outcome: disagree?.attributes.outcome, value: disagree?.value }, { outcome: 'disagree', value: 10 });
});

test('a dead or slow shadow backend leaves primary errors at zero and p99 within noise of no shadow, in the same run', async (t) => {
  const ROUNDS = 16;
  const PER_ROUND = 100;
  const CONCURRENCY = 8;
  const models = ['base', 'dead', 'slow'] as const;
  const ms: Record<(typeof models)[number], number[]> = { base: [], dead: [], slow: [] };
  const failures: Record<string, number> = { base: 0, dead: 0, slow: 0 };
  // Warm-up (JIT, connections), not measured.
  for (const m of models) await round(m, 50, CONCURRENCY);
  await settled();
  const before = { dead: figures('dead'), slow: figures('slow') };
  const startedAt = Date.now();
  // Interleaved rounds, so whatever else the machine does hits all three alike.
  for (let r = 0; r < ROUNDS && Date.now() - startedAt < 60_000; r++) {
    for (const m of models) {
      for (const a of await round(m, PER_ROUND, CONCURRENCY)) {
        if (a.status !== 200 || a.version !== '1') failures[m]++;
        ms[m].push(a.ms);
      }
    }
  }
  await settled();
  const p99 = { base: percentile(ms.base, 0.99), dead: percentile(ms.dead, 0.99), slow: percentile(ms.slow, 0.99) };
  const p50 = { base: percentile(ms.base, 0.5), dead: percentile(ms.dead, 0.5), slow: percentile(ms.slow, 0.5) };
  const fmt = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${k} ${v.toFixed(2)} ms`).join(', ');
  t.diagnostic(`requests per model: ${ms.base.length}, ${ms.dead.length}, ${ms.slow.length}`);
  t.diagnostic(`p99: ${fmt(p99)}`);
  t.diagnostic(`p50: ${fmt(p50)}`);
  const dead = figures('dead');
  const slow = figures('slow');
  const delta = (f: ShadowFigures, b: ShadowFigures) => ({
    sent: f.sent - b.sent, errors: f.errors - b.errors, timeouts: f.timeouts - b.timeouts, dropped: f.dropped - b.dropped, agreed: f.agreed - b.agreed,
  });
  const d = delta(dead, before.dead);
  const s = delta(slow, before.slow);
  t.diagnostic(`dead shadow: ${JSON.stringify(d)}; slow shadow: ${JSON.stringify(s)}; slow backend max open ${held.maxOpen()}`);

  assert.ok(ms.base.length >= 1500 && ms.dead.length === ms.base.length && ms.slow.length === ms.base.length, 'the same load on all three');
  assert.deepEqual(failures, { base: 0, dead: 0, slow: 0 }, 'no primary failed');
  const tolerance = Math.max(2 * p99.base, p99.base + 15);
  assert.ok(p99.dead <= tolerance, `dead shadow p99 ${p99.dead.toFixed(2)} ms vs baseline ${p99.base.toFixed(2)} ms`);
  assert.ok(p99.slow <= tolerance, `slow shadow p99 ${p99.slow.toFixed(2)} ms vs baseline ${p99.base.toFixed(2)} ms`);
  // Every copy is accounted for: a failed call or a drop, nothing agreed with a dead or slow backend.
  // (On a machine busy enough to stall the loop past timeoutMs, a refused connection is a timeout.)
  assert.equal(d.errors + d.timeouts + d.dropped, ms.dead.length, 'dead: every request was copied and failed or dropped');
  assert.ok(d.errors > 0 && d.agreed === 0);
  // The breaker: a dead shadow is suspended after 5 failures in a row and probed once a cool-down,
  // so over the run only a handful of copies were sent (the cool-down doubles from 1 s).
  assert.ok(d.sent <= 5 + Math.ceil((Date.now() - startedAt) / 1000) + 5, `dead: ${d.sent} copies sent`);
  assert.ok(dead.suspended > 0, 'dead: copies were suspended');
  assert.equal(slow.suspended, 0, 'slow (suspendAfter 0): never suspended');
  assert.equal(s.timeouts + s.dropped, ms.slow.length, 'slow: every request was copied and timed out or dropped');
  assert.ok(s.timeouts > 0 && s.dropped > 0 && s.sent === s.timeouts, 'slow: drops and timeouts both counted');
  assert.ok(held.maxOpen() <= SLOW_MAX_CONCURRENT, `the slow backend saw ${held.maxOpen()} copies at once`);
  assert.ok(held.received() > 0);
  const byOutcome = (await points(METRIC.shadowRequests)).filter((p) => p.attributes.model === 'slow');
  assert.deepEqual(byOutcome.map((p) => p.attributes.outcome).sort(), ['dropped', 'timeout']);
  const deadOutcomes = (await points(METRIC.shadowRequests)).filter((p) => p.attributes.model === 'dead').map((p) => p.attributes.outcome);
  assert.ok(deadOutcomes.includes('error'), `dead outcomes: ${deadOutcomes.join(', ')}`);
});

test('a parallel shadow on a slow backend leaves the primary as fast as without one', async (t) => {
  const par: number[] = [];
  const base: number[] = [];
  for (let i = 0; i < 12; i++) {
    const a = await infer('parallel');
    assertPrimaryAnswer(a, 'parallel');
    par.push(a.ms);
    base.push((await infer('base')).ms);
  }
  // Every copy reached the slow backend (that parallel copies start with the primary call is shown
  // in gateway/shadow.test.ts).
  await until('copies at the slow backend', () => heldParallel.received() === 12, 5000);
  assert.equal(figures('parallel').sent, 12);
  const median = { parallel: percentile(par, 0.5), base: percentile(base, 0.5) };
  t.diagnostic(`median: parallel ${median.parallel.toFixed(2)} ms, base ${median.base.toFixed(2)} ms; slowest parallel ${Math.max(...par).toFixed(2)} ms`);
  assert.ok(Math.max(...par) < 500, 'no primary waited for its copy (deadline 1000 ms, backend 3000 ms)');
  // The copy's own connection to the slow backend costs this process some CPU (a fraction of a
  // millisecond per request here); a busy machine turns each extra wake-up into a scheduling delay.
  assert.ok(median.parallel <= Math.max(2 * median.base, median.base + 25), 'near the fast backend');
  await settled();
  assert.equal(figures('parallel').timeouts, 12);
});
