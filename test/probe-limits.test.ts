/**
 * No free probing (issue 8, class 6): two gateway processes sharing a private Redis. Requests that
 * fail before any row quota is charged (an unknown model, a 401) used to cost nothing, so model
 * names and tokens could be tried at line rate. Now every prediction-route request of a subject
 * counts (rateLimits.requests.perSubject), and every failed authentication counts against the
 * client's address (failedAuthPerAddress), across both replicas, with the row rules' 429.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request, type Agent } from 'undici';
import type { FakeOipBackend } from './helpers/backends.js';
import type { ChildGateway } from './helpers/gateway.js';
import { bigAgent, countingBackend, gatewayConfig, infer, readRedis, spawnGateways, stopAll, testIssuer, tokenFor, type Outcome } from './helpers/load.js';
import { sharedTestRedis } from './helpers/redis.js';

const PREFIX = 'probe:';
const PER_SUBJECT = 40;
const PER_ADDRESS = 10;
const issuer = testIssuer();

let backend: FakeOipBackend & { calls(): number };
let gateways: ChildGateway[] = [];
let agent: Agent;
let redisUrl: string;

before(async () => {
  redisUrl = await sharedTestRedis();
  agent = bigAgent(16);
  backend = await countingBackend();
  gateways = await spawnGateways(
    gatewayConfig({
      issuer,
      backendUrl: backend.url,
      models: ['known'],
      state: { redisUrl, keyPrefix: PREFIX, commandTimeoutMs: 2_000 },
      rateLimits: { requests: { perSubject: { limit: PER_SUBJECT, windowMs: 60_000 }, failedAuthPerAddress: { limit: PER_ADDRESS, windowMs: 60_000 } } },
    }),
    2,
  );
});

after(async () => {
  await stopAll(gateways);
  await backend?.close();
  await agent?.close();
});

const statuses = (outcomes: readonly Outcome[]): Record<number, number> => {
  const out: Record<number, number> = {};
  for (const o of outcomes) out[o.status] = (out[o.status] ?? 0) + 1;
  return out;
};

/** The row rules' 429: code, Retry-After and the IETF headers, naming this limit. */
function assertLimited(o: Outcome, rule: string, limit: number): void {
  assert.equal(o.status, 429);
  assert.equal(o.code, 'RATE_LIMITED');
  assert.match(String(o.headers['retry-after']), /^[1-9]\d*$/);
  assert.equal(o.headers['ratelimit-policy'], `"${rule}";q=${limit};w=60`);
  assert.match(String(o.headers.ratelimit), new RegExp(`^"${rule}";r=0;t=\\d+$`));
}

async function getMetadata(url: string, model: string, token: string | undefined): Promise<Outcome> {
  const res = await request(`${url}/v2/models/${model}`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, dispatcher: agent });
  const text = await res.body.text();
  return { status: res.statusCode, code: (JSON.parse(text) as { code?: string }).code, headers: res.headers, startedAt: Date.now(), ms: 0 };
}

describe('requests that fail are counted too, across replicas', () => {
  test('a subject enumerating model names gets 404s only up to its request limit, then 429 on both replicas', async () => {
    const prober = tokenFor(issuer, 'prober', 'acme');
    const [a, b] = gateways.map((g) => g.url);
    const calls = backend.calls();
    const outcomes: Outcome[] = [];
    // Sequential, alternating replicas: names of models that do not exist, predictions and metadata.
    for (let i = 0; i < PER_SUBJECT + 20; i++) {
      const url = i % 2 === 0 ? a : b;
      outcomes.push(i % 3 === 0 ? await getMetadata(url, `guess-${i}`, prober) : await infer(agent, url, `guess-${i}`, prober));
    }
    assert.deepEqual(statuses(outcomes), { 404: PER_SUBJECT, 429: 20 }, 'before: 404 for every guess, at line rate');
    for (const o of outcomes.filter((x) => x.status === 429)) assertLimited(o, 'requests', PER_SUBJECT);
    assert.equal(await readRedis(redisUrl, `${PREFIX}{t:acme}:c:req:prober`), String(PER_SUBJECT), 'one counter in Redis for both replicas');
    // The limit covers the subject's real work too: a valid prediction is refused now, on either replica.
    for (const url of [a, b]) assertLimited(await infer(agent, url, 'known', prober), 'requests', PER_SUBJECT);
    assert.equal(backend.calls(), calls, 'no backend call');
    // Another subject is not touched.
    assert.equal((await infer(agent, a, 'known', tokenFor(issuer, 'bystander', 'acme'))).status, 200);
  });
});

describe('failed authentications are counted per client address, across replicas', () => {
  test('past the limit a 401 becomes 429, and new tokens from the address are refused unread; verified ones still work', async () => {
    const [a, b] = gateways.map((g) => g.url);
    // A client of this address whose token both replicas verified before the flood.
    const known = tokenFor(issuer, 'neighbour', 'acme');
    for (const url of [a, b]) assert.equal((await infer(agent, url, 'known', known)).status, 200);

    const expired = issuer.sign({ sub: 'x', exp: Math.floor(Date.now() / 1000) - 3600, iat: Math.floor(Date.now() / 1000) - 7200 });
    const guesses = ['not.a.jwt', expired, `${known.slice(0, -4)}AAAA`];
    const outcomes: Outcome[] = [];
    for (let i = 0; i < PER_ADDRESS + 12; i++) outcomes.push(await infer(agent, i % 2 === 0 ? a : b, 'known', guesses[i % guesses.length]));
    assert.deepEqual(statuses(outcomes), { 401: PER_ADDRESS, 429: 12 }, 'before: 401 for every guess, at line rate');
    for (const o of outcomes.filter((x) => x.status === 429)) assertLimited(o, 'auth-failures', PER_ADDRESS);

    const calls = backend.calls();
    for (const url of [a, b]) {
      // A valid token neither replica has seen: refused before its signature is checked.
      assertLimited(await infer(agent, url, 'known', tokenFor(issuer, 'newcomer', 'acme')), 'auth-failures', PER_ADDRESS);
      // No token at all, and the admin routes: the same.
      assertLimited(await getMetadata(url, 'known', undefined), 'auth-failures', PER_ADDRESS);
      const admin = await request(`${url}/admin/models`, { headers: { authorization: 'Bearer not.a.jwt' }, dispatcher: agent });
      assert.equal(admin.statusCode, 429);
      assert.equal(((await admin.body.json()) as { code: string }).code, 'RATE_LIMITED');
      // A token already verified here goes on working: a shared NAT is not locked out.
      assert.equal((await infer(agent, url, 'known', known)).status, 200);
    }
    assert.equal(backend.calls(), calls + 2, 'only the verified caller reached the backend');
    // Probes stay open.
    for (const url of [a, b]) {
      const live = await request(`${url}/v2/health/live`, { dispatcher: agent });
      assert.equal(live.statusCode, 200);
      await live.body.dump();
    }
  });
});
