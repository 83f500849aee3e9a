/**
 * The extraction guard across two replicas (issue 10): two gateway processes sharing one private
 * Redis serve the real iris model with a profile built from iris.csv. An attacker sweeping the
 * input box at random, its requests spread over both replicas, is flagged from their combined rows;
 * a benign caller replaying real flowers through both is never flagged. Then each response:
 * `throttle` (the attacker's rows limited per minute across both replicas: 429 RATE_LIMITED with
 * Retry-After), `coarsen` (its scores rounded; the benign caller's untouched), `deny` (403), the admin list and
 * the clear (scope admin:guards), and a caller opted out of tracking, whose queries are not kept.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
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
const ADMIN = token('sec-sam', 'admin:guards admin:opt-outs admin:audit');
const PER_MINUTE = 30;

let dir: string;
let redis: RedisServer;
let replicas: ChildGateway[] = [];
let flowers: number[][];

/** A seeded uniform draw in the box the iris features span. */
function uniform(seed: number): () => number[] {
  let s = seed;
  const next = () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff;
  };
  return () => [4 + next() * 4, 2 + next() * 2.5, 1 + next() * 6, 0.1 + next() * 2.4];
}

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: Record<string, unknown> }

async function infer(replica: number, model: string, sub: string, rows: number[][]): Promise<Answer> {
  const res = await request(`${replicas[replica]!.url}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token(sub)}` },
    body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [rows.length, 4], data: rows.flat() }] }),
  });
  return { status: res.statusCode, headers: res.headers, body: (await res.body.json()) as Record<string, unknown> };
}

async function admin(method: 'GET' | 'DELETE' | 'PUT', path: string, body?: object): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(`${replicas[0]!.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

/** Sends `n` requests of 4 rows for `sub`, alternating replicas; the answers. */
async function send(model: string, sub: string, n: number, rows: (i: number) => number[][]): Promise<Answer[]> {
  const out: Answer[] = [];
  for (let i = 0; i < n; i++) out.push(await infer(i % 2, model, sub, rows(i)));
  return out;
}

const flagged = async (model: string, subject: string): Promise<boolean> => {
  const r = await admin('GET', '/admin/guards/extraction');
  return (r.body.subjects as { model: string; subject: string }[]).some((s) => s.model === model && s.subject === subject);
};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bw-extraction-'));
  const csv = (await readFile(join(ASSETS, 'datasets/iris.csv'), 'utf8')).trim().split('\n').slice(1);
  flowers = csv.map((l) => l.split(',').slice(1, 5).map(Number));
  const config = buildConfig({ auth: { insecureNoAuth: true }, models: { iris: { versions: { '1': { backend: { kind: 'onnx', path: IRIS } } } } } }, dir, 'test');
  const profile = await buildProfile({ config, model: 'iris', version: '1', data: join(ASSETS, 'datasets/iris.csv'), map: { input: ['SepalLengthCm', 'SepalWidthCm', 'PetalLengthCm', 'PetalWidthCm'] } });
  await writeFile(join(dir, 'iris.json'), JSON.stringify(profile));
  redis = await RedisServer.start();
  const version = { '1': { backend: { kind: 'onnx', path: IRIS }, profile: join(dir, 'iris.json') } };
  const file = join(dir, 'gateway.yaml');
  await writeFile(file, JSON.stringify({
    server: { host: '127.0.0.1', port: 0 },
    auth: { issuer: ISSUER, audience: AUDIENCE, keys: [issuer.keyConfig] },
    state: { redisUrl: redis.url, keyPrefix: 'bw:' },
    models: {
      iris: { versions: version, guards: { extraction: { mode: 'throttle', throttleRowsPerMinute: PER_MINUTE } } },
      'iris-coarse': { versions: version, guards: { extraction: { mode: 'coarsen', coarsen: { decimals: 1 } } } },
      'iris-deny': { versions: version, guards: { extraction: { mode: 'deny' } } },
    },
  }));
  replicas = await Promise.all([0, 1].map(() => spawnGateway(['serve', '--config', file])));
});

after(async () => {
  await stopAll(replicas);
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('the extraction guard on two replicas sharing Redis', { timeout: 120_000 }, () => {
  test('an attacker sweeping the input space through both replicas is flagged and throttled across them; a benign caller is not', async () => {
    const draw = uniform(7);
    // 24 rows to each replica: neither alone has the 20-plus rows the rule wants per signal… each
    // replica's monitor learns the other's counts at its next sync (1 s).
    const first = await send('iris', 'mallory', 12, () => [draw(), draw(), draw(), draw()]);
    assert.ok(first.every((a) => a.status === 200));
    let k = 0;
    const benign = await send('iris', 'alice', 12, () => Array.from({ length: 4 }, () => flowers[(k = (k + 37) % flowers.length)]!));
    assert.ok(benign.every((a) => a.status === 200 && a.headers['x-guard'] === undefined));
    await until('the attacker is flagged in the shared store', () => flagged('iris', 'mallory'), 10_000);
    // Throttled: once flagged (on either replica, maybe already within the first requests), its rows
    // are charged to 30 a minute across both replicas, 4 rows a request: at most 7 served, then 429.
    const after = await send('iris', 'mallory', 12, () => [draw(), draw(), draw(), draw()]);
    assert.ok(after.every((a) => a.status === 429 || a.headers['x-guard'] === 'extraction'), 'every answer once flagged says so');
    const whileFlagged = [...first, ...after].filter((a) => a.headers['x-guard'] === 'extraction');
    const refused = after.filter((a) => a.status === 429);
    assert.ok(whileFlagged.length <= Math.floor(PER_MINUTE / 4), `served ${whileFlagged.length} requests of 4 rows while flagged`);
    assert.ok(refused.length >= 12 - Math.floor(PER_MINUTE / 4), `refused ${refused.length}`);
    for (const a of refused) {
      assert.equal(a.body.code, 'RATE_LIMITED');
      assert.ok(Number(a.headers['retry-after']) >= 1);
    }
    // The benign caller, on both replicas, still served in full.
    const still = await send('iris', 'alice', 10, () => Array.from({ length: 4 }, () => flowers[(k = (k + 37) % flowers.length)]!));
    assert.ok(still.every((a) => a.status === 200 && a.headers['x-guard'] === undefined));
    assert.equal(await flagged('iris', 'alice'), false);
    // The flag is an automatic action in the audit log, with its evidence.
    let records: Record<string, any>[] = [];
    await until('the flag is audited', async () => {
      records = ((await admin('GET', '/admin/audit?target=model:iris&action=guards.extraction.flag')).body.records as { record: Record<string, any> }[]).map((r) => r.record);
      return records.length > 0;
    }, 5000);
    assert.equal(records[0]!.actor, 'breakwater');
    assert.equal(records[0]!.via, 'automatic');
    assert.ok((records[0]!.details.signals as string[]).length > 0 && records[0]!.details.score > 0, JSON.stringify(records[0]));
  });

  test('coarsen: a flagged caller gets scores rounded to one decimal; a benign caller gets them whole', async () => {
    const draw = uniform(11);
    await send('iris-coarse', 'mallet', 12, () => [draw(), draw(), draw(), draw()]);
    await until('flagged', () => flagged('iris-coarse', 'mallet'), 10_000);
    const a = await infer(1, 'iris-coarse', 'mallet', [[5.1, 3.5, 1.4, 0.2]]);
    assert.equal(a.status, 200);
    assert.equal(a.headers['x-guard'], 'extraction');
    const data = (a.body.outputs as { data: number[] }[])[0]!.data;
    for (const x of data) assert.ok(Math.abs(x * 10 - Math.round(x * 10)) < 1e-4, `${x} is rounded to one decimal`);
    const b = await infer(1, 'iris-coarse', 'alice', [[5.1, 3.5, 1.4, 0.2]]);
    assert.equal(b.headers['x-guard'], undefined);
    assert.ok((b.body.outputs as { data: number[] }[])[0]!.data.some((x) => Math.abs(x * 10 - Math.round(x * 10)) > 1e-3));
  });

  test('deny: once flagged, the caller is refused 403 EXTRACTION_SUSPECTED on both replicas; a benign caller is served', async () => {
    const draw = uniform(13);
    const answers = await send('iris-deny', 'mack', 12, () => [draw(), draw(), draw(), draw()]);
    assert.ok(answers.every((a) => a.status === 200 || a.body.code === 'EXTRACTION_SUSPECTED'));
    await until('flagged', () => flagged('iris-deny', 'mack'), 10_000);
    for (const replica of [0, 1]) {
      const a = await infer(replica, 'iris-deny', 'mack', [[5.1, 3.5, 1.4, 0.2]]);
      assert.equal(a.status, 403);
      assert.equal(a.body.code, 'EXTRACTION_SUSPECTED');
    }
    assert.equal((await infer(0, 'iris-deny', 'alice', [[5.1, 3.5, 1.4, 0.2]])).status, 200);
  });

  test('the admin list names flagged subjects with their signals; a clear reaches both replicas', async () => {
    const list = await admin('GET', '/admin/guards/extraction');
    assert.equal(list.status, 200);
    const m = (list.body.subjects as { model: string; version: string; subject: string; signals: string[]; score: number; rows: number }[]).find((s) => s.model === 'iris-coarse' && s.subject === 'mallet');
    assert.ok(m !== undefined && m.signals.length > 0 && m.score >= 1 && m.rows >= 20, JSON.stringify(list.body));
    const noReason = await admin('DELETE', '/admin/guards/extraction/mallet', {});
    assert.equal(noReason.status, 400);
    const cleared = await admin('DELETE', '/admin/guards/extraction/mallet', { reason: 'pen test by the red team, ticket SEC-12' });
    assert.equal(cleared.status, 200);
    assert.ok(Number(cleared.body.cleared) >= 2);
    // The other replica applies it: its next answer is whole again.
    await until('cleared on replica 1', async () => {
      const a = await infer(1, 'iris-coarse', 'mallet', [[5.1, 3.5, 1.4, 0.2]]);
      return a.headers['x-guard'] === undefined;
    }, 10_000);
    assert.equal(await flagged('iris-coarse', 'mallet'), false);
    const audit = await request(`${replicas[0]!.url}/admin/audit?action=guards.`, { headers: { authorization: `Bearer ${token('auditor', 'admin:audit')}` } });
    assert.equal(audit.statusCode, 200);
    const records = (await audit.body.json()) as { records: { record: { action: string; target: { id: string }; reason: string } }[] };
    assert.ok(records.records.some(({ record: r }) => r.action === 'guards.extraction-clear' && r.target.id === 'mallet' && /SEC-12/.test(r.reason)));
  });

  test('a caller opted out of tracking is counted, never judged on its queries: the same sweep is not flagged', async () => {
    const put = await request(`${replicas[0]!.url}/admin/opt-outs/oscar`, {
      method: 'PUT', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ kinds: ['tracking'], reason: 'asked by the subject' }),
    });
    assert.ok(put.statusCode === 200 || put.statusCode === 201, String(put.statusCode));
    await sleep(1200); // both replicas read the opt-out
    const draw = uniform(7);
    const answers = await send('iris-coarse', 'oscar', 16, () => [draw(), draw(), draw(), draw()]);
    assert.ok(answers.every((a) => a.status === 200 && a.headers['x-guard'] === undefined));
    await sleep(1500);
    assert.equal(await flagged('iris-coarse', 'oscar'), false);
  });
});
