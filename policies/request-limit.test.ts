import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { GatewayError } from '../gateway/errors.js';
import { MemoryStore } from '../gateway/state/memory-store.js';
import type { StateStore } from '../gateway/state/store.js';
import type { AuthPolicy } from './authenticate.js';
import { newContext, type Decision, type PolicyContext } from './policy.js';
import type { Principal } from './principal.js';
import { addressKey, withRequestLimits, type RequestLimitConfig } from './request-limit.js';
import { createStoreFailMode } from './store-fail-mode.js';

const silent = pino({ level: 'silent' });
const principals = new Map<string, Principal>();
/** `Bearer good-<sub>` authenticates as <sub>; anything else is a 401. `known-…` tokens count as verified. */
const stubAuth: AuthPolicy = {
  name: 'authenticate',
  phase: 'request',
  stats: { signatureChecks: 0, cacheHits: 0 },
  evaluate(ctx: PolicyContext): Decision {
    const m = /^Bearer (?:good|known)-(.+)$/.exec(String(ctx.headers.authorization ?? ''));
    if (m === null) return { kind: 'deny', error: new GatewayError('UNAUTHENTICATED', 'token is malformed') };
    let p = principals.get(m[1]);
    if (p === undefined) principals.set(m[1], (p = Object.freeze({ subject: m[1], tenant: undefined, scopes: new Set<string>(), expiresAt: Infinity })));
    return { kind: 'continue', principal: p };
  },
  knows: (headers) => String(headers.authorization ?? '').startsWith('Bearer known-'),
  close: () => Promise.resolve(),
};

const limits = (perSubject: number, perAddress: number): RequestLimitConfig => ({
  perSubject: { limit: perSubject, windowMs: 60_000 },
  failedAuthPerAddress: { limit: perAddress, windowMs: 60_000 },
});

function ctx(token: string | undefined, ip = '192.0.2.7'): PolicyContext {
  return newContext({ model: 'm', served: undefined, action: 'infer', headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, requestId: 'r', peer: { ip } });
}

const downStore = (): StateStore => Object.assign(new MemoryStore(), { healthy: () => false });

test('IPv6 addresses count by their /64, IPv4-mapped ones as IPv4', () => {
  assert.equal(addressKey('192.0.2.7'), '192.0.2.7');
  assert.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:DB8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(addressKey('::1'), '0:0:0:0::/64');
  assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(addressKey(undefined), 'unknown');
});

test('every request of a subject counts; past the limit a 429 with the rules\' headers', async () => {
  const store = new MemoryStore();
  const { predictions, callers } = withRequestLimits(stubAuth, limits(3, 0), { failures: createStoreFailMode('local', store, new MemoryStore(), silent) });
  for (let i = 0; i < 3; i++) assert.equal((await predictions.evaluate(ctx('good-ann'))).kind, 'continue');
  const d = await predictions.evaluate(ctx('good-ann'));
  assert.ok(d.kind === 'deny');
  assert.equal(d.error.code, 'RATE_LIMITED');
  assert.equal(d.headers?.['ratelimit-policy'], '"requests";q=3;w=60');
  assert.match(String(d.headers?.ratelimit), /^"requests";r=0;t=\d+$/);
  assert.match(String(d.headers?.['retry-after']), /^\d+$/);
  // Admin and self-service callers are not counted per subject.
  assert.equal((await callers.evaluate(ctx('good-ann'))).kind, 'continue');
  assert.equal((await predictions.evaluate(ctx('good-bob'))).kind, 'continue');
});

test('failed authentications count per address; then unknown tokens are refused unread, verified ones pass', async () => {
  const { predictions, callers } = withRequestLimits(stubAuth, limits(0, 2), { failures: createStoreFailMode('local', new MemoryStore(), new MemoryStore(), silent) });
  for (let i = 0; i < 2; i++) {
    const d = await predictions.evaluate(ctx('bad'));
    assert.ok(d.kind === 'deny' && d.error.code === 'UNAUTHENTICATED');
  }
  const third = await callers.evaluate(ctx(undefined));
  assert.ok(third.kind === 'deny' && third.error.code === 'RATE_LIMITED', 'the admin guard counts into the same address');
  assert.equal(third.headers?.['ratelimit-policy'], '"auth-failures";q=2;w=60');
  const fresh = await predictions.evaluate(ctx('good-new'));
  assert.ok(fresh.kind === 'deny' && fresh.error.code === 'RATE_LIMITED', 'a token not verified yet waits for the window');
  assert.equal((await predictions.evaluate(ctx('known-old'))).kind, 'continue', 'a verified token goes on working');
  // Another address is not touched.
  assert.equal((await predictions.evaluate(ctx('good-new', '192.0.2.8'))).kind, 'continue');
});

test('the fail mode applies while the store is down: local counts per replica, closed refuses subjects but keeps 401s, open counts nothing', async () => {
  const local = withRequestLimits(stubAuth, limits(1, 1), { failures: createStoreFailMode('local', downStore(), new MemoryStore(), silent) }).predictions;
  assert.equal((await local.evaluate(ctx('good-ann'))).kind, 'continue');
  const over = await local.evaluate(ctx('good-ann'));
  assert.ok(over.kind === 'deny' && over.error.code === 'RATE_LIMITED');

  const closed = withRequestLimits(stubAuth, limits(1, 1), { failures: createStoreFailMode('closed', downStore(), new MemoryStore(), silent) }).predictions;
  const refused = await closed.evaluate(ctx('good-ann'));
  assert.ok(refused.kind === 'deny' && refused.error.code === 'QUOTA_STORE_UNAVAILABLE');
  for (let i = 0; i < 3; i++) {
    const d = await closed.evaluate(ctx('bad'));
    assert.ok(d.kind === 'deny' && d.error.code === 'UNAUTHENTICATED');
  }

  const open = withRequestLimits(stubAuth, limits(1, 1), { failures: createStoreFailMode('open', downStore(), new MemoryStore(), silent) }).predictions;
  for (let i = 0; i < 3; i++) {
    const d = await open.evaluate(ctx('good-ann'));
    assert.ok(d.kind === 'continue' && d.principal?.subject === 'ann', 'the principal survives');
  }
});

test('both limits off: authentication itself, nothing wrapped', () => {
  const { predictions, callers } = withRequestLimits(stubAuth, limits(0, 0), { failures: createStoreFailMode('local', new MemoryStore(), new MemoryStore(), silent) });
  assert.equal(predictions, stubAuth);
  assert.equal(callers, stubAuth);
});
