/**
 * The kill switch's admin API in one gateway (in this process, memory store): what a change answers
 * and shows, and every bad input of issue 9 refused with its catalogue code and nothing changed:
 * unknown model or version 404, bad mode, unknown field or missing reason 400, restore of what is not
 * killed 409 NOT_KILLED, a rollback target that is not ready (its backend is down) or that does not
 * exist 409 ROLLBACK_TARGET_UNAVAILABLE (suggesting deny), no token 401, no admin:kill-switch 403.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RunningGateway } from '../gateway/main.js';
import { startDownBackend, type TestBackend } from './helpers/backends.js';
import { startInProcess } from './helpers/gateway.js';
import { adminCall, canaryModel, killState, taggedInfer } from './helpers/kill-switch.js';
import { AUDIENCE, ISSUER, testIssuer, until } from './helpers/load.js';
import { startRecordingBackend, type RecordingBackend } from './helpers/recording-backend.js';

const issuer = testIssuer();
const exp = () => Math.floor(Date.now() / 1000) + 900;
const token = (sub: string, scope: string) => issuer.sign({ sub, tenant: 'ops', scope, exp: exp() });
const ADMIN = token('oncall-olga', 'admin:kill-switch');

let gw: RunningGateway;
const backends = new Map<string, RecordingBackend>();
/** Model `down`: version 1 (its rollback target) loses its backend once the gateway has loaded it. */
let down1: RecordingBackend;
let down2: RecordingBackend;
let solo: RecordingBackend;
/** Model `never`: version 1 (its rollback target) has no backend at all, so it never loads. */
let nowhere: TestBackend;
let never2: RecordingBackend;

before(async () => {
  for (const v of ['1', '2', '3']) backends.set(v, await startRecordingBackend(v));
  down1 = await startRecordingBackend('1');
  down2 = await startRecordingBackend('2');
  solo = await startRecordingBackend('1');
  nowhere = await startDownBackend();
  never2 = await startRecordingBackend('2');
  gw = await startInProcess({
    auth: { issuer: ISSUER, audience: AUDIENCE, keys: [issuer.keyConfig] },
    models: {
      m: canaryModel(backends),
      down: {
        stable: '2',
        killSwitch: { rollbackTo: '1' },
        versions: { '1': down1.versionConfig({ healthIntervalMs: 100 }), '2': down2.versionConfig() },
      },
      never: {
        stable: '2',
        killSwitch: { rollbackTo: '1' },
        versions: { '1': { backend: { kind: 'oip-http', url: nowhere.url, model: 'tagged' } }, '2': never2.versionConfig() },
      },
      // One version: a version kill has nowhere to send its traffic.
      solo: { versions: { '1': solo.versionConfig() } },
    },
  });
  await down1.close();
});

after(async () => {
  await gw?.close();
  for (const b of [...backends.values(), down2, solo, never2]) await b?.close();
});

describe('kill switch admin API: answers and bad input', () => {
  test('a version kill answers with its revision and entry, shows in GET /admin/kill and /admin/fleet, and a restore undoes it', async () => {
    const before = await killState(gw.url, ADMIN);
    const kill = await adminCall(gw.url, 'POST', '/admin/models/m/versions/3/kill', ADMIN, { reason: 'v3 refuses everyone' });
    assert.equal(kill.status, 200, JSON.stringify(kill.json));
    const k = kill.json as { revision: number; action: string; at: string; by: string; reason: string; kill: Record<string, unknown> };
    assert.ok(k.revision > before.revision);
    assert.equal(k.action, 'kill');
    assert.equal(k.by, 'oncall-olga');
    assert.equal(k.reason, 'v3 refuses everyone');
    assert.ok(!Number.isNaN(Date.parse(k.at)));
    assert.deepEqual({ scope: k.kill.scope, model: k.kill.model, version: k.kill.version, mode: k.kill.mode, target: k.kill.target },
      { scope: 'version', model: 'm', version: '3', mode: 'rollback', target: '1' });

    const state = await killState(gw.url, ADMIN);
    assert.equal(state.revision, k.revision);
    assert.equal(state.kills.length, 1);
    assert.deepEqual({ by: state.kills[0].by, reason: state.kills[0].reason, revision: state.kills[0].revision }, { by: 'oncall-olga', reason: 'v3 refuses everyone', revision: k.revision });
    assert.equal(state.replicas.length, 1);
    assert.equal(state.replicas[0].pid, process.pid);
    assert.ok(state.replicas[0].kill.revision >= k.revision);
    const fleet = await adminCall(gw.url, 'GET', '/admin/fleet', ADMIN);
    assert.equal(fleet.status, 200);
    assert.deepEqual((fleet.json.replicas as { pid: number }[]).map((r) => r.pid), [process.pid]);

    const a = await taggedInfer({ base: gw.url, model: 'm', token: token('bob', 'predict:*'), id: 'pinned-while-killed', pin: '3' });
    assert.deepEqual({ status: a.status, tag: a.tag, version: a.version, reason: a.reason }, { status: 200, tag: '1', version: '1', reason: 'kill-switch' });

    const restore = await adminCall(gw.url, 'DELETE', '/admin/models/m/versions/3/kill', ADMIN, { reason: 'v3 fixed' });
    assert.equal(restore.status, 200, JSON.stringify(restore.json));
    assert.equal(restore.json.action, 'restore');
    assert.ok((restore.json.revision as number) > k.revision);
    assert.deepEqual((await killState(gw.url, ADMIN)).kills, []);
    const b = await taggedInfer({ base: gw.url, model: 'm', token: token('bob', 'predict:*'), id: 'pinned-after', pin: '3' });
    assert.equal(b.tag, '3');
  });

  test('bad input is refused with the catalogue code, and nothing changes', async () => {
    const before = await killState(gw.url, ADMIN);
    const cases: [method: 'POST' | 'DELETE', path: string, body: unknown, status: number, code: string][] = [
      ['POST', '/admin/models/nope/kill', { reason: 'r' }, 404, 'MODEL_NOT_FOUND'],
      ['DELETE', '/admin/models/nope/kill', { reason: 'r' }, 404, 'MODEL_NOT_FOUND'],
      ['POST', '/admin/models/nope/versions/1/kill', { reason: 'r' }, 404, 'MODEL_NOT_FOUND'],
      ['POST', '/admin/models/m/versions/9/kill', { reason: 'r' }, 404, 'VERSION_NOT_FOUND'],
      ['DELETE', '/admin/models/m/versions/9/kill', { reason: 'r' }, 404, 'VERSION_NOT_FOUND'],
      ['POST', '/admin/models/m/kill', { mode: 'explode', reason: 'r' }, 400, 'BAD_REQUEST'],
      ['POST', '/admin/kill', { mode: 'explode', reason: 'r' }, 400, 'BAD_REQUEST'],
      ['POST', '/admin/models/m/kill', { mode: 'deny', reason: 'r', surprise: true }, 400, 'BAD_REQUEST'],
      ['POST', '/admin/models/m/versions/3/kill', { reason: 'r', surprise: true }, 400, 'BAD_REQUEST'],
      ['POST', '/admin/kill', { mode: 'deny', reason: 'r', surprise: true }, 400, 'BAD_REQUEST'],
      ['DELETE', '/admin/models/m/kill', { reason: 'r', surprise: true }, 400, 'BAD_REQUEST'],
      ['POST', '/admin/models/m/kill', { mode: 'deny' }, 400, 'BAD_REQUEST'],
      ['POST', '/admin/models/m/kill', { mode: 'deny', reason: '' }, 400, 'BAD_REQUEST'],
      ['POST', '/admin/models/m/kill', { mode: 'deny', reason: 7 }, 400, 'BAD_REQUEST'],
      ['POST', '/admin/models/m/versions/3/kill', {}, 400, 'BAD_REQUEST'],
      ['POST', '/admin/kill', { mode: 'deny' }, 400, 'BAD_REQUEST'],
      ['DELETE', '/admin/models/m/kill', {}, 400, 'BAD_REQUEST'],
      ['DELETE', '/admin/models/m/kill', { reason: 'nothing to restore' }, 409, 'NOT_KILLED'],
      ['DELETE', '/admin/models/m/versions/3/kill', { reason: 'nothing to restore' }, 409, 'NOT_KILLED'],
      ['DELETE', '/admin/kill', { reason: 'nothing to restore' }, 409, 'NOT_KILLED'],
    ];
    for (const [method, path, body, status, code] of cases) {
      const r = await adminCall(gw.url, method, path, ADMIN, body);
      assert.deepEqual({ status: r.status, code: r.json.code }, { status, code }, `${method} ${path} ${JSON.stringify(body)}: ${JSON.stringify(r.json)}`);
      assert.equal(typeof r.json.error, 'string');
    }
    const malformed = await adminCall(gw.url, 'POST', '/admin/models/m/kill', ADMIN, '{"reason": ');
    assert.equal(malformed.status, 400);
    // A target that is not one of the model's versions never receives traffic.
    const nowhere = await adminCall(gw.url, 'POST', '/admin/models/m/kill', ADMIN, { target: '9', reason: 'r' });
    assert.ok([400, 404, 409].includes(nowhere.status), `target 9: ${JSON.stringify(nowhere.json)}`);
    const after = await killState(gw.url, ADMIN);
    assert.deepEqual({ revision: after.revision, kills: after.kills }, { revision: before.revision, kills: [] }, 'nothing was killed');
  });

  test('a rollback target that is not ready, or none at all, is refused 409 ROLLBACK_TARGET_UNAVAILABLE, suggesting deny', async () => {
    await until('version 1 of down is not ready', async () => (await adminCall(gw.url, 'GET', '/v2/models/down/versions/1/ready', token('probe', 'predict:*'))).json.ready === false, 5000);
    const before = await killState(gw.url, ADMIN);
    for (const [path, body] of [
      ['/admin/models/down/versions/2/kill', { reason: 'v2 broken' }],
      ['/admin/models/down/kill', { mode: 'rollback', reason: 'all broken' }],
      ['/admin/models/never/versions/2/kill', { reason: 'v2 broken, v1 never loaded' }],
      ['/admin/models/solo/versions/1/kill', { reason: 'the only version' }],
    ] as const) {
      const r = await adminCall(gw.url, 'POST', path, ADMIN, body);
      assert.deepEqual({ status: r.status, code: r.json.code }, { status: 409, code: 'ROLLBACK_TARGET_UNAVAILABLE' }, `${path}: ${JSON.stringify(r.json)}`);
      assert.match(String(r.json.error), /deny/, 'the message suggests mode: deny');
    }
    assert.equal((await killState(gw.url, ADMIN)).revision, before.revision, 'nothing was changed');
    // A ready target is taken (the refusals above are about readiness, not about rolling back).
    const ok = await adminCall(gw.url, 'POST', '/admin/models/m/kill', ADMIN, { target: '1', reason: 'to a version that is fine' });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.equal((await adminCall(gw.url, 'DELETE', '/admin/models/m/kill', ADMIN, { reason: 'ok' })).status, 200);
    // Deny needs no target.
    const denied = await adminCall(gw.url, 'POST', '/admin/models/down/kill', ADMIN, { mode: 'deny', reason: 'all broken' });
    assert.equal(denied.status, 200, JSON.stringify(denied.json));
    const a = await taggedInfer({ base: gw.url, model: 'down', token: token('bob', 'predict:*'), id: 'down-denied' });
    assert.deepEqual({ status: a.status, code: a.code }, { status: 503, code: 'MODEL_KILLED' });
    const restored = await adminCall(gw.url, 'DELETE', '/admin/models/down/kill', ADMIN, { reason: 'ok' });
    assert.equal(restored.status, 200);
  });

  test('the admin API needs a verified token with admin:kill-switch (401, 403)', async () => {
    const routes: ['GET' | 'POST' | 'DELETE', string, unknown][] = [
      ['GET', '/admin/kill', undefined],
      ['GET', '/admin/fleet', undefined],
      ['POST', '/admin/kill', { mode: 'deny', reason: 'r' }],
      ['DELETE', '/admin/kill', { reason: 'r' }],
      ['POST', '/admin/models/m/kill', { mode: 'deny', reason: 'r' }],
      ['DELETE', '/admin/models/m/kill', { reason: 'r' }],
      ['POST', '/admin/models/m/versions/3/kill', { reason: 'r' }],
      ['DELETE', '/admin/models/m/versions/3/kill', { reason: 'r' }],
    ];
    const before = await killState(gw.url, ADMIN);
    for (const [method, path, body] of routes) {
      const none = await adminCall(gw.url, method, path, undefined, body);
      assert.deepEqual({ status: none.status, code: none.json.code }, { status: 401, code: 'UNAUTHENTICATED' }, `${method} ${path} without a token`);
      for (const scope of ['predict:*', 'admin:traffic admin:opt-outs admin:audit']) {
        const r = await adminCall(gw.url, method, path, token('mallory', scope), body);
        assert.deepEqual({ status: r.status, code: r.json.code }, { status: 403, code: 'FORBIDDEN' }, `${method} ${path} with ${scope}`);
      }
    }
    const after = await killState(gw.url, ADMIN);
    assert.deepEqual({ revision: after.revision, kills: after.kills }, { revision: before.revision, kills: [] });
  });
});
