/**
 * The kill switch in one gateway process (in-memory store): what a kill of a version, of a model
 * and of everything does to every kind of request, the rollback target each picks, restore, what
 * the admin API and the fleet show, and the audit trail. Across replicas (Redis, propagation under
 * load, lost announcements, store loss): kill-switch.propagation.timing.test.ts and kill-switch.replicas.test.ts.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import type { RunningGateway } from '../gateway/main.js';
import { REPO_ROOT, startInProcess } from './helpers/gateway.js';
import { adminCall as call } from './helpers/kill-switch.js';
import { AUDIENCE, ISSUER, testIssuer } from './helpers/load.js';

const issuer = testIssuer();
const IRIS = join(REPO_ROOT, 'demo/models/iris.onnx');
const BODY = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [[5.1, 3.5, 1.4, 0.2]] }] });

function token(sub: string, scope: string): string {
  return issuer.sign({ sub, tenant: 'acme', scope, exp: Math.floor(Date.now() / 1000) + 600 });
}
const ONCALL = token('oncall-omar', 'admin:kill-switch admin:traffic');
const USER = (sub: string) => token(sub, 'predict:*');

/** Which version answered each of `subjects`' predictions, and why. */
async function served(base: string, subjects: readonly string[], path = '/v2/models/iris/infer'): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const s of subjects) {
    const r = await call(base, 'POST', path, USER(s), BODY);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    out.set(s, `${String(r.headers['x-model-version'])}/${String(r.headers['x-route-reason'])}`);
  }
  return out;
}

const SUBJECTS = Array.from({ length: 40 }, (_, i) => `user-${i}`);

function config(): Record<string, unknown> {
  const onnx = { kind: 'onnx', path: IRIS };
  return {
    server: { host: '127.0.0.1', port: 0, shutdownGraceMs: 2000 },
    auth: { issuer: ISSUER, audience: AUDIENCE, keys: [issuer.keyConfig] },
    models: {
      iris: {
        versions: { '1': { backend: onnx }, '2': { backend: onnx }, '3': { backend: onnx } },
        stable: '2',
        traffic: {
          routes: [{ version: '2', weight: 50 }, { version: '3', weight: 50, name: 'canary' }],
          rules: [{ name: 'beta', header: { name: 'x-beta', equals: '1' }, version: '3' }],
          shadow: { version: '3', percent: 100 },
        },
      },
      other: { versions: { '1': { backend: onnx }, '2': { backend: onnx } }, stable: '2', killSwitch: { rollbackTo: '1' } },
    },
  };
}

describe('kill switch in one gateway', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startInProcess(config());
  });
  after(async () => {
    await gw.close();
  });

  test('a version kill sends its arm, its rule and its pinned requests to the rollback target; restore puts the split back', async () => {
    const before = await served(gw.url, SUBJECTS);
    const onCanary = [...before].filter(([, v]) => v.startsWith('3/')).map(([s]) => s);
    assert.ok(onCanary.length > 5 && onCanary.length < 35, `the split sends some subjects to 3: ${onCanary.length}`);

    const k = await call(gw.url, 'POST', '/admin/models/iris/versions/3/kill', ONCALL, { reason: 'canary refuses everyone' });
    assert.equal(k.status, 200, JSON.stringify(k.json));
    assert.equal(k.json.action, 'kill');
    const entry = k.json.kill as Record<string, unknown>;
    // No rollbackTo, no known-good yet: the highest ready version below the stable one.
    assert.deepEqual([entry.scope, entry.model, entry.version, entry.mode, entry.target, entry.by], ['version', 'iris', '3', 'rollback', '1', 'oncall-omar']);
    assert.equal(typeof k.json.revision, 'number');

    const during = await served(gw.url, SUBJECTS);
    for (const [s, v] of during) {
      if (onCanary.includes(s)) assert.equal(v, '1/kill-switch', `${s} was on the canary`);
      else assert.equal(v, before.get(s), `${s} keeps its arm`);
    }
    const pinned = await call(gw.url, 'POST', '/v2/models/iris/versions/3/infer', USER('pinner'), BODY);
    assert.equal(pinned.status, 200);
    assert.deepEqual([pinned.headers['x-model-version'], pinned.headers['x-route-reason']], ['1', 'kill-switch']);
    const rule = await request(`${gw.url}/v2/models/iris/infer`, { method: 'POST', headers: { authorization: `Bearer ${USER('beta-tester')}`, 'content-type': 'application/json', 'x-beta': '1' }, body: BODY });
    await rule.body.text();
    assert.deepEqual([rule.headers['x-model-version'], rule.headers['x-route-reason']], ['1', 'kill-switch']);
    const ready3 = await call(gw.url, 'GET', '/v2/models/iris/versions/3/ready', USER('x'));
    assert.equal(ready3.json.ready, false, 'a killed version is not ready');
    const ready = await call(gw.url, 'GET', '/v2/models/iris/ready', USER('x'));
    assert.equal(ready.json.ready, true, 'the model still serves');

    const shown = await call(gw.url, 'GET', '/admin/kill', ONCALL);
    assert.equal(shown.status, 200);
    assert.equal(shown.json.revision, k.json.revision);
    assert.equal((shown.json.kills as unknown[]).length, 1);
    const replicas = shown.json.replicas as { id: string; kill: { revision: number; appliedAt: string } }[];
    assert.equal(replicas.length, 1);
    assert.equal(replicas[0].kill.revision, k.json.revision, 'this replica has applied it');

    const r = await call(gw.url, 'DELETE', '/admin/models/iris/versions/3/kill', ONCALL, { reason: 'fixed' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.action, 'restore');
    assert.deepEqual(await served(gw.url, SUBJECTS), before, 'exactly the split that stood before');
    const again = await call(gw.url, 'DELETE', '/admin/models/iris/versions/3/kill', ONCALL, { reason: 'twice' });
    assert.equal(again.status, 409);
    assert.equal(again.json.code, 'NOT_KILLED');
  });

  test('a model kill in deny mode answers 503 MODEL_KILLED before reading the body; metadata stays, ready is false', async () => {
    const k = await call(gw.url, 'POST', '/admin/models/other/kill', ONCALL, { mode: 'deny', reason: 'offensive output' });
    assert.equal(k.status, 200, JSON.stringify(k.json));
    // A body that is not even JSON: refused for the kill, not for the body.
    const r = await call(gw.url, 'POST', '/v2/models/other/infer', USER('a'), 'not json');
    assert.equal(r.status, 503);
    assert.equal(r.json.code, 'MODEL_KILLED');
    assert.ok(Number(r.headers['retry-after']) > 0);
    const pinned = await call(gw.url, 'POST', '/v2/models/other/versions/1/infer', USER('a'), BODY);
    assert.equal(pinned.json.code, 'MODEL_KILLED');
    assert.equal((await call(gw.url, 'GET', '/v2/models/other', USER('a'))).status, 200);
    const ready = await call(gw.url, 'GET', '/v2/models/other/ready', USER('a'));
    assert.equal(ready.json.ready, false);
    assert.equal((await call(gw.url, 'GET', '/v2/health/ready', undefined)).status, 200, 'the gateway itself is ready');
    // Other models are untouched.
    assert.equal((await call(gw.url, 'POST', '/v2/models/iris/infer', USER('a'), BODY)).status, 200);

    // Switching the same kill to rollback: rollbackTo names version 1.
    const rb = await call(gw.url, 'POST', '/admin/models/other/kill', ONCALL, { mode: 'rollback', reason: 'serve the old one' });
    assert.equal(rb.status, 200, JSON.stringify(rb.json));
    assert.equal((rb.json.kill as { target: string }).target, '1');
    assert.equal((rb.json.before as unknown[]).length, 1, 'before: the deny kill');
    const p = await call(gw.url, 'POST', '/v2/models/other/versions/2/infer', USER('a'), BODY);
    assert.deepEqual([p.status, p.headers['x-model-version'], p.headers['x-route-reason']], [200, '1', 'kill-switch']);
    assert.equal((await call(gw.url, 'DELETE', '/admin/models/other/kill', ONCALL, { reason: 'done' })).status, 200);
    const after = await call(gw.url, 'POST', '/v2/models/other/infer', USER('a'), BODY);
    assert.deepEqual([after.headers['x-model-version'], after.headers['x-route-reason']], ['2', 'stable']);

    const model = await call(gw.url, 'GET', '/admin/models/other', ONCALL);
    const history = model.json.history as { action: string; by: string; reason: string }[];
    assert.deepEqual(history.slice(0, 3).map((h) => h.action), ['kill.restore-model', 'kill.model', 'kill.model']);
    assert.equal(history[0].by, 'oncall-omar');
    const audit = await call(gw.url, 'GET', '/admin/audit?limit=5', token('auditor', 'admin:audit'));
    assert.equal(audit.status, 200, JSON.stringify(audit.json));
  });

  test('everything: POST /admin/kill denies every model; DELETE restores', async () => {
    const k = await call(gw.url, 'POST', '/admin/kill', ONCALL, { mode: 'deny', reason: 'incident 42' });
    assert.equal(k.status, 200, JSON.stringify(k.json));
    for (const m of ['iris', 'other']) assert.equal((await call(gw.url, 'POST', `/v2/models/${m}/infer`, USER('a'), BODY)).json.code, 'MODEL_KILLED');
    assert.equal((await call(gw.url, 'DELETE', '/admin/kill', ONCALL, { reason: 'over' })).status, 200);
    for (const m of ['iris', 'other']) assert.equal((await call(gw.url, 'POST', `/v2/models/${m}/infer`, USER('a'), BODY)).status, 200);
    const rb = await call(gw.url, 'POST', '/admin/kill', ONCALL, { mode: 'rollback', reason: 'incident 43' });
    assert.equal(rb.status, 200, JSON.stringify(rb.json));
    assert.deepEqual((rb.json.kill as { targets: Record<string, string> }).targets, { iris: '1', other: '1' });
    const p = await call(gw.url, 'POST', '/v2/models/iris/infer', USER('a'), BODY);
    assert.deepEqual([p.headers['x-model-version'], p.headers['x-route-reason']], ['1', 'kill-switch']);
    assert.equal((await call(gw.url, 'DELETE', '/admin/kill', ONCALL, { reason: 'over' })).status, 200);
  });

  test('bad requests: codes of the catalogue, nothing changed', async () => {
    const cases: [string, string, unknown, string | undefined, number, string][] = [
      ['POST', '/admin/models/nope/kill', { reason: 'x' }, ONCALL, 404, 'MODEL_NOT_FOUND'],
      ['POST', '/admin/models/iris/versions/9/kill', { reason: 'x' }, ONCALL, 404, 'VERSION_NOT_FOUND'],
      ['POST', '/admin/models/iris/kill', { mode: 'explode', reason: 'x' }, ONCALL, 400, 'BAD_REQUEST'],
      ['POST', '/admin/models/iris/kill', { reason: 'x', force: true }, ONCALL, 400, 'BAD_REQUEST'],
      ['POST', '/admin/models/iris/kill', {}, ONCALL, 400, 'BAD_REQUEST'],
      ['POST', '/admin/models/iris/kill', { reason: 'x', target: '9' }, ONCALL, 404, 'VERSION_NOT_FOUND'],
      ['POST', '/admin/models/iris/versions/1/kill', { reason: 'x', target: '1' }, ONCALL, 400, 'BAD_REQUEST'],
      ['POST', '/admin/kill', { reason: 'x' }, ONCALL, 400, 'BAD_REQUEST'],
      ['DELETE', '/admin/models/iris/kill', { reason: 'x' }, ONCALL, 409, 'NOT_KILLED'],
      ['DELETE', '/admin/kill', { reason: 'x' }, ONCALL, 409, 'NOT_KILLED'],
      ['POST', '/admin/models/iris/kill', { reason: 'x' }, undefined, 401, 'UNAUTHENTICATED'],
      ['POST', '/admin/models/iris/kill', { reason: 'x' }, token('po', 'admin:traffic'), 403, 'FORBIDDEN'],
      ['GET', '/admin/fleet', undefined, token('po', 'admin:traffic'), 403, 'FORBIDDEN'],
    ];
    for (const [method, path, body, auth, status, code] of cases) {
      const r = await call(gw.url, method as 'POST', path, auth, body);
      assert.deepEqual([r.status, r.json.code], [status, code], `${method} ${path} ${JSON.stringify(body)}: ${JSON.stringify(r.json)}`);
    }
    // Version 1 is the lowest: killing the stable's only version below leaves no target for 1.
    const low = await call(gw.url, 'POST', '/admin/models/iris/versions/2/kill', ONCALL, { reason: 'x' });
    assert.equal(low.status, 200, JSON.stringify(low.json));
    const none = await call(gw.url, 'POST', '/admin/models/iris/versions/1/kill', ONCALL, { reason: 'x' });
    assert.deepEqual([none.status, none.json.code], [409, 'ROLLBACK_TARGET_UNAVAILABLE']);
    assert.match(String(none.json.error), /deny/);
    assert.equal((await call(gw.url, 'DELETE', '/admin/models/iris/versions/2/kill', ONCALL, { reason: 'x' })).status, 200);
    const state = await call(gw.url, 'GET', '/admin/kill', ONCALL);
    assert.deepEqual(state.json.kills, []);
  });

  test('the fleet lists this replica with its version, configuration hash and applied revision', async () => {
    const f = await call(gw.url, 'GET', '/admin/fleet', ONCALL);
    assert.equal(f.status, 200);
    const [me] = f.json.replicas as Record<string, unknown>[];
    assert.match(String(me.id), /:\d+$/);
    assert.equal(me.pid, process.pid);
    assert.match(String(me.configHash), /^[0-9a-f]{64}$/);
    assert.equal(typeof me.gatewayVersion, 'string');
  });
});

describe('kill switch alerts', () => {
  test('every kill and restore is posted to alerts.webhookUrl with who, why and each replica\'s apply time; the admin answer does not wait for it', async () => {
    const received: Record<string, unknown>[] = [];
    const { createServer } = await import('node:http');
    const hook = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        received.push({ path: req.url, ...(JSON.parse(body) as Record<string, unknown>) });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    const port = (hook.address() as { port: number }).port;
    const gw = await startInProcess({ ...config(), alerts: { webhookUrl: `http://127.0.0.1:${port}/services/T000/B000/secret` } });
    try {
      const k = await call(gw.url, 'POST', '/admin/models/other/kill', ONCALL, { mode: 'deny', reason: 'offensive output in v2' });
      assert.equal(k.status, 200);
      const r = await call(gw.url, 'DELETE', '/admin/models/other/kill', ONCALL, { reason: 'v2 pulled' });
      assert.equal(r.status, 200);
      const deadline = Date.now() + 5000;
      while (received.length < 2 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
      assert.equal(received.length, 2, 'one post per change');
      const [kill, restore] = received.map((m) => JSON.stringify(m));
      assert.match(kill, /oncall-omar/);
      assert.match(kill, /offensive output in v2/);
      assert.match(kill, /other/);
      assert.match(restore, /v2 pulled/);
      // This replica's apply time is in the message (milliseconds).
      assert.match(kill, /\d+ ms/);
      assert.equal(received[0].path, '/services/T000/B000/secret');
      assert.equal(typeof received[0].text, 'string');
    } finally {
      await gw.close();
      await new Promise<void>((r) => hook.close(() => r()));
    }
  });
});
