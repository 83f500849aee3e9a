/**
 * How a replica starts when the shared store does not answer (state.mirrors, gateway/state/
 * mirrored-scope.ts). Opt-outs start from this replica's last snapshot by default and are closed
 * without one: a replica that cannot know who opted out does not serve as if nobody had. Real
 * gateway processes, a private redis-server that is stopped, started and killed.
 */
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { Agent, request } from 'undici';
import { ROW_STATS_METADATA, startFakeOipBackend, rowStatsHandler, type FakeOipBackend } from './helpers/backends.js';
import { waitForOutput, writeTempFile, spawnGateway, type ChildGateway } from './helpers/gateway.js';
import { gatewayConfig, stopAll, testIssuer, tokenFor, until } from './helpers/load.js';
import { RedisServer } from './helpers/redis.js';
import type { Issuer } from './helpers/tokens.js';

const agent = new Agent({ connections: 8 });
const gateways: ChildGateway[] = [];
const redisServers: RedisServer[] = [];
let backend: FakeOipBackend;
let issuer: Issuer;

before(async () => {
  issuer = testIssuer();
  backend = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler);
});

after(async () => {
  await stopAll(gateways);
  await Promise.all(redisServers.map((r) => r.stop()));
  await backend.close();
  await agent.close();
});

/** A configuration file (its folder holds the snapshots): model `m` split 50/50 between versions 1 and 2. */
async function configFile(redis: RedisServer, mirrors?: Record<string, string>): Promise<string> {
  const base = gatewayConfig({ issuer, backendUrl: backend.url, models: [], state: { redisUrl: redis.url, reconcileMs: 200, ...(mirrors ? { mirrors } : {}) }, rateLimits: {} });
  const v = { backend: { kind: 'oip-http', url: backend.url, model: ROW_STATS_METADATA.name } };
  const config = { ...base, models: { m: { stable: '1', versions: { '1': v, '2': v }, traffic: { routes: [{ version: '1', weight: 50 }, { version: '2', weight: 50, name: 'canary' }] } } } };
  return writeTempFile('gateway.yaml', JSON.stringify(config));
}

async function start(file: string): Promise<ChildGateway> {
  const gw = await spawnGateway(['serve', '--config', file]);
  gateways.push(gw);
  return gw;
}

interface Answer { readonly status: number; readonly headers: Record<string, string | string[] | undefined>; readonly json: Record<string, unknown> }

async function call(gw: ChildGateway, method: string, path: string, token?: string, body?: unknown): Promise<Answer> {
  const res = await request(`${gw.url}${path}`, {
    method: method as 'GET',
    dispatcher: agent,
    headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

const infer = (gw: ChildGateway, sub: string): Promise<Answer> =>
  call(gw, 'POST', '/v2/models/m/infer', tokenFor(issuer, sub, 'acme'), { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] });
const adminToken = (): string => issuer.sign({ sub: 'admin-1', tenant: 'ops', scope: 'admin:opt-outs', exp: Math.floor(Date.now() / 1000) + 600 });

test('opt-outs start closed when the store is down and there is no snapshot: no prediction before the first read', async () => {
  const redis = await RedisServer.stopped();
  redisServers.push(redis);
  const calls = backend.inferCalls().length;
  const gw = await start(await configFile(redis));
  await waitForOutput(gw, /opt-outs: the shared store does not answer and this scope starts closed/);
  const refused = await infer(gw, 'anyone');
  assert.equal(refused.status, 503);
  assert.equal(refused.json.code, 'GATEWAY_NOT_READY');
  assert.equal(refused.headers['retry-after'], '1');
  assert.equal((await call(gw, 'GET', '/v2/health/ready')).status, 503, 'load balancers are told to wait');
  assert.equal((await call(gw, 'GET', '/v2/health/live')).status, 200, 'alive: nothing to restart');
  assert.equal(backend.inferCalls().length, calls, 'no backend was called');
  await redis.start();
  await until('served once the store answers', async () => (await infer(gw, 'anyone')).status === 200, 10_000);
  assert.equal((await call(gw, 'GET', '/v2/health/ready')).status, 200);
});

test('a gateway told to start opt-outs open serves at once without the store (and says what it serves from)', async () => {
  const redis = await RedisServer.stopped();
  redisServers.push(redis);
  // The kill state too (it starts closed by default): this test is about starting open.
  const gw = await start(await configFile(redis, { optOuts: 'open', killSwitch: 'open' }));
  assert.equal((await infer(gw, 'anyone')).status, 200);
});

test('a replica restarted while the store is down serves from its last snapshot: opted-out subjects stay out of experiments; erased ones leave the snapshot', async () => {
  const redis = await RedisServer.start();
  redisServers.push(redis);
  // The kill state from its snapshot too (it starts closed by default, without one).
  const file = await configFile(redis, { killSwitch: 'snapshot' });
  const first = await start(file);
  // Subjects the split sends to the canary, two of which opt out of experiments.
  const onCanary: string[] = [];
  for (let i = 0; i < 40; i++) {
    const s = `subject-${i}`;
    if ((await infer(first, s)).headers['x-route-reason'] === 'canary') onCanary.push(s);
  }
  assert.ok(onCanary.length >= 3, `some subjects on the canary (${onCanary.length})`);
  const [olga, pete, control] = onCanary;
  for (const s of [olga, pete]) assert.equal((await call(first, 'PUT', `/admin/opt-outs/${s}`, adminToken(), { kinds: ['experiments'] })).status, 200);
  assert.equal((await call(first, 'DELETE', `/admin/subjects/${pete}`, adminToken())).status, 200, 'pete is erased');
  assert.equal((await infer(first, olga)).headers['x-route-reason'], 'opt-out:experiments');

  const snapshot = join(dirname(file), '.breakwater/state/opt-outs.json');
  await until('the snapshot holds olga and not pete', async () => {
    const text = await readFile(snapshot, 'utf8').catch(() => '');
    return text.includes(olga) && !text.includes(pete);
  });
  assert.equal((await stat(snapshot)).mode & 0o777, 0o600, 'only the gateway\'s user may read it: it names subjects');

  await stopAll([first]);
  await redis.kill();
  const second = await start(file);
  await waitForOutput(second, /opt-outs: the shared store does not answer; serving from this replica's last snapshot/);
  assert.equal((await infer(second, olga)).headers['x-route-reason'], 'opt-out:experiments', 'the opt-out holds while the store is down');
  assert.equal((await infer(second, control)).headers['x-route-reason'], 'canary', 'others keep their arm');
});
