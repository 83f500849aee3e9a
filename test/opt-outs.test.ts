/**
 * Opt-outs end to end: two gateway child processes sharing one private Redis, real JWTs, one real
 * HTTP backend per version that records every request it gets (the subject rides in the OIP `id`).
 *
 * The `split` model has everything an experiment can be: a 50/50 stable/canary split, a header rule
 * to a third version and a 100 % shadow to a fourth. The tests show that subjects who opted out of
 * experiments never reach any of them while others do; that a tracking opt-out's payload is nowhere
 * the gateway writes (its logs at debug with access lines, Redis, the shadow) while a control
 * subject's is (so the search can find it); automated-decision fallbacks and refusals; the
 * self-service and admin APIs and their guards; propagation between replicas; and erasure.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { REASON_EXPERIMENTS, REASON_FALLBACK } from '../policies/opt-out.js';
import { ROW_STATS_METADATA, rowStatsHandler, startFakeOipBackend, type FakeOipBackend, type InferHandler } from './helpers/backends.js';
import { logLines, type ChildGateway } from './helpers/gateway.js';
import { gatewayConfig, spawnGateways, stopAll, subjectCounterKey, testIssuer, tokenFor } from './helpers/load.js';
import { RedisServer } from './helpers/redis.js';
import type { Issuer } from './helpers/tokens.js';

const HUMAN = 'Ask for a human review at https://appeals.example.test/review (answer within 5 working days).';
const PREFIX = 'bw:';

/** A request whose `parameters.echo` is true makes a backend fail quoting the whole body (a backend that echoes payload into its errors). */
const echoing: InferHandler = (req, call) => {
  if (req.parameters?.echo === true) throw new Error(`cannot serve ${call.body.toString('utf8')}`);
  return rowStatsHandler(req, call);
};

let redis: RedisServer;
let issuer: Issuer;
let gateways: ChildGateway[] = [];
let A: ChildGateway;
let B: ChildGateway;
const agent = new Agent({ connections: 32, keepAliveTimeout: 10_000 });
const backends: Record<string, FakeOipBackend> = {};

before(async () => {
  redis = await RedisServer.start();
  issuer = testIssuer();
  for (const name of ['split1', 'split2', 'split3', 'split4', 'decide1', 'decideReview', 'nofb1']) {
    backends[name] = await startFakeOipBackend(ROW_STATS_METADATA, echoing);
  }
  const base = gatewayConfig({
    issuer,
    backendUrl: backends.split1.url,
    models: [],
    state: { redisUrl: redis.url, keyPrefix: PREFIX },
    rateLimits: {
      rules: [
        { name: 'per-subject', by: 'subject', models: ['*'], limit: 1_000_000, windowMs: 600_000 },
        { name: 'per-tenant', by: 'tenant', models: ['*'], limit: 10_000_000, windowMs: 600_000 },
      ],
    },
  });
  const v = (b: FakeOipBackend) => ({ backend: { kind: 'oip-http', url: b.url, model: ROW_STATS_METADATA.name } });
  const config = {
    ...base,
    logging: { level: 'debug', accessLog: true },
    models: {
      split: {
        stable: '1',
        versions: { '1': v(backends.split1), '2': v(backends.split2), '3': v(backends.split3), '4': v(backends.split4) },
        traffic: {
          routes: [{ version: '1', weight: 50 }, { version: '2', weight: 50, name: 'canary' }],
          rules: [{ name: 'beta', version: '3', header: { name: 'x-beta', equals: '1' } }],
          shadow: { version: '4', percent: 100, mode: 'after', maxConcurrent: 1000 },
        },
      },
      decide: { stable: '1', versions: { '1': v(backends.decide1), review: v(backends.decideReview) }, fallback: { version: 'review' } },
      nofb: { versions: { '1': v(backends.nofb1) }, fallback: { humanDecision: HUMAN } },
    },
  };
  gateways = await spawnGateways(config, 2);
  [A, B] = gateways;
});

after(async () => {
  await stopAll(gateways);
  await agent.close();
  await Promise.all(Object.values(backends).map((b) => b.close()));
  await redis.stop();
});

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly json: Record<string, unknown>;
}

async function call(gw: ChildGateway, method: 'GET' | 'PUT' | 'DELETE' | 'POST', path: string, token?: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await request(`${gw.url}${path}`, {
    method,
    dispatcher: agent,
    headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

const token = (sub: string, tenant = 'acme'): string => tokenFor(issuer, sub, tenant);
const adminToken = (): string => issuer.sign({ sub: 'admin-1', tenant: 'ops', scope: 'admin:opt-outs', exp: Math.floor(Date.now() / 1000) + 600 });

/** One row-stats inference; the subject is the request's `id`, so each backend knows who it served. */
function infer(gw: ChildGateway, model: string, sub: string, opts: { headers?: Record<string, string>; values?: number[]; extra?: Record<string, unknown>; path?: string; tenant?: string } = {}): Promise<Answer> {
  const body = { id: sub, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: opts.values ?? [1, 2, 3] }], ...opts.extra };
  return call(gw, 'POST', opts.path ?? `/v2/models/${model}/infer`, token(sub, opts.tenant), body, opts.headers);
}

/** The subjects (request ids) each backend served. */
function idsAt(b: FakeOipBackend): string[] {
  return b.inferCalls().map((c) => String((JSON.parse(c.body.toString('utf8')) as { id?: unknown }).id));
}

function receivedText(b: FakeOipBackend): string {
  return b.inferCalls().map((c) => c.body.toString('utf8')).join('\n');
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5_000, everyMs = 20): Promise<number> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
  return Date.now() - start;
}

/** Runs `fn` over `items`, `width` at a time. */
async function pool<T>(items: readonly T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

/** Every key of the private Redis with every value it holds, as text. */
async function everythingInRedis(): Promise<{ keys: string[]; text: string }> {
  const r = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await r.connect();
  try {
    const keys: string[] = [];
    let cursor = '0';
    for (let round = 0; round < 10_000; round++) {
      const [next, found] = await r.scan(cursor, 'COUNT', 1000);
      keys.push(...found);
      cursor = next;
      if (cursor === '0') break;
    }
    const parts: string[] = [];
    for (const k of keys) {
      const type = await r.type(k);
      let value: unknown;
      if (type === 'string') value = await r.get(k);
      else if (type === 'hash') value = await r.hgetall(k);
      else if (type === 'zset') value = await r.zrange(k, 0, -1, 'WITHSCORES');
      else if (type === 'list') value = await r.lrange(k, 0, -1);
      else if (type === 'set') value = await r.smembers(k);
      else if (type === 'stream') value = await r.xrange(k, '-', '+');
      else value = `<${type}>`;
      parts.push(`${k} ${JSON.stringify(value)}`);
    }
    return { keys, text: parts.join('\n') };
  } finally {
    r.disconnect();
  }
}

async function setOptOut(gw: ChildGateway, sub: string, kinds: string[]): Promise<void> {
  const res = await call(gw, 'PUT', `/admin/opt-outs/${encodeURIComponent(sub)}`, adminToken(), { kinds, reason: 'ticket 42' });
  assert.equal(res.status, 200, JSON.stringify(res.json));
}

test('experiments: 200 opted-out subjects × 3 requests never reach the canary, the rule\'s version or the shadow; 200 others do', async () => {
  const optedOut = Array.from({ length: 200 }, (_, i) => `exp-out-${i}`);
  const control = Array.from({ length: 200 }, (_, i) => `exp-in-${i}`);
  await pool(optedOut, 10, (s) => setOptOut(A, s, ['experiments']));
  // Notifications reach B in order: once the last one set (with automated-decision, on a model
  // without experiments) has arrived, every earlier one has.
  await setOptOut(A, 'exp-probe', ['experiments', 'automated-decision']);
  await until('B has the opt-outs', async () => (await infer(B, 'nofb', 'exp-probe')).status === 403);

  const sends: { gw: ChildGateway; sub: string; headers: Record<string, string> }[] = [];
  for (const [i, sub] of [...optedOut, ...control].entries()) {
    for (const k of [0, 1, 2]) sends.push({ gw: (i + k) % 2 === 0 ? A : B, sub, headers: k === 2 ? { 'x-beta': '1' } : {} });
  }
  const outOf = new Set(optedOut);
  await pool(sends, 16, async ({ gw, sub, headers }) => {
    const res = await infer(gw, 'split', sub, { headers });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    if (outOf.has(sub)) assert.deepEqual([res.headers['x-model-version'], res.headers['x-route-reason']], ['1', REASON_EXPERIMENTS], sub);
  });
  // Shadow copies are sent after the primary answered: wait until every control request's copy arrived.
  const controlCopies = () => idsAt(backends.split4).filter((id) => id.startsWith('exp-in-')).length;
  const controlUnpinned = control.length * 3;
  await until('every control request mirrored', () => controlCopies() >= controlUnpinned, 10_000);

  const count = (b: FakeOipBackend, prefix: string) => idsAt(b).filter((id) => id.startsWith(prefix)).length;
  const seen = {
    stable: count(backends.split1, 'exp-out-'),
    canary: count(backends.split2, 'exp-out-'),
    rule: count(backends.split3, 'exp-out-'),
    shadow: count(backends.split4, 'exp-out-'),
  };
  assert.deepEqual(seen, { stable: 600, canary: 0, rule: 0, shadow: 0 }, 'opted-out subjects: stable only');
  const controls = { canary: count(backends.split2, 'exp-in-'), rule: count(backends.split3, 'exp-in-'), shadow: controlCopies() };
  assert.ok(controls.canary > 100, `control subjects reach the canary: ${JSON.stringify(controls)}`);
  assert.equal(controls.rule, 200, 'every control request with the header reaches the rule\'s version');
  assert.equal(controls.shadow, controlUnpinned, 'every control request is mirrored');
});

test('tracking: the payload of an opted-out subject is nowhere the gateway writes; a control subject\'s is', async () => {
  const tracker = 'tracker-1';
  const controlSub = 'tracked-1';
  const setMine = await call(A, 'PUT', '/me/opt-outs', token(tracker), { kinds: ['tracking'] });
  assert.equal(setMine.status, 200, JSON.stringify(setMine.json));
  // Distinct integers exactly representable in FP32, so every rendering of them is the same text.
  const T = 9150427;
  const C = 9361853;
  const markers = (m: number) => [m, m + 2, m + 4, 3 * m + 6 /* sum */, 2 * m /* scaled */].map(String);
  const logFrom = A.output().length;
  for (const [sub, m] of [[tracker, T], [controlSub, C]] as const) {
    const values = [m, m + 2, m + 4];
    const ok = await infer(A, 'split', sub, { values });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    // A 4xx whose detail quotes the client's text (logged at debug), and a 5xx whose cause holds a backend's echo of the body.
    const unknownOutput = await infer(A, 'split', sub, { values, extra: { outputs: [{ name: `out-${m}` }] } });
    assert.equal(unknownOutput.json.code, 'UNKNOWN_OUTPUT');
    const echoed = await infer(A, 'split', sub, { values, extra: { parameters: { echo: true } } });
    assert.equal(echoed.json.code, 'BACKEND_ERROR');
  }
  // The control's lines come after the tracker's on one log stream: once they are out, all are.
  const log = (): string => A.output().slice(logFrom);
  await until('the control subject\'s lines are flushed', () => log().includes(`out-${C}`) && log().includes(`cannot serve`));
  await until('the control request was mirrored', () => idsAt(backends.split4).includes(controlSub));

  const written = log();
  const lines = logLines(written);
  assert.ok(lines.some((l) => l.msg === 'infer'), 'access lines are on');
  assert.ok(lines.some((l) => l.level === 'debug'), 'debug lines are on');
  for (const m of markers(C).slice(0, 3)) assert.ok(written.includes(m), `the log search finds the control's ${m}`);
  for (const m of markers(T)) assert.ok(!written.includes(m), `tracker value ${m} is in the gateway log:\n${written.split('\n').filter((l) => l.includes(m)).join('\n')}`);
  assert.ok(lines.some((l) => l.code === 'BACKEND_ERROR' && l.payloadRetained === false), 'the tracker\'s failure is still logged, by code');

  const inRedis = await everythingInRedis();
  assert.ok(inRedis.keys.some((k) => k.includes(tracker)), 'the Redis search sees the tracker\'s own keys (opt-out record, counters)');
  for (const m of [...markers(T), ...markers(C)]) assert.ok(!inRedis.text.includes(m), `payload value ${m} is in Redis`);

  const shadowSaw = receivedText(backends.split4);
  for (const m of markers(C).slice(0, 3)) assert.ok(shadowSaw.includes(m), `the shadow backend got the control's ${m}`);
  for (const m of markers(T)) assert.ok(!shadowSaw.includes(m), `the shadow backend got the tracker's ${m}`);
  assert.ok(!idsAt(backends.split4).includes(tracker));
});

test('automated-decision: served by the fallback version (even when pinned), or refused with the model\'s procedure', async () => {
  await setOptOut(A, 'auto-1', ['automated-decision']);
  for (const path of ['/v2/models/decide/infer', '/v2/models/decide/versions/1/infer']) {
    const res = await infer(A, 'decide', 'auto-1', { path });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.deepEqual([res.headers['x-model-version'], res.headers['x-route-reason']], ['review', REASON_FALLBACK], path);
  }
  const control = await infer(A, 'decide', 'auto-control');
  assert.deepEqual([control.headers['x-model-version'], control.headers['x-route-reason']], ['1', 'stable']);
  assert.deepEqual(idsAt(backends.decideReview).filter((id) => id.startsWith('auto-')), ['auto-1', 'auto-1']);
  assert.deepEqual(idsAt(backends.decide1).filter((id) => id.startsWith('auto-')), ['auto-control']);

  const refused = await infer(A, 'nofb', 'auto-1');
  assert.equal(refused.status, 403);
  assert.equal(refused.json.code, 'HUMAN_DECISION_REQUIRED');
  assert.ok(String(refused.json.error).includes(HUMAN), String(refused.json.error));
  assert.ok(!idsAt(backends.nofb1).includes('auto-1'), 'the model was never asked');
  const metadata = await call(A, 'GET', '/v2/models/nofb', token('auto-1'));
  assert.equal(metadata.status, 200, 'reading metadata is not a decision');
});

test('self-service: a subject sets, reads and removes their own opt-outs with their own token; bad bodies are 400', async () => {
  const me = token('self-1');
  assert.deepEqual((await call(A, 'GET', '/me/opt-outs', me)).json, { subject: 'self-1', kinds: [], revision: 0 });
  const set = await call(A, 'PUT', '/me/opt-outs', me, { kinds: ['tracking', 'experiments'] });
  assert.equal(set.status, 200);
  assert.equal(set.headers['cache-control'], 'no-store');
  assert.deepEqual([set.json.subject, set.json.kinds, set.json.updatedBy], ['self-1', ['experiments', 'tracking'], 'self-1']);
  const got = await call(B, 'GET', '/me/opt-outs', me);
  assert.deepEqual(got.json, set.json, 'the same record through the other replica');
  const bad: [unknown, string, RegExp][] = [
    [{ kinds: [] }, 'BAD_REQUEST', /non-empty/],
    [{}, 'BAD_REQUEST', /non-empty array/],
    [{ kinds: ['tracking', 'tracking'] }, 'BAD_REQUEST', /twice/],
    [{ kinds: ['profiling'] }, 'BAD_REQUEST', /unknown kind "profiling"; the kinds are "experiments", "tracking", "automated-decision"/],
    [{ kinds: [7] }, 'BAD_REQUEST', /unknown kind of type number/],
    [{ kinds: ['tracking'], subject: 'someone-else' }, 'BAD_REQUEST', /unknown field "subject"/],
    [{ kinds: ['tracking'], reason: 5 }, 'BAD_REQUEST', /reason/],
    ['{"kinds": [', 'BAD_JSON', /JSON/],
    [['tracking'], 'BAD_REQUEST', /object/],
  ];
  for (const [body, code, detail] of bad) {
    const res = await call(A, 'PUT', '/me/opt-outs', me, body);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.equal(res.json.code, code);
    assert.match(String(res.json.error), detail);
    assert.doesNotMatch(String(res.json.error), /inference|protocol/, 'an opt-out error speaks of opt-outs');
  }
  assert.deepEqual((await call(A, 'GET', '/me/opt-outs', me)).json.kinds, ['experiments', 'tracking'], 'refused changes changed nothing');
  const removed = await call(A, 'DELETE', '/me/opt-outs', me);
  assert.deepEqual(removed.json, { subject: 'self-1', kinds: [], revision: 0, removed: true });
  assert.deepEqual((await call(A, 'GET', '/me/opt-outs', me)).json, { subject: 'self-1', kinds: [], revision: 0 });
  assert.equal((await call(A, 'DELETE', '/me/opt-outs', me)).json.removed, false);
  assert.equal((await call(A, 'GET', '/me/opt-outs')).status, 401, 'no token');
  assert.equal((await call(A, 'PUT', '/me/opt-outs', undefined, { kinds: ['tracking'] })).status, 401);
});

test('admin routes need admin:opt-outs: 401 without a token, 403 with a predict-only token, 200 with the scope', async () => {
  const routes: ['GET' | 'PUT' | 'DELETE', string, unknown][] = [
    ['GET', '/admin/opt-outs/someone', undefined],
    ['PUT', '/admin/opt-outs/someone', { kinds: ['tracking'] }],
    ['DELETE', '/admin/opt-outs/someone', undefined],
    ['DELETE', '/admin/subjects/someone', undefined],
  ];
  for (const [method, path, body] of routes) {
    const none = await call(A, method, path, undefined, body);
    assert.deepEqual([none.status, none.json.code], [401, 'UNAUTHENTICATED'], `${method} ${path}`);
    const user = await call(A, method, path, token('someone'), body);
    assert.deepEqual([user.status, user.json.code], [403, 'FORBIDDEN'], `${method} ${path}`);
    assert.equal(user.headers['x-frame-options'], 'DENY', 'admin security headers on refusals too');
    const admin = await call(A, method, path, adminToken(), body);
    assert.equal(admin.status, 200, `${method} ${path}: ${JSON.stringify(admin.json)}`);
  }
  const set = await call(A, 'PUT', '/admin/opt-outs/someone', adminToken(), { kinds: ['automated-decision'], reason: 'DSR-1234' });
  assert.deepEqual([set.json.kinds, set.json.updatedBy], [['automated-decision'], 'admin-1']);
  assert.deepEqual((await call(B, 'GET', '/admin/opt-outs/someone', adminToken())).json.kinds, ['automated-decision']);
  // The audit record's log line (its copy of last resort; the record itself is in the audit log).
  const audit = await until('the audit line', () => logLines(A.output()).some((l) => l.audit === true && l.reason === 'DSR-1234'));
  assert.ok(audit >= 0);
  const line = logLines(A.output()).find((l) => l.audit === true && l.reason === 'DSR-1234');
  assert.deepEqual([line?.action, line?.actor, line?.via, line?.target, line?.before, line?.after, line?.level], ['opt-outs.set', 'admin-1', 'admin:opt-outs', { kind: 'subject', id: 'someone' }, [], ['automated-decision'], 'info']);
});

test('an opt-out set through replica A applies on replica B within 1 s', async () => {
  const sub = 'prop-1';
  assert.equal((await infer(B, 'nofb', sub)).status, 200, 'served before the opt-out');
  const sentAt = Date.now();
  await setOptOut(A, sub, ['automated-decision']);
  const ms = await until('B refuses', async () => (await infer(B, 'nofb', sub)).status === 403, 5_000, 5);
  const total = Date.now() - sentAt;
  assert.ok(total < 1000, `applied on B ${total} ms after the PUT was sent (${ms} ms after it was answered)`);
  await call(A, 'DELETE', `/admin/opt-outs/${sub}`, adminToken());
  await until('B serves again', async () => (await infer(B, 'nofb', sub)).status === 200, 1_000, 5);
});

test('erasure removes the opt-out record and the subject\'s rate-limit counters, and says what it removed', async () => {
  const counterKeys = (sub: string, tenant: string) => ['split', 'decide'].map((m) => subjectCounterKey(PREFIX, tenant, sub, m, 'per-subject'));
  const exists = async (key: string) => {
    const r = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await r.connect();
    try {
      return (await r.exists(key)) === 1;
    } finally {
      r.disconnect();
    }
  };
  const recordKey = (sub: string) => `${PREFIX}{opt-outs}:r:${sub}`;

  // Self-service: DELETE /me.
  for (const m of ['split', 'decide']) assert.equal((await infer(A, m, 'erase-me')).status, 200);
  await call(A, 'PUT', '/me/opt-outs', token('erase-me'), { kinds: ['tracking'] });
  for (const k of [...counterKeys('erase-me', 'acme'), recordKey('erase-me')]) assert.ok(await exists(k), `${k} exists before`);
  const tenantKey = `${PREFIX}{t:acme}:c:ten:split:per-tenant`;
  const me = await call(B, 'DELETE', '/me', token('erase-me'));
  assert.equal(me.status, 200, JSON.stringify(me.json));
  assert.deepEqual(me.json.optOuts, { removed: true, kinds: ['tracking'] });
  // Its two rule counters and its request-limit counter (rateLimits.requests.perSubject).
  assert.deepEqual(me.json.counters, { removed: 3, scopes: ['s:erase-me', 't:acme'] });
  assert.ok(!(await exists(`${PREFIX}{t:acme}:c:req:erase-me`)), 'the request counter is gone');
  for (const k of [...counterKeys('erase-me', 'acme'), recordKey('erase-me')]) assert.ok(!(await exists(k)), `${k} is gone`);
  assert.ok(await exists(tenantKey), 'the tenant\'s own counter is the tenant\'s, not the subject\'s');
  assert.deepEqual((await call(A, 'GET', '/me/opt-outs', token('erase-me'))).json.kinds, []);
  const again = await call(A, 'DELETE', '/me', token('erase-me'));
  assert.deepEqual([again.status, again.json.optOuts, (again.json.counters as { removed: number }).removed], [200, { removed: false, kinds: [] }, 0], 'idempotent');

  // Admin, for a subject of another tenant and the same subject without a tenant.
  await infer(A, 'split', 'erase-admin', { tenant: 'globex' });
  const tenantless = issuer.sign({ sub: 'erase-admin', exp: Math.floor(Date.now() / 1000) + 600 });
  const own = await call(A, 'POST', '/v2/models/split/infer', tenantless, { id: 'erase-admin', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] });
  assert.equal(own.status, 200);
  await setOptOut(A, 'erase-admin', ['experiments', 'automated-decision']);
  const ownKeys = [`${PREFIX}{s:erase-admin}:c:sub:erase-admin:split:per-subject`, `${PREFIX}{s:erase-admin}:c:ten:split:per-tenant`];
  for (const k of [...ownKeys, counterKeys('erase-admin', 'globex')[0]]) assert.ok(await exists(k), `${k} exists before`);
  assert.equal((await call(A, 'DELETE', '/admin/subjects/erase-admin?tenant=globex', token('erase-admin'))).status, 403);
  const erased = await call(A, 'DELETE', '/admin/subjects/erase-admin?tenant=globex', adminToken(), { reason: 'DSR-99' });
  assert.equal(erased.status, 200, JSON.stringify(erased.json));
  assert.deepEqual(erased.json, {
    subject: 'erase-admin',
    optOuts: { removed: true, kinds: ['experiments', 'automated-decision'] },
    // Rule counters: sub (own scope and globex's), ten (own); request counters: own scope and globex's.
    counters: { removed: 5, scopes: ['s:erase-admin', 't:globex'] },
  });
  for (const k of [...ownKeys, counterKeys('erase-admin', 'globex')[0], recordKey('erase-admin')]) assert.ok(!(await exists(k)), `${k} is gone`);
  // B applies the removal too: the subject is served by the model again.
  await until('B serves erase-admin again', async () => (await infer(B, 'nofb', 'erase-admin', { tenant: 'globex' })).status === 200, 1_000);
  const line = await until('the erasure audit line', () => logLines(A.output()).some((l) => l.action === 'subject.erase' && l.reason === 'DSR-99'));
  assert.ok(line >= 0);
});
