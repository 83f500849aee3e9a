/**
 * Live drift monitoring end to end (issue 11), with the real iris model and a profile built from
 * iris.csv by `breakwater profile`:
 * - two gateway processes sharing one private Redis, each receiving half of a stream, report the
 *   same status and statistics as one gateway receiving all of it (its own Redis);
 * - a shift (one species only) turns the status to drift on the petal features and the predicted
 *   class, confirmed, once; the change is posted to the webhook once (not once per replica) and
 *   recorded in the audit log; a reset starts a new window;
 * - requests of a subject opted out of tracking leave no trace in the drift windows (checked in Redis);
 * - the routes' scopes and errors.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { buildConfig } from '../gateway/config.js';
import { buildProfile } from '../gateway/profile/build.js';
import { ASSETS } from './helpers/assets.js';
import { spawnGateway, type ChildGateway } from './helpers/gateway.js';
import { AUDIENCE, ISSUER, stopAll, testIssuer, until } from './helpers/load.js';
import { RedisServer } from './helpers/redis.js';

const IRIS = join(ASSETS, 'models/iris_mlp_dynamic.onnx');
const issuer = testIssuer();
const exp = () => Math.floor(Date.now() / 1000) + 900;
const token = (sub: string, scope = 'predict:*') => issuer.sign({ sub, tenant: 't', scope, exp: exp() });
const ADMIN = token('ops-olga', 'admin:drift admin:audit');
const WINDOW = 1000;
const CALM = 400;
const SHIFT_STEP = 100;
const SHIFT_STEPS = 4;

let dir: string;
let shared: RedisServer;
let own: RedisServer;
let pair: ChildGateway[] = [];
let solo: ChildGateway;
let flowers: number[][];
let hook: Server;
const posted: { text: string }[] = [];

async function infer(gw: ChildGateway, sub: string, row: number[], model = 'iris'): Promise<number> {
  const res = await request(`${gw.url}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token(sub)}` },
    body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: row }] }),
  });
  await res.body.dump();
  return res.statusCode;
}

async function call(gw: ChildGateway, method: 'GET' | 'POST' | 'PUT', path: string, opts: { token?: string; body?: object } = {}): Promise<{ status: number; json: Record<string, any> }> {
  const res = await request(`${gw.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${opts.token ?? ADMIN}`, ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
  });
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, any> };
}

const report = (gw: ChildGateway) => call(gw, 'GET', '/admin/models/iris/drift');

/** The report of `gw` once its window holds `samples` rows (the other replica flushes on its timer). */
async function settled(gw: ChildGateway, samples: number): Promise<Record<string, any>> {
  let last: Record<string, any> = {};
  try {
    await until(`the window holds ${samples} rows`, async () => {
      last = (await report(gw)).json;
      return last.window?.samples === samples;
    }, 10_000);
  } catch (e) {
    throw new Error(`${(e as Error).message}; last report: ${JSON.stringify(last).slice(0, 400)}`);
  }
  return last;
}

/** A seeded stream: `n` flowers drawn with replacement from `pool`. */
function stream(pool: number[][], n: number, seed: number): number[][] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return pool[s % pool.length]!;
  });
}

/** Sends rows to the pair (alternating) and all of them to the solo gateway, 8 at a time. */
async function sendBoth(rows: number[][], sub = 'app'): Promise<void> {
  for (let i = 0; i < rows.length; i += 8) {
    const chunk = rows.slice(i, i + 8);
    const codes = await Promise.all(chunk.flatMap((r, j) => [infer(pair[(i + j) % 2]!, sub, r), infer(solo, sub, r)]));
    assert.ok(codes.every((c) => c === 200), `answers ${codes.join(',')}`);
  }
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bw-drift-'));
  const csv = (await readFile(join(ASSETS, 'datasets/iris.csv'), 'utf8')).trim().split('\n').slice(1);
  flowers = csv.map((l) => l.split(',').slice(1, 5).map(Number));
  const config = buildConfig({ auth: { insecureNoAuth: true }, models: { iris: { versions: { '1': { backend: { kind: 'onnx', path: IRIS } } } } } }, dir, 'test');
  const profile = await buildProfile({ config, model: 'iris', version: '1', data: join(ASSETS, 'datasets/iris.csv'), map: { input: ['SepalLengthCm', 'SepalWidthCm', 'PetalLengthCm', 'PetalWidthCm'] } });
  assert.ok(profile.drift !== undefined, 'the profile holds the drift reference');
  await writeFile(join(dir, 'iris.json'), JSON.stringify(profile));
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      posted.push(JSON.parse(body) as { text: string });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  [shared, own] = await Promise.all([RedisServer.start(), RedisServer.start()]);
  const gatewayFile = async (name: string, redisUrl: string, webhook: boolean) => {
    const file = join(dir, `${name}.yaml`);
    await writeFile(file, JSON.stringify({
      server: { host: '127.0.0.1', port: 0 },
      auth: { issuer: ISSUER, audience: AUDIENCE, keys: [issuer.keyConfig] },
      state: { redisUrl, keyPrefix: 'bw:' },
      ...(webhook ? { alerts: { webhookUrl: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook` } } : {}),
      models: {
        iris: {
          versions: { '1': { backend: { kind: 'onnx', path: IRIS }, profile: join(dir, 'iris.json') } },
          drift: { window: { samples: WINDOW }, thresholds: { minSamples: 200, confirmations: 2 }, flushMs: 200, evaluateMs: 60_000 },
        },
        plain: { versions: { '1': { backend: { kind: 'onnx', path: IRIS } } } },
        'iris-baseline': {
          versions: { '1': { backend: { kind: 'onnx', path: IRIS } } },
          drift: { baseline: { samples: 300 }, window: { samples: 400 }, thresholds: { minSamples: 200, confirmations: 2 }, flushMs: 200, evaluateMs: 60_000 },
        },
      },
    }));
    return file;
  };
  const pairFile = await gatewayFile('pair', shared.url, true);
  const soloFile = await gatewayFile('solo', own.url, false);
  [pair, solo] = await Promise.all([Promise.all([0, 1].map(() => spawnGateway(['serve', '--config', pairFile]))), spawnGateway(['serve', '--config', soloFile])]);
});

after(async () => {
  await stopAll([...pair, ...(solo === undefined ? [] : [solo])]);
  await Promise.all([shared?.stop(), own?.stop()]);
  await new Promise<void>((r) => (hook === undefined ? r() : hook.close(() => r())));
  await rm(dir, { recursive: true, force: true });
});

/**
 * PSI, JS, p-value and this evaluation's (raw) status per feature and output, rounded: what must
 * agree between the pair and the solo gateway once both have counted the same rows. The confirmed
 * status also depends on when each replica evaluated (a tenth of a window apart), so it is compared
 * once the evidence has settled.
 */
function figures(r: Record<string, any>): unknown {
  return [...r.features, ...r.outputs].map((f: Record<string, any>) => ({ name: f.name, raw: f.raw, samples: f.samples, psi: f.psi.toFixed(4), js: f.js.toFixed(4), p: f.pValue.toPrecision(3) }));
}

describe('drift monitoring on two replicas sharing Redis, and one alone', { timeout: 180_000 }, () => {
  test('unshifted traffic: ok on every feature and output; both replicas and the solo gateway agree', async () => {
    await sendBoth(stream(flowers, CALM, 1));
    const [a, b, s] = await Promise.all([settled(pair[0]!, CALM), settled(pair[1]!, CALM), settled(solo, CALM)]);
    assert.deepEqual(figures(a), figures(s), 'half a stream on each of two replicas reads like all of it on one');
    assert.deepEqual(figures(b), figures(s));
    assert.equal(a.status, 'ok', JSON.stringify(figures(a)));
    assert.deepEqual(a.features.map((f: { name: string }) => f.name), ['input[0]', 'input[1]', 'input[2]', 'input[3]']);
    assert.deepEqual(a.outputs.map((f: { name: string }) => f.name), ['output:class', 'output:score']);
    assert.equal(a.reference.kind, 'profile');
    assert.equal(a.reference.rows, 150);
  });

  test('a shift to one species: drift on the petals and the predicted class, confirmed, posted once, audited; the same figures everywhere', async () => {
    const setosa = flowers.filter((f) => f[2]! < 2.5);
    let a: Record<string, any> = {};
    let b: Record<string, any> = {};
    let s: Record<string, any> = {};
    const seen: string[] = [];
    for (let step = 1; step <= SHIFT_STEPS; step++) {
      await sendBoth(stream(setosa, SHIFT_STEP, 10 + step));
      [a, b, s] = await Promise.all([settled(pair[0]!, CALM + step * SHIFT_STEP), settled(pair[1]!, CALM + step * SHIFT_STEP), settled(solo, CALM + step * SHIFT_STEP)]);
      assert.deepEqual(figures(a), figures(s), `step ${step}: the pair and the solo gateway agree`);
      assert.deepEqual(figures(b), figures(s));
      seen.push(`${s.status}/${a.status}`);
    }
    assert.equal(s.status, 'drift', `${seen.join(' ')}: ${JSON.stringify(figures(s))}`);
    assert.equal(a.status, 'drift');
    assert.equal(b.status, 'drift');
    assert.notEqual(seen[0], 'drift/drift', 'one evaluation is not enough: the status is confirmed');
    const byName = new Map<string, Record<string, any>>([...a.features, ...a.outputs].map((f: Record<string, any>) => [f.name, f]));
    for (const name of ['input[2]', 'input[3]', 'output:class']) {
      assert.equal(byName.get(name)!.status, 'drift', name);
      assert.ok(byName.get(name)!.psi >= 0.2, `${name}: PSI ${byName.get(name)!.psi}`);
      assert.ok(byName.get(name)!.top.length > 0, 'the bins that moved most');
    }
    assert.ok(typeof a.since === 'string' && a.since === b.since, 'one change, one time, shared by both replicas');
    await until('the webhook got the change', () => posted.some((p) => /is now drift/.test(p.text)), 10_000);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(posted.filter((p) => /is now drift/.test(p.text)).length, 1, 'posted once, by the replica that recorded it');
    assert.match(posted.find((p) => /is now drift/.test(p.text))!.text, /iris version 1 is now drift \(was (ok|warning)\) over the last \d+ samples: .*: drift, PSI \d\.\d{3}, JS \d\.\d{3}; most moved: /);
    const audit = await call(pair[1]!, 'GET', '/admin/audit?action=drift.');
    assert.equal(audit.status, 200, JSON.stringify(audit.json));
    const changes = (audit.json.records as { record: { action: string; after: string } }[]).filter((r) => r.record.action === 'drift.status');
    assert.ok(changes.some((c) => c.record.after === 'drift'), JSON.stringify(audit.json).slice(0, 500));
  });

  test('reset starts a new window on every replica; the status follows the new window', async () => {
    const r = await call(pair[1]!, 'POST', '/admin/models/iris/drift/reset', { body: { reason: 'new species mix is the plan' } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.version, '1');
    assert.ok(r.json.audit !== undefined);
    assert.equal(r.json.epoch, 1, 'the first reset starts epoch 1');
    for (const gw of pair) {
      const after = await report(gw);
      assert.equal(after.json.window.samples, 0);
      assert.equal(after.json.status, 'insufficient');
    }
    assert.equal((await call(pair[0]!, 'POST', '/admin/models/iris/drift/reset', { body: {} })).json.code, 'BAD_REQUEST', 'a reason is required');
  });

  test('a subject opted out of tracking leaves no trace in the drift windows (Redis holds only the others\' rows)', async () => {
    const optOut = await call(pair[0]!, 'PUT', '/me/opt-outs', { token: token('quiet-quinn'), body: { kinds: ['tracking'] } });
    assert.equal(optOut.status, 200, JSON.stringify(optOut.json));
    await until('both replicas know the opt-out', async () => (await Promise.all(pair.map((g) => call(g, 'GET', '/me/opt-outs', { token: token('quiet-quinn') })))).every((r) => r.json.kinds?.includes('tracking')), 5000);
    for (let i = 0; i < 60; i++) assert.equal(await infer(pair[i % 2]!, 'quiet-quinn', flowers[i]!), 200);
    await new Promise((r) => setTimeout(r, 600)); // both replicas' flush timers (200 ms) have run
    for (const gw of pair) assert.equal((await report(gw)).json.window.samples, 0, 'none of the opted-out subject\'s 60 rows counted');
    for (let i = 0; i < 20; i++) assert.equal(await infer(pair[i % 2]!, 'app', flowers[i]!), 200);
    await settled(pair[1]!, 20);
    // In Redis: the sample counts of every drift block add up to exactly the rows counted, none of the quiet subject's.
    const redis = new Redis(shared.url);
    try {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, found] = await redis.scan(cursor, 'MATCH', '*drift*', 'COUNT', 1000);
        keys.push(...found);
        cursor = next;
      } while (cursor !== '0');
      // The blocks of the window since the reset (epoch 1): earlier ones may have expired by now.
      const blocks = keys.filter((k) => /drift:1:e1:b:/.test(k));
      assert.ok(blocks.length > 0, `drift blocks in Redis: ${keys.join(', ')}`);
      let n = 0;
      for (const k of blocks) n += Number((await redis.hget(k, 'n')) ?? 0);
      assert.equal(n, 20, 'the other subject\'s 20 rows, once; the opted-out subject\'s 60 rows nowhere');
      assert.ok(!keys.some((k) => k.includes('quiet-quinn') && k.includes('drift')), 'no drift key names the subject');
    } finally {
      redis.disconnect();
    }
  });

  test('without a profile: the first rows fix the bins, the next `baseline.samples` rows are the reference; a shift after them is drift', async () => {
    const base = async (gw: ChildGateway) => (await call(gw, 'GET', '/admin/models/iris-baseline/drift')).json;
    const sendPair = async (rows: number[][]) => {
      for (let i = 0; i < rows.length; i += 8) {
        const codes = await Promise.all(rows.slice(i, i + 8).map((r, j) => infer(pair[(i + j) % 2]!, 'app', r, 'iris-baseline')));
        assert.ok(codes.every((c) => c === 200));
      }
    };
    const first = await base(pair[0]!);
    assert.deepEqual([first.status, first.reference.kind, first.reference.state], ['insufficient', 'baseline', 'collecting-bins']);
    // 500 rows on one replica fix the bins: 1,000 over the pair.
    await sendPair(stream(flowers, 1000, 3));
    await until('both replicas count with the stored bins', async () => (await Promise.all(pair.map(base))).every((r) => r.reference.state !== 'collecting-bins'), 10_000);
    const counting = await base(pair[1]!);
    assert.equal(counting.reference.state, 'counting');
    assert.deepEqual(counting.features.map((f: { name: string }) => f.name), ['input[0]', 'input[1]', 'input[2]', 'input[3]']);
    assert.equal(counting.status, 'insufficient', 'no alarm while the baseline is counted');
    await sendPair(stream(flowers, 400, 4));
    await until('the baseline is complete', async () => (await base(pair[0]!)).reference.state === 'ready', 10_000);
    const ready = await base(pair[1]!);
    assert.equal(ready.reference.rows, 300);
    await sendPair(stream(flowers, 300, 5));
    let calm: Record<string, any> = {};
    await until('unshifted rows after the baseline: ok', async () => (calm = await base(pair[0]!)).window.samples >= 300 && calm.status === 'ok', 10_000).catch(() => assert.fail(JSON.stringify(figures(calm))));
    const setosa = flowers.filter((f) => f[2]! < 2.5);
    for (let step = 0; step < 4; step++) {
      await sendPair(stream(setosa, 100, 20 + step));
      await new Promise((r) => setTimeout(r, 400));
      await base(pair[step % 2]!);
    }
    let shifted: Record<string, any> = {};
    await until('one species only: drift', async () => (shifted = await base(pair[0]!)).status === 'drift', 10_000).catch(() => assert.fail(JSON.stringify(figures(shifted))));
    assert.equal(shifted.reference.kind, 'baseline');
    assert.ok(shifted.outputs.some((o: { name: string }) => /:class$/.test(o.name)), 'the outputs are binned from the answers the replica saw');
  });

  test('scopes and errors: admin:drift required; unknown model or version; a model without drift; JSON with a stable code', async () => {
    assert.equal((await call(pair[0]!, 'GET', '/admin/models/iris/drift', { token: token('dev', 'admin:traffic') })).status, 403);
    const unknown = await call(pair[0]!, 'GET', '/admin/models/nope/drift');
    assert.deepEqual([unknown.status, unknown.json.code], [404, 'MODEL_NOT_FOUND']);
    const plain = await call(pair[0]!, 'GET', '/admin/models/plain/drift');
    assert.deepEqual([plain.status, plain.json.code], [404, 'DRIFT_NOT_MONITORED']);
    const version = await call(pair[0]!, 'GET', '/admin/models/iris/drift?version=9');
    assert.deepEqual([version.status, version.json.code], [404, 'VERSION_NOT_FOUND']);
    const bad = await call(pair[0]!, 'GET', '/admin/models/iris/drift?version=..%2F..');
    assert.deepEqual([bad.status, bad.json.code], [400, 'BAD_REQUEST']);
    const against = await call(pair[0]!, 'GET', '/admin/models/iris/drift?against=1');
    assert.equal(against.status, 200, 'a version against itself: the same window twice');
    assert.equal(against.json.reference.kind, 'version');
    assert.ok([...against.json.features, ...against.json.outputs].every((f: { psi: number }) => f.psi < 1e-9));
  });
});
