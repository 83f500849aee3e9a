/**
 * The kill switch across replicas (issue 9's must-shows beside propagation under load): three
 * gateway processes sharing one private Redis, every version on a recording backend that tags its
 * answers, so each check knows which version computed what a client got.
 *
 *  - Requests in flight on a slow version (its backend takes 2 s) when the version is killed are
 *    answered by the rollback target, `x-route-reason: kill-switch`; when the model is killed in deny
 *    mode they get 503 MODEL_KILLED. None is answered with the killed version's output.
 *  - A replica started while a kill is in force never serves the killed version: its very first
 *    answers, from the moment it listens, come from the target (or say it is not ready yet).
 *  - A restore puts back exactly the routes that stood before the kill (split, rules, shadow, as set
 *    at run time): the same traffic in GET /admin/models/m, the same version for every subject, the
 *    shadow copies again.
 *  - A replica whose pub/sub connection was killed (`CLIENT KILL TYPE pubsub`) still applies a kill
 *    within killSwitch.reconcileMs, seen in its fleet record and in its answers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnGateway, writeTempFile, type ChildGateway } from './helpers/gateway.js';
import { adminCall, appliedAtMs, canaryModel, change, killState, taggedInfer, waitApplied, type Answer } from './helpers/kill-switch.js';
import { AUDIENCE, ISSUER, redisCall, stopAll, testIssuer, until } from './helpers/load.js';
import { startRecordingBackend, type RecordingBackend } from './helpers/recording-backend.js';
import { freePort, RedisServer } from './helpers/redis.js';

const RECONCILE_MS = 1000;
/**
 * A replica that missed the announcement applies the kill at its next reconciliation: at most
 * reconcileMs after the change, plus one read of a local Redis (a few ms) and the lateness of its
 * timer on a loaded 2-core machine (tens of ms, rarely more). 300 ms covers that and is still far
 * below the second reconciliation (2 × reconcileMs) a skipped one would show.
 */
const RECONCILE_MARGIN_MS = 300;
const SLOW_MS = 2000;

const issuer = testIssuer();
const exp = () => Math.floor(Date.now() / 1000) + 900;
const ADMIN = issuer.sign({ sub: 'oncall-olga', tenant: 'ops', scope: 'admin:kill-switch admin:traffic', exp: exp() });
const user = (sub: string) => issuer.sign({ sub, tenant: 'acme', exp: exp() });
const USER = user('alice');

let redis: RedisServer | undefined;
let gateways: ChildGateway[] = [];
let pids: number[] = [];
let config: Record<string, unknown> = {};
/** Versions of model m, and of model `slow` (s1, s2). */
const backends = new Map<string, RecordingBackend>();
const slow = new Map<string, RecordingBackend>();
let seq = 0;
const nextId = (prefix: string) => `${prefix}-${seq++}`;

before(async () => {
  redis = await RedisServer.start();
  for (const v of ['1', '2', '3']) {
    backends.set(v, await startRecordingBackend(v));
    if (v !== '3') slow.set(v, await startRecordingBackend(v));
  }
  config = {
    server: { host: '127.0.0.1', port: 0, shutdownGraceMs: 2000 },
    logging: { level: 'info' },
    auth: { issuer: ISSUER, audience: AUDIENCE, keys: [issuer.keyConfig] },
    state: { redisUrl: redis.url, keyPrefix: 'bw:' },
    killSwitch: { reconcileMs: RECONCILE_MS },
    fleet: { heartbeatMs: 1000, expireAfterMs: 5000 },
    models: {
      m: canaryModel(backends),
      slow: {
        stable: '2',
        killSwitch: { rollbackTo: '1' },
        versions: { '1': (slow.get('1') as RecordingBackend).versionConfig(), '2': (slow.get('2') as RecordingBackend).versionConfig() },
      },
    },
  };
  const file = await writeTempFile('gateway.yaml', JSON.stringify(config, null, 2));
  gateways = await Promise.all([0, 1, 2].map(() => spawnGateway(['serve', '--config', file])));
  pids = gateways.map((g) => g.process.pid as number);
});

after(async () => {
  await stopAll(gateways);
  for (const b of [...backends.values(), ...slow.values()]) await b.close();
  await redis?.stop();
});

const infer = (replica: number, model: string, o: { pin?: string; headers?: Record<string, string>; token?: string; id?: string } = {}): Promise<Answer> =>
  taggedInfer({ base: gateways[replica].url, model, token: o.token ?? USER, id: o.id ?? nextId(`r${replica}`), pin: o.pin, headers: o.headers, timeoutMs: 15_000 });

/** Kills (POST) or restores (DELETE) on replica 0 and waits until every replica has applied it. */
async function killAndWait(method: 'POST' | 'DELETE', path: string, body: Record<string, unknown>) {
  const c = await change(gateways[0].url, ADMIN, method, path, body);
  await waitApplied(gateways[1].url, ADMIN, c.revision, pids, 5000);
  return c;
}

describe('kill switch across three replicas sharing one Redis', () => {
  test('requests in flight on a slow version are answered by the rollback target when it is killed, and 503 MODEL_KILLED when the model is denied', { timeout: 60_000 }, async (t) => {
    const s2 = slow.get('2') as RecordingBackend;
    s2.setDelay(SLOW_MS);
    try {
      // Rollback: six requests held by version 2's backend, two per replica (one pinned to 2).
      let before = s2.calls().length;
      const held = [0, 1, 2].flatMap((r) => [infer(r, 'slow'), infer(r, 'slow', { pin: '2' })]);
      await until('six calls held by version 2', () => s2.calls().length - before >= 6, 5000);
      const killed = await change(gateways[0].url, ADMIN, 'POST', '/admin/models/slow/versions/2/kill', { reason: 'v2 answers garbage' });
      const killedAt = Date.now();
      const answers = await Promise.all(held);
      t.diagnostic(`rollback: in-flight requests answered ${answers.map((a) => a.receivedAt - killedAt).join(', ')} ms after the kill's POST returned (the backend holds each ${SLOW_MS} ms)`);
      for (const a of answers) {
        assert.deepEqual({ status: a.status, tag: a.tag, version: a.version, reason: a.reason }, { status: 200, tag: '1', version: '1', reason: 'kill-switch' }, JSON.stringify(a));
      }
      await waitApplied(gateways[1].url, ADMIN, killed.revision, pids, 5000);
      for (const r of [0, 1, 2]) {
        const a = await infer(r, 'slow', { pin: '2' });
        assert.deepEqual({ status: a.status, tag: a.tag, reason: a.reason }, { status: 200, tag: '1', reason: 'kill-switch' });
      }
      await killAndWait('DELETE', '/admin/models/slow/versions/2/kill', { reason: 'v2 fixed' });

      // Deny: the whole model, with six requests held by version 2 again.
      before = s2.calls().length;
      const denied = [0, 1, 2].flatMap((r) => [infer(r, 'slow'), infer(r, 'slow', { pin: '2' })]);
      await until('six more calls held by version 2', () => s2.calls().length - before >= 6, 5000);
      const deny = await killAndWait('POST', '/admin/models/slow/kill', { mode: 'deny', reason: 'stop everything on slow' });
      assert.equal(deny.kill.mode, 'deny');
      for (const a of await Promise.all(denied)) {
        assert.deepEqual({ status: a.status, code: a.code, tag: a.tag }, { status: 503, code: 'MODEL_KILLED', tag: undefined }, JSON.stringify(a));
      }
      // New requests are refused before any backend is called, with a Retry-After.
      const callsBefore = [...slow.values()].map((b) => b.calls().length);
      for (const r of [0, 1, 2]) {
        for (const pin of [undefined, '1', '2']) {
          const a = await infer(r, 'slow', { pin });
          assert.deepEqual({ status: a.status, code: a.code }, { status: 503, code: 'MODEL_KILLED' }, JSON.stringify(a));
          assert.match(a.retryAfter ?? '', /^\d+$/, 'Retry-After in seconds');
        }
      }
      assert.deepEqual([...slow.values()].map((b) => b.calls().length), callsBefore, 'no backend was called');
      const ready = await adminCall(gateways[2].url, 'GET', '/v2/models/slow/ready', USER);
      assert.equal(ready.json.ready, false, JSON.stringify(ready));
      assert.equal((await adminCall(gateways[2].url, 'GET', '/v2/health/ready', undefined)).status, 200, 'the gateway itself stays ready');
      const other = await infer(2, 'm', { pin: '2' });
      assert.equal(other.tag, '2', 'other models are served');
      await killAndWait('DELETE', '/admin/models/slow/kill', { reason: 'incident over' });
    } finally {
      s2.setDelay(0);
    }
    for (const r of [0, 1, 2]) {
      const a = await infer(r, 'slow');
      assert.deepEqual({ status: a.status, tag: a.tag }, { status: 200, tag: '2' }, 'version 2 serves again after the restore');
    }
  });

  test('a replica started while a kill is in force never serves the killed version, from its first answer', { timeout: 60_000 }, async (t) => {
    const killed = await killAndWait('POST', '/admin/models/m/versions/3/kill', { reason: 'v3 refuses everyone' });
    // The new replica's port is known before it starts, so requests are sent from before it listens.
    const port = await freePort();
    const file = await writeTempFile('gateway.yaml', JSON.stringify({ ...config, server: { ...(config.server as object), port } }, null, 2));
    const base = `http://127.0.0.1:${port}`;
    const answers: (Answer & { kind: string })[] = [];
    let running = true;
    const kinds = [{ kind: 'pinned3', pin: '3' }, { kind: 'rule', headers: { 'x-lane': 'qa' } }, { kind: 'split' }] as const;
    const probe = async (w: number) => {
      for (let k = 0; running && k < 100_000; k++) {
        const c = kinds[(k + w) % kinds.length];
        const a = await taggedInfer({
          base, model: 'm', id: nextId('new'), token: user(`newcomer-${k % 40}`), timeoutMs: 5000,
          pin: 'pin' in c ? c.pin : undefined, headers: 'headers' in c ? c.headers : undefined,
        });
        answers.push({ ...a, kind: c.kind });
        if (a.status !== 200) await sleep(5);
      }
    };
    const probes = [0, 1, 2, 3].map(probe);
    let fourth: ChildGateway | undefined;
    try {
      fourth = await spawnGateway(['serve', '--config', file]);
      await until('the new replica has answered 200 for a second', () => {
        const first = answers.find((a) => a.status === 200);
        return first !== undefined && Date.now() - first.receivedAt > 1000;
      }, 20_000);
      running = false;
      await Promise.all(probes);
      const fourthPid = fourth.process.pid as number;
      const state = await killState(gateways[0].url, ADMIN);
      const record = state.replicas.find((r) => r.pid === fourthPid);
      assert.ok(record !== undefined && record.kill.revision >= killed.revision, `the new replica lists the kill as applied: ${JSON.stringify(state.replicas)}`);
    } finally {
      running = false;
      await Promise.all(probes);
      await stopAll([fourth]);
    }
    const firstOk = answers.findIndex((a) => a.status === 200);
    const served = answers.filter((a) => a.status === 200);
    const early = answers.slice(0, Math.max(firstOk, 0));
    t.diagnostic(`${answers.length} requests: ${early.filter((a) => a.status === 0).length} before it listened, ${early.filter((a) => a.status === 503).length} 503 while starting, ${served.length} answered`);
    assert.ok(served.length >= 20, 'the new replica answered');
    assert.deepEqual(answers.filter((a) => a.status === 200 && a.tag === '3'), [], 'no answer computed by the killed version');
    for (const a of answers) {
      if (a.status === 200) {
        assert.equal(a.tag, a.version, 'x-model-version says who computed it');
        if (a.kind !== 'split') assert.deepEqual({ tag: a.tag, reason: a.reason }, { tag: '1', reason: 'kill-switch' }, JSON.stringify(a));
      } else {
        assert.ok(a.status === 0 || (a.status === 503 && a.code === 'GATEWAY_NOT_READY'), `before it is ready: not listening or GATEWAY_NOT_READY, not ${JSON.stringify(a)}`);
      }
    }
    const sentAfterReady = answers.filter((a) => firstOk >= 0 && a.sentAt > answers[firstOk].receivedAt);
    assert.deepEqual(sentAfterReady.filter((a) => a.status !== 200), [], 'once it answered, it answered every request');
    const newIds = new Set(answers.map((a) => a.id));
    assert.deepEqual((backends.get('3') as RecordingBackend).calls().filter((c) => newIds.has((c.requestId ?? '').replace(/-shadow$/, ''))), [], 'backend 3 got no call from it, not even a shadow copy');
    await killAndWait('DELETE', '/admin/models/m/versions/3/kill', { reason: 'v3 fixed' });
  });

  test('a restore puts back exactly the routes that stood before the kill: split, rules and shadow', { timeout: 60_000 }, async () => {
    const routes = {
      routes: [{ version: '2', weight: 70 }, { version: '3', weight: 30, name: 'canary' }],
      rules: [{ name: 'qa', version: '3', header: { name: 'x-lane', equals: 'qa' } }, { name: 'vip', version: '2', claim: { name: 'sub', equals: 'vip-1' } }],
      shadow: { version: '3', percent: 50, mode: 'after' },
    };
    const put = await adminCall(gateways[0].url, 'PUT', '/admin/models/m/traffic', ADMIN, { ...routes, reason: 'canary at 30 %, shadow at half' });
    assert.equal(put.status, 200, JSON.stringify(put.json));
    const trafficOf = async (r: number) => (await adminCall(gateways[r].url, 'GET', '/admin/models/m', ADMIN)).json.traffic as { source: string; revision: number; traffic: Record<string, unknown> };
    await until('every replica serves the new routes', async () => (await Promise.all([0, 1, 2].map(trafficOf))).every((tr) => tr.revision === put.json.revision), 5000);
    const before = await Promise.all([0, 1, 2].map(trafficOf));

    const subjects = Array.from({ length: 120 }, (_, i) => `subject-${i}`);
    const tokens = new Map(subjects.map((s) => [s, user(s)]));
    const b3 = backends.get('3') as RecordingBackend;
    /** Each subject's version and reason (unpinned), the rule's, the VIP's, and the shadow copies these requests caused. */
    const sample = async (label: string) => {
      const ids = new Set<string>();
      const got = new Map<string, string>();
      for (const [i, s] of subjects.entries()) {
        const id = nextId(label);
        ids.add(id);
        const a = await infer(i % 3, 'm', { token: tokens.get(s), id });
        assert.equal(a.status, 200, JSON.stringify(a));
        assert.equal(a.tag, a.version);
        got.set(s, `${a.tag} ${a.reason}`);
      }
      const rule = await infer(1, 'm', { headers: { 'x-lane': 'qa' } });
      const vip = await infer(2, 'm', { token: user('vip-1') });
      await sleep(200); // shadow copies leave after the answers
      const shadows = b3.calls().filter((c) => c.shadow && ids.has((c.requestId ?? '').replace(/-shadow$/, ''))).length;
      const shares = new Map<string, number>();
      for (const v of got.values()) shares.set(v.split(' ')[0], (shares.get(v.split(' ')[0]) ?? 0) + 1);
      return { got, rule: `${rule.tag} ${rule.reason}`, vip: `${vip.tag} ${vip.reason}`, shadows, shares: Object.fromEntries(shares) };
    };

    const standing = await sample('before');
    assert.ok((standing.shares['3'] ?? 0) > 0 && (standing.shares['2'] ?? 0) > 0, `both arms serve: ${JSON.stringify(standing.shares)}`);
    assert.equal(standing.rule, '3 rule:qa');
    assert.equal(standing.vip, '2 rule:vip');
    assert.ok(standing.shadows > 0, 'shadow copies reach version 3');

    for (const kill of [
      { path: '/admin/models/m/versions/3/kill', body: { reason: 'version kill' } },
      { path: '/admin/models/m/kill', body: { mode: 'rollback', reason: 'model kill' } },
    ]) {
      await killAndWait('POST', kill.path, kill.body);
      const during = await sample('during');
      assert.equal(during.shadows, 0, `${kill.body.reason}: no shadow copy to a killed version`);
      for (const [s, was] of standing.got) {
        const now = during.got.get(s);
        if (was.startsWith('3 ') || kill.path.endsWith('/m/kill')) assert.equal(now, '1 kill-switch', `${kill.body.reason}: ${s}`);
        else assert.equal(now, was, `${kill.body.reason}: ${s} keeps its arm`);
      }
      assert.equal(during.rule, '1 kill-switch');
      await killAndWait('DELETE', kill.path, { reason: `${kill.body.reason} over` });
      const after = await Promise.all([0, 1, 2].map(trafficOf));
      for (const [r, tr] of after.entries()) {
        assert.deepEqual({ source: tr.source, traffic: tr.traffic }, { source: before[r].source, traffic: before[r].traffic }, `${kill.body.reason}: replica ${r}'s routes after the restore`);
      }
      const restored = await sample('after');
      assert.deepEqual(restored.got, standing.got, `${kill.body.reason}: every subject is back on its own version`);
      assert.deepEqual(restored.shares, standing.shares);
      assert.equal(restored.rule, standing.rule);
      assert.equal(restored.vip, standing.vip);
      assert.ok(restored.shadows > 0, `${kill.body.reason}: shadow copies again after the restore`);
    }
    const reset = await adminCall(gateways[0].url, 'DELETE', '/admin/models/m/traffic', ADMIN, { reason: 'back to the file' });
    assert.equal(reset.status, 200);
  });

  test(`a replica whose pub/sub connection was killed still applies a kill within killSwitch.reconcileMs (${RECONCILE_MS} ms)`, { timeout: 60_000 }, async (t) => {
    assert.ok(redis !== undefined);
    const url = redis.url;
    await until('every replica subscribed to kill announcements', async () => ((await redisCall(url, 'pubsub', 'numsub', 'bw:kill')) as [string, number])[1] === 3, 5000);
    // Each replica probes version 3 (pinned) every ~20 ms throughout.
    const answers: (Answer & { replica: number })[] = [];
    let running = true;
    const probes = [0, 1, 2].map(async (r) => {
      for (let k = 0; running && k < 10_000; k++) {
        answers.push({ ...(await infer(r, 'm', { pin: '3' })), replica: r });
        await sleep(20);
      }
    });
    let killed;
    let subscribers: number;
    try {
      await sleep(200);
      const dropped = Number(await redisCall(url, 'client', 'kill', 'type', 'pubsub'));
      assert.ok(dropped >= 3, `the replicas' subscriber connections were dropped (${dropped})`);
      subscribers = ((await redisCall(url, 'pubsub', 'numsub', 'bw:kill')) as [string, number])[1];
      killed = await change(gateways[0].url, ADMIN, 'POST', '/admin/models/m/versions/3/kill', { reason: 'v3 broken, pub/sub down' });
      await waitApplied(gateways[0].url, ADMIN, killed.revision, pids, RECONCILE_MS + RECONCILE_MARGIN_MS + 2000, 20);
      await sleep(200);
    } finally {
      running = false;
      await Promise.all(probes);
    }
    const state = await killState(gateways[0].url, ADMIN);
    const at = Date.parse(killed.at);
    const applied = pids.map((pid) => appliedAtMs(state.replicas.find((r) => r.pid === pid)));
    t.diagnostic(`${subscribers} subscribers when the kill was announced; applied after ${applied.map((a) => a - at).join(', ')} ms`);
    assert.equal(subscribers, 0, 'no replica could have heard the announcement');
    for (const [r, a] of applied.entries()) assert.ok(a - at <= RECONCILE_MS + RECONCILE_MARGIN_MS, `replica ${r} applied the kill ${a - at} ms after it was made`);
    // By traffic: no answer from 3 for a request sent after the replica applied the kill, and every
    // request sent after reconcileMs (and the margin) answered by the target.
    for (const a of answers) {
      assert.equal(a.status, 200, JSON.stringify(a));
      if (a.sentAt > applied[a.replica] + 1) assert.deepEqual({ tag: a.tag, reason: a.reason }, { tag: '1', reason: 'kill-switch' }, `replica ${a.replica} after it applied the kill`);
      if (a.sentAt > at + RECONCILE_MS + RECONCILE_MARGIN_MS) assert.equal(a.tag, '1');
    }
    for (const r of [0, 1, 2]) assert.ok(answers.some((a) => a.replica === r && a.tag === '1' && a.sentAt > applied[r]), `replica ${r} served the target`);
    await killAndWait('DELETE', '/admin/models/m/versions/3/kill', { reason: 'v3 fixed' });
    await until('every replica subscribed again', async () => ((await redisCall(url, 'pubsub', 'numsub', 'bw:kill')) as [string, number])[1] === 3, 5000);
  });
});
