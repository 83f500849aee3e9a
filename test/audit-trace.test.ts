/**
 * Walking back from a prediction (issue 13): three gateway processes share a private Redis and one
 * trail folder, each signing with its own key. On one replica a product owner starts a canary
 * rollout; on another on-call kills the canary and restores it; a request then served by the canary
 * on the third is traced, by `breakwater audit trace` and by GET /admin/audit/requests/{id}, back
 * to its version, the configuration in force, the routes, the rollout step, and every change that
 * led there, from the records of all three replicas. A tenant's auditor sees its tenant only. The
 * trail verifies.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { ASSETS } from './helpers/assets.js';
import { runCli, spawnGateway, type ChildGateway } from './helpers/gateway.js';
import { AUDIENCE, ISSUER, stopAll, testIssuer, until } from './helpers/load.js';
import { RedisServer } from './helpers/redis.js';

const IRIS = join(ASSETS, 'models/iris_mlp_dynamic.onnx');
const issuer = testIssuer();
const exp = () => Math.floor(Date.now() / 1000) + 900;
const token = (sub: string, scope = 'predict:*', tenant = 't1') => issuer.sign({ sub, tenant, scope, exp: exp() });
// No tenant claim: an auditor of every tenant.
const PO = issuer.sign({ sub: 'po-paula', scope: 'admin:traffic admin:audit', exp: exp() });
const ONCALL = token('oncall-omar', 'admin:kill-switch');

let dir: string;
let trailDir: string;
let redis: RedisServer;
let gws: ChildGateway[] = [];
const pubs: string[] = [];

async function call(gw: ChildGateway, method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, auth: string, body?: object): Promise<{ status: number; json: Record<string, any> }> {
  const res = await request(`${gw.url}${path}`, { method, headers: { authorization: `Bearer ${auth}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, any> };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bw-trace-'));
  trailDir = join(dir, 'trail');
  redis = await RedisServer.start();
  const names = ['a', 'b', 'c'];
  // Each replica's key pair, made by the command an operator runs.
  for (const n of names) {
    const made = await runCli(['audit', 'keygen', '--out', join(dir, n)]);
    assert.equal(made.code, 0, made.stderr);
    assert.equal(((await stat(join(dir, `${n}.key.pem`))).mode & 0o777).toString(8), '600', 'the private key is the owner\'s only');
    pubs.push(join(dir, `${n}.pub.pem`));
  }
  assert.equal((await runCli(['audit', 'keygen', '--out', join(dir, 'a')])).code, 2, 'an existing key is never overwritten');
  const files = await Promise.all(names.map(async (n) => {
    const file = join(dir, `${n}.yaml`);
    await writeFile(file, JSON.stringify({
      server: { host: '127.0.0.1', port: 0 },
      auth: { issuer: ISSUER, audience: AUDIENCE, keys: [issuer.keyConfig] },
      state: { redisUrl: redis.url, keyPrefix: 'bw:', commandTimeoutMs: 1000 },
      audit: { dir: trailDir, signingKeyFile: join(dir, `${n}.key.pem`), publicKeyFiles: pubs, checkpointMs: 500, maxLossMs: 100 },
      models: { iris: { stable: '1', versions: { '1': { backend: { kind: 'onnx', path: IRIS } }, '2': { backend: { kind: 'onnx', path: IRIS } } } } },
    }));
    return file;
  }));
  gws = await Promise.all(files.map((f) => spawnGateway(['serve', '--config', f], { timeoutMs: 30_000 })));
});

after(async () => {
  await stopAll(gws);
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('a request served by a canary, after a kill and a restore, walked back from the records of three replicas', { timeout: 120_000 }, async () => {
  const [a, b, c] = gws as [ChildGateway, ChildGateway, ChildGateway];
  const started = await call(a, 'PUT', '/admin/models/iris/rollout', PO, { canary: '2', steps: [{ weight: 50, minDurationMs: 3_600_000, minRequests: 1000 }, { weight: 100, minRequests: 1000 }], criteria: { errorRate: { minSamples: 1000 } }, reason: 'try v2 on half' });
  assert.equal(started.status, 201, JSON.stringify(started.json));
  assert.equal((await call(b, 'POST', '/admin/models/iris/versions/2/kill', ONCALL, { target: '1', reason: 'v2 answers look odd' })).status, 200);
  // The rollout aborts on a kill of its canary; on-call restores; the product owner starts it again.
  await until('the rollout saw the kill', async () => (await call(a, 'GET', '/admin/models/iris/rollout', PO)).json.state === 'aborted', 10_000);
  assert.equal((await call(b, 'DELETE', '/admin/models/iris/versions/2/kill', ONCALL, { reason: 'false alarm' })).status, 200);
  const again = await call(a, 'PUT', '/admin/models/iris/rollout', PO, { canary: '2', steps: [{ weight: 50, minDurationMs: 3_600_000, minRequests: 1000 }, { weight: 100, minRequests: 1000 }], criteria: { errorRate: { minSamples: 1000 } }, reason: 'v2 again after the false alarm' });
  assert.equal(again.status, 201, JSON.stringify(again.json));
  // A request the canary serves on the third replica.
  let id = '';
  await until('a subject landed on the canary', async () => {
    for (let i = 0; i < 20 && id === ''; i++) {
      const res = await request(`${c.url}/v2/models/iris/infer`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token(`user-${Date.now()}-${i}`)}` }, body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] }) });
      await res.body.dump();
      if (res.headers['x-route-reason'] === 'canary') id = String(res.headers['x-request-id']);
    }
    return id !== '';
  }, 10_000);

  let trace: Record<string, any> = {};
  await until('the decision record is written', async () => {
    const r = await call(a, 'GET', `/admin/audit/requests/${encodeURIComponent(id)}`, PO);
    trace = r.json;
    return r.status === 200;
  }, 5000);
  assert.equal(trace.decision.body.version, '2');
  assert.equal(trace.decision.body.reason, 'canary');
  assert.match(trace.config.body.sha256, /^[0-9a-f]{64}$/);
  assert.match(String(trace.version.body.modelSha256), /^[0-9a-f]{64}$/, 'the version\'s model file');
  assert.equal(trace.rollout.body.action, 'rollout.start');
  assert.equal(trace.rollout.body.reason, 'v2 again after the false alarm');
  assert.deepEqual(trace.routes.body.after.routes.map((x: { version: string; weight: number }) => [x.version, x.weight]), [['1', 50], ['2', 50]]);
  assert.deepEqual(trace.kills, [], 'restored before the request');
  const history = trace.history.map((h: { body: { action: string; actor: string } }) => `${h.body.action}:${h.body.actor}`);
  for (const step of ['rollout.start:po-paula', 'kill.version:oncall-omar', 'kill.restore-version:oncall-omar', 'rollout.abort:breakwater']) assert.ok(history.includes(step), `${step} in ${history.join(', ')}`);
  const replicas = new Set([trace.decision.replica, ...trace.history.map((h: { replica: string }) => h.replica)]);
  assert.equal(replicas.size, 3, 'records of all three replicas');

  // The same from a shell, over the trail folder.
  const cli = await runCli(['audit', 'trace', id, '--dir', trailDir]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, new RegExp(`request ${id}: iris version 2 \\(canary\\)`));
  assert.match(cli.stdout, /kill\.restore-version by oncall-omar via admin:kill-switch: false alarm/);

  // A tenant's auditor: another tenant's request does not exist for it.
  const other = token('auditor-ann', 'admin:audit', 't2');
  assert.equal((await call(a, 'GET', `/admin/audit/requests/${encodeURIComponent(id)}`, other)).status, 404);
  assert.equal((await call(a, 'GET', `/admin/audit/requests/${encodeURIComponent(id)}`, token('auditor-al', 'admin:audit', 't1'))).status, 200);

  const verified = await runCli(['audit', 'verify', trailDir, ...pubs.flatMap((p) => ['--public-key', p])]);
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  // A bundle for an auditor: the files and the keys, verified offline without naming a key.
  const bundle = join(dir, 'bundle');
  const exported = await runCli(['audit', 'export', '--dir', trailDir, '--out', bundle, ...pubs.flatMap((p) => ['--public-key', p])]);
  assert.equal(exported.code, 0, exported.stderr);
  assert.match(exported.stdout, /3 replica\(s\)/);
  const offline = await runCli(['audit', 'verify', bundle]);
  assert.equal(offline.code, 0, offline.stdout + offline.stderr);
});
