/**
 * The quota store (a private redis-server) dies in the middle of a load test: SIGKILL at ~1 s,
 * restarted on the same port at ~2 s, load for ~3 s. Whatever the failMode, no request waits much
 * beyond `state.commandTimeoutMs` (100 ms) and none hangs; `local` keeps limiting per replica and
 * warns once, `closed` answers 503 QUOTA_STORE_UNAVAILABLE, `open` lets everything through (and
 * said so at start-up). Once Redis is back, requests are counted in Redis again. A gateway started
 * while Redis is down serves with its local limiter, then moves to Redis once it is up. A Redis
 * that stalls for one request (SIGSTOP) leaves no concurrency lease behind and is used again by
 * the next request once it answers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Agent } from 'undici';
import type { FakeOipBackend } from './helpers/backends.js';
import { logLines, waitForOutput, type ChildGateway } from './helpers/gateway.js';
import {
  bigAgent, countingBackend, gatewayConfig, infer, loadFor, maxMs, readRedis, redisCall, spawnGateways, stopAll, subjectCounterKey, tally,
  testIssuer, tokenFor, type Outcome,
} from './helpers/load.js';
import { RedisServer } from './helpers/redis.js';

const PREFIX = 'bw:';
const TENANT = 'acme';
const MODEL = 'm';
const RULE = 'per-user';
const LIMIT = 20;
const COMMAND_TIMEOUT_MS = 100;
/** commandTimeoutMs plus a generous margin for a loaded 2-core machine; normal latency is a few ms. */
const OUTAGE_MAX_LATENCY_MS = 1000;
const STORE_WARNING = 'rate limits: quota store unavailable, applying failMode';

const issuer = testIssuer();
const gateways: ChildGateway[] = [];
const redisServers: RedisServer[] = [];
let backend: FakeOipBackend | undefined;
let agent: Agent;

before(async () => {
  backend = await countingBackend();
  agent = bigAgent(64);
});

after(async () => {
  await stopAll(gateways);
  await Promise.all(redisServers.map((r) => r.stop()));
  await backend?.close();
  await agent.close();
});

async function startPair(
  failMode: 'local' | 'closed' | 'open',
  redis?: RedisServer,
  tenantConcurrency?: { limit: number },
  quotaBlocks = true,
  mirrors?: { optOuts: 'open' | 'closed' | 'snapshot'; killSwitch?: 'open' | 'closed' | 'snapshot' },
): Promise<{ gw: ChildGateway; redis: RedisServer }> {
  const server = redis ?? (await RedisServer.start());
  redisServers.push(server);
  const [gw] = await spawnGateways(
    gatewayConfig({
      issuer,
      backendUrl: backend?.url ?? '',
      models: [MODEL],
      state: { redisUrl: server.url, keyPrefix: PREFIX, commandTimeoutMs: COMMAND_TIMEOUT_MS, quotaBlocks, ...(mirrors ? { mirrors } : {}) },
      rateLimits: { failMode, rules: [{ name: RULE, by: 'subject', limit: LIMIT, windowMs: 60_000 }], ...(tenantConcurrency ? { tenantConcurrency } : {}) },
    }),
    1,
  );
  gateways.push(gw);
  return { gw, redis: server };
}

/** Both connections of the gateway's store reconnected (logged after `from`). */
async function untilReconnected(gw: ChildGateway, from: number): Promise<void> {
  const back = (text: string) => new Set(logLines(text).filter((l) => l.msg === 'redis is back').map((l) => l.role)).size === 2;
  await waitForOutput(gw, back, { from, timeoutMs: 8000 });
}

/** A fresh subject sends LIMIT + 5 requests: exactly LIMIT pass, and Redis holds the count. */
async function assertCountedInRedis(gw: ChildGateway, redis: RedisServer, sub: string): Promise<void> {
  const token = tokenFor(issuer, sub, TENANT);
  const statuses: number[] = [];
  for (let i = 0; i < LIMIT + 5; i++) statuses.push((await infer(agent, gw.url, MODEL, token)).status);
  assert.deepEqual(statuses, [...new Array<number>(LIMIT).fill(200), ...new Array<number>(5).fill(429)]);
  assert.equal(await readRedis(redis.url, subjectCounterKey(PREFIX, TENANT, sub, MODEL, RULE)), String(LIMIT), 'the window is counted in Redis');
}

interface OutageRun {
  readonly all: readonly Outcome[];
  /** Answered before the kill began. */
  readonly before: readonly Outcome[];
  /** Started after redis-server had exited and before its restart began. */
  readonly down: readonly Outcome[];
  /** The others (in flight at the kill or started later): the outage and the recovery. */
  readonly fromKill: readonly Outcome[];
  /** Output offset at the kill. */
  readonly killOffset: number;
}

/** ~3 s of load by 4 clients (one subject); SIGKILL Redis at ~1 s, restart it at ~2 s. */
async function outage(t: TestContext, gw: ChildGateway, redis: RedisServer, sub: string): Promise<OutageRun> {
  const token = tokenFor(issuer, sub, TENANT);
  let killAt = Infinity;
  let downAt = Infinity;
  let restartAt = Infinity;
  let killOffset = 0;
  const { outcomes } = await loadFor({
    durationMs: 3000,
    workers: 4,
    pauseMs: 10,
    maxRequests: 4000,
    send: () => infer(agent, gw.url, MODEL, token, 1, 5000),
    events: [
      { atMs: 1000, run: async () => { killAt = Date.now(); killOffset = gw.output().length; await redis.kill(); downAt = Date.now(); } },
      { atMs: 2000, run: async () => { restartAt = Date.now(); await redis.start(); } },
    ],
  });
  const run: OutageRun = {
    all: outcomes,
    before: outcomes.filter((o) => o.startedAt + o.ms < killAt),
    down: outcomes.filter((o) => o.startedAt >= downAt && o.startedAt < restartAt),
    fromKill: outcomes.filter((o) => o.startedAt + o.ms >= killAt),
    killOffset,
  };
  const median = [...run.before].sort((a, b) => a.ms - b.ms)[Math.floor(run.before.length / 2)]?.ms ?? NaN;
  t.diagnostic(
    `${outcomes.length} requests; answered before the kill ${JSON.stringify(tally(run.before))} (median ${median.toFixed(1)} ms, max ${maxMs(run.before)} ms); ` +
      `while down ${JSON.stringify(tally(run.down))}; from the kill on ${JSON.stringify(tally(run.fromKill))}, max ${maxMs(run.fromKill)} ms`,
  );
  // Nothing hangs, and the outage costs a request at most about the command timeout.
  assert.deepEqual(outcomes.filter((o) => o.status === 0), [], 'no request failed without an answer');
  assert.ok(maxMs(run.fromKill) < OUTAGE_MAX_LATENCY_MS, `a request during the outage took ${maxMs(run.fromKill)} ms`);
  assert.ok(run.down.length > LIMIT, `enough requests while Redis was down (${run.down.length})`);
  // Answered before the kill: the shared limit was in force, LIMIT passed and the rest were limited.
  assert.deepEqual(tally(run.before), { '200': LIMIT, '429 RATE_LIMITED': run.before.length - LIMIT });
  return run;
}

describe('Redis dies under load and comes back', () => {
  test('failMode local: limits per replica while Redis is down, warns once, then counts in Redis again', async (t) => {
    const { gw, redis } = await startPair('local');
    const run = await outage(t, gw, redis, 'local-user');
    const down = tally(run.down);
    assert.deepEqual(Object.keys(tally(run.all)).sort(), ['200', '429 RATE_LIMITED'], 'only 200 and 429, throughout');
    // The local fallback has its own window of LIMIT, and applies it.
    assert.ok((down['200'] ?? 0) >= 1 && (down['200'] ?? 0) <= LIMIT, `200s while down: ${down['200']}`);
    assert.ok((down['429 RATE_LIMITED'] ?? 0) >= 1, 'the local limiter refused some');
    const okFromKill = run.fromKill.filter((o) => o.status === 200).length;
    assert.ok(okFromKill <= 2 * LIMIT, `at most the local window plus a fresh Redis window pass after the kill (${okFromKill})`);

    await untilReconnected(gw, run.killOffset);
    await sleep(300); // log lines are flushed every 200 ms
    const lines = logLines(gw.output().slice(run.killOffset));
    const storeWarnings = lines.filter((l) => l.msg === STORE_WARNING);
    const warnings = lines.filter((l) => l.level === 'warn');
    t.diagnostic(`warnings after the kill: ${JSON.stringify(warnings.map((l) => l.msg))}`);
    assert.equal(storeWarnings.length, 1, 'the store failure is logged once, not once per request');
    assert.equal(storeWarnings[0].failMode, 'local');
    assert.ok(warnings.length <= 5, `${warnings.length} warnings for ${run.fromKill.length} requests`);
    await assertCountedInRedis(gw, redis, 'local-after');
  });

  test('failMode closed: 503 QUOTA_STORE_UNAVAILABLE while Redis is down, then counts in Redis again', async (t) => {
    const { gw, redis } = await startPair('closed');
    const run = await outage(t, gw, redis, 'closed-user');
    assert.deepEqual(tally(run.down), { '503 QUOTA_STORE_UNAVAILABLE': run.down.length });
    for (const o of run.down) assert.equal(o.headers['retry-after'], '1');
    await untilReconnected(gw, run.killOffset);
    await assertCountedInRedis(gw, redis, 'closed-after');
  });

  test('failMode open: warned at start-up, nothing limited while Redis is down, then counts in Redis again', async (t) => {
    const { gw, redis } = await startPair('open');
    assert.match(gw.output(), /rateLimits\.failMode is \\?"open\\?"/);
    const run = await outage(t, gw, redis, 'open-user');
    assert.deepEqual(tally(run.down), { '200': run.down.length });
    await untilReconnected(gw, run.killOffset);
    await assertCountedInRedis(gw, redis, 'open-after');
  });
});

describe('a gateway started while Redis is down', () => {
  test('starts and limits locally, then uses Redis once it is up', async (t) => {
    const redis = await RedisServer.stopped();
    const started = performance.now();
    // Opt-outs and the kill state told to start open: this is about limits (a closed start is test/mirror-start.test.ts).
    const { gw } = await startPair('local', redis, undefined, true, { optOuts: 'open', killSwitch: 'open' });
    t.diagnostic(`started without Redis in ${Math.round(performance.now() - started)} ms`);
    await waitForOutput(gw, /redis is not answering; starting without it/);

    const token = tokenFor(issuer, 'early-user', TENANT);
    const early: Outcome[] = [];
    for (let i = 0; i < LIMIT + 5; i++) early.push(await infer(agent, gw.url, MODEL, token, 1, 5000));
    t.diagnostic(`without Redis: ${JSON.stringify(tally(early))}, max ${maxMs(early)} ms`);
    assert.deepEqual(early.map((o) => o.status), [...new Array<number>(LIMIT).fill(200), ...new Array<number>(5).fill(429)], 'the local limiter applies');
    assert.ok(maxMs(early) < OUTAGE_MAX_LATENCY_MS, `max latency ${maxMs(early)} ms`);

    const from = gw.output().length;
    await redis.start();
    await untilReconnected(gw, from);
    // The same subject, locally exhausted, gets a fresh window: the one in Redis.
    const later: number[] = [];
    for (let i = 0; i < LIMIT + 5; i++) later.push((await infer(agent, gw.url, MODEL, token)).status);
    assert.deepEqual(later, [...new Array<number>(LIMIT).fill(200), ...new Array<number>(5).fill(429)]);
    assert.equal(await readRedis(redis.url, subjectCounterKey(PREFIX, TENANT, 'early-user', MODEL, RULE)), String(LIMIT));
  });
});

describe('Redis stalls for a moment (SIGSTOP for one request) and answers again', () => {
  let redis: RedisServer;
  /** With tenantConcurrency {limit: 2}, and without it. */
  let capped: ChildGateway;
  let plain: ChildGateway;

  before(async () => {
    // Exact per-request charges (no quota blocks), so every request's trip to Redis can be seen.
    ({ gw: capped, redis } = await startPair('local', undefined, { limit: 2 }, false));
    ({ gw: plain } = await startPair('local', redis, undefined, false));
  });

  /** One request sent while Redis is paused: decided by failMode after the command timeout. */
  async function duringStall(gw: ChildGateway, token: string): Promise<Outcome> {
    redis.pause();
    try {
      return await infer(agent, gw.url, MODEL, token, 1, 5000);
    } finally {
      redis.resume();
    }
  }

  test('stalls leak no concurrency slot: the tenant is not locked out afterwards', async (t) => {
    const token = tokenFor(issuer, 'stall-user', 'stall-tenant');
    const stalled: Outcome[] = [];
    const between: number[] = [];
    for (let i = 0; i < 2; i++) {
      stalled.push(await duringStall(capped, token));
      await sleep(500);
      // Two ordinary requests after each stall, so the store is in use again before the next one.
      for (let j = 0; j < 2; j++) between.push((await infer(agent, capped.url, MODEL, token)).status);
    }
    t.diagnostic(`during the stalls: ${JSON.stringify(tally(stalled))}, max ${maxMs(stalled)} ms; after each stall: ${JSON.stringify(between)}`);
    assert.ok(maxMs(stalled) < OUTAGE_MAX_LATENCY_MS);
    // Nothing of the tenant is in flight now: every request, one at a time, must fit under a cap of 2.
    const after: Outcome[] = [];
    for (let i = 0; i < 4; i++) after.push(await infer(agent, capped.url, MODEL, token));
    // A lease is given back once the request has ended, after its answer was sent: allow that
    // last release a moment to reach Redis (a leaked lease would stay until its TTL, 30 s).
    const leases = () => redisCall(redis.url, 'zrange', `${PREFIX}{t:stall-tenant}:l:concurrency`, 0, -1);
    let held: unknown = await leases();
    for (let i = 0; i < 20 && JSON.stringify(held) !== '[]'; i++) held = await sleep(50).then(leases);
    t.diagnostic(`after the stalls, one at a time: ${JSON.stringify(after.map((o) => o.status))}; leases held in Redis: ${JSON.stringify(held)}`);
    assert.deepEqual(after.map((o) => o.status), [200, 200, 200, 200], 'nothing is in flight, so the cap refuses nothing');
    assert.deepEqual(held, [], 'no lease is held in Redis once every request has finished');
  });

  test('a request a second after a stall ended is charged in Redis, not in the fallback', async (t) => {
    const token = tokenFor(issuer, 'stall-user-2', TENANT);
    const key = subjectCounterKey(PREFIX, TENANT, 'stall-user-2', MODEL, RULE);
    assert.equal((await infer(agent, plain.url, MODEL, token)).status, 200);
    await duringStall(plain, token);
    await sleep(1000); // Redis has been answering for a second
    const before = Number(await readRedis(redis.url, key));
    assert.equal((await infer(agent, plain.url, MODEL, token)).status, 200);
    const now = Number(await readRedis(redis.url, key));
    t.diagnostic(`Redis counter before the request ${before}, after ${now}`);
    assert.equal(now, before + 1, 'the request was charged in Redis');
  });
});
