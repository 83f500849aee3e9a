import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AuthConfig } from '../gateway/config.js';
import { createScopePolicy } from './authorize.js';
import { CONTINUE, type Decision, type PolicyAction, type PolicyContext } from './policy.js';
import { testContext } from './test-context.js';
import type { Principal } from './principal.js';

function authConfig(over: Partial<AuthConfig> = {}): AuthConfig {
  return {
    insecureNoAuth: false, issuer: 'https://issuer.test', audience: 'breakwater', clockSkewSeconds: 30, maxTokenBytes: 8192,
    tenantClaim: 'tenant', scopeClaim: 'scope', metadataRequiresScope: true, cacheSize: 100, keys: [], ...over,
  };
}

function principal(...scopes: string[]): Principal {
  return { subject: 'u', tenant: undefined, scopes: new Set(scopes), expiresAt: Date.now() + 60_000 };
}

function ctx(model: string, action: PolicyAction, p: Principal | undefined): PolicyContext {
  return testContext(model, { action, principal: p });
}

function evaluate(model: string, action: PolicyAction, p: Principal | undefined, over: Partial<AuthConfig> = {}): Decision {
  const d = createScopePolicy(authConfig(over)).evaluate(ctx(model, action, p));
  assert.ok(!(d instanceof Promise), 'authorization reads memory only');
  return d;
}

test('is a request-phase policy named authorize', () => {
  const p = createScopePolicy(authConfig());
  assert.equal(p.name, 'authorize');
  assert.equal(p.phase, 'request');
});

test('inference needs predict:<model> or predict:*', () => {
  assert.equal(evaluate('iris', 'infer', principal('predict:iris')), CONTINUE);
  assert.equal(evaluate('iris', 'infer', principal('predict:*')), CONTINUE);
  for (const scopes of [[], ['predict:titanic'], ['predict:iris2'], ['predict'], ['admin:traffic'], ['predict:IRIS']]) {
    assert.equal(evaluate('iris', 'infer', principal(...scopes)).kind, 'deny', `scopes ${scopes.join(' ')}`);
  }
});

test('a missing scope is 403 FORBIDDEN with the insufficient_scope challenge naming the scope', () => {
  const d = evaluate('iris', 'infer', principal('predict:titanic'));
  assert.ok(d.kind === 'deny');
  assert.equal(d.error.code, 'FORBIDDEN');
  assert.equal(d.error.status, 403);
  assert.deepEqual(d.error.headers, { 'www-authenticate': 'Bearer error="insufficient_scope", scope="predict:iris"' });
  assert.deepEqual(d.error.toJSON(), { error: 'the token does not grant this request: needs scope predict:iris', code: 'FORBIDDEN' });
});

test('no principal is 401 with the bare Bearer challenge', () => {
  const d = evaluate('iris', 'infer', undefined);
  assert.ok(d.kind === 'deny');
  assert.equal(d.error.code, 'UNAUTHENTICATED');
  assert.deepEqual(d.error.headers, { 'www-authenticate': 'Bearer' });
});

test('metadata needs the same scope by default', () => {
  assert.equal(evaluate('iris', 'metadata', principal('predict:iris')), CONTINUE);
  const d = evaluate('iris', 'metadata', principal('predict:titanic'));
  assert.ok(d.kind === 'deny' && d.error.code === 'FORBIDDEN');
});

test('with metadataRequiresScope false any authenticated principal reads metadata, but still may not infer', () => {
  const off = { metadataRequiresScope: false };
  assert.equal(evaluate('iris', 'metadata', principal(), off), CONTINUE);
  assert.equal(evaluate('iris', 'infer', principal(), off).kind, 'deny');
  assert.equal(evaluate('iris', 'metadata', undefined, off).kind, 'deny');
});

test('a hostile model name is cut short in the message and kept out of the header', () => {
  const name = `${'x'.repeat(500)}"\r\nSet-Cookie: a=b`;
  const d = evaluate(name, 'infer', principal('predict:iris'));
  assert.ok(d.kind === 'deny');
  assert.deepEqual(d.error.headers, { 'www-authenticate': 'Bearer error="insufficient_scope"' });
  assert.ok((d.error.detail ?? '').length < 100, d.error.detail);
  assert.doesNotMatch(d.error.message, /[\r\n]/);
  const quoted = evaluate('a"b', 'infer', principal());
  assert.ok(quoted.kind === 'deny');
  assert.deepEqual(quoted.error.headers, { 'www-authenticate': 'Bearer error="insufficient_scope"' });
});

test('a principal whose scope names a hostile model exactly is still allowed (scopes compare as strings)', () => {
  assert.equal(evaluate('a"b', 'infer', principal('predict:a"b')), CONTINUE);
});
