/**
 * Hostile-input suite, request limits (issue 8 rule 6; docs/security.md, docs/identity-and-limits.md
 * "Request limits"): no free probing. A subject sends a generated mix of valid and invalid
 * predictions, unknown models and versions, a model it may not use, metadata and readiness reads:
 * exactly `perSubject.limit` of them are answered by their own outcome, every later one is 429
 * RATE_LIMITED with Retry-After and RateLimit headers whatever its kind, and never reaches the
 * backend. A client sends generated bad credentials (none, garbage, expired, forged, unsigned, wrong
 * audience or issuer, from the future) to every route that authenticates, from addresses that rotate
 * within an IPv6 /64, change spelling (IPv4-mapped) or hide behind forged X-Forwarded-For entries:
 * `failedAuthPerAddress.limit` 401s, then 429 for every credential not already verified. Against
 * gateways with the memory store and with Redis (block reservations), small limits each.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { render, requestFor, MODEL, type RequestSpec } from './helpers/hostile-requests.js';
import { check, checkAccepted, checkRefused, exchange, outcome, show, startRig, toRawRequest, type Exchange, type Rig } from './helpers/hostile-rig.js';
import { Outcomes, runProperty, SEED } from './helpers/property-run.js';
import type { RawRequest } from './helpers/raw-send.js';
import { sharedTestRedis } from './helpers/redis.js';
import { makeIssuer, nowSeconds, unsignedToken, type Issuer } from './helpers/tokens.js';

const ISS = 'https://issuer.test/';
const AUD = 'breakwater';
/** A model the suite's subjects have no scope for (403). */
const VAULT = 'vault';
/** A model nobody serves (404 to a subject with a scope for it). */
const UNKNOWN = 'guess-me';
const WINDOW_MS = 60_000;

interface Limited {
  readonly rig: Rig;
  readonly store: 'memory' | 'redis';
  readonly perSubject: number;
  readonly perAddress: number;
}

/** Gateways with small limits: each store, a limit of 1 and larger ones. */
const SETUPS: readonly Omit<Limited, 'rig'>[] = [
  { store: 'memory', perSubject: 1, perAddress: 3 },
  { store: 'memory', perSubject: 4, perAddress: 1 },
  { store: 'redis', perSubject: 3, perAddress: 2 },
  { store: 'redis', perSubject: 6, perAddress: 5 },
];

let issuer: Issuer;
/** Same key id, another secret: its tokens' signatures do not verify. */
let forger: Issuer;
let gateways: Limited[] = [];

before(async () => {
  issuer = makeIssuer({ alg: 'HS256', claims: { iss: ISS, aud: AUD, tenant: 'acme' } });
  forger = makeIssuer({ alg: 'HS256', kid: issuer.kid ?? null, claims: { iss: ISS, aud: AUD, tenant: 'acme' } });
  const redisUrl = await sharedTestRedis();
  gateways = await Promise.all(SETUPS.map(async (s, i) => ({
    ...s,
    rig: await startRig({
      undeclared: false,
      also: [VAULT],
      config: {
        auth: { issuer: ISS, audience: AUD, keys: [issuer.keyConfig] },
        // The loopback client is a proxy here, so that each run can come from addresses of its own.
        server: { trustProxy: ['loopback'] },
        state: s.store === 'redis' ? { redisUrl, keyPrefix: `props-limits-${i}:` } : {},
        rateLimits: { requests: { perSubject: { limit: s.perSubject, windowMs: WINDOW_MS }, failedAuthPerAddress: { limit: s.perAddress, windowMs: WINDOW_MS } } },
      },
    }),
  })));
});

after(async () => {
  await Promise.all(gateways.map((g) => g.rig.close()));
});

/** Subjects and addresses never used before, also when fast-check replays a run to shrink it. */
let fresh = 0;

const bearer = (token: string): [string, string] => ['Authorization', `Bearer ${token}`];
const withHeaders = (r: RawRequest, ...extra: [string, string][]): RawRequest => ({ ...r, headers: [...(r.headers ?? []), ...extra] });

/** The limit's 429: the catalogue's code, Retry-After and the IETF headers naming it; nothing forwarded. */
function assertLimited(x: Exchange, rule: 'requests' | 'auth-failures', limit: number, what: string): void {
  checkRefused(x, { kind: 'refuse', statuses: [429], codes: ['RATE_LIMITED'] }, what);
  const h = x.response.headers;
  assert.match(h['retry-after'] ?? '', /^[1-9]\d*$/, `${what}: Retry-After ${h['retry-after']}`);
  assert.ok(Number(h['retry-after']) <= WINDOW_MS / 1000, `${what}: Retry-After ${h['retry-after']} beyond the window`);
  assert.equal(h['ratelimit-policy'], `"${rule}";q=${limit};w=${WINDOW_MS / 1000}`, `${what}: RateLimit-Policy`);
  assert.match(h.ratelimit ?? '', new RegExp(`^"${rule}";r=0;t=[1-9]\\d*$`), `${what}: RateLimit`);
}

const plainValid = fc.integer({ min: 1, max: 2 }).chain((b) => requestFor(b, { binary: 'never' }));

/** A subject's request of some kind, and the answer it gets while the subject is within its limit. */
interface Probe {
  readonly kind: string;
  readonly build: (base: RawRequest) => RawRequest;
  readonly expect: { status: number; codes?: string[] };
}

const PROBES: readonly Probe[] = [
  { kind: 'valid', build: (b) => b, expect: { status: 200 } },
  { kind: 'bad JSON', build: (b) => ({ ...b, body: '{"inputs": [{"name": "x",' }), expect: { status: 400, codes: ['BAD_JSON'] } },
  { kind: 'duplicate key', build: (b) => ({ ...b, body: '{"inputs": [], "inputs": []}' }), expect: { status: 400 } },
  { kind: 'wrong shape', build: (b) => ({ ...b, body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] }) }), expect: { status: 400 } },
  { kind: 'text/plain', build: (b) => ({ ...b, headers: [['Content-Type', 'text/plain'], ...(b.headers ?? []).filter(([n]) => n !== 'Content-Type')] }), expect: { status: 415, codes: ['UNSUPPORTED_MEDIA_TYPE'] } },
  { kind: 'unknown model', build: (b) => ({ ...b, path: `/v2/models/${UNKNOWN}/infer` }), expect: { status: 404, codes: ['MODEL_NOT_FOUND'] } },
  { kind: 'unknown version', build: (b) => ({ ...b, path: `/v2/models/${MODEL}/versions/7/infer` }), expect: { status: 404, codes: ['VERSION_NOT_FOUND'] } },
  { kind: 'no scope', build: (b) => ({ ...b, path: `/v2/models/${VAULT}/infer` }), expect: { status: 403, codes: ['FORBIDDEN'] } },
  { kind: 'metadata', build: (b) => ({ method: 'GET', path: `/v2/models/${MODEL}`, headers: (b.headers ?? []).filter(([n]) => n !== 'Content-Type') }), expect: { status: 200 } },
  { kind: 'readiness', build: (b) => ({ method: 'GET', path: `/v2/models/${MODEL}/ready`, headers: (b.headers ?? []).filter(([n]) => n !== 'Content-Type') }), expect: { status: 200 } },
  { kind: 'unknown metadata', build: (b) => ({ method: 'GET', path: `/v2/models/${UNKNOWN}`, headers: (b.headers ?? []).filter(([n]) => n !== 'Content-Type') }), expect: { status: 404, codes: ['MODEL_NOT_FOUND'] } },
];

/** How one request names its address (see `spelling`). */
interface Spelling { readonly mapped: boolean; readonly iid: readonly string[]; readonly forged: string | undefined }

/** A bad credential (undefined: no Authorization at all) and what is wrong with it. */
type BadCredential = { readonly what: string; readonly header: string | undefined };

describe(`hostile probing: request limits (seed ${SEED})`, () => {
  test('rule 6: a subject gets exactly perSubject.limit answers of its own, then 429 RATE_LIMITED with Retry-After and RateLimit for every request, whatever its kind', async (t) => {
    const outcomes = new Outcomes();
    const runs = fc.nat(SETUPS.length - 1).chain((g) => fc.tuple(
      fc.constant(g),
      fc.array(fc.tuple(fc.constantFrom(...PROBES.map((p) => p.kind)), plainValid), { minLength: 1, maxLength: SETUPS[g].perSubject + 6 }),
    ));
    await runProperty(t, runs, async ([g, probes]) => {
      const { rig, store, perSubject } = gateways[g];
      const sub = `prober-${++fresh}`;
      // A scope for the unknown model too: else it is 403, as for a model that exists (which hides which do).
      const token = issuer.sign({ sub, scope: `predict:${MODEL} predict:${UNKNOWN}`, exp: nowSeconds() + 600 });
      const kinds: string[] = [];
      for (let i = 0; i < probes.length; i++) {
        const [kind, spec] = probes[i] as [string, RequestSpec];
        const probe = PROBES.find((p) => p.kind === kind) as Probe;
        kinds.push(probe.kind);
        const what = `${store} store, limit ${perSubject}, request ${i + 1} (${kinds.join(', ')})`;
        const request = withHeaders(probe.build(toRawRequest(spec, render(spec), 'application/json')), bearer(token));
        const x = await exchange(rig, request);
        outcomes.add(`${i < perSubject ? 'within' : 'past'} ${outcome(x)}`);
        check(x, rig);
        if (i >= perSubject) {
          assertLimited(x, 'requests', perSubject, `${what}: past the limit`);
        } else if (probe.kind === 'valid') {
          checkAccepted(x, what);
        } else if (probe.expect.status === 200) {
          assert.equal(x.response.status, 200, `${what}: ${show(x)}`);
        } else {
          checkRefused(x, { kind: 'refuse', statuses: [probe.expect.status], codes: probe.expect.codes }, what);
        }
        // Within the limit, no header for it: nothing is built for a limit that did not bind.
        if (i < perSubject) assert.equal(x.response.headers['ratelimit-policy'], undefined, `${what}: ${show(x)}`);
      }
    }, { numRuns: 150 }, outcomes);
  });

  test('rule 6: bad credentials from one address get failedAuthPerAddress.limit 401s, then 429 for every credential not already verified', async (t) => {
    const outcomes = new Outcomes();
    const claims = () => ({ sub: `guesser-${fresh}`, scope: `predict:${MODEL}` });
    const credential = fc.constantFrom(
      'none', 'empty bearer', 'garbage', 'basic', 'expired', 'forged', 'unsigned', 'wrong audience', 'wrong issuer', 'from the future',
    );
    const bad = (kind: string): BadCredential => {
      const now = nowSeconds();
      switch (kind) {
        case 'none': return { what: kind, header: undefined };
        case 'empty bearer': return { what: kind, header: 'Bearer ' };
        case 'garbage': return { what: kind, header: 'Bearer eyJhbGciOi.not-a.token' };
        case 'basic': return { what: kind, header: 'Basic YWRtaW46YWRtaW4=' };
        case 'expired': return { what: kind, header: `Bearer ${issuer.sign({ ...claims(), iat: now - 7200, exp: now - 3600 })}` };
        case 'forged': return { what: kind, header: `Bearer ${forger.sign(claims())}` };
        case 'unsigned': return { what: kind, header: `Bearer ${unsignedToken({ ...claims(), iss: ISS, aud: AUD, exp: now + 600 })}` };
        case 'wrong audience': return { what: kind, header: `Bearer ${issuer.sign({ ...claims(), aud: 'someone-else' })}` };
        case 'wrong issuer': return { what: kind, header: `Bearer ${issuer.sign({ ...claims(), iss: 'https://evil.test/' })}` };
        default: return { what: kind, header: `Bearer ${issuer.sign({ ...claims(), iat: now + 3600, exp: now + 7200 })}` };
      }
    };
    const route = fc.constantFrom('infer', 'metadata', 'readiness', 'unknown model', 'admin');
    const hex = fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16));
    /** How one request names the run's address: IPv4 or its IPv4-mapped spelling, or any address in the run's IPv6 /64. */
    const spelling: fc.Arbitrary<Spelling> = fc.record({ mapped: fc.boolean(), iid: fc.tuple(hex, hex, hex, hex), forged: fc.option(fc.constantFrom('1.2.3.4', '10.0.0.1, 192.0.2.7', '::1'), { nil: undefined }) });
    const runs = fc.record({
      g: fc.nat(SETUPS.length - 1),
      v6: fc.boolean(),
      attempts: fc.array(fc.tuple(credential, route, spelling), { minLength: 1, maxLength: 10 }),
      spec: plainValid,
    });
    await runProperty(t, runs, async ({ g, v6, attempts, spec }) => {
      const { rig, store, perAddress, perSubject } = gateways[g];
      const k = ++fresh;
      const v4 = `10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}`;
      const prefix = `2001:db8:${(k & 0xffff).toString(16)}:${(k >> 16).toString(16)}`;
      const addressOf = (s: Spelling): string => {
        const real = v6 ? `${prefix}:${s.iid.join(':')}` : s.mapped ? `::ffff:${v4}` : v4;
        // Entries left of the real one are the client's own words, which the proxy (loopback) passed on.
        return s.forged === undefined ? real : `${s.forged}, ${real}`;
      };
      const infer = toRawRequest(spec, render(spec), 'application/json');
      const build = (r: string, header: string | undefined, from: string): RawRequest => {
        const base: RawRequest = r === 'infer' ? infer
          : { method: 'GET', path: r === 'metadata' ? `/v2/models/${MODEL}` : r === 'readiness' ? `/v2/models/${MODEL}/ready` : r === 'admin' ? '/admin/models' : `/v2/models/${UNKNOWN}` };
        const headers: [string, string][] = [['X-Forwarded-For', from]];
        if (header !== undefined) headers.push(['Authorization', header]);
        return withHeaders(base, ...headers);
      };
      const from = addressOf({ mapped: false, iid: ['1', '2', '3', '4'], forged: undefined });
      const what0 = `${store} store, limit ${perAddress}, ${v6 ? 'IPv6 /64' : 'IPv4'}`;
      // A token this replica verified before the address went bad keeps working.
      const verified = issuer.sign({ sub: `verified-${k}`, scope: `predict:${MODEL}`, exp: nowSeconds() + 600 });
      const first = await exchange(rig, build('infer', `Bearer ${verified}`, from));
      checkAccepted(first, `${what0}: a good token first`);
      const tried: string[] = [];
      for (let i = 0; i < attempts.length; i++) {
        const [kind, r, s] = attempts[i];
        const cred = bad(kind);
        tried.push(`${cred.what} → ${r}`);
        const what = `${what0}, attempt ${i + 1} (${tried.join(', ')})`;
        const x = await exchange(rig, build(r, cred.header, addressOf(s)));
        outcomes.add(`${i < perAddress ? 'within' : 'past'} ${outcome(x)}`);
        check(x, rig);
        if (i < perAddress) checkRefused(x, { kind: 'refuse', statuses: [401], codes: ['UNAUTHENTICATED'] }, what);
        else assertLimited(x, 'auth-failures', perAddress, `${what}: past the limit`);
      }
      const what = `${what0}, after ${tried.join(', ')}`;
      if (attempts.length > perAddress) {
        // Blocked: a new token, however good, waits for the window; the verified one does not.
        const newcomer = issuer.sign({ sub: `newcomer-${k}`, scope: `predict:${MODEL}`, exp: nowSeconds() + 600 });
        const blocked = await exchange(rig, build('infer', `Bearer ${newcomer}`, from));
        outcomes.add(`newcomer ${outcome(blocked)}`);
        check(blocked, rig);
        assertLimited(blocked, 'auth-failures', perAddress, `${what}: a new token from the blocked address`);
      }
      const again = await exchange(rig, build('infer', `Bearer ${verified}`, from));
      outcomes.add(`verified ${outcome(again)}`);
      check(again, rig);
      // Its second request: within its own per-subject limit unless that is 1.
      if (perSubject >= 2) checkAccepted(again, `${what}: the verified token`);
      else assertLimited(again, 'requests', perSubject, `${what}: the verified token, past its own limit`);
    }, { numRuns: 150 }, outcomes);
  });
});
