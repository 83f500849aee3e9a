/**
 * Hostile-input suite, identity and admin bodies (issue 8 rules 7 and 8; docs/security.md): tokens
 * that try to grant themselves scopes through a second claim or come from the future, anonymous
 * probes of the build version, and traffic changes that list a version or a rule name twice or
 * carry prototype or duplicate keys. Same invariants on every answer as the other files.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { GATEWAY_VERSION } from '../gateway/version.js';
import { cloneTree, emit, objects, toTree, type JsonNode } from './helpers/json-tree.js';
import { render, requestFor, MODEL } from './helpers/hostile-requests.js';
import { check, checkAccepted, checkRefused, exchange, outcome, startRig, toRawRequest, type Rig } from './helpers/hostile-rig.js';
import { Outcomes, runProperty, SEED } from './helpers/property-run.js';
import { rawRequest } from './helpers/raw-send.js';
import { makeIssuer, nowSeconds, type Issuer } from './helpers/tokens.js';

const ISS = 'https://issuer.test/';
const AUD = 'breakwater';
/** auth.clockSkewSeconds default. */
const LEEWAY_S = 30;

let rig: Rig;
let issuer: Issuer;

before(async () => {
  issuer = makeIssuer({ alg: 'HS256', claims: { iss: ISS, aud: AUD, tenant: 'acme' } });
  rig = await startRig({
    undeclared: false,
    versions: ['1', '2'],
    config: {
      auth: { issuer: ISS, audience: AUD, keys: [issuer.keyConfig] },
      // These properties send many refused tokens from one address; the per-address limit on
      // failed authentications (rule 6) is the limits file's, and would answer them 429 here.
      rateLimits: { requests: { failedAuthPerAddress: { limit: 1_000_000_000 } } },
    },
  });
});

after(async () => {
  await rig.close();
});

const bearer = (token: string): [string, string] => ['Authorization', `Bearer ${token}`];
const valid = fc.integer({ min: 1, max: 2 }).chain((b) => requestFor(b, { binary: 'never' }));
const adminScopes = fc.subarray(['admin:traffic', 'admin:audit', 'admin:opt-outs', 'admin:kill-switch', 'predict:*'], { minLength: 1 });

describe(`hostile identities and admin bodies (seed ${SEED})`, () => {
  test('rule 7: scopes come from `scope` alone: a token naming more in `scp` gets none of them', async (t) => {
    const outcomes = new Outcomes();
    const claims = fc.record({
      scope: fc.constantFrom(undefined, '', 'predict:sentry', 'predict:other'),
      scp: fc.tuple(adminScopes, fc.boolean()).map(([s, asList]) => (asList ? s : s.join(' '))),
    });
    await runProperty(t, fc.tuple(claims, valid), async ([c, spec]) => {
      const token = issuer.sign({ sub: 'mallory', ...c });
      const admin = await exchange(rig, { method: 'GET', path: '/admin/models', headers: [bearer(token)] });
      outcomes.add(`admin ${outcome(admin)}`);
      check(admin, rig);
      checkRefused(admin, { kind: 'refuse', statuses: [403], codes: ['FORBIDDEN'] }, `admin with scp ${JSON.stringify(c.scp)}`);
      const req = toRawRequest(spec, render(spec), 'application/json');
      const x = await exchange(rig, { ...req, headers: [...(req.headers ?? []), bearer(token)] });
      outcomes.add(`infer ${outcome(x)}`);
      check(x, rig);
      if (c.scope === 'predict:sentry') checkAccepted(x, 'predict:sentry in scope');
      else checkRefused(x, { kind: 'refuse', statuses: [403], codes: ['FORBIDDEN'] }, `infer with scope ${String(c.scope)}, scp ${JSON.stringify(c.scp)}`);
    }, { numRuns: 120 }, outcomes);
  });

  test('rule 7: a token issued in the future beyond the leeway is refused (401); within it, accepted', async (t) => {
    const outcomes = new Outcomes();
    const ahead = fc.oneof(fc.integer({ min: LEEWAY_S + 5, max: 10_000_000 }), fc.integer({ min: -600, max: LEEWAY_S - 10 }));
    await runProperty(t, fc.tuple(ahead, valid), async ([seconds, spec]) => {
      const now = nowSeconds();
      const token = issuer.sign({ sub: 'alice', scope: 'predict:sentry', iat: now + seconds, exp: now + seconds + 3600 });
      const req = toRawRequest(spec, render(spec), 'application/json');
      const x = await exchange(rig, { ...req, headers: [...(req.headers ?? []), bearer(token)] });
      outcomes.add(outcome(x));
      check(x, rig);
      if (seconds > LEEWAY_S) checkRefused(x, { kind: 'refuse', statuses: [401], codes: ['UNAUTHENTICATED'] }, `iat ${seconds} s ahead`);
      else checkAccepted(x, `iat ${seconds} s ahead`);
    }, { numRuns: 120 }, outcomes);
  });

  test('rule 7: GET /v2 does not tell an unauthenticated caller the build version', async (t) => {
    const outcomes = new Outcomes();
    const credential = fc.oneof(
      fc.constant(undefined),
      fc.constantFrom('Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', 'Bearer not.a.jwt', 'bearer x.y.z'),
      fc.string({ minLength: 1, maxLength: 40 }).map((s) => `Bearer ${s.replace(/[\r\n]/g, '')}`),
    );
    // The route in the spellings a router may take for it (trailing slash, a query).
    const path = fc.constantFrom('/v2', '/v2', '/v2/', '/v2?', '/v2?x=1', '/v2/?verbose=true');
    await runProperty(t, fc.tuple(credential, path), async ([auth, p]) => {
      const res = await rawRequest(rig.port, { method: 'GET', path: p, headers: auth === undefined ? [] : [['Authorization', auth]] });
      outcomes.add(String(res.status));
      if (res.status === 200) {
        const json = JSON.parse(res.body.toString('utf8')) as { version?: unknown };
        assert.notEqual(json.version, GATEWAY_VERSION, `GET ${p} told ${String(auth)} the build version`);
        assert.ok(!res.body.toString('utf8').includes(GATEWAY_VERSION), `GET ${p}: the build version appears in the answer`);
      } else {
        assert.ok(res.status === 401 || res.status === 404, `GET ${p}: ${res.status}`);
      }
    }, { numRuns: 90 }, outcomes);
  });

  /** Traffic bodies that break rule 8, each on a valid base: 400 with an existing code, nothing changed. */
  const brokenTraffic = fc.oneof(
    fc.integer({ min: 0, max: 100 }).map((w) => ({
      what: 'a version listed twice',
      tree: toTree({ routes: [{ version: '1', weight: w }, { version: '1', weight: 100 - w }], reason: 'split' }),
    })),
    fc.tuple(fc.integer({ min: 0, max: 100 }), fc.constantFrom('1', '2')).map(([w, v]) => ({
      what: 'a version listed twice among three arms',
      tree: toTree({ routes: [{ version: '1', weight: w }, { version: '2', weight: 100 - w }, { version: v, weight: 0 }], reason: 'split' }),
    })),
    fc.stringMatching(/^[a-z]{1,8}$/).map((name) => ({
      what: `rule name ${name} twice`,
      tree: toTree({
        routes: [{ version: '1', weight: 100 }],
        rules: [{ name, version: '2', header: { name: 'x-a', equals: '1' } }, { name, version: '1', header: { name: 'x-b', equals: '2' } }],
        reason: 'rules',
      }),
    })),
    fc.tuple(fc.nat(), fc.constantFrom('__proto__', 'constructor', 'prototype'), fc.jsonValue({ maxDepth: 1 })).map(([at, key, value]) => {
      const tree = toTree({ routes: [{ version: '1', weight: 50 }, { version: '2', weight: 50 }], rules: [{ name: 'r', version: '2', header: { name: 'x-a', equals: '1' } }], reason: 'proto' });
      const owners = objects(tree);
      const owner = owners[at % owners.length];
      owner.node.members.push([{ k: 'str', s: key }, toTree(value)]);
      return { what: `${key} at /${owner.path.join('/')}`, tree };
    }),
    fc.tuple(fc.nat(), fc.nat()).map(([at, which]) => {
      const tree = toTree({ routes: [{ version: '1', weight: 50 }, { version: '2', weight: 50 }], reason: 'dup' });
      const owners = objects(tree).filter((o) => o.node.members.length > 0);
      const owner = owners[at % owners.length];
      const [key, value] = owner.node.members[which % owner.node.members.length];
      owner.node.members.push([{ ...key }, cloneTree(value) as JsonNode]);
      return { what: `JSON key ${key.s} twice at /${owner.path.join('/')}`, tree };
    }),
  );

  test('rule 8: traffic changes listing a version or rule name twice, or with prototype or duplicate keys, are refused and change nothing', async (t) => {
    const outcomes = new Outcomes();
    const admin = issuer.sign({ sub: 'po-anna', scope: 'admin:traffic' });
    const state = async () => {
      const res = await rawRequest(rig.port, { method: 'GET', path: `/admin/models/${MODEL}`, headers: [bearer(admin)] });
      assert.equal(res.status, 200, res.body.toString());
      return JSON.stringify((JSON.parse(res.body.toString('utf8')) as { traffic: unknown }).traffic);
    };
    await runProperty(t, brokenTraffic, async ({ what, tree }) => {
      const before = await state();
      const x = await exchange(rig, {
        method: 'PUT', path: `/admin/models/${MODEL}/traffic`,
        headers: [bearer(admin), ['Content-Type', 'application/json']], body: emit(tree),
      });
      outcomes.add(outcome(x));
      check(x, rig);
      checkRefused(x, { kind: 'refuse', statuses: [400], codes: ['INVALID_TRAFFIC', 'BAD_REQUEST', 'BAD_JSON', 'AMBIGUOUS_JSON'] }, what);
      assert.equal(await state(), before, `${what}: the traffic changed`);
    }, { numRuns: 180 }, outcomes);
  });
});
