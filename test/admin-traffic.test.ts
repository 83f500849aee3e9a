/**
 * The product owners' controls: GET /admin/models/{m} and PUT/DELETE /admin/models/{m}/traffic,
 * and `breakwater traffic`. In one process: scopes, validation, atomic application, per-version
 * figures and the audit trail. Across two gateway processes sharing a private Redis: a change made
 * on one is served by the other within one second, and survives a restart.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { request } from 'undici';
import type { RunningGateway } from '../gateway/main.js';
import { ADMIN_SECURITY_HEADERS } from '../gateway/routes/admin.js';
import { CLI, REPO_ROOT, spawnGateway, startInProcess, stopWithin, writeTempFile, type ChildGateway } from './helpers/gateway.js';
import { AUDIENCE, ISSUER, stopAll, testIssuer, until } from './helpers/load.js';
import { RedisServer } from './helpers/redis.js';

const issuer = testIssuer();
const IRIS = join(REPO_ROOT, 'demo/models/iris.onnx');
const ROWS = [[5.1, 3.5, 1.4, 0.2], [7, 3.2, 4.7, 1.4], [6.3, 3.3, 6, 2.5]];
const BODY = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 4], data: ROWS }] });
const exec = promisify(execFile);

function token(sub: string, scope: string): string {
  return issuer.sign({ sub, tenant: 'acme', scope, exp: Math.floor(Date.now() / 1000) + 600 });
}
const ADMIN = token('po-anna', 'admin:traffic');

function config(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const onnx = { kind: 'onnx', path: IRIS };
  return {
    server: { host: '127.0.0.1', port: 0, shutdownGraceMs: 2000 },
    auth: { issuer: ISSUER, audience: AUDIENCE, keys: [issuer.keyConfig] },
    models: {
      iris: {
        versions: { '1': { backend: onnx }, '2': { backend: onnx } },
        stable: '1',
        traffic: { routes: [{ version: '1', weight: 90 }, { version: '2', weight: 10, name: 'canary' }] },
      },
    },
    ...extra,
  };
}

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; json: Record<string, unknown> }

async function call(base: string, method: 'GET' | 'PUT' | 'DELETE' | 'POST', path: string, auth: string | undefined, body?: unknown): Promise<Reply> {
  const res = await request(`${base}${path}`, {
    method,
    headers: { ...(auth === undefined ? {} : { authorization: `Bearer ${auth}` }), 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

async function predict(base: string, sub: string): Promise<{ version: string; reason: string }> {
  const r = await call(base, 'POST', '/v2/models/iris/infer', token(sub, 'predict:*'), BODY);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return { version: String(r.headers['x-model-version']), reason: String(r.headers['x-route-reason']) };
}

describe('admin traffic API in one gateway', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startInProcess(config());
  });
  after(async () => {
    await gw.close();
  });

  test('needs a verified token with admin:traffic, and answers with the admin security headers', async () => {
    const none = await call(gw.url, 'GET', '/admin/models/iris', undefined);
    assert.equal(none.status, 401);
    assert.equal(none.json.code, 'UNAUTHENTICATED');
    const user = await call(gw.url, 'GET', '/admin/models/iris', token('alice', 'predict:*'));
    assert.equal(user.status, 403);
    assert.equal(user.json.code, 'FORBIDDEN');
    const put = await call(gw.url, 'PUT', '/admin/models/iris/traffic', token('alice', 'predict:* admin:opt-outs'), { routes: [{ version: '2', weight: 100 }], reason: 'x' });
    assert.equal(put.status, 403, 'another admin scope is not this one');
    for (const [h, v] of Object.entries(ADMIN_SECURITY_HEADERS)) assert.equal(user.headers[h], v, h);
    const unknown = await call(gw.url, 'GET', '/admin/models/nope', ADMIN);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.code, 'MODEL_NOT_FOUND');
  });

  test('shows versions, live routes and per-version figures with the prediction distribution', async () => {
    const served = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      const { version } = await predict(gw.url, `figures-${i}`);
      served.set(version, (served.get(version) ?? 0) + 1);
    }
    const r = await call(gw.url, 'GET', '/admin/models/iris', ADMIN);
    assert.equal(r.status, 200);
    const body = r.json as {
      stable: string;
      versions: { version: string; backend: string; ready: boolean }[];
      traffic: { source: string; revision: number; traffic: { routes: unknown[]; rules: unknown[] } };
      figures: { replica: string; versions: Record<string, { requests: number; errors: number; latencyMs: { p50: number; p99: number }; predictions: { output: string; counts: Record<string, number> } }> };
    };
    assert.equal(body.stable, '1');
    assert.deepEqual(body.versions, [{ version: '1', backend: 'onnx', ready: true }, { version: '2', backend: 'onnx', ready: true }]);
    assert.equal(body.traffic.source, 'config');
    assert.deepEqual(body.traffic.traffic.routes, [{ version: '1', weight: 90 }, { version: '2', weight: 10, name: 'canary' }]);
    for (const [v, n] of served) {
      const f = body.figures.versions[v];
      assert.ok(f !== undefined, `figures for version ${v}`);
      assert.equal(f.requests, n);
      assert.equal(f.errors, 0);
      assert.ok(f.latencyMs.p50 > 0 && f.latencyMs.p99 >= f.latencyMs.p50);
      // The three rows are one of each iris class (arg-max of the logits): 0, 1, 2.
      assert.deepEqual(f.predictions, { output: 'output', counts: { '0': n, '1': n, '2': n } });
    }
  });

  test('a burst of client mistakes leaves a version\'s error rate at 0: they are counted apart', async () => {
    // A subject pinned to version 2 by the URL, so the figures of one version are read.
    const bad = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] });
    const before = ((await call(gw.url, 'GET', '/admin/models/iris', ADMIN)).json as { figures: { versions: Record<string, { requests: number; answered?: number; clientErrors: number }> } }).figures.versions['2'];
    for (let i = 0; i < 50; i++) assert.equal((await call(gw.url, 'POST', '/v2/models/iris/versions/2/infer', token('sloppy-client', 'predict:*'), bad)).status, 400);
    const good = await call(gw.url, 'POST', '/v2/models/iris/versions/2/infer', token('careful-client', 'predict:*'), BODY);
    assert.equal(good.status, 200);
    const f = ((await call(gw.url, 'GET', '/admin/models/iris', ADMIN)).json as { figures: { versions: Record<string, { requests: number; errors: number; errorRate: number; clientErrors: number; errorsByCode: Record<string, number> }> } }).figures.versions['2'];
    assert.ok(f !== undefined);
    assert.equal(f.clientErrors - (before?.clientErrors ?? 0), 50);
    assert.equal(f.requests - (before?.requests ?? 0), 51);
    assert.equal(f.errors, 0);
    assert.equal(f.errorRate, 0, 'the version is not blamed for what clients send');
    assert.ok((f.errorsByCode.SHAPE_MISMATCH ?? 0) >= 50, 'the codes are still there to see');
  });

  test('refuses invalid routes with every problem named, and changes nothing', async () => {
    const cases: [unknown, RegExp][] = [
      [{ routes: [{ version: '1', weight: 90 }, { version: '2', weight: 20 }], reason: 'r' }, /weights must sum to 100 \(they sum to 110\)/],
      [{ routes: [{ version: '7', weight: 100 }], reason: 'r' }, /version "7" is not among its versions/],
      [{ routes: [{ version: '1', weight: 100 }], rules: [{ name: 'qa', version: '2' }], reason: 'r' }, /exactly one of claim, header/],
      [{ routes: [{ version: '1', weight: 100 }], shadow: { version: '9', percent: 5 }, reason: 'r' }, /shadow\.version: version "9"/],
      [{ routes: [{ version: '1', weight: 100 }], surprise: true, reason: 'r' }, /unknown field "surprise"/],
    ];
    for (const [body, problem] of cases) {
      const r = await call(gw.url, 'PUT', '/admin/models/iris/traffic', ADMIN, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.json.code, 'INVALID_TRAFFIC');
      assert.match(String(r.json.error), problem);
    }
    // A change without a reason is a malformed request (the same check on every admin route), not bad routes.
    const unexplained = await call(gw.url, 'PUT', '/admin/models/iris/traffic', ADMIN, { routes: [{ version: '1', weight: 100 }] });
    assert.equal(unexplained.status, 400);
    assert.equal(unexplained.json.code, 'BAD_REQUEST');
    assert.match(String(unexplained.json.error), /"reason" is required/);
    const bad = await call(gw.url, 'PUT', '/admin/models/iris/traffic', ADMIN, '{"routes": [');
    assert.equal(bad.status, 400);
    assert.equal(bad.json.code, 'BAD_JSON');
    const shown = await call(gw.url, 'GET', '/admin/models/iris', ADMIN);
    assert.equal((shown.json.traffic as { source: string }).source, 'config');
  });

  test('refuses a version listed twice, reused names and prototype keys, naming every problem in one answer (issue 8, class 8)', async () => {
    // Accepted before: all of the split's traffic then went to the one version.
    const twice = await call(gw.url, 'PUT', '/admin/models/iris/traffic', ADMIN, { routes: [{ version: '1', weight: 50 }, { version: '1', weight: 50 }], reason: 'r' });
    assert.equal(twice.status, 400, JSON.stringify(twice.json));
    assert.equal(twice.json.code, 'INVALID_TRAFFIC');
    assert.match(String(twice.json.error), /routes\.1\.version: version "1" is already routed by routes\.0/);

    const many = await call(gw.url, 'PUT', '/admin/models/iris/traffic', ADMIN, `{
      "routes": [{"version": "1", "weight": 50, "name": "a"}, {"version": "1", "weight": "25"}, {"version": "2", "weight": 25, "name": "a", "constructor": 1}],
      "rules": [{"name": "qa", "version": "2", "header": {"name": "x-qa", "equals": "1"}}, {"name": "qa", "version": "2", "header": {"name": "x-qa", "equals": "2"}}],
      "shadow": {"version": "2", "percent": 1, "__proto__": {"percent": 100}},
      "reason": "r"}`);
    assert.equal(many.status, 400);
    assert.equal(many.json.code, 'INVALID_TRAFFIC');
    const error = String(many.json.error);
    for (const problem of [
      /routes\.1\.weight: must be integer/,
      /routes\.1\.version: version "1" is already routed by routes\.0/,
      /routes\.2\.name: "a" is used by routes\.0/,
      /rules\.1\.name: "qa" is used by an earlier rule/,
      /traffic\.routes\.2\.constructor: "constructor" is not allowed as a key/,
      /traffic\.shadow\.__proto__: "__proto__" is not allowed as a key/,
    ]) assert.match(error, problem);

    // Any other admin or self-service body: BAD_REQUEST naming every prototype key, wherever it is.
    const optOut = await call(gw.url, 'PUT', '/me/opt-outs', token('alice', 'predict:*'), '{"kinds": ["tracking"], "constructor": {"prototype": 1}, "__proto__": {"kinds": []}}');
    assert.equal(optOut.status, 400);
    assert.equal(optOut.json.code, 'BAD_REQUEST');
    for (const key of ['constructor', 'constructor.prototype', '__proto__']) assert.match(String(optOut.json.error), new RegExp(`${key.replace('.', '\\.')}: "`));

    const shown = await call(gw.url, 'GET', '/admin/models/iris', ADMIN);
    assert.equal((shown.json.traffic as { source: string }).source, 'config', 'nothing was changed');
  });

  test('a change applies at once, is audited with who, before, after and why, and can be undone', async () => {
    const subjects = Array.from({ length: 30 }, (_, i) => `moved-${i}`);
    const put = await call(gw.url, 'PUT', '/admin/models/iris/traffic', ADMIN, {
      routes: [{ version: '1', weight: 0 }, { version: '2', weight: 100, name: 'canary' }],
      reason: 'full rollout after review #42',
    });
    assert.equal(put.status, 200, JSON.stringify(put.json));
    assert.equal(put.json.by, 'po-anna');
    assert.equal(put.json.reason, 'full rollout after review #42');
    assert.equal(put.json.action, 'set');
    assert.deepEqual((put.json.before as { routes: unknown }).routes, [{ version: '1', weight: 90 }, { version: '2', weight: 10, name: 'canary' }]);
    assert.deepEqual((put.json.after as { routes: unknown }).routes, [{ version: '1', weight: 0 }, { version: '2', weight: 100, name: 'canary' }]);
    for (const s of subjects) assert.deepEqual(await predict(gw.url, s), { version: '2', reason: 'canary' });

    const shown = (await call(gw.url, 'GET', '/admin/models/iris', ADMIN)).json as { traffic: { source: string; revision: number; updatedBy: string }; history: { revision: number; by: string }[] };
    assert.equal(shown.traffic.source, 'admin');
    assert.equal(shown.traffic.updatedBy, 'po-anna');
    assert.equal(shown.history[0]?.revision, shown.traffic.revision);

    const undo = await call(gw.url, 'DELETE', '/admin/models/iris/traffic', ADMIN, { reason: 'back to the file' });
    assert.equal(undo.status, 200);
    assert.equal(undo.json.action, 'reset');
    const versions = new Set<string>();
    for (const s of subjects) versions.add((await predict(gw.url, s)).version);
    assert.ok(versions.has('1'), 'the file\'s 90/10 split serves again');
    const history = ((await call(gw.url, 'GET', '/admin/models/iris', ADMIN)).json as { history: { action: string }[] }).history;
    assert.deepEqual(history.slice(0, 2).map((h) => h.action), ['reset', 'set']);
  });

  test('a shadow set at run time mirrors, and its agreement shows in the model\'s figures', async () => {
    const put = await call(gw.url, 'PUT', '/admin/models/iris/traffic', ADMIN, {
      routes: [{ version: '1', weight: 100 }],
      shadow: { version: '2', percent: 100, mode: 'after' },
      reason: 'compare v2 on live traffic',
    });
    assert.equal(put.status, 200, JSON.stringify(put.json));
    for (let i = 0; i < 20; i++) assert.deepEqual(await predict(gw.url, `mirrored-${i}`), { version: '1', reason: 'stable' });
    // Copies are sent after each answer: wait for the last ones to be compared.
    type Figures = { version: string; sent: number; agreed: number; disagreed: number } | null;
    const read = async (): Promise<Figures> => ((await call(gw.url, 'GET', '/admin/models/iris', ADMIN)).json as { figures: { shadow: Figures } }).figures.shadow;
    await until('20 copies compared', async () => {
      const f = await read();
      return f !== null && f.agreed + f.disagreed >= 20;
    });
    const f = await read();
    // Both versions run the same graph here: every copy agrees.
    assert.deepEqual(f && { version: f.version, agreed: f.agreed, disagreed: f.disagreed }, { version: '2', agreed: 20, disagreed: 0 });
    await call(gw.url, 'DELETE', '/admin/models/iris/traffic', ADMIN, { reason: 'comparison done' });
  });

  test('breakwater traffic show, set --weights and reset drive the same API', async () => {
    const env = { ...process.env, BREAKWATER_URL: gw.url, BREAKWATER_TOKEN: ADMIN };
    const run = (...args: string[]) => exec(process.execPath, [CLI, 'traffic', ...args], { env, timeout: 15_000 });

    const set = await run('set', 'iris', '--weights', '1=50,2=50', '--reason', 'A/B test of v2');
    const change = JSON.parse(set.stdout) as { after: { routes: unknown }; by: string };
    assert.deepEqual(change.after.routes, [{ version: '1', weight: 50 }, { version: '2', weight: 50 }]);
    assert.equal(change.by, 'po-anna');
    const shown = JSON.parse((await run('show', 'iris')).stdout) as { traffic: { source: string; traffic: { routes: unknown } } };
    assert.equal(shown.traffic.source, 'admin');

    const refused = await run('set', 'iris', '--weights', '1=50,2=60', '--reason', 'typo').then(() => undefined, (e: { code: number; stderr: string }) => e);
    assert.ok(refused !== undefined, 'a rejected change exits non-zero');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /400 INVALID_TRAFFIC: .*sum to 110/);
    const noReason = await run('reset', 'iris').then(() => undefined, (e: { code: number; stderr: string }) => e);
    assert.match(noReason?.stderr ?? '', /--reason is required/);

    const file = await writeTempFile('routes.yaml', 'routes:\n  - { version: "2", weight: 100, name: all-in }\nrules:\n  - { name: qa, version: "1", header: { name: x-qa, equals: "1" } }\n');
    await run('set', 'iris', '--file', file, '--reason', 'from a file');
    assert.deepEqual(await predict(gw.url, 'someone'), { version: '2', reason: 'all-in' });
    await run('reset', 'iris', '--reason', 'done');
    assert.equal(((await call(gw.url, 'GET', '/admin/models/iris', ADMIN)).json.traffic as { source: string }).source, 'config');
  });
});

describe('routes shared by two gateway processes through Redis', () => {
  let redis: RedisServer | undefined;
  let a: ChildGateway | undefined;
  let b: ChildGateway | undefined;
  let file = '';

  before(async () => {
    redis = await RedisServer.start();
    // Reconciliation every 30 s: propagation within a second can only come from the announcement.
    file = await writeTempFile('gateway.yaml', JSON.stringify(config({ state: { redisUrl: redis.url, keyPrefix: 'bw:', reconcileMs: 30_000 } })));
    [a, b] = await Promise.all([spawnGateway(['serve', '--config', file]), spawnGateway(['serve', '--config', file])]);
  });
  after(async () => {
    await stopAll([a, b]);
    await redis?.stop();
  });

  test('a change made on one replica is served by the other within one second, and survives a restart', async (t) => {
    assert.ok(a !== undefined && b !== undefined && redis !== undefined);
    const subject = 'watcher';
    const replicaB = b;
    const waits: number[] = [];
    let lastRevision = 0;
    // Flip the whole split back and forth; each time, wait for B to serve the new version.
    for (let round = 0; round < 6; round++) {
      const to = round % 2 === 0 ? '2' : '1';
      const other = to === '2' ? '1' : '2';
      const put = await call(a.url, 'PUT', '/admin/models/iris/traffic', ADMIN, {
        routes: [{ version: to, weight: 100, name: `round-${round}` }, { version: other, weight: 0 }],
        reason: `propagation round ${round}`,
      });
      assert.equal(put.status, 200, JSON.stringify(put.json));
      lastRevision = put.json.revision as number;
      const changedAt = performance.now();
      await until(`replica B serves version ${to}`, async () => (await predict(replicaB.url, subject)).version === to, 5000);
      waits.push(performance.now() - changedAt);
    }
    t.diagnostic(`replica B served each change after ${waits.map((w) => Math.round(w)).join(', ')} ms`);
    assert.ok(Math.max(...waits) < 1000, `every change reached B within 1 s: ${waits.map(Math.round).join(', ')} ms`);

    // The audit record is in the shared log, readable from the other replica.
    const audit = (await call(b.url, 'GET', '/admin/audit?target=model:iris&limit=1', token('auditor', 'admin:audit'))).json as { records: { record: { reason: string; revision: number } }[] };
    assert.equal(audit.records[0]?.record.reason, 'propagation round 5');
    assert.equal(audit.records[0]?.record.revision, lastRevision);

    // A restarted replica comes back with the stored routes, not the file's.
    assert.equal(await stopWithin(b, 5000), 0);
    b = await spawnGateway(['serve', '--config', file]);
    assert.deepEqual(await predict(b.url, subject), { version: '1', reason: 'round-5' });
    const shown = (await call(b.url, 'GET', '/admin/models/iris', ADMIN)).json as { traffic: { source: string; revision: number }; history: unknown[] };
    assert.equal(shown.traffic.source, 'admin');
    assert.equal(shown.traffic.revision, lastRevision);
    assert.equal(shown.history.length, 6);
  });
});
