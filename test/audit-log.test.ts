/**
 * One audit log, safe under concurrency (issue 7): two gateway processes share a private Redis.
 * Twenty traffic changes to one model at once, from both replicas, half of them made against the
 * revision read beforehand (If-Match), half unconditional: each is applied with a revision of its
 * own and one audit record, or refused with 409 REVISION_CONFLICT; none is lost; each change
 * replaced exactly what the one before it wrote; the model's history and the audit log agree, and
 * the log's hash chain holds. Opt-out changes (by an admin, by the subject) and erasures are
 * records of the same log.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { request } from 'undici';
import { AUDIT_SCOPE } from '../gateway/audit/audit-log.js';
import { verifyLog } from '../gateway/state/log-chain.js';
import { RedisStore } from '../gateway/state/redis-store.js';
import { REPO_ROOT, spawnGateway, writeTempFile, type ChildGateway } from './helpers/gateway.js';
import { AUDIENCE, ISSUER, stopAll, testIssuer } from './helpers/load.js';
import { RedisServer } from './helpers/redis.js';

const issuer = testIssuer();
const IRIS = join(REPO_ROOT, 'demo/models/iris.onnx');
const token = (sub: string, scope: string): string => issuer.sign({ sub, tenant: 'acme', scope, exp: Math.floor(Date.now() / 1000) + 600 });
const ADMIN = token('po-anna', 'admin:traffic admin:opt-outs admin:audit');
const FILE_ROUTES = [{ version: '1', weight: 100 }];

let redis: RedisServer;
let a: ChildGateway;
let b: ChildGateway;

before(async () => {
  redis = await RedisServer.start();
  const onnx = { kind: 'onnx', path: IRIS };
  const config = {
    server: { host: '127.0.0.1', port: 0, shutdownGraceMs: 2000 },
    auth: { issuer: ISSUER, audience: AUDIENCE, keys: [issuer.keyConfig] },
    state: { redisUrl: redis.url, keyPrefix: 'bw:' },
    rateLimits: { rules: [{ name: 'per-subject', by: 'subject', models: ['*'], limit: 1000, windowMs: 60_000 }] },
    models: { iris: { versions: { '1': { backend: onnx }, '2': { backend: onnx } }, stable: '1', traffic: { routes: FILE_ROUTES } } },
  };
  const file = await writeTempFile('gateway.yaml', JSON.stringify(config));
  [a, b] = await Promise.all([spawnGateway(['serve', '--config', file]), spawnGateway(['serve', '--config', file])]);
});

after(async () => {
  await stopAll([a, b]);
  await redis?.stop();
});

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; json: Record<string, unknown> }

async function call(gw: ChildGateway, method: 'GET' | 'PUT' | 'DELETE' | 'POST', path: string, auth: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await request(`${gw.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

interface Audited { seq: number; record: { action: string; actor: string; via: string; target: { kind: string; id: string }; revision?: number; before?: unknown; after?: unknown; reason?: string; details?: Record<string, unknown> } }

async function auditOf(target: string): Promise<Audited[]> {
  const r = await call(b, 'GET', `/admin/audit?target=${target}&limit=200`, ADMIN);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.records as Audited[];
}

test('20 concurrent changes to one model from two replicas: each applied with its own revision and audit record, or refused 409; none lost; history and log agree', async () => {
  const shown = await call(a, 'GET', '/admin/models/iris', ADMIN);
  const read = shown.headers.etag;
  assert.equal(typeof read, 'string', 'GET answers with the revision as its ETag');
  const changes = await Promise.all(Array.from({ length: 20 }, (_, i) => {
    const w = 5 * (i + 1);
    const body = { routes: [{ version: '1', weight: 100 - w }, { version: '2', weight: w, name: `step-${i}` }], reason: `change ${i}` };
    // Even: against the revision read above (If-Match); odd: unconditional.
    return call(i % 4 < 2 ? a : b, 'PUT', '/admin/models/iris/traffic', ADMIN, body, i % 2 === 0 ? { 'if-match': String(read) } : {});
  }));
  const applied = changes.filter((c) => c.status === 200);
  const refused = changes.filter((c) => c.status === 409);
  assert.equal(applied.length + refused.length, 20, `every change is applied or refused: ${changes.map((c) => c.status).join(' ')}`);
  for (const r of refused) {
    assert.equal(r.json.code, 'REVISION_CONFLICT');
    assert.match(String(r.headers.etag), /^"\d+"$/, 'a refusal says the current revision');
  }
  assert.ok(changes.filter((_, i) => i % 2 === 1).every((c) => c.status === 200), 'unconditional changes are all applied, each against the newest value');
  assert.ok(refused.length >= 9, `at most one change made against the revision read first can win (${refused.length} refused)`);

  const revisions = applied.map((c) => c.json.revision as number);
  assert.equal(new Set(revisions).size, applied.length, 'each applied change has a revision of its own');
  const inOrder = [...applied].sort((x, y) => (x.json.revision as number) - (y.json.revision as number));
  assert.deepEqual((inOrder[0].json.before as { routes: unknown }).routes, FILE_ROUTES, 'the first replaced the file\'s routes');
  for (let i = 1; i < inOrder.length; i++) {
    assert.deepEqual(inOrder[i].json.before, inOrder[i - 1].json.after, `revision ${String(inOrder[i].json.revision)} replaced exactly what ${String(inOrder[i - 1].json.revision)} wrote`);
  }

  const records = (await auditOf('model:iris')).filter((r) => r.record.action === 'traffic.set');
  assert.deepEqual(records.map((r) => r.record.revision).sort((x, y) => (x ?? 0) - (y ?? 0)), [...revisions].sort((x, y) => x - y), 'one audit record per applied change, none for a refusal');
  for (const c of applied) {
    const seq = (c.json.audit as { seq?: number }).seq;
    const rec = records.find((r) => r.seq === seq);
    assert.ok(rec !== undefined, `the answer's audit seq ${String(seq)} is in the log`);
    assert.equal(rec.record.revision, c.json.revision);
    assert.equal(rec.record.reason, c.json.reason);
    assert.deepEqual(rec.record.after, c.json.after);
    assert.equal(rec.record.via, 'admin:traffic');
  }
  const history = (await call(a, 'GET', '/admin/models/iris', ADMIN)).json.history as { seq: number; revision: number; reason: string }[];
  assert.deepEqual(history.map((h) => [h.seq, h.revision, h.reason]), records.slice(0, 20).map((r) => [r.seq, r.record.revision, r.record.reason]), 'the history is the log');

  const store = await RedisStore.connect({ redisUrl: redis.url, keyPrefix: 'bw:', commandTimeoutMs: 2000, connectTimeoutMs: 2000, quotaBlocks: false, reconcileMs: 5000 }, pino({ level: 'silent' }));
  try {
    const log = await store.readLog(AUDIT_SCOPE, 1, 1000);
    assert.deepEqual(log.map((e) => e.seq), Array.from({ length: log.length }, (_, i) => i + 1), 'no gap, no duplicate');
    assert.equal(verifyLog(log), undefined, 'the hash chain holds');
  } finally {
    await store.close();
  }
});

test('opt-out changes by an admin and by the subject, and an erasure, are records of the same log', async () => {
  const sub = 'olga';
  assert.equal((await call(a, 'PUT', `/admin/opt-outs/${sub}`, ADMIN, { kinds: ['experiments'], reason: 'ticket 7' })).status, 200);
  const mine = await call(b, 'PUT', '/me/opt-outs', token(sub, 'predict:*'), { kinds: ['experiments', 'tracking'] });
  assert.equal(mine.status, 200);
  const stale = await call(a, 'PUT', `/admin/opt-outs/${sub}`, ADMIN, { kinds: ['tracking'], revision: 1 });
  assert.equal(stale.status, 409, 'an opt-out change against a stale revision is refused');
  assert.equal((await call(b, 'POST', '/v2/models/iris/infer', token(sub, 'predict:*'), { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5, 3, 1, 0.2] }] })).status, 200);
  const erased = await call(a, 'DELETE', `/admin/subjects/${sub}`, ADMIN, { reason: 'GDPR request 12' });
  assert.equal(erased.status, 200);
  const records = await auditOf(`subject:${sub}`);
  assert.deepEqual(records.map((r) => [r.record.action, r.record.via, r.record.actor]), [
    ['subject.erase', 'admin:opt-outs', 'po-anna'],
    ['opt-outs.set', 'self', sub],
    ['opt-outs.set', 'admin:opt-outs', 'po-anna'],
  ]);
  assert.deepEqual(records[1].record.before, ['experiments']);
  assert.deepEqual(records[1].record.after, ['experiments', 'tracking']);
  assert.equal(records[0].record.reason, 'GDPR request 12');
  assert.ok(typeof records[0].record.details?.counters === 'number', 'the erasure says how many counters it removed');
  // One log: the traffic records of the test above sit in the same sequence.
  const all = (await call(a, 'GET', '/admin/audit?limit=200', ADMIN)).json.records as Audited[];
  assert.ok(all.some((r) => r.record.action === 'traffic.set') && all.some((r) => r.record.action === 'subject.erase'));
});
