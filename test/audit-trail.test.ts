/**
 * The audit trail end to end (issue 13): two gateway processes sharing a private Redis, each with its
 * own Ed25519 key, writing their chains under one folder, the real iris model:
 * - a replica SIGKILLed under load loses no admin record it acknowledged, and no prediction record
 *   older than its loss window (`audit.maxLossMs`);
 * - decision records name the version and the route reason, digest the tensors (equal inputs, equal
 *   digests), and carry no digest for a subject who opted out of tracking;
 * - subjects are pseudonyms; erasure deletes the subject's key (crypto-shredding): its later records
 *   get a new pseudonym and the old ones cannot be linked to it;
 * - each replica countersigns the other's checkpoints, and the whole trail verifies.
 */
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { request } from 'undici';
import { verifyTrail } from '../gateway/audit/verify.js';
import { SUBJECT_KEYS_SCOPE } from '../gateway/audit/subject-keys.js';
import type { TrailEntry } from '../gateway/audit/trail-format.js';
import { RedisStore } from '../gateway/state/redis-store.js';
import { ASSETS } from './helpers/assets.js';
import { spawnGateway, type ChildGateway } from './helpers/gateway.js';
import { AUDIENCE, ISSUER, stopAll, testIssuer, until } from './helpers/load.js';
import { RedisServer } from './helpers/redis.js';

const IRIS = join(ASSETS, 'models/iris_mlp_dynamic.onnx');
const issuer = testIssuer();
const exp = () => Math.floor(Date.now() / 1000) + 900;
const token = (sub: string, scope = 'predict:*') => issuer.sign({ sub, tenant: 't1', scope, exp: exp() });
const ADMIN = token('ops-olga', 'admin:opt-outs admin:audit admin:traffic');
const MAX_LOSS_MS = 300;

let dir: string;
let trailDir: string;
let redis: RedisServer;
let gws: ChildGateway[] = [];
let publicKeyFiles: string[];

async function infer(gw: ChildGateway, sub: string, row: number[]): Promise<{ status: number; id: string; at: number }> {
  const res = await request(`${gw.url}/v2/models/iris/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token(sub)}` },
    body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: row }] }),
  });
  await res.body.dump();
  return { status: res.statusCode, id: String(res.headers['x-request-id']), at: Date.now() };
}

async function admin(gw: ChildGateway, method: 'PUT' | 'DELETE', path: string, body: object): Promise<{ status: number; json: Record<string, any> }> {
  const res = await request(`${gw.url}${path}`, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, any> };
}

async function adminGet(gw: ChildGateway, path: string, auth = ADMIN): Promise<{ status: number; json: Record<string, any> }> {
  const res = await request(`${gw.url}${path}`, { headers: { authorization: `Bearer ${auth}` } });
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, any> };
}

/** Every entry every replica wrote, by replica, in file order. */
async function entries(): Promise<Map<string, TrailEntry[]>> {
  const out = new Map<string, TrailEntry[]>();
  for (const replicaDir of await readdir(trailDir)) {
    const files = (await readdir(join(trailDir, replicaDir))).filter((f) => f.endsWith('.jsonl')).sort();
    const list: TrailEntry[] = [];
    for (const f of files) {
      for (const line of (await readFile(join(trailDir, replicaDir, f), 'utf8')).split('\n')) {
        if (line.trim() === '') continue;
        const e = JSON.parse(line) as TrailEntry & { type?: string };
        if (e.type === 'file-start') continue;
        list.push(e);
      }
    }
    if (list.length > 0) out.set(list[0]!.replica, list);
  }
  return out;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bw-audit-'));
  trailDir = join(dir, 'trail');
  redis = await RedisServer.start();
  publicKeyFiles = [];
  const files: string[] = [];
  for (const name of ['a', 'b']) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    await writeFile(join(dir, `${name}.key.pem`), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await writeFile(join(dir, `${name}.pub.pem`), publicKey.export({ type: 'spki', format: 'pem' }));
    publicKeyFiles.push(join(dir, `${name}.pub.pem`));
  }
  for (const name of ['a', 'b']) {
    const file = join(dir, `${name}.yaml`);
    await writeFile(file, JSON.stringify({
      server: { host: '127.0.0.1', port: 0 },
      auth: { issuer: ISSUER, audience: AUDIENCE, keys: [issuer.keyConfig] },
      state: { redisUrl: redis.url, keyPrefix: 'bw:', commandTimeoutMs: 1000 },
      audit: { dir: trailDir, signingKeyFile: join(dir, `${name}.key.pem`), publicKeyFiles, checkpointMs: 500, maxLossMs: MAX_LOSS_MS },
      models: { iris: { versions: { '1': { backend: { kind: 'onnx', path: IRIS } } } } },
    }));
    files.push(file);
  }
  gws = await Promise.all(files.map((f) => spawnGateway(['serve', '--config', f], { timeoutMs: 30_000 })));
});

after(async () => {
  await stopAll(gws);
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('the audit trail on two replicas', { timeout: 120_000 }, () => {
  test('decision records: version, reason, digests (none for a tracking opt-out); pseudonyms; erasure shreds the key', async () => {
    const b = gws[1]!;
    const sent = [await infer(b, 'erin', [5.1, 3.5, 1.4, 0.2]), await infer(b, 'frank', [5.1, 3.5, 1.4, 0.2]), await infer(b, 'erin', [6.3, 3.3, 6.0, 2.5])];
    assert.ok(sent.every((s) => s.status === 200));
    assert.equal((await admin(b, 'PUT', '/admin/opt-outs/gina', { kinds: ['tracking'], reason: 'asked by letter' })).status, 200);
    const gina = await infer(b, 'gina', [5.1, 3.5, 1.4, 0.2]);
    let byId = new Map<string, Record<string, any>>();
    await until('the decision records are written', async () => {
      byId = new Map([...(await entries()).values()].flat().filter((e) => e.kind === 'prediction').map((e) => [(e.body as { requestId: string }).requestId, e.body as Record<string, any>]));
      return [...sent, gina].every((s) => byId.has(s.id));
    }, 5000);
    const [e1, f1, e2] = sent.map((s) => byId.get(s.id)!);
    assert.equal(e1!.model, 'iris');
    assert.equal(e1!.version, '1');
    assert.equal(e1!.reason, 'stable');
    assert.equal(e1!.status, 200);
    assert.equal(e1!.tenant, 't1');
    assert.match(e1!.input, /^[0-9a-f]{64}$/);
    assert.equal(e1!.input, f1!.input, 'equal inputs, equal digests');
    assert.equal(e1!.output, f1!.output);
    assert.notEqual(e1!.input, e2!.input);
    assert.equal(e1!.subject, e2!.subject, 'one pseudonym per subject');
    assert.notEqual(e1!.subject, f1!.subject);
    assert.ok(!JSON.stringify(e1).includes('erin'), 'the subject\'s id is not in its records');
    const g = byId.get(gina.id)!;
    assert.equal(g.input, null, 'no digest of an opted-out-of-tracking payload');
    assert.equal(g.output, null);

    // Which versions decided for erin, found by her current pseudonym; a tenant's auditor of another tenant may not ask.
    const before = await adminGet(gws[0]!, '/admin/audit/subjects/erin?tenant=t1');
    assert.equal(before.status, 200, JSON.stringify(before.json));
    assert.deepEqual(before.json.decisions.map((d: { requestId: string }) => d.requestId).sort(), [sent[0]!.id, sent[2]!.id].sort());
    assert.ok(before.json.decisions.every((d: { model: string; version: string }) => d.model === 'iris' && d.version === '1'));
    assert.equal((await adminGet(gws[0]!, '/admin/audit/subjects/erin?tenant=t1', token('auditor-ann', 'admin:audit'))).status, 200, 'an auditor of tenant t1');
    assert.equal((await adminGet(gws[0]!, '/admin/audit/subjects/erin?tenant=t1', issuer.sign({ sub: 'auditor-bo', tenant: 't2', scope: 'admin:audit', exp: exp() }))).status, 403, 'an auditor of t2');
    // The pseudonym is HMAC(key, subject) under the key in the store; erasure deletes the key.
    const store = await RedisStore.connect({ redisUrl: redis.url, keyPrefix: 'bw:', commandTimeoutMs: 1000, connectTimeoutMs: 1000, quotaBlocks: 1, reconcileMs: 1000 } as never, pino({ level: 'silent' }));
    try {
      const keyId = `${encodeURIComponent('t1')}:${encodeURIComponent('erin')}`;
      const stored = await store.read(SUBJECT_KEYS_SCOPE, keyId);
      assert.equal(typeof stored?.value, 'string');
      assert.equal(createHmac('sha256', Buffer.from(stored!.value as string, 'base64')).update('erin').digest('hex'), e1!.subject);
      const erased = await admin(gws[0]!, 'DELETE', '/admin/subjects/erin?tenant=t1', { reason: 'GDPR art. 17 request #42' });
      assert.equal(erased.status, 200, JSON.stringify(erased.json));
      assert.deepEqual(erased.json.auditKeys, { shredded: 2 });
      assert.equal(await store.read(SUBJECT_KEYS_SCOPE, keyId), undefined, 'the key is gone: the old records cannot be linked to erin');
    } finally {
      await store.close();
    }
    const later = await infer(b, 'erin', [5.1, 3.5, 1.4, 0.2]);
    await until('the later record is written', async () => [...(await entries()).values()].flat().some((e) => e.kind === 'prediction' && (e.body as { requestId: string }).requestId === later.id), 5000);
    const again = [...(await entries()).values()].flat().find((e) => e.kind === 'prediction' && (e.body as { requestId: string }).requestId === later.id)!.body as Record<string, any>;
    assert.notEqual(again.subject, e1!.subject, 'a new key, a new pseudonym');
    const after = await adminGet(gws[0]!, '/admin/audit/subjects/erin?tenant=t1');
    assert.deepEqual(after.json.decisions.map((d: { requestId: string }) => d.requestId), [later.id], 'the records before the erasure cannot be found by the subject any more');
    // The erasure itself is an admin record, durable before its answer.
    const adminRecords = [...(await entries()).values()].flat().filter((e) => e.kind === 'admin').map((e) => (e.body as { action: string }).action);
    assert.ok(adminRecords.includes('subject.erase'), adminRecords.join(','));
  });

  test('a replica SIGKILLed under load loses no acknowledged admin record and no prediction record older than its loss window; each replica countersigned the other; the trail verifies', async () => {
    const a = gws[0]!;
    const answered: { id: string; at: number }[] = [];
    let running = true;
    const load = (async () => {
      let i = 0;
      while (running && i < 20_000) {
        try {
          const r = await infer(a, `s-${i++ % 20}`, [5.1 + (i % 7) / 10, 3.5, 1.4, 0.2]);
          if (r.status === 200) answered.push(r);
        } catch {
          return; // the replica is gone
        }
      }
    })();
    const loads = [load, load, load];
    await new Promise((r) => setTimeout(r, 1500));
    const acked = await admin(a, 'PUT', '/admin/opt-outs/hank', { kinds: ['experiments'], reason: 'acknowledged just before the kill' });
    assert.equal(acked.status, 200);
    const killedAt = Date.now();
    a.process.kill('SIGKILL');
    running = false;
    await Promise.all(loads);
    const all = await entries();
    const aChain = [...all.entries()].find(([, list]) => list.some((e) => e.kind === 'admin' && (e.body as { reason?: string }).reason === 'acknowledged just before the kill'));
    assert.ok(aChain !== undefined, 'the admin record acknowledged just before the kill is in the killed replica\'s trail');
    const written = new Set(aChain[1].filter((e) => e.kind === 'prediction').map((e) => (e.body as { requestId: string }).requestId));
    // The window: maxLossMs, plus the write itself and the record's making (a pseudonym lookup).
    const due = answered.filter((r) => r.at < killedAt - MAX_LOSS_MS - 250);
    const lost = due.filter((r) => !written.has(r.id));
    assert.ok(due.length > 100, `${due.length} predictions answered before the window`);
    assert.deepEqual(lost.map((r) => r.id), [], `${lost.length} of ${due.length} prediction records older than the window lost`);
    // Each replica countersigned the other's checkpoints.
    const [aReplica] = aChain;
    const bList = [...all.entries()].find(([r]) => r !== aReplica)![1];
    assert.ok(bList.some((e) => e.kind === 'countersign' && (e.body as { checkpoint: { replica: string } }).checkpoint.replica === aReplica), 'b countersigned a\'s checkpoints');
    assert.ok(aChain[1].some((e) => e.kind === 'countersign'), 'a countersigned b\'s');
    assert.ok(aChain[1].some((e) => e.kind === 'config') && aChain[1].some((e) => e.kind === 'model'), 'the configuration and the model version loaded are recorded');
    // Untouched (a killed replica's chain just ends: that is not tampering), the trail verifies.
    const report = await verifyTrail(trailDir, { publicKeys: await Promise.all(publicKeyFiles.map((f) => readFile(f, 'utf8'))) });
    assert.equal(report.ok, true, JSON.stringify(report).slice(0, 2000));
  });
});
