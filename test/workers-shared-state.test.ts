/**
 * `server.workers: 2` without Redis: the workers share one store held by the primary (the state
 * relay). An admin traffic change made through one worker is served by both, a rate limit of N
 * allows N across both, and a worker that replaces a dead one starts from that shared state.
 *
 * Every request goes on a fresh connection, so the primary spreads them over the workers; which
 * worker answered is read from its own access log line (its pid), found by the request's id.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { logLines, REPO_ROOT, spawnGateway, stopWithin, waitForOutput, writeTempFile, type ChildGateway } from './helpers/gateway.js';
import { AUDIENCE, ISSUER, tally, testIssuer, tokenFor } from './helpers/load.js';

const issuer = testIssuer();
const IRIS = join(REPO_ROOT, 'demo/models/iris.onnx');
const BODY = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] });
const LIMIT = 40;
const ADMIN = issuer.sign({ sub: 'po-anna', tenant: 'acme', scope: 'admin:traffic', exp: Math.floor(Date.now() / 1000) + 600 });

function config(): Record<string, unknown> {
  const onnx = { kind: 'onnx', path: IRIS };
  return {
    server: { host: '127.0.0.1', port: 0, workers: 2, shutdownGraceMs: 2000 },
    logging: { level: 'info', accessLog: true },
    auth: { issuer: ISSUER, audience: AUDIENCE, keys: [issuer.keyConfig] },
    // A generous timeout keeps this about sharing, not about a loaded machine's lag (a timed-out
    // charge would fall back to the worker's own count: failMode local). Reconciliation every 30 s:
    // a change can reach the other worker within the test only by its announcement.
    state: { commandTimeoutMs: 2000, reconcileMs: 30_000 },
    rateLimits: { rules: [{ name: 'per-user', by: 'subject', limit: LIMIT, windowMs: 60_000, models: ['limited'] }] },
    models: {
      iris: { versions: { '1': { backend: onnx }, '2': { backend: onnx } }, stable: '1' },
      limited: { versions: { '1': { backend: onnx } } },
    },
  };
}

interface Answer {
  readonly id: string;
  readonly status: number;
  readonly code: string | undefined;
  readonly version: string;
  readonly reason: string;
}

let sent = 0;

/** One inference on a connection of its own, with a request id to find its access line by. */
async function infer(url: string, model: string, token: string): Promise<Answer> {
  const id = `relay-test-${++sent}`;
  const agent = new Agent({ pipelining: 0 });
  try {
    const res = await request(`${url}/v2/models/${model}/infer`, {
      method: 'POST',
      body: BODY,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-request-id': id },
      dispatcher: agent,
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.body.text();
    const code = res.statusCode === 200 ? undefined : (JSON.parse(text) as { code?: string }).code;
    return { id, status: res.statusCode, code, version: String(res.headers['x-model-version']), reason: String(res.headers['x-route-reason']) };
  } finally {
    await agent.close();
  }
}

/** `n` inferences, `parallel` at a time. */
async function many(n: number, parallel: number, call: () => Promise<Answer>): Promise<Answer[]> {
  const out: Answer[] = [];
  let started = 0;
  const lane = async (): Promise<void> => {
    while (started < n) {
      started++;
      out.push(await call());
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, lane));
  return out;
}

/** The pid of the worker that answered each request, from the access lines (waits for them to be written). */
async function answeredBy(gw: ChildGateway, answers: readonly Answer[]): Promise<Map<string, number>> {
  const pids = new Map<string, number>();
  const find = (): boolean => {
    for (const l of logLines(gw.output())) if (l.msg === 'infer' && typeof l.reqId === 'string' && typeof l.pid === 'number') pids.set(l.reqId, l.pid);
    return answers.every((a) => pids.has(a.id));
  };
  await waitForOutput(gw, find, { timeoutMs: 5_000 });
  return pids;
}

function servingPids(gw: ChildGateway, from = 0): Set<unknown> {
  return new Set(logLines(gw.output().slice(from)).filter((l) => l.msg === 'breakwater is serving').map((l) => l.pid));
}

describe('two workers without Redis share state through the primary', () => {
  let gw: ChildGateway;

  before(async () => {
    const file = await writeTempFile('workers-shared.yaml', JSON.stringify(config(), null, 2));
    gw = await spawnGateway(['serve', '--config', file]);
    await waitForOutput(gw, () => servingPids(gw).size === 2, { timeoutMs: 20_000 });
  });

  after(async () => {
    if (gw.process.exitCode === null) await stopWithin(gw);
  });

  test('the primary says once that state is shared through it, and only per host', () => {
    const said = logLines(gw.output()).filter((l) => String(l.msg).startsWith('state is shared between workers through the primary'));
    assert.equal(said.length, 1);
    assert.equal(said[0]?.pid, gw.process.pid);
    assert.match(String(said[0]?.msg), /per host only; use state\.redisUrl to share across hosts/);
  });

  test('an admin traffic change made through one worker is served by both', async () => {
    const user = tokenFor(issuer, 'watcher', 'acme');
    const before = await many(8, 4, () => infer(gw.url, 'iris', user));
    assert.deepEqual(new Set(before.map((a) => `${a.version} ${a.reason}`)), new Set(['1 stable']));

    const put = await request(`${gw.url}/admin/models/iris/traffic`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ routes: [{ version: '2', weight: 100, name: 'relayed' }, { version: '1', weight: 0 }], reason: 'one change for every worker' }),
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(put.statusCode, 200, await put.body.text());
    await put.body.dump();

    // The change reaches the other worker by a notification: allow it a moment, then every answer counts.
    const deadline = Date.now() + 5_000;
    let settled: Answer[] = [];
    while (Date.now() < deadline) {
      settled = await many(4, 4, () => infer(gw.url, 'iris', user));
      if (settled.every((a) => a.version === '2')) break;
    }
    const answers = await many(24, 4, () => infer(gw.url, 'iris', user));
    for (const a of [...settled, ...answers]) assert.deepEqual({ version: a.version, reason: a.reason }, { version: '2', reason: 'relayed' }, `request ${a.id}`);
    const pids = await answeredBy(gw, answers);
    assert.equal(new Set(answers.map((a) => pids.get(a.id))).size, 2, 'both workers answered');
  });

  test(`a rate limit of ${LIMIT} per subject allows exactly ${LIMIT} across both workers`, async () => {
    const user = tokenFor(issuer, 'heavy-user', 'acme');
    const answers = await many(100, 10, () => infer(gw.url, 'limited', user));
    assert.deepEqual(tally(answers), { '200': LIMIT, '429 RATE_LIMITED': 100 - LIMIT });
    const pids = await answeredBy(gw, answers);
    const allowedBy = new Set(answers.filter((a) => a.status === 200).map((a) => pids.get(a.id)));
    assert.equal(allowedBy.size, 2, 'both workers allowed some: the limit is one count, not one per worker');
  });

  test('a worker that replaces a dead one starts from the shared state: the routes set and the limit spent', async () => {
    const pids = [...servingPids(gw)];
    const victim = Number(pids[0]);
    const from = gw.output().length;
    process.kill(victim, 'SIGKILL');
    await waitForOutput(gw, /breakwater is serving/, { from, timeoutMs: 20_000 });
    const replacement = [...servingPids(gw, from)][0];
    const watcher = tokenFor(issuer, 'watcher', 'acme');
    const heavy = tokenFor(issuer, 'heavy-user', 'acme');
    const routed = await many(12, 4, () => infer(gw.url, 'iris', watcher));
    const limited = await many(12, 4, () => infer(gw.url, 'limited', heavy));
    for (const a of routed) assert.deepEqual({ version: a.version, reason: a.reason }, { version: '2', reason: 'relayed' }, `request ${a.id}`);
    assert.deepEqual(tally(limited), { '429 RATE_LIMITED': 12 });
    const by = await answeredBy(gw, [...routed, ...limited]);
    assert.ok(routed.some((a) => by.get(a.id) === replacement) && limited.some((a) => by.get(a.id) === replacement), 'the new worker answered both kinds');
  });
});
