import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createKillSwitchPolicy, REASON_KILL_SWITCH } from './kill-switch.js';
import { CONTINUE, type Routed } from './policy.js';
import { testContext } from './test-context.js';

const routed = (version: string, reason = 'stable', shadow?: string): Routed => ({
  version, reason, optOuts: 0,
  shadow: shadow === undefined ? undefined : { version: shadow, mode: 'after', timeoutMs: 1000, maxConcurrent: 1, suspendAfter: 0 },
});

test('nothing killed: the shared CONTINUE, for every request', () => {
  const p = createKillSwitchPolicy();
  assert.equal(p.evaluate(testContext('m'), routed('2')), CONTINUE);
});

test('a killed version is routed to its target with reason kill-switch; a shadow copy to it is dropped', () => {
  const p = createKillSwitchPolicy(new Map([['m', { deny: false, detail: '', redirect: new Map([['3', '1']]) }]]));
  assert.deepEqual(p.evaluate(testContext('m'), routed('3', 'arm:3')), { kind: 'route', version: '1', reason: REASON_KILL_SWITCH });
  assert.equal(p.evaluate(testContext('m'), routed('2')), CONTINUE);
  assert.deepEqual(p.evaluate(testContext('m'), routed('2', 'stable', '3')), { kind: 'route', version: '2', reason: 'stable' });
  assert.equal(p.evaluate(testContext('other'), routed('3')), CONTINUE);
  assert.deepEqual(p.recheck('m', '3'), { target: '1' });
  assert.equal(p.recheck('m', '2'), undefined);
  assert.equal(p.isKilled('m', '3'), true);
  assert.equal(p.isDenied('m'), false);
});

test('deny refuses inferences with MODEL_KILLED and Retry-After; metadata passes', () => {
  const p = createKillSwitchPolicy(new Map([['m', { deny: true, detail: 'stopped', redirect: new Map() }]]));
  const d = p.evaluate(testContext('m'), routed('2'));
  assert.equal(d.kind, 'deny');
  if (d.kind === 'deny') {
    assert.equal(d.error.code, 'MODEL_KILLED');
    assert.ok(Number(d.error.headers?.['retry-after']) > 0);
  }
  assert.equal(p.evaluate(testContext('m', { action: 'metadata' }), routed('2')), CONTINUE);
  assert.equal(p.recheck('m', '2') !== undefined && 'error' in (p.recheck('m', '2') ?? {}), true);
});

test('a killed fallback is never replaced by a model for a subject who opted out of automated decisions', () => {
  const p = createKillSwitchPolicy(new Map([['m', { deny: false, detail: '', redirect: new Map([['rules', '2']]) }]]));
  const d = p.evaluate(testContext('m'), routed('rules', 'fallback'));
  assert.equal(d.kind === 'deny' && d.error.code, 'HUMAN_DECISION_REQUIRED');
});

test('update swaps the whole table', () => {
  const p = createKillSwitchPolicy(new Map([['m', { deny: true, detail: '', redirect: new Map() }]]));
  p.update(new Map());
  assert.equal(p.evaluate(testContext('m'), routed('2')), CONTINUE);
});
