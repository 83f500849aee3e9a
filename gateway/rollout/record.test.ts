import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildConfig, parseRollout, type TrafficConfig } from '../config.js';
import type { CriterionResult } from './criteria.js';
import { aborted, advanced, asRolloutRecord, DECISIONS_KEPT, isActive, paused, promoted, resumed, routesMatch, routesOf, started, type RolloutRecord } from './record.js';

const cfg = buildConfig({ auth: { insecureNoAuth: true }, models: { m: { versions: { '1': { backend: { kind: 'onnx', path: 'm.onnx' } }, '2': { backend: { kind: 'onnx', path: 'm.onnx' } } }, stable: '1' } } }, '/base');
const spec = parseRollout({
  canary: '2',
  steps: [{ weight: 5, minRequests: 100 }, { weight: 25, minRequests: 100 }, { weight: 100, minRequests: 100 }],
  criteria: { errorRate: { minSamples: 100 } },
}, cfg.models.m);

const T0 = 1_700_000_000_000;
const shadow = { version: '1', sampleRate: 0.1 } as unknown as NonNullable<TrafficConfig['shadow']>;
const rules = [{ name: 'beta', match: { header: { name: 'x-beta', value: '1' } }, version: '2' }] as unknown as TrafficConfig['rules'];

function start(base: RolloutRecord['base'] = { rules: [] }): RolloutRecord {
  return started({ id: 'r-1', model: 'm', canary: '2', stable: '1', spec, base, source: 'admin', specSha256: 'abc', startedAt: T0, startedBy: 'alice' }, 'by hand');
}

const evidence: CriterionResult[] = [{ criterion: 'errorRate', verdict: 'pass', canary: 0, stable: 0, limit: 'x', samples: { canary: 100, stable: 100 }, stableScope: 'step', detail: 'ok', killSwitch: true }];

test('started: running at step 0 with the first step\'s weight, one start decision', () => {
  const r = start();
  assert.equal(r.format, 1);
  assert.equal(r.state, 'running');
  assert.equal(r.step, 0);
  assert.equal(r.weight, 5);
  assert.equal(r.stepStartedAt, T0);
  assert.equal(r.note, undefined);
  assert.deepEqual(r.decisions, [{ at: T0, action: 'start', by: 'alice', reason: 'by hand', step: 0, weightBefore: 0, weightAfter: 5 }]);
  assert.ok(isActive(r));
  assert.equal(asRolloutRecord(JSON.parse(JSON.stringify(r)))?.id, 'r-1', 'a stored copy reads back');
});

test('advanced: one step further with the step\'s weight, its evidence, and the step clock restarted', () => {
  const r = advanced(start(), T0 + 60_000, evidence);
  assert.equal(r.step, 1);
  assert.equal(r.weight, 25);
  assert.equal(r.stepStartedAt, T0 + 60_000);
  assert.equal(r.startedAt, T0, 'the rollout\'s start stays');
  assert.equal(r.state, 'running');
  const d = r.decisions.at(-1)!;
  assert.deepEqual({ ...d, evidence: undefined }, { at: T0 + 60_000, action: 'advance', by: 'breakwater', reason: 'step 1 of 3 passed every criterion', step: 1, weightBefore: 5, weightAfter: 25, evidence: undefined });
  assert.deepEqual(d.evidence, evidence);
  const again = advanced(r, T0 + 120_000, evidence);
  assert.deepEqual([again.step, again.weight, again.decisions.length], [2, 100, 3]);
  assert.equal(again.decisions.at(-1)!.reason, 'step 2 of 3 passed every criterion');
});

test('promoted: weight 100 at the last step, ended, with the reason as its note', () => {
  const r = promoted(start(), T0 + 5, 'bob', 'looks good');
  assert.equal(r.state, 'promoted');
  assert.equal(r.weight, 100);
  assert.equal(r.step, 2);
  assert.equal(r.endedAt, T0 + 5);
  assert.equal(r.note, 'looks good');
  assert.ok(!isActive(r));
  const d = r.decisions.at(-1)!;
  assert.deepEqual(d, { at: T0 + 5, action: 'promote', by: 'bob', reason: 'looks good', step: 2, weightBefore: 5, weightAfter: 100 });
  assert.equal('evidence' in d, false, 'no evidence key when none was given');
});

test('aborted: weight 0 at the step it was in; killed is said only when it happened', () => {
  const at1 = advanced(start(), T0 + 1, evidence);
  const r = aborted(at1, T0 + 2, 'breakwater', 'errorRate failed', evidence, true);
  assert.equal(r.state, 'aborted');
  assert.equal(r.weight, 0);
  assert.equal(r.step, 1);
  assert.equal(r.endedAt, T0 + 2);
  assert.equal(r.note, 'errorRate failed');
  const d = r.decisions.at(-1)!;
  assert.deepEqual([d.action, d.weightBefore, d.weightAfter, d.killed, d.step], ['abort', 25, 0, true, 1]);
  assert.equal('killed' in aborted(at1, T0 + 2, 'bob', 'no').decisions.at(-1)!, false);
  assert.ok(!isActive(r));
});

test('paused keeps the weight; resumed restarts the step\'s clock and clears the note', () => {
  const p = paused(advanced(start(), T0 + 10, evidence), T0 + 20, 'breakwater', 'too little traffic', evidence);
  assert.equal(p.state, 'paused');
  assert.equal(p.weight, 25);
  assert.equal(p.note, 'too little traffic');
  assert.equal(p.stepStartedAt, T0 + 10);
  assert.ok(isActive(p));
  assert.deepEqual([p.decisions.at(-1)!.action, p.decisions.at(-1)!.weightBefore, p.decisions.at(-1)!.weightAfter], ['pause', 25, 25]);
  const r = resumed(p, T0 + 30, 'carol', 'more traffic now');
  assert.equal(r.state, 'running');
  assert.equal(r.stepStartedAt, T0 + 30);
  assert.equal(r.step, 1);
  assert.equal(r.weight, 25);
  assert.equal('note' in r, false, 'the note is gone, not undefined');
  assert.deepEqual(r.decisions.at(-1), { at: T0 + 30, action: 'resume', by: 'carol', reason: 'more traffic now', step: 1, weightBefore: 25, weightAfter: 25 });
  assert.equal(p.state, 'paused', 'records are values: the paused one is unchanged');
});

test(`decisions are capped at the last ${DECISIONS_KEPT}`, () => {
  let r = start();
  for (let i = 0; i < DECISIONS_KEPT + 20; i++) r = i % 2 === 0 ? paused(r, T0 + i, 'x', `p${i}`) : resumed(r, T0 + i, 'x', `r${i}`);
  assert.equal(r.decisions.length, DECISIONS_KEPT);
  assert.equal(r.decisions.at(-1)!.reason, `r${DECISIONS_KEPT + 19}`);
  assert.equal(r.decisions[0].reason, 'p20', 'the oldest dropped first (the start among them)');
});

test('routesOf: stable first and the canary second, so a larger step only moves the boundary; base rules and shadow kept', () => {
  const base = { rules, shadow };
  const r = start(base);
  assert.deepEqual(routesOf(r), {
    routes: [{ version: '1', weight: 95, name: 'stable' }, { version: '2', weight: 5, name: 'canary' }],
    rules,
    shadow,
  });
  const next = routesOf(advanced(r, T0 + 1, evidence));
  assert.deepEqual(next.routes.map((x) => [x.version, x.weight]), [['1', 75], ['2', 25]]);
  assert.deepEqual(routesOf(aborted(r, T0 + 1, 'x', 'no')).routes.map((x) => x.weight), [100, 0]);
  const p = routesOf(promoted(r, T0 + 1, 'x', 'yes'));
  assert.deepEqual(p.routes, [{ version: '1', weight: 0, name: 'previous' }, { version: '2', weight: 100, name: 'promoted' }]);
  assert.equal('shadow' in routesOf(start({ rules: [] })), false, 'no shadow key without one');
});

test('routesMatch: the same two arms with the same weights, in order', () => {
  const r = start();
  const live = routesOf(r);
  assert.ok(routesMatch(r, live));
  assert.ok(routesMatch(r, { routes: live.routes.map((x) => ({ ...x, name: 'renamed' })), rules: [] }), 'names and rules are not compared');
  assert.ok(!routesMatch(r, null));
  assert.ok(!routesMatch(r, { routes: [live.routes[1], live.routes[0]], rules: [] }), 'swapped');
  assert.ok(!routesMatch(r, { routes: [{ version: '1', weight: 90 }, { version: '2', weight: 10 }], rules: [] } as unknown as TrafficConfig));
  assert.ok(!routesMatch(r, { routes: [...live.routes, { version: '3', weight: 0 }], rules: [] } as unknown as TrafficConfig));
  assert.ok(!routesMatch(r, { routes: [{ version: '1', weight: 100 }], rules: [] } as unknown as TrafficConfig));
  assert.ok(routesMatch(advanced(r, T0, evidence), routesOf(advanced(r, T0, evidence))));
  assert.ok(!routesMatch(advanced(r, T0, evidence), live), 'the step moved: the live routes are behind');
});

test('asRolloutRecord refuses anything that is not a record', () => {
  for (const v of [null, 1, 'x', {}, { ...start(), format: 2 }, { ...start(), decisions: undefined }, { ...start(), spec: undefined }, { ...start(), step: '1' }]) {
    assert.equal(asRolloutRecord(v), undefined, JSON.stringify(v));
  }
});
