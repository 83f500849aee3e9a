import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import type { AuthConfig } from '../gateway/config.js';
import { installErrorHandlers } from '../gateway/error-handler.js';
import { b64url, hmacToken, makeIssuer, nowSeconds, unsignedToken } from '../test/helpers/tokens.js';
import { parseJwks } from './auth/jwks.js';
import { createAuthPolicy, type AuthPolicy } from './authenticate.js';
import { newOutcome, PolicyChain } from './chain.js';
import type { Decision, PolicyContext } from './policy.js';
import { testContext } from './test-context.js';
import { ADMIN_SCOPES, type Principal } from './principal.js';

const ISS = 'https://issuer.test';
const AUD = 'breakwater';
const base = { iss: ISS, aud: AUD, sub: 'user-1' };

// Keys are slow to make: one issuer per algorithm for the whole file.
const rs = makeIssuer({ alg: 'RS256', kid: 'rs-1', claims: base });
const es = makeIssuer({ alg: 'ES256', kid: 'es-1', claims: base });
const ed = makeIssuer({ alg: 'EdDSA', kid: 'ed-1', claims: base });
const hs = makeIssuer({ alg: 'HS256', kid: 'hs-1', claims: base });
const ps = makeIssuer({ alg: 'PS256', kid: 'ps-1', claims: base });
const es384 = makeIssuer({ alg: 'ES384', kid: 'es384-1', claims: base });
const stranger = makeIssuer({ alg: 'RS256', kid: 'rs-1', claims: base }); // same kid, another key

const silent: Logger = pino({ level: 'silent' });

function authConfig(over: Partial<AuthConfig> = {}): AuthConfig {
  return {
    insecureNoAuth: false,
    issuer: ISS,
    audience: AUD,
    clockSkewSeconds: 30,
    maxTokenBytes: 8192,
    tenantClaim: 'tenant',
    scopeClaim: 'scope',
    metadataRequiresScope: true,
    cacheSize: 1000,
    keys: [rs.keyConfig, es.keyConfig, ed.keyConfig, hs.keyConfig, ps.keyConfig, es384.keyConfig],
    ...over,
  };
}

const closers: (() => Promise<unknown>)[] = [];
after(() => Promise.all(closers.map((c) => c())));

async function policyFor(over: Partial<AuthConfig> = {}, deps: Partial<Parameters<typeof createAuthPolicy>[1]> = {}): Promise<AuthPolicy> {
  const p = await createAuthPolicy(authConfig(over), { log: silent, ...deps });
  closers.push(() => p.close());
  return p;
}

function ctxWith(authorization?: string): PolicyContext {
  return testContext('iris', { headers: authorization === undefined ? {} : { authorization } });
}

async function decide(policy: AuthPolicy, token: string | undefined): Promise<Decision> {
  return policy.evaluate(ctxWith(token === undefined ? undefined : `Bearer ${token}`));
}

async function principalOf(policy: AuthPolicy, token: string): Promise<Principal> {
  const d = await decide(policy, token);
  assert.equal(d.kind, 'continue', d.kind === 'deny' ? d.error.message : 'not a deny');
  assert.ok(d.kind === 'continue' && d.principal !== undefined);
  return d.principal;
}

/** Every detail the client may see: fixed phrases, so nothing of the server's state can leak. */
const OUR_DETAILS = new Set([
  'no bearer token', 'token is too large', 'token is malformed', 'token algorithm is not accepted', 'token is not signed',
  'token signature is invalid', 'token has a critical header that is not understood', 'token lacks exp, iss or aud',
  'token has a claim of the wrong type', 'token is for another issuer or audience', 'token has expired', 'token is not valid yet',
  'token has no subject', 'token key is not known', 'token names no key id (kid)', 'token is issued in the future',
]);

async function assertRejected(policy: AuthPolicy, token: string | undefined, detail?: string): Promise<void> {
  const d = await decide(policy, token);
  assert.equal(d.kind, 'deny', 'expected a 401');
  if (d.kind !== 'deny') return;
  assert.equal(d.error.code, 'UNAUTHENTICATED');
  assert.equal(d.error.status, 401);
  assert.ok(d.error.detail !== undefined && OUR_DETAILS.has(d.error.detail), `detail "${d.error.detail}" is one of ours`);
  if (detail !== undefined) assert.equal(d.error.detail, detail);
  const expected = token === undefined ? 'Bearer' : 'Bearer error="invalid_token"';
  assert.deepEqual(d.error.headers, { 'www-authenticate': expected });
}

describe('the HTTP answer', () => {
  let app: FastifyInstance;
  test('is 401 JSON with an RFC 6750 challenge, and 200 with a principal for a good token', async () => {
    const policy = await policyFor();
    const chain = new PolicyChain([policy]);
    app = Fastify();
    installErrorHandlers(app);
    app.get('/v2/models/:model', async (request) => {
      const ctx = { ...ctxWith(), headers: request.headers };
      await chain.run('request', ctx, newOutcome(ctx));
      return { subject: ctx.principal?.subject };
    });
    closers.push(() => app.close());

    const missing = await app.inject({ url: '/v2/models/iris' });
    assert.equal(missing.statusCode, 401);
    assert.equal(missing.headers['www-authenticate'], 'Bearer');
    assert.deepEqual(missing.json(), { error: 'missing or invalid bearer token: no bearer token', code: 'UNAUTHENTICATED' });

    const expired = await app.inject({ url: '/v2/models/iris', headers: { authorization: `Bearer ${rs.sign({ exp: nowSeconds() - 3600 })}` } });
    assert.equal(expired.statusCode, 401);
    assert.equal(expired.headers['www-authenticate'], 'Bearer error="invalid_token"');
    assert.deepEqual(expired.json(), { error: 'missing or invalid bearer token: token has expired', code: 'UNAUTHENTICATED' });
    // No server time, no key id, no library text.
    assert.doesNotMatch(expired.body, /\d{4}-\d\d-\d\dT|rs-1|FAST_JWT|The token/);

    const ok = await app.inject({ url: '/v2/models/iris', headers: { authorization: `Bearer ${rs.sign()}` } });
    assert.equal(ok.statusCode, 200);
    assert.deepEqual(ok.json(), { subject: 'user-1' });
  });
});

describe('valid tokens', () => {
  for (const issuer of [rs, es, ed, hs, ps, es384]) {
    test(`a ${issuer.alg} token signed by a configured key is accepted`, async () => {
      const p = await principalOf(await policyFor(), issuer.sign());
      assert.equal(p.subject, 'user-1');
    });
  }

  test('claims become the principal: sub, tenant, scope, exp in ms', async () => {
    const policy = await policyFor({ tenantClaim: 'org' });
    const exp = nowSeconds() + 120;
    const p = await principalOf(policy, rs.sign({ sub: 'svc-7', org: 'acme', exp, scope: 'predict:iris  predict:titanic' }));
    assert.equal(p.subject, 'svc-7');
    assert.equal(p.tenant, 'acme');
    assert.deepEqual([...p.scopes].sort(), ['predict:iris', 'predict:titanic']);
    assert.equal(p.expiresAt, exp * 1000);
    assert.ok(Object.isFrozen(p));
  });

  test('scopes come from the one configured claim, never merged with scp or another claim (issue 8, class 7)', async () => {
    // Were `scp` merged in, a user whose issuer lets them add a custom claim could grant themselves admin.
    const byScope = await policyFor();
    const p = await principalOf(byScope, rs.sign({ scope: 'predict:iris', scp: ['admin:traffic', 'admin:opt-outs'], scopes: 'admin:audit' }));
    assert.deepEqual([...p.scopes], ['predict:iris']);
    const bySubjectOnly = await principalOf(byScope, rs.sign({ scope: undefined, scp: 'predict:* admin:traffic' }));
    assert.equal(bySubjectOnly.scopes.size, 0, 'scp is not read when scopeClaim is scope');

    // auth.scopeClaim: scp (Azure AD, Okta): an array or a space-separated string, and `scope` is then ignored.
    const byScp = await policyFor({ scopeClaim: 'scp' });
    const arr = await principalOf(byScp, es.sign({ scp: ['predict:*', 7, 'a b', 'admin:traffic'], scope: 'admin:opt-outs' }));
    assert.deepEqual([...arr.scopes].sort(), ['admin:traffic', 'predict:*']);
    const str = await principalOf(byScp, es.sign({ scp: 'predict:iris  admin:audit', scope: undefined }));
    assert.deepEqual([...str.scopes].sort(), ['admin:audit', 'predict:iris']);
  });

  test('a tenant that is not a string is no tenant; a token without the scope claim has no scopes', async () => {
    const policy = await policyFor();
    const p = await principalOf(policy, es.sign({ scope: 'predict:* admin:traffic', tenant: 42 }));
    assert.deepEqual([...p.scopes].sort(), ['admin:traffic', 'predict:*']);
    assert.equal(p.tenant, undefined);
    const none = await principalOf(policy, es.sign({ tenant: 'acme' }));
    assert.equal(none.scopes.size, 0);
    assert.equal(none.tenant, 'acme');
  });

  test('an audience list that holds ours is accepted; the scheme is case-insensitive', async () => {
    const policy = await policyFor();
    await principalOf(policy, rs.sign({ aud: ['other', AUD] }));
    const d = await policy.evaluate(ctxWith(`bearer ${rs.sign({ sub: 'lower' })}`));
    assert.equal(d.kind, 'continue');
  });

  test('clock skew is honoured for exp and nbf, within clockSkewSeconds only', async () => {
    const policy = await policyFor({ clockSkewSeconds: 30 });
    await principalOf(policy, rs.sign({ exp: nowSeconds() - 10 }));
    await principalOf(policy, rs.sign({ nbf: nowSeconds() + 10 }));
    await assertRejected(policy, rs.sign({ exp: nowSeconds() - 60 }), 'token has expired');
    await assertRejected(policy, rs.sign({ nbf: nowSeconds() + 60 }), 'token is not valid yet');
  });

  test('an iat beyond the clock-skew leeway in the future is refused (issue 8, class 7)', async () => {
    const policy = await policyFor({ clockSkewSeconds: 30 });
    await principalOf(policy, rs.sign({ iat: nowSeconds() + 10 }));
    await assertRejected(policy, rs.sign({ iat: nowSeconds() + 3600, exp: nowSeconds() + 7200 }), 'token is issued in the future');
    await assertRejected(policy, rs.sign({ iat: nowSeconds() + 60 }), 'token is issued in the future');
    await assertRejected(policy, rs.sign({ iat: 'now' }), 'token has a claim of the wrong type');
    // Without iat (it is optional in RFC 7519) the token stands on exp and nbf.
    await principalOf(policy, rs.sign({ iat: undefined }));
  });
});

describe('rejected tokens: 401 invalid_token, never 500, never a leaky message', () => {
  const now = () => nowSeconds();
  const cases: [string, () => string, string][] = [
    ['alg none', () => unsignedToken({ ...base, exp: now() + 300 }), 'token algorithm is not accepted'],
    ['alg none with a kid and a signature', () => `${b64url({ alg: 'none', kid: 'rs-1' })}.${b64url({ ...base, exp: now() + 300 })}.c2ln`, 'token algorithm is not accepted'],
    ['algorithm confusion: HS256 signed with the RSA public key PEM', () => hmacToken({ alg: 'HS256', typ: 'JWT', kid: 'rs-1' }, { ...base, exp: now() + 300 }, rs.publicKeyPem as string), 'token algorithm is not accepted'],
    ['algorithm confusion without a kid', () => hmacToken({ alg: 'HS256', typ: 'JWT' }, { ...base, exp: now() + 300 }, rs.publicKeyPem as string), 'token signature is invalid'],
    ['an RS256 key asked to check ES256', () => es.sign({}, { kid: 'rs-1' }), 'token algorithm is not accepted'],
    ['an unknown crit header', () => rs.sign({}, { crit: ['x-magic'], 'x-magic': true }), 'token has a critical header that is not understood'],
    ['a future nbf', () => rs.sign({ nbf: now() + 3600 }), 'token is not valid yet'],
    ['a string exp', () => rs.sign({ exp: 'tomorrow' }), 'token has a claim of the wrong type'],
    ['a boolean exp', () => rs.sign({ exp: true }), 'token has a claim of the wrong type'],
    ['a null exp', () => rs.sign({ exp: null }), 'token has a claim of the wrong type'],
    ['an infinite exp (1e999)', () => rs.signRaw(`{"iss":"${ISS}","aud":"${AUD}","sub":"u","exp":1e999}`), 'token has a claim of the wrong type'],
    ['a tampered signature', () => tamper(rs.sign(), 'signature'), 'token signature is invalid'],
    ['a tampered payload', () => tamper(rs.sign(), 'payload'), 'token signature is invalid'],
    ['an EdDSA signature of the wrong length', () => `${ed.sign().split('.').slice(0, 2).join('.')}.AAAA`, 'token signature is invalid'],
    ['expired', () => rs.sign({ exp: now() - 3600 }), 'token has expired'],
    ['the wrong aud', () => rs.sign({ aud: 'someone-else' }), 'token is for another issuer or audience'],
    ['the wrong iss', () => rs.sign({ iss: 'https://evil.test' }), 'token is for another issuer or audience'],
    ['no exp', () => rs.sign({ exp: undefined }), 'token lacks exp, iss or aud'],
    ['no iss', () => rs.sign({ iss: undefined }), 'token lacks exp, iss or aud'],
    ['no aud', () => rs.sign({ aud: undefined }), 'token lacks exp, iss or aud'],
    ['a kid with path traversal', () => rs.sign({}, { kid: '../../etc/passwd' }), 'token key is not known'],
    ['an unknown kid', () => rs.sign({}, { kid: 'nope' }), 'token key is not known'],
    ['a known kid, signed by another key', () => stranger.sign(), 'token signature is invalid'],
    ['HS256 with the wrong secret', () => makeIssuer({ alg: 'HS256', kid: 'hs-1', claims: base }).sign(), 'token signature is invalid'],
    ['HS384 where only HS256 is allowed', () => hmacToken({ alg: 'HS384', kid: 'hs-1' }, { ...base, exp: now() + 300 }, hs.secret as string, 'sha384'), 'token algorithm is not accepted'],
    ['an algorithm nobody knows', () => rs.sign({}, { alg: 'RS1' }), 'token algorithm is not accepted'],
    ['a non-string kid', () => rs.sign({}, { kid: 7 }), 'token is malformed'],
    ['no sub', () => rs.sign({ sub: undefined }), 'token has no subject'],
    ['a numeric sub', () => rs.sign({ sub: 42 }), 'token has no subject'],
    ['an empty sub', () => rs.sign({ sub: '' }), 'token has no subject'],
    ['garbage', () => 'not-a-token', 'token is malformed'],
    ['two segments', () => rs.sign().split('.').slice(0, 2).join('.'), 'token is malformed'],
    ['a header that is not base64url', () => `!!!.${rs.sign().split('.').slice(1).join('.')}`, 'token is malformed'],
    ['a header that is not JSON', () => `${b64url('{alg')}.${rs.sign().split('.').slice(1).join('.')}`, 'token is malformed'],
    ['a header that is a JSON array', () => `${b64url('["RS256"]')}.${rs.sign().split('.').slice(1).join('.')}`, 'token is malformed'],
    ['a payload that is not JSON (validly signed)', () => rs.signRaw('{"sub":'), 'token is malformed'],
    ['a payload that is a JSON array (validly signed)', () => rs.signRaw('[1,2]'), 'token is malformed'],
    ['a payload with base64 padding', () => { const [h, p, s] = rs.sign().split('.'); return `${h}.${p}==.${s}`; }, 'token is malformed'],
    ['a JWE-shaped token (five segments)', () => `${rs.sign()}.x.y`, 'token is malformed'],
  ];
  for (const [name, token, detail] of cases) {
    test(name, async () => assertRejected(await shared(), token(), detail));
  }

  test('a token over maxTokenBytes is refused before it is parsed', async () => {
    const policy = await policyFor({ maxTokenBytes: 1024 });
    const checks = policy.stats.signatureChecks;
    await assertRejected(policy, 'x'.repeat(1025), 'token is too large');
    await assertRejected(policy, rs.sign({ pad: 'p'.repeat(2000) }), 'token is too large');
    assert.equal(policy.stats.signatureChecks, checks);
  });

  test('no Authorization header, or another scheme, gets the bare Bearer challenge', async () => {
    const policy = await shared();
    await assertRejected(policy, undefined, 'no bearer token');
    for (const h of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer   ', rs.sign()]) {
      const d = await policy.evaluate(ctxWith(h));
      assert.ok(d.kind === 'deny');
      assert.deepEqual(d.error.headers, { 'www-authenticate': 'Bearer' });
    }
  });
});

let sharedPolicy: Promise<AuthPolicy> | undefined;
function shared(): Promise<AuthPolicy> {
  sharedPolicy ??= policyFor();
  return sharedPolicy;
}

function tamper(token: string, part: 'payload' | 'signature'): string {
  const [h, p, s] = token.split('.');
  if (part === 'signature') return `${h}.${p}.${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
  return `${h}.${b64url({ ...claims, sub: 'admin' })}.${s}`;
}

describe('keys are pinned to algorithms that fit them', () => {
  const rejects = (keys: AuthConfig['keys'], pattern: RegExp) => assert.rejects(createAuthPolicy(authConfig({ keys }), { log: silent }), pattern);

  test('an algorithm that does not fit the key type stops the start, naming the key', async () => {
    await rejects([{ publicKey: es.publicKeyPem, algorithms: ['RS256'] }], /auth\.keys\.0: RS256 cannot be used with an EC prime256v1 key/);
    await rejects([{ publicKey: es.publicKeyPem, algorithms: ['ES384'] }], /ES384 cannot be used/);
    await rejects([{ publicKey: ed.publicKeyPem, algorithms: ['ES256'] }], /ES256 cannot be used/);
  });

  test('weak or unsupported keys, private keys and short secrets are refused at start', async () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    await rejects([{ publicKey: small, algorithms: ['RS256'] }], /at least 2048 bits/);
    const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    await rejects([{ publicKey: k1, algorithms: ['ES256'] }], /curve secp256k1 has no JWS algorithm/);
    const priv = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    await rejects([{ publicKey: priv, algorithms: ['EdDSA'] }], /private key/);
    await rejects([{ publicKeyFile: '/nonexistent/key.pem', algorithms: ['RS256'] }], /cannot read its file: ENOENT/);
    await rejects([{ secret: 'short', algorithms: ['HS256'] }], /at least 32 bytes/);
  });
});

describe('the cache', () => {
  test('a repeated token is answered from the cache without a signature check', async () => {
    const policy = await policyFor();
    const token = es.sign({ sub: 'cached' });
    const before = { ...policy.stats };
    const first = await principalOf(policy, token);
    const second = await principalOf(policy, token);
    assert.equal(second, first);
    assert.equal(policy.stats.signatureChecks - before.signatureChecks, 1);
    assert.equal(policy.stats.cacheHits - before.cacheHits, 1);
    // A cache hit answers synchronously: no promise on the request path.
    assert.equal(policy.evaluate(ctxWith(`Bearer ${token}`)) instanceof Promise, false);
  });

  test('an entry is dropped at the token exp: the cache never stretches a token past it', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const policy = await policyFor({ clockSkewSeconds: 30 });
    const token = rs.sign({ exp: nowSeconds() + 60 });
    await principalOf(policy, token);
    await principalOf(policy, token);
    assert.equal(policy.stats.signatureChecks, 1);
    t.mock.timers.tick(61_000);
    // Past exp but within the skew: verified again (not from the cache), still accepted.
    await principalOf(policy, token);
    assert.equal(policy.stats.signatureChecks, 2);
    t.mock.timers.tick(30_000);
    await assertRejected(policy, token, 'token has expired');
  });

  test('it holds at most cacheSize tokens; a token used since it came in outlives one that was not', async () => {
    const policy = await policyFor({ cacheSize: 2 });
    const [a, b, c] = ['a', 'b', 'c'].map((sub) => hs.sign({ sub }));
    for (const tk of [a, b, a, c]) await principalOf(policy, tk); // a was used again, so b goes when c comes in
    assert.equal(policy.stats.signatureChecks, 3);
    await principalOf(policy, a);
    await principalOf(policy, c);
    assert.equal(policy.stats.signatureChecks, 3);
    await principalOf(policy, b);
    assert.equal(policy.stats.signatureChecks, 4);
  });

  test('cacheSize 0 turns it off', async () => {
    const policy = await policyFor({ cacheSize: 0 });
    const token = hs.sign();
    await principalOf(policy, token);
    await principalOf(policy, token);
    assert.equal(policy.stats.signatureChecks, 2);
  });
});

describe('insecureNoAuth', () => {
  test('every request is the anonymous principal with every scope, and creation warns', async () => {
    const lines: { level: string; msg: string }[] = [];
    const log = pino({ level: 'info', formatters: { level: (label) => ({ level: label }) } }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    const policy = await createAuthPolicy(authConfig({ insecureNoAuth: true, issuer: undefined, audience: undefined, keys: [] }), { log });
    assert.ok(lines.some((l) => l.level === 'warn' && /insecureNoAuth/.test(l.msg)));
    for (const h of [undefined, 'Bearer garbage']) {
      const d = policy.evaluate(ctxWith(h));
      assert.ok(!(d instanceof Promise) && d.kind === 'continue' && d.principal !== undefined);
      assert.equal(d.principal.subject, 'anonymous');
      assert.equal(d.principal.tenant, undefined);
      assert.ok(d.principal.scopes.has('predict:*'));
      for (const s of Object.values(ADMIN_SCOPES)) assert.ok(d.principal.scopes.has(s), s);
    }
    await policy.close();
  });
});

// --- JWKS -------------------------------------------------------------------------------------

interface JwksServer {
  readonly url: string;
  readonly port: number;
  /** What the next requests get. */
  serve: { status: number; body: unknown; hang?: boolean };
  readonly paths: string[];
  close(): Promise<void>;
}

async function jwksServer(body: unknown, port = 0): Promise<JwksServer> {
  const hung = new Set<ServerResponse>();
  const state: JwksServer = {
    url: '',
    port: 0,
    serve: { status: 200, body },
    paths: [],
    close: async () => {
      for (const r of hung) r.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    state.paths.push(req.url ?? '');
    if (state.serve.hang === true) return void hung.add(res);
    const text = typeof state.serve.body === 'string' ? state.serve.body : JSON.stringify(state.serve.body);
    res.writeHead(state.serve.status, { 'content-type': 'application/json' }).end(text);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const p = (server.address() as AddressInfo).port;
  Object.assign(state, { url: `http://127.0.0.1:${p}/.well-known/jwks.json`, port: p });
  closers.push(() => state.close());
  return state;
}

function jwksConfig(url: string, over: Partial<NonNullable<AuthConfig['jwks']>> = {}): Partial<AuthConfig> {
  return {
    keys: [],
    jwks: { url, algorithms: ['RS256', 'ES256', 'EdDSA'], refreshIntervalMs: 300_000, cooldownMs: 0, timeoutMs: 2000, ...over },
  };
}

function fakeClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

describe('JWKS', () => {
  test('RS256, ES256 and EdDSA tokens verify against keys fetched from the JWKS url', async () => {
    const server = await jwksServer({ keys: [rs.jwk, es.jwk, ed.jwk] });
    const policy = await policyFor(jwksConfig(server.url));
    for (const issuer of [rs, es, ed]) assert.equal((await principalOf(policy, issuer.sign({ sub: issuer.alg }))).subject, issuer.alg);
    assert.deepEqual(server.paths, ['/.well-known/jwks.json']);
  });

  test('a key is pinned to its own alg and to the configured list: another alg with the same key fails', async () => {
    const psAsRs = makeIssuer({ alg: 'PS256', kid: 'k', claims: base });
    const server = await jwksServer({ keys: [{ ...psAsRs.jwk, alg: 'RS256' }] });
    const policy = await policyFor(jwksConfig(server.url, { algorithms: ['RS256', 'PS256'] }));
    await assertRejected(policy, psAsRs.sign(), 'token algorithm is not accepted');
    const server2 = await jwksServer({ keys: [{ ...psAsRs.jwk, alg: undefined }] });
    const onlyRs = await policyFor(jwksConfig(server2.url, { algorithms: ['RS256'] }));
    await assertRejected(onlyRs, psAsRs.sign(), 'token algorithm is not accepted');
  });

  test('rotation: a new kid is fetched on first sight; tokens of the retired key fail, even cached ones', async () => {
    const oldKey = makeIssuer({ alg: 'RS256', kid: 'old', claims: base });
    const newKey = makeIssuer({ alg: 'ES256', kid: 'new', claims: base });
    const server = await jwksServer({ keys: [oldKey.jwk] });
    const policy = await policyFor(jwksConfig(server.url, { cooldownMs: 0 }));
    const oldToken = oldKey.sign();
    await principalOf(policy, oldToken); // now cached
    server.serve = { status: 200, body: { keys: [newKey.jwk] } };
    await principalOf(policy, newKey.sign());
    assert.equal(server.paths.length, 2);
    await assertRejected(policy, oldToken, 'token key is not known');
    await assertRejected(policy, oldKey.sign({ sub: 'fresh' }), 'token key is not known');
  });

  test('an unknown kid refetches at most once per cooldown, and concurrent ones share one fetch', async () => {
    const rotated = makeIssuer({ alg: 'RS256', kid: 'rotated', claims: base });
    const server = await jwksServer({ keys: [rs.jwk] });
    const clock = fakeClock();
    const policy = await policyFor(jwksConfig(server.url, { cooldownMs: 30_000 }), { now: clock.now });
    assert.equal(server.paths.length, 1);
    server.serve = { status: 200, body: { keys: [rs.jwk, rotated.jwk] } };
    // Within the cooldown of the start-up fetch: refused at once, nothing fetched.
    await assertRejected(policy, rotated.sign(), 'token key is not known');
    await assertRejected(policy, rs.sign({}, { kid: '../../etc/passwd' }), 'token key is not known');
    assert.equal(server.paths.length, 1);
    clock.advance(30_000);
    const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => decide(policy, rotated.sign({ sub: `u${i}` }))));
    assert.ok(burst.every((d) => d.kind === 'continue'));
    assert.equal(server.paths.length, 2);
    clock.advance(1_000);
    await assertRejected(policy, rs.sign({}, { kid: 'still-unknown' }), 'token key is not known');
    assert.equal(server.paths.length, 2);
    // The kid was only ever compared, never put in a path.
    assert.ok(server.paths.every((p) => p === '/.well-known/jwks.json'));
  });

  test('a JWKS server that hangs delays neither the start nor a request past timeoutMs', async () => {
    const server = await jwksServer({ keys: [rs.jwk] });
    server.serve = { status: 200, body: {}, hang: true };
    const t0 = performance.now();
    const policy = await policyFor(jwksConfig(server.url, { timeoutMs: 300, cooldownMs: 0 }));
    const started = performance.now() - t0;
    assert.ok(started < 2000, `start took ${started} ms`);
    const t1 = performance.now();
    await assertRejected(policy, rs.sign(), 'token key is not known');
    const waited = performance.now() - t1;
    assert.ok(waited >= 250 && waited < 2000, `request waited ${waited} ms`);
  });

  test('down at start: the gateway starts, tokens fail 401, and the background retry picks the keys up', async () => {
    const probe = await jwksServer({ keys: [] });
    const port = probe.port;
    await probe.close();
    const url = `http://127.0.0.1:${port}/.well-known/jwks.json`;
    // A long cooldown, so only the background retry can fetch.
    const policy = await policyFor(jwksConfig(url, { cooldownMs: 3_600_000, timeoutMs: 500 }), { jwksRetryBaseMs: 20 });
    await assertRejected(policy, rs.sign(), 'token key is not known');
    const server = await jwksServer({ keys: [rs.jwk] }, port);
    const deadline = performance.now() + 5000;
    let d = await decide(policy, rs.sign());
    while (d.kind !== 'continue' && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      d = await decide(policy, rs.sign());
    }
    assert.equal(d.kind, 'continue');
    assert.ok(server.paths.length >= 1);
  });

  test('down at start, then up: an unknown-kid refetch (past the cooldown) also recovers', async () => {
    const server = await jwksServer({ keys: [rs.jwk] });
    server.serve = { status: 503, body: 'unavailable' };
    const policy = await policyFor(jwksConfig(server.url, { cooldownMs: 0 }));
    await assertRejected(policy, rs.sign(), 'token key is not known');
    server.serve = { status: 200, body: { keys: [rs.jwk] } };
    await principalOf(policy, rs.sign());
  });

  test('a failed or oversized refresh keeps the previous keys', async () => {
    const server = await jwksServer({ keys: [rs.jwk] });
    const policy = await policyFor(jwksConfig(server.url, { cooldownMs: 0 }));
    await principalOf(policy, rs.sign());
    for (const serve of [
      { status: 200, body: { keys: [{ kty: 'RSA', kid: 'x', n: 'AQAB'.repeat(100_000), e: 'AQAB' }] } }, // > 256 KiB
      { status: 500, body: 'boom' },
      { status: 200, body: '{"keys": [' },
      { status: 200, body: { keys: [] } },
    ]) {
      server.serve = serve;
      await assertRejected(policy, rs.sign({}, { kid: 'unknown' }), 'token key is not known'); // forces a refetch
      await principalOf(policy, rs.sign({ sub: `after-${serve.status}` }));
    }
    assert.equal(server.paths.length, 5);
  });

  test('a token without a kid is tried against the keys that accept its alg, up to four of them', async () => {
    const unnamed = Array.from({ length: 5 }, () => makeIssuer({ alg: 'EdDSA', kid: null, claims: base }));
    const two = await jwksServer({ keys: [unnamed[0].jwk, unnamed[1].jwk, rs.jwk] });
    const policy = await policyFor(jwksConfig(two.url));
    await principalOf(policy, unnamed[1].sign());
    assert.equal(policy.stats.signatureChecks, 2);
    await assertRejected(policy, unnamed[2].sign(), 'token signature is invalid');
    const five = await jwksServer({ keys: unnamed.map((i) => i.jwk) });
    const crowded = await policyFor(jwksConfig(five.url));
    await assertRejected(crowded, unnamed[0].sign(), 'token names no key id (kid)');
    assert.equal(crowded.stats.signatureChecks, 0);
  });

  test('close() stops the refresh; a closed policy fetches nothing more', async () => {
    const server = await jwksServer({ keys: [rs.jwk] });
    const policy = await createAuthPolicy(authConfig(jwksConfig(server.url, { refreshIntervalMs: 1000, cooldownMs: 0 })), { log: silent });
    await policy.close();
    await policy.close();
    await assertRejected(policy, rs.sign({}, { kid: 'unknown' }), 'token key is not known');
    assert.equal(server.paths.length, 1);
  });
});

describe('parseJwks', () => {
  test('leaves out private, symmetric, encryption, wrongly typed and duplicate keys', () => {
    const rsaPrivate = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
    const { keys, skipped } = parseJwks({
      keys: [
        rs.jwk,
        { ...rsaPrivate, kid: 'private' },
        { kty: 'oct', kid: 'sym', k: 'c2VjcmV0' },
        { ...es.jwk, kid: 'enc', use: 'enc' },
        { ...es.jwk, kid: 'ops', key_ops: ['encrypt'] },
        { ...ed.jwk, kid: 'mislabelled', alg: 'RS256' },
        { ...rs.jwk },
        { kty: 'EC', kid: 'junk', crv: 'P-256', x: 'AA', y: 'AA' },
        'not-a-key',
        { ...es.jwk, kid: 'x'.repeat(300) },
      ],
    }, ['RS256', 'ES256', 'EdDSA']);
    assert.deepEqual(keys.map((k) => k.kid), ['rs-1']);
    assert.deepEqual([...keys[0].algorithms], ['RS256']);
    assert.equal(skipped.length, 9);
  });

  test('refuses a document that is not a key set', () => {
    assert.throws(() => parseJwks([], ['RS256']), /not a JWKS/);
    assert.throws(() => parseJwks({ keys: Array.from({ length: 65 }, () => rs.jwk) }, ['RS256']), /more than 64 keys/);
  });
});
