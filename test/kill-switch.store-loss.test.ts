/**
 * The kill switch when the shared store is lost (issue 9, `onStoreLoss` both ways): two gateway
 * processes on one private Redis, one configured `onStoreLoss: keep`, the other `deny`, both with a
 * short `killSwitch.staleAfterMs`. Version 3 is killed, then Redis is killed (SIGKILL: the sockets
 * close at once, as in a crash). Both keep the kill they knew; once no confirmation has come for
 * staleAfterMs, `keep` goes on serving with that last known state (never the killed version) and
 * `deny` answers 503 MODEL_KILLED, with Retry-After, for every request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnGateway, writeTempFile, type ChildGateway } from './helpers/gateway.js';
import { canaryModel, change, taggedInfer, waitApplied, type Answer } from './helpers/kill-switch.js';
import { AUDIENCE, ISSUER, stopAll, testIssuer } from './helpers/load.js';
import { startRecordingBackend, type RecordingBackend } from './helpers/recording-backend.js';
import { RedisServer } from './helpers/redis.js';

const RECONCILE_MS = 500;
const STALE_AFTER_MS = 1500;

const issuer = testIssuer();
const exp = () => Math.floor(Date.now() / 1000) + 900;
const ADMIN = issuer.sign({ sub: 'oncall-olga', tenant: 'ops', scope: 'admin:kill-switch', exp: exp() });
const TOKENS = Array.from({ length: 20 }, (_, i) => issuer.sign({ sub: `user-${i}`, tenant: 'acme', exp: exp() }));

let redis: RedisServer | undefined;
let keep: ChildGateway | undefined;
let deny: ChildGateway | undefined;
const backends = new Map<string, RecordingBackend>();
let seq = 0;

before(async () => {
  redis = await RedisServer.start();
  for (const v of ['1', '2', '3']) backends.set(v, await startRecordingBackend(v));
  const config = (onStoreLoss: 'keep' | 'deny') => ({
    server: { host: '127.0.0.1', port: 0, shutdownGraceMs: 1000 },
    logging: { level: 'info' },
    auth: { issuer: ISSUER, audience: AUDIENCE, keys: [issuer.keyConfig] },
    state: { redisUrl: redis?.url, keyPrefix: 'bw:' },
    killSwitch: { reconcileMs: RECONCILE_MS, staleAfterMs: STALE_AFTER_MS, onStoreLoss },
    fleet: { heartbeatMs: 500, expireAfterMs: 5000 },
    models: { m: canaryModel(backends) },
  });
  const [k, d] = await Promise.all([writeTempFile('keep.yaml', JSON.stringify(config('keep'))), writeTempFile('deny.yaml', JSON.stringify(config('deny')))]);
  [keep, deny] = await Promise.all([spawnGateway(['serve', '--config', k]), spawnGateway(['serve', '--config', d])]);
});

after(async () => {
  await stopAll([keep, deny]);
  for (const b of backends.values()) await b.close();
  await redis?.stop();
});

const infer = (gw: ChildGateway, o: { pin?: string; token?: number } = {}): Promise<Answer> =>
  taggedInfer({ base: gw.url, model: 'm', token: TOKENS[(o.token ?? seq) % TOKENS.length], id: `s-${seq++}`, pin: o.pin, timeoutMs: 5000 });

describe('kill switch when the shared store is lost', () => {
  test(`onStoreLoss keep serves the last known kill state; deny answers 503 MODEL_KILLED once ${STALE_AFTER_MS} ms pass without confirmation`, { timeout: 60_000 }, async (t) => {
    assert.ok(keep !== undefined && deny !== undefined && redis !== undefined);
    const killed = await change(keep.url, ADMIN, 'POST', '/admin/models/m/versions/3/kill', { reason: 'v3 broken' });
    await waitApplied(deny.url, ADMIN, killed.revision, [keep.process.pid as number, deny.process.pid as number], 5000);

    await redis.kill();
    const lostAt = Date.now();
    // At once (well within staleAfterMs of the last confirmation): both serve the kill they knew.
    for (const gw of [keep, deny]) {
      const a = await infer(gw, { pin: '3' });
      // Deny may only be stale staleAfterMs after its last confirmation, at most reconcileMs before the loss.
      if (gw === keep || a.sentAt - lostAt < STALE_AFTER_MS - RECONCILE_MS - 500) {
        assert.deepEqual({ status: a.status, tag: a.tag, reason: a.reason }, { status: 200, tag: '1', reason: 'kill-switch' }, `${gw === keep ? 'keep' : 'deny'} just after the loss: ${JSON.stringify(a)}`);
      }
    }

    // Deny: the first refusal comes once the state is stale, at the latest staleAfterMs after the
    // last confirmation (at most reconcileMs before the loss), plus a margin for a loaded machine.
    const latest = lostAt + STALE_AFTER_MS + RECONCILE_MS + 1000;
    let refusal: Answer | undefined;
    while (refusal === undefined && Date.now() < latest) {
      const a = await infer(deny);
      if (a.status === 503) refusal = a;
      else assert.ok(a.status === 200 && a.tag !== '3', `deny before it is stale: ${JSON.stringify(a)}`);
      await sleep(25);
    }
    assert.ok(refusal !== undefined, `deny refused nothing within ${latest - lostAt} ms of the loss`);
    t.diagnostic(`deny: first 503 ${refusal.sentAt - lostAt} ms after Redis was killed`);
    assert.equal(refusal.code, 'MODEL_KILLED');
    assert.ok(refusal.sentAt - lostAt >= STALE_AFTER_MS - RECONCILE_MS - 500, `not before the state could be stale (${refusal.sentAt - lostAt} ms)`);
    for (const pin of [undefined, '1', '2', '3']) {
      const a = await infer(deny, { pin });
      assert.deepEqual({ status: a.status, code: a.code }, { status: 503, code: 'MODEL_KILLED' }, `deny, pinned ${String(pin)}`);
      assert.match(a.retryAfter ?? '', /^\d+$/);
    }

    // Keep: long past staleAfterMs, every request still served, never by the killed version.
    const answers: Answer[] = [];
    for (let i = 0; i < 30; i++) answers.push(await infer(keep, { pin: i % 3 === 0 ? '3' : i % 3 === 1 ? '2' : undefined, token: i }));
    assert.ok(Date.now() - lostAt > STALE_AFTER_MS);
    for (const [i, a] of answers.entries()) {
      assert.equal(a.status, 200, `keep, request ${i}: ${JSON.stringify(a)}`);
      assert.notEqual(a.tag, '3', 'the kill it knew still holds');
      if (i % 3 === 0) assert.deepEqual({ tag: a.tag, reason: a.reason }, { tag: '1', reason: 'kill-switch' });
      if (i % 3 === 1) assert.equal(a.tag, '2');
    }
  });
});
