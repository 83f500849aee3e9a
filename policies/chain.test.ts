import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../gateway/errors.js';
import { PolicyChain } from './chain.js';
import { CONTINUE, type Decision, type Policy, type PolicyContext } from './policy.js';

const ctx = (pinned?: string): PolicyContext => ({ model: 'm', pinnedVersion: pinned, stableVersion: '2', headers: {} });

function policy(name: string, decide: () => Decision, seen: string[]): Policy {
  return { name, evaluate: () => (seen.push(name), decide()) };
}

test('an empty chain serves the stable version, or the pinned one', () => {
  const chain = new PolicyChain([]);
  assert.deepEqual(chain.run(ctx()), { version: '2', reason: 'stable' });
  assert.deepEqual(chain.run(ctx('1')), { version: '1', reason: 'pinned' });
});

test('policies run in order and the first deny ends the chain', () => {
  const seen: string[] = [];
  const chain = new PolicyChain([
    policy('a', () => CONTINUE, seen),
    policy('b', () => ({ kind: 'deny', error: new GatewayError('BAD_REQUEST', 'no') }), seen),
    policy('c', () => CONTINUE, seen),
  ]);
  assert.throws(() => chain.run(ctx()), (e: unknown) => e instanceof GatewayError && e.code === 'BAD_REQUEST');
  assert.deepEqual(seen, ['a', 'b']);
});

test('the last route decision wins and carries its reason', () => {
  const seen: string[] = [];
  const chain = new PolicyChain([
    policy('split', () => ({ kind: 'route', version: '3', reason: 'canary' }), seen),
    policy('opt-out', () => ({ kind: 'route', version: '2', reason: 'opt-out:experiments' }), seen),
  ]);
  assert.deepEqual(chain.run(ctx()), { version: '2', reason: 'opt-out:experiments' });
  assert.deepEqual(seen, ['split', 'opt-out']);
});
