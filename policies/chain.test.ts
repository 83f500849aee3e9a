import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildConfig } from '../gateway/config.js';
import { GatewayError } from '../gateway/errors.js';
import { newOutcome, PolicyChain, releaseAll } from './chain.js';
import { CONTINUE, type Annotations, type Decision, type Policy, type PolicyContext, type PolicyPhase } from './policy.js';
import { testContext, viewOf } from './test-context.js';

const onnx = { backend: { kind: 'onnx', path: '/abs/m.onnx' } };
const SERVED = viewOf(buildConfig({ auth: { insecureNoAuth: true }, models: { m: { versions: { '1': onnx, '2': onnx }, stable: '2' } } }, '/'), 'm');
const ctx = (pinned?: string): PolicyContext => testContext('m', { served: SERVED, pinnedVersion: pinned });

function policy(name: string, decide: () => Decision | Promise<Decision>, seen: string[], phase: PolicyPhase = 'request'): Policy {
  return { name, phase, evaluate: () => (seen.push(name), decide()) };
}

test('an empty chain serves the stable version, or the pinned one, synchronously', () => {
  const chain = new PolicyChain([]);
  const c = ctx();
  const out = newOutcome(c);
  assert.equal(chain.run('request', c, out), undefined);
  assert.deepEqual([out.version, out.reason], ['2', 'stable']);
  const pinned = newOutcome(ctx('1'));
  assert.deepEqual([pinned.version, pinned.reason], ['1', 'pinned']);
});

test('policies run in order and the first deny ends the chain', () => {
  const seen: string[] = [];
  const chain = new PolicyChain([
    policy('a', () => CONTINUE, seen),
    policy('b', () => ({ kind: 'deny', error: new GatewayError('BAD_REQUEST', 'no') }), seen),
    policy('c', () => CONTINUE, seen),
  ]);
  const c = ctx();
  assert.throws(() => chain.run('request', c, newOutcome(c)), (e: unknown) => e instanceof GatewayError && e.code === 'BAD_REQUEST');
  assert.deepEqual(seen, ['a', 'b']);
});

test('the last route decision wins and carries its reason', () => {
  const seen: string[] = [];
  const chain = new PolicyChain([
    policy('split', () => ({ kind: 'route', version: '3', reason: 'canary' }), seen),
    policy('opt-out', () => ({ kind: 'route', version: '2', reason: 'opt-out:experiments' }), seen),
  ]);
  const c = ctx();
  const out = newOutcome(c);
  chain.run('request', c, out);
  assert.deepEqual([out.version, out.reason], ['2', 'opt-out:experiments']);
});

test('phases run separately; an async policy makes the rest of its phase async', async () => {
  const seen: string[] = [];
  const chain = new PolicyChain([
    policy('auth', () => ({ kind: 'continue', principal: { subject: 's', tenant: 't', scopes: new Set(), expiresAt: 0 } }), seen),
    policy('quota', async () => ({ kind: 'continue', headers: { ratelimit: 'r' }, release: () => seen.push('released') }), seen, 'payload'),
    policy('guard', () => CONTINUE, seen, 'payload'),
  ]);
  const c = ctx();
  const out = newOutcome(c);
  assert.equal(chain.run('request', c, out), undefined);
  assert.equal(c.principal?.subject, 's');
  assert.deepEqual(seen, ['auth']);
  const pending = chain.run('payload', c, out);
  assert.ok(pending instanceof Promise);
  await pending;
  assert.deepEqual(seen, ['auth', 'quota', 'guard']);
  assert.deepEqual(out.headers, { ratelimit: 'r' });
  releaseAll(out, () => undefined);
  assert.equal(seen.at(-1), 'released');
});

test('a deny keeps the headers gathered so far and adds its own', async () => {
  const chain = new PolicyChain([
    policy('a', () => ({ kind: 'continue', headers: { 'ratelimit-policy': 'p' } }), [], 'payload'),
    policy('b', async () => ({ kind: 'deny', error: new GatewayError('BAD_REQUEST'), headers: { 'retry-after': '3' } }), [], 'payload'),
  ]);
  const c = ctx();
  await assert.rejects(async () => chain.run('payload', c, newOutcome(c)), (e: unknown) =>
    e instanceof GatewayError && e.headers?.['retry-after'] === '3' && e.headers['ratelimit-policy'] === 'p');
});

declare module './policy.js' {
  interface Annotations {
    /** A test control's note (how the input guards will leave a verdict in monitor mode). */
    testVerdict?: { readonly score: number; readonly flagged: boolean };
    testRoute?: string;
  }
}

test('notes from continue and route decisions of both phases are merged into the outcome, typed', async () => {
  const chain = new PolicyChain([
    policy('router', () => ({ kind: 'route', version: '1', reason: 'arm:1', annotations: { testRoute: 'arm:1' } }), []),
    policy('guard', async () => ({ kind: 'continue', annotations: { testVerdict: { score: 0.97, flagged: true } } }), [], 'payload'),
  ]);
  const c = ctx();
  const out = newOutcome(c);
  const notes = (): Partial<Annotations> | undefined => out.annotations;
  assert.equal(notes(), undefined, 'no notes: nothing allocated');
  chain.run('request', c, out);
  await chain.run('payload', c, out);
  assert.deepEqual(notes(), { testRoute: 'arm:1', testVerdict: { score: 0.97, flagged: true } });
  assert.equal(notes()?.testVerdict?.flagged, true);
});
