/**
 * Identity on the wire: a gateway that trusts a JWKS served on loopback (plus one explicitly
 * configured HS256 secret) in front of a backend that counts its calls. Every bad token gets 401
 * (or 403 for a missing scope) with a Bearer challenge and the error JSON, and reaches no backend.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import type { RunningGateway } from '../gateway/main.js';
import { ROW_STATS_METADATA, rowStatsHandler, startFakeOipBackend, type FakeOipBackend } from './helpers/backends.js';
import { startInProcess } from './helpers/gateway.js';
import { b64url, hmacToken, makeIssuer, nowSeconds, unsignedToken, type Issuer } from './helpers/tokens.js';

const ISS = 'https://issuer.test/';
const AUD = 'breakwater';
const BODY = JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] });

let backend: FakeOipBackend;
let gw: RunningGateway;
let jwksServer: Server;
let jwks: { keys: unknown[] } = { keys: [] };
let rsa: Issuer;
let ec: Issuer;
let hs: Issuer;

const claims = (extra: Record<string, unknown> = {}) => ({ iss: ISS, aud: AUD, sub: 'alice', tenant: 'acme', scope: 'predict:stats', ...extra });

before(async () => {
  rsa = makeIssuer({ alg: 'RS256', kid: 'rsa-1' });
  ec = makeIssuer({ alg: 'ES256', kid: 'ec-1' });
  hs = makeIssuer({ alg: 'HS256', kid: 'shared' });
  jwks = { keys: [...rsa.jwks.keys, ...ec.jwks.keys] };
  jwksServer = createServer((_req, res) => res.setHeader('content-type', 'application/json').end(JSON.stringify(jwks)));
  await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
  const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as { port: number }).port}/jwks.json`;
  backend = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler);
  gw = await startInProcess({
    auth: { issuer: ISS, audience: AUD, keys: [hs.keyConfig], jwks: { url: jwksUrl, cooldownMs: 0 } },
    models: { stats: { versions: { '1': { backend: { kind: 'oip-http', url: backend.url, model: 'row-stats' } } } } },
  });
});

after(async () => {
  await gw.close();
  await backend.close();
  jwksServer.close();
});

async function infer(token: string | undefined, path = '/v2/models/stats/infer') {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  const res = await request(`${gw.url}${path}`, { method: 'POST', body: BODY, headers });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

async function expectRefused(token: string | undefined, status: 401 | 403, code: string, challenge: RegExp) {
  const calls = backend.calls();
  const res = await infer(token);
  assert.equal(res.status, status, res.text);
  assert.match(String(res.headers['www-authenticate']), challenge);
  const body = JSON.parse(res.text) as { code: string; error: string };
  assert.equal(body.code, code);
  assert.doesNotMatch(res.text, /\d{4}-\d\d-\d\dT|rsa-1|ec-1|shared|fast-jwt|\n\s+at /, 'no server time, key ids or library text');
  assert.equal(backend.calls(), calls, 'no backend call');
}

const invalid = /^Bearer error="invalid_token"/;

describe('valid tokens (control)', () => {
  test('an RS256 token from the JWKS reaches the backend', async () => {
    const calls = backend.calls();
    const res = await infer(rsa.sign(claims()));
    assert.equal(res.status, 200, res.text);
    assert.equal(backend.calls(), calls + 1);
  });
  test('an ES256 token from the JWKS is accepted', async () => assert.equal((await infer(ec.sign(claims()))).status, 200));
  test('an HS256 token with the configured secret is accepted', async () => assert.equal((await infer(hs.sign(claims()))).status, 200));
});

describe('bad tokens get 401 invalid_token and no backend call', () => {
  test('no token at all (challenge without error)', () => expectRefused(undefined, 401, 'UNAUTHENTICATED', /^Bearer(?! error)/));
  test('alg none', () => expectRefused(unsignedToken(claims(), { alg: 'none', typ: 'JWT', kid: 'rsa-1' }), 401, 'UNAUTHENTICATED', invalid));
  test('algorithm confusion: HS256 signed with the RSA public key', () =>
    expectRefused(hmacToken({ alg: 'HS256', typ: 'JWT', kid: 'rsa-1' }, { ...claims(), exp: nowSeconds() + 300 }, rsa.publicKeyPem ?? ''), 401, 'UNAUTHENTICATED', invalid));
  test('an unknown crit header', () => expectRefused(rsa.sign(claims(), { crit: ['x-unknown'], 'x-unknown': 1 }), 401, 'UNAUTHENTICATED', invalid));
  test('a future nbf', () => expectRefused(rsa.sign(claims({ nbf: nowSeconds() + 3600 })), 401, 'UNAUTHENTICATED', invalid));
  test('an iat an hour in the future (issue 8, class 7)', async () => {
    await expectRefused(rsa.sign(claims({ iat: nowSeconds() + 3600, exp: nowSeconds() + 7200 })), 401, 'UNAUTHENTICATED', invalid);
    const res = await infer(rsa.sign(claims({ iat: nowSeconds() + 3600, exp: nowSeconds() + 7200, jti: 'future' })));
    assert.match(res.text, /token is issued in the future/);
  });
  test('a non-numeric exp', () => expectRefused(rsa.sign(claims({ exp: 'tomorrow' })), 401, 'UNAUTHENTICATED', invalid));
  test('a missing exp', () => expectRefused(rsa.sign(claims({ exp: undefined })), 401, 'UNAUTHENTICATED', invalid));
  test('an expired token', () => expectRefused(rsa.sign(claims({ exp: nowSeconds() - 3600, iat: nowSeconds() - 7200 })), 401, 'UNAUTHENTICATED', invalid));
  test('a wrong audience', () => expectRefused(rsa.sign(claims({ aud: 'someone-else' })), 401, 'UNAUTHENTICATED', invalid));
  test('a wrong issuer', () => expectRefused(rsa.sign(claims({ iss: 'https://evil.test/' })), 401, 'UNAUTHENTICATED', invalid));
  test('a tampered signature', () => {
    const [h, p, s] = rsa.sign(claims()).split('.');
    const flipped = `${s.slice(0, -2)}${s.at(-2) === 'A' ? 'B' : 'A'}${s.at(-1)}`;
    return expectRefused(`${h}.${p}.${flipped}`, 401, 'UNAUTHENTICATED', invalid);
  });
  test('a tampered payload', () => {
    const [h, , s] = rsa.sign(claims()).split('.');
    return expectRefused(`${h}.${b64url(claims({ scope: 'predict:*', sub: 'mallory' }))}.${s}`, 401, 'UNAUTHENTICATED', invalid);
  });
  // Over auth.maxTokenBytes (8 KiB) but within Node's 16 KiB header limit, which answers 431 first.
  test('a huge token', () => expectRefused(rsa.sign(claims({ pad: 'x'.repeat(10_000) })), 401, 'UNAUTHENTICATED', invalid));
  test('a kid with path traversal', () => expectRefused(rsa.sign(claims(), { kid: '../../../../etc/passwd' }), 401, 'UNAUTHENTICATED', invalid));
  test('garbage that is not a JWT', () => expectRefused('not.a.jwt', 401, 'UNAUTHENTICATED', invalid));
});

describe('scopes', () => {
  test('a token without the model\'s scope gets 403 insufficient_scope', () =>
    expectRefused(rsa.sign(claims({ scope: 'predict:other' })), 403, 'FORBIDDEN', /^Bearer error="insufficient_scope", scope="predict:stats"/));
  test('predict:* opens every model', async () => {
    assert.equal((await infer(rsa.sign(claims({ scope: 'predict:*' })))).status, 200);
  });
  test('scopes come from auth.scopeClaim (scope) alone: scp or a custom claim grants nothing (issue 8, class 7)', async () => {
    // A user able to add claims at the issuer must not be able to add scopes: none of these opens the model.
    await expectRefused(rsa.sign(claims({ scope: undefined, scp: ['predict:*'] })), 403, 'FORBIDDEN', /insufficient_scope/);
    await expectRefused(rsa.sign(claims({ scope: 'predict:other', scp: 'predict:stats' })), 403, 'FORBIDDEN', /insufficient_scope/);
    // And no admin scope through scp either.
    const admin = await request(`${gw.url}/admin/models`, { headers: { authorization: `Bearer ${rsa.sign(claims({ scp: ['admin:traffic'] }))}` } });
    assert.equal(admin.statusCode, 403);
    await admin.body.dump();
  });
  test('model metadata needs the prediction scope', async () => {
    const get = (token: string) => request(`${gw.url}/v2/models/stats`, { headers: { authorization: `Bearer ${token}` } });
    const denied = await get(rsa.sign(claims({ scope: 'predict:other' })));
    assert.equal(denied.statusCode, 403);
    await denied.body.dump();
    const allowed = await get(rsa.sign(claims()));
    assert.equal(allowed.statusCode, 200);
    await allowed.body.dump();
  });
  test('health endpoints stay open', async () => {
    for (const path of ['/v2/health/live', '/v2/health/ready', '/v2']) {
      const res = await request(`${gw.url}${path}`);
      assert.equal(res.statusCode, 200, path);
      await res.body.dump();
    }
  });
  test('GET /v2 names the exact build only to an authenticated caller (issue 8, class 7)', async () => {
    const { GATEWAY_VERSION } = await import('../gateway/version.js');
    const meta = async (headers: Record<string, string>) => {
      const res = await request(`${gw.url}/v2`, { headers });
      assert.equal(res.statusCode, 200);
      return (await res.body.json()) as { name: string; version: string; extensions: string[] };
    };
    const anonymous = await meta({});
    assert.deepEqual(anonymous, { name: 'breakwater', version: 'unspecified', extensions: ['binary_tensor_data'] }, 'the protocol field stays, neutral');
    assert.equal((await meta({ authorization: 'Bearer not.a.jwt' })).version, 'unspecified', 'a bad token is no caller');
    // Any valid token will do: the build is no secret from a client, only from strangers.
    assert.equal((await meta({ authorization: `Bearer ${rsa.sign(claims({ scope: undefined }))}` })).version, GATEWAY_VERSION);
  });
  test('an unknown model answers 401 before 404 to an unauthenticated caller', async () => {
    assert.equal((await infer(undefined, '/v2/models/secret-model/infer')).status, 401);
    assert.equal((await infer(rsa.sign(claims({ scope: 'predict:*' })), '/v2/models/secret-model/infer')).status, 404);
  });
});

describe('key rotation at the JWKS', () => {
  test('a new key is picked up and a removed key stops working', async () => {
    const next = makeIssuer({ alg: 'RS256', kid: 'rsa-2' });
    const oldToken = rsa.sign(claims({ sub: 'rotation-old' }));
    assert.equal((await infer(oldToken)).status, 200);
    jwks = { keys: [...next.jwks.keys, ...ec.jwks.keys] };
    const res = await infer(next.sign(claims()));
    assert.equal(res.status, 200, `the unknown kid triggers a refetch: ${res.text}`);
    await expectRefused(rsa.sign(claims({ sub: 'rotation-fresh' })), 401, 'UNAUTHENTICATED', invalid);
    await expectRefused(oldToken, 401, 'UNAUTHENTICATED', invalid);
  });
});

describe('hardening', () => {
  test('no x-powered-by or server version header', async () => {
    const res = await request(`${gw.url}/v2/health/live`);
    await res.body.dump();
    assert.equal(res.headers['x-powered-by'], undefined);
    assert.equal(res.headers.server, undefined);
  });
  test('admin routes carry security headers, even when not found', async () => {
    const res = await request(`${gw.url}/admin/anything`);
    const text = await res.body.text();
    assert.equal(res.statusCode, 404);
    assert.equal(JSON.parse(text).code, 'NOT_FOUND');
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.match(String(res.headers['content-security-policy']), /default-src 'none'/);
    assert.equal(res.headers['x-frame-options'], 'DENY');
  });
});
