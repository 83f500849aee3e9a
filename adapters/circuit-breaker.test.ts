import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CircuitBreaker, type BreakerState } from './circuit-breaker.js';

function breaker(o: { failures?: number; cooldownMs?: number; maxCooldownMs?: number } = {}) {
  const clock = { now: 0 };
  const changes: string[] = [];
  const b = new CircuitBreaker({
    failures: o.failures ?? 3, cooldownMs: o.cooldownMs ?? 1000, maxCooldownMs: o.maxCooldownMs ?? 4000,
    now: () => clock.now, onChange: (to: BreakerState, from: BreakerState) => changes.push(`${from}→${to}`),
  });
  return { b, clock, changes };
}

test('opens after `failures` backend faults in a row; a success in between resets the count', () => {
  const { b, changes } = breaker();
  b.record('call', 'failure');
  b.record('call', 'failure');
  b.record('call', 'success');
  b.record('call', 'failure');
  b.record('call', 'failure');
  b.record('call', 'neutral'); // a client-side end says nothing either way
  assert.equal(b.state, 'closed');
  b.record('call', 'failure');
  assert.equal(b.state, 'open');
  assert.equal(b.opens, 1);
  assert.deepEqual(changes, ['closed→open']);
});

test('while open, calls are refused and counted; Retry-After is the cool-down left', () => {
  const { b, clock } = breaker();
  for (let i = 0; i < 3; i++) b.record('call', 'failure');
  clock.now = 400;
  assert.equal(b.admit(), undefined);
  assert.equal(b.admit(), undefined);
  assert.equal(b.refused, 2);
  assert.equal(b.retryAfterMs(), 600);
});

test('after the cool-down exactly one probe goes (half-open); its success closes the breaker', () => {
  const { b, clock, changes } = breaker();
  for (let i = 0; i < 3; i++) b.record('call', 'failure');
  clock.now = 1000;
  assert.equal(b.admit(), 'probe');
  assert.equal(b.state, 'half-open');
  assert.equal(b.admit(), undefined, 'a second call waits for the probe');
  b.record('probe', 'success');
  assert.equal(b.state, 'closed');
  assert.equal(b.admit(), 'call');
  assert.deepEqual(changes, ['closed→open', 'open→half-open', 'half-open→closed']);
});

test('a failed probe re-opens with a doubled cool-down, capped; a later success resets it', () => {
  const { b, clock } = breaker({ cooldownMs: 1000, maxCooldownMs: 3000 });
  for (let i = 0; i < 3; i++) b.record('call', 'failure');
  const expectOpenFor = (ms: number) => {
    const opened = clock.now;
    clock.now = opened + ms - 1;
    assert.equal(b.admit(), undefined, `still open ${ms - 1} ms later`);
    clock.now = opened + ms;
    assert.equal(b.admit(), 'probe', `probes ${ms} ms later`);
  };
  expectOpenFor(1000);
  b.record('probe', 'failure');
  expectOpenFor(2000);
  b.record('probe', 'failure');
  expectOpenFor(3000);
  b.record('probe', 'failure');
  expectOpenFor(3000);
  assert.equal(b.opens, 4);
  b.record('probe', 'success');
  for (let i = 0; i < 3; i++) b.record('call', 'failure');
  expectOpenFor(1000);
});

test('a neutral probe frees the probe slot: the next call probes', () => {
  const { b, clock } = breaker();
  for (let i = 0; i < 3; i++) b.record('call', 'failure');
  clock.now = 1000;
  assert.equal(b.admit(), 'probe');
  b.record('probe', 'neutral');
  assert.equal(b.state, 'half-open');
  assert.equal(b.admit(), 'probe');
});

test('calls that started before it opened do not move it when they end late', () => {
  const { b } = breaker();
  for (let i = 0; i < 3; i++) b.record('call', 'failure');
  b.record('call', 'success');
  assert.equal(b.state, 'open');
  b.record('call', 'failure');
  assert.equal(b.opens, 1);
});

test('failures 0: never opens', () => {
  const { b } = breaker({ failures: 0 });
  for (let i = 0; i < 100; i++) b.record('call', 'failure');
  assert.equal(b.state, 'closed');
  assert.equal(b.admit(), 'call');
});
