import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RolloutCriteria } from '../config.js';
import { BOUNDS } from '../telemetry/arm-figures.js';
import { judge, type CriterionResult, type DriftComparison, type JudgeInput } from './criteria.js';
import { latencyBucket, parseFigures, type StepFigures } from './figures.js';

interface SideSpec {
  /** Requests routed; reached defaults to all of them. */
  readonly r?: number;
  readonly n?: number;
  readonly e?: number;
  readonly g?: number;
  /** Latencies of the reached requests: [ms, count] pairs. */
  readonly ms?: readonly (readonly [number, number])[];
}

/** A step's figures from the buckets a flush would have added (figures.ts names). */
function figures(c: SideSpec, s: SideSpec, d: Record<string, number> = {}): StepFigures {
  const fields: Record<string, number> = { ...d };
  for (const [side, f] of [['c', c], ['s', s]] as const) {
    const r = f.r ?? 0;
    fields[`${side}.r`] = r;
    fields[`${side}.n`] = f.n ?? r;
    fields[`${side}.e`] = f.e ?? 0;
    fields[`${side}.g`] = f.g ?? 0;
    for (const [ms, k] of f.ms ?? []) {
      const i = latencyBucket(ms);
      fields[`${side}.l${i}`] = (fields[`${side}.l${i}`] ?? 0) + k;
    }
  }
  return parseFigures(fields);
}

const errorRate = { maxIncrease: 0.01, confidence: 0.99, minSamples: 100, killSwitch: true } as const;
const latencyP99 = { maxRatio: 1.5, slackMs: 5, minSamples: 100 } as const;
const guards = { maxIncrease: 0.02, confidence: 0.99, minSamples: 100, killSwitch: false } as const;
const disagreement = { maxRate: 0.05, maxClassShift: 0.05, confidence: 0.99, minSamples: 100, budget: 0.01, maxConcurrent: 8, timeoutMs: 5000 } as const;

function one(criteria: RolloutCriteria, step: StepFigures, rollout: StepFigures = step, drift?: DriftComparison | 'not-comparable'): CriterionResult {
  const input: JudgeInput = { criteria, step, rollout, ...(drift === undefined ? {} : { drift }) };
  const out = judge(input);
  assert.equal(out.length, 1, 'one criterion configured, one result');
  return out[0];
}

test('errorRate waits below minSamples, whatever the figures say', () => {
  const r = one({ errorRate }, figures({ r: 99, e: 99 }, { r: 10_000 }));
  assert.equal(r.verdict, 'wait');
  assert.equal(r.criterion, 'errorRate');
  assert.deepEqual(r.samples, { canary: 99, stable: 10_000 });
  assert.equal(r.canary, 1);
  assert.equal(r.stable, 0);
  assert.match(r.detail, /99 of 100 canary requests needed/);
});

test('errorRate fails a clearly failing canary and passes an equal one', () => {
  const failing = one({ errorRate }, figures({ r: 1000, e: 100 }, { r: 1000, e: 10 }));
  assert.equal(failing.verdict, 'fail');
  assert.equal(failing.canary, 0.1);
  assert.equal(failing.stable, 0.01);
  assert.equal(failing.stableScope, 'step');
  assert.equal(failing.killSwitch, true);
  assert.match(failing.detail, /100 of 1000 against 10 of 1000/);
  const equal = one({ errorRate }, figures({ r: 1000, e: 10 }, { r: 1000, e: 10 }));
  assert.equal(equal.verdict, 'pass');
  // Errors are counted among the requests that reached the model, not all routed ones.
  const reached = one({ errorRate }, figures({ r: 5000, n: 1000, e: 100 }, { r: 1000, e: 10 }));
  assert.deepEqual(reached.samples, { canary: 1000, stable: 1000 });
  assert.equal(reached.verdict, 'fail');
  // A difference within the allowed increase passes: 1.5 % against 1 % with a 1 % margin.
  assert.equal(one({ errorRate }, figures({ r: 10_000, e: 150 }, { r: 10_000, e: 100 })).verdict, 'pass');
});

test('errorRate judges against the whole rollout when stable has too few samples in the step', () => {
  // The last step gives the canary everything: stable has 5 requests in the step, 2000 over the rollout.
  const step = figures({ r: 1000, e: 10 }, { r: 5, e: 5 });
  const rollout = figures({ r: 3000, e: 30 }, { r: 2000, e: 20 });
  const r = one({ errorRate }, step, rollout);
  assert.equal(r.stableScope, 'rollout');
  assert.deepEqual(r.samples, { canary: 1000, stable: 2000 }, 'the canary of the step, stable of the rollout');
  assert.equal(r.stable, 0.01);
  assert.equal(r.verdict, 'pass', 'the step\'s 5 failing stable requests are not what the canary is held to');
  // With enough stable samples in the step, the step's figures are used.
  const own = one({ errorRate }, figures({ r: 1000, e: 10 }, { r: 100, e: 1 }), rollout);
  assert.equal(own.stableScope, 'step');
  assert.equal(own.samples.stable, 100);
});

test('errorRate with no stable figures anywhere bounds the canary\'s rate alone', () => {
  const none = figures({ r: 1000, e: 100 }, {});
  const r = one({ errorRate }, none, none);
  assert.equal(r.stable, null);
  assert.equal(r.verdict, 'fail', '10 % of 1000 is surely above 1 %');
  assert.equal(one({ errorRate }, figures({ r: 1000, e: 5 }, {})).verdict, 'pass');
});

test('latencyP99: fails above stable p99 × maxRatio + slack, passes below, waits for samples on either side', () => {
  // Stable's requests all at 10 ms: its p99 is the upper bound of 10 ms's bucket (10.588 ms), the limit 10.588 × 1.5 + 5.
  const stableP99 = BOUNDS[latencyBucket(10)];
  const limit = stableP99 * 1.5 + 5;
  const stable = { r: 1000, ms: [[10, 1000]] } as const;
  const at = (ms: number) => one({ latencyP99 }, figures({ r: 1000, ms: [[5, 980], [ms, 20]] }, stable));
  const below = at(20); // bucket 20.68 ms ≤ 20.88
  assert.ok(BOUNDS[latencyBucket(20)] <= limit);
  assert.equal(below.verdict, 'pass', below.detail);
  assert.equal(below.canary, BOUNDS[latencyBucket(20)]);
  assert.equal(below.stable, stableP99);
  const above = at(21); // bucket 25.85 ms > 20.88
  assert.ok(BOUNDS[latencyBucket(21)] > limit);
  assert.equal(above.verdict, 'fail');
  assert.match(above.detail, /above 20\.88 ms/);
  assert.equal(above.killSwitch, false);
  // Only the slowest 1 %: 10 slow requests of 1000 are the p99's rank (990) not reached.
  assert.equal(one({ latencyP99 }, figures({ r: 1000, ms: [[5, 990], [500, 10]] }, stable)).verdict, 'pass');
  assert.equal(one({ latencyP99 }, figures({ r: 1000, ms: [[5, 989], [500, 11]] }, stable)).verdict, 'fail');
  // Too few canary answers; then too few stable answers in the step and the rollout.
  assert.equal(one({ latencyP99 }, figures({ r: 99, ms: [[500, 99]] }, stable)).verdict, 'wait');
  const few = figures({ r: 1000, ms: [[500, 1000]] }, { r: 50, ms: [[1, 50]] });
  const waiting = one({ latencyP99 }, few, few);
  assert.equal(waiting.verdict, 'wait');
  assert.match(waiting.detail, /stable has 50 of 100 answers/);
  // ...unless the rollout has them.
  const whole = one({ latencyP99 }, few, figures({ r: 2000, ms: [[500, 1000]] }, { r: 1000, ms: [[1, 1000]] }));
  assert.equal(whole.stableScope, 'rollout');
  assert.equal(whole.verdict, 'fail');
});

test('guards compare the share of requests a guard flagged, over every routed request', () => {
  const failing = one({ guards }, figures({ r: 1000, n: 900, g: 100 }, { r: 1000, g: 10 }));
  assert.equal(failing.criterion, 'guards');
  assert.equal(failing.verdict, 'fail');
  assert.deepEqual(failing.samples, { canary: 1000, stable: 1000 }, 'requests, not the ones that reached the model');
  assert.equal(failing.canary, 0.1);
  assert.equal(failing.killSwitch, false);
  assert.match(failing.detail, /trip a guard/);
  assert.equal(one({ guards }, figures({ r: 1000, g: 20 }, { r: 1000, g: 15 })).verdict, 'pass');
  assert.equal(one({ guards }, figures({ r: 50, g: 50 }, { r: 1000 })).verdict, 'wait');
});

test('drift compares the canary\'s window with stable\'s: fails after its confirmations, waits while filling, confirming or not comparable', () => {
  const drift = { on: ['inputs', 'outputs'] } as const;
  const step = figures({}, {});
  type S = DriftComparison['inputs'];
  const cmp = (inputs: S, outputs: S, streak = 0, confirmations = 2): DriftComparison => ({ inputs, outputs, psi: { inputs: 0.01, outputs: 0.9 }, samples: { canary: 300, stable: 1200 }, streak, confirmations });
  const judged = (d: DriftComparison | 'not-comparable' | undefined) => one({ drift }, step, step, d);
  const failed = judged(cmp('ok', 'drift', 2));
  assert.equal(failed.verdict, 'fail');
  assert.match(failed.detail, /outputs differ from stable's over the same window \(2 looks in a row\)/);
  assert.equal(failed.canary, 'inputs ok (PSI 0.01), outputs drift (PSI 0.9)');
  assert.equal(failed.stable, 'its live window (1200 samples)');
  assert.deepEqual(failed.samples, { canary: 300, stable: 1200 });
  const confirming = judged(cmp('ok', 'drift', 1));
  assert.equal(confirming.verdict, 'wait', 'one look is not enough');
  assert.match(confirming.detail, /1 of 2 looks in a row, confirming/);
  assert.equal(judged(cmp('warning', 'ok')).verdict, 'pass', 'a warning is not drift');
  assert.equal(judged(cmp('ok', 'ok')).verdict, 'pass');
  const filling = judged(cmp('insufficient', 'ok'));
  assert.equal(filling.verdict, 'wait', 'a window still filling is no evidence: no step passes on it');
  assert.match(filling.detail, /still filling/);
  assert.equal(judged(undefined).verdict, 'wait', 'not compared yet');
  assert.match(judged('not-comparable').detail, /bin their values differently/);
  // Only the parts configured count.
  const inputsOnly = one({ drift: { on: ['inputs'] } }, step, step, cmp('ok', 'drift', 5));
  assert.equal(inputsOnly.verdict, 'pass');
  assert.equal(inputsOnly.canary, 'inputs ok (PSI 0.01)');
});

test('disagreement and classShift: wait below minSamples, then judge the compared rows', () => {
  const compared = (d: Record<string, number>) => {
    const f = figures({}, {}, d);
    return judge({ criteria: { disagreement }, step: f, rollout: f });
  };
  const waiting = compared({ 'd.n': 99, 'd.x': 99 });
  assert.deepEqual(waiting.map((r) => [r.criterion, r.verdict]), [['disagreement', 'wait'], ['classShift', 'wait']]);
  assert.match(waiting[0].detail, /99 of 100 compared rows/);
  // 200 of 1000 rows answered differently: far above 5 %.
  const [dis] = compared({ 'd.n': 1000, 'd.x': 200 });
  assert.equal(dis.verdict, 'fail');
  assert.equal(dis.canary, 0.2);
  assert.equal(dis.stableScope, 'paired');
  // 30 of 1000 (3 %) passes; 60 of 1000 is not surely above 5 % either.
  assert.equal(compared({ 'd.n': 1000, 'd.x': 30 })[0].verdict, 'pass');
  assert.equal(compared({ 'd.n': 1000, 'd.x': 60 })[0].verdict, 'pass');
  assert.equal(compared({ 'd.n': 10_000, 'd.x': 800 })[0].verdict, 'fail', '8 % of 10 000 is surely above 5 %');
});

test('disagreement: one differing row of 13 is no evidence that more than 1 % of rows differ', () => {
  // With a true rate of 1 %, one of 13 rows or more differs 12 % of the time; the Wilson bound
  // (0.0106) failed it. The exact bound (0.00077) does not; 3 of 13 (0.03 % likely at a true 1 %) does.
  const strict = { ...disagreement, maxRate: 0.01, minSamples: 10 };
  const at = (x: number) => {
    const f = figures({}, {}, { 'd.n': 13, 'd.x': x });
    return judge({ criteria: { disagreement: strict }, step: f, rollout: f })[0];
  };
  assert.equal(at(1).verdict, 'pass');
  assert.equal(at(3).verdict, 'fail');
});

test('classShift fails when one class\'s share moves a lot on the same rows, not on swaps that cancel', () => {
  // 1000 rows; stable answered "cat" on 500, the canary on 700: 200 rows moved from dog to cat.
  const moved = figures({}, {}, { 'd.n': 1000, 'd.x': 200, 'd.c:cat': 700, 'd.s:cat': 500, 'd.c:dog': 300, 'd.s:dog': 500, 'd.u:cat': 200, 'd.v:dog': 200 });
  const [, shift] = judge({ criteria: { disagreement: { ...disagreement, maxRate: 0.5 } }, step: moved, rollout: moved });
  assert.equal(shift.criterion, 'classShift');
  assert.equal(shift.verdict, 'fail');
  assert.equal(shift.canary, 0.7);
  assert.equal(shift.stable, 0.5);
  assert.match(shift.detail, /^class "cat": 70 % of the canary's answers against 50 % of stable's: moved at least/, 'cat and dog moved as much: the first seen is named');
  // 100 rows cat → dog and 100 dog → cat: 20 % disagree but no class's share moved.
  const swapped = figures({}, {}, { 'd.n': 1000, 'd.x': 200, 'd.c:cat': 500, 'd.s:cat': 500, 'd.c:dog': 500, 'd.s:dog': 500, 'd.u:cat': 100, 'd.v:cat': 100, 'd.u:dog': 100, 'd.v:dog': 100 });
  const [dis, swap] = judge({ criteria: { disagreement: { ...disagreement, maxRate: 0.5 } }, step: swapped, rollout: swapped });
  assert.equal(dis.verdict, 'pass');
  assert.equal(swap.verdict, 'pass');
  // No class compared at all.
  const none = figures({}, {}, { 'd.n': 1000 });
  const [, empty] = judge({ criteria: { disagreement }, step: none, rollout: none });
  assert.equal(empty.verdict, 'pass');
  assert.equal(empty.canary, null);
  assert.equal(empty.detail, 'no class compared');
});

test('every criterion in a fixed order; killSwitch comes from the configuration of errorRate and guards only', () => {
  const f = figures({ r: 1000, e: 100, g: 100, ms: [[5, 1000]] }, { r: 1000, ms: [[5, 1000]] }, { 'd.n': 1000 });
  const all = judge({
    criteria: { disagreement, drift: { on: ['outputs'] }, guards: { ...guards, killSwitch: true }, latencyP99, errorRate: { ...errorRate, killSwitch: false } },
    step: f,
    rollout: f,
  });
  assert.deepEqual(all.map((r) => r.criterion), ['errorRate', 'latencyP99', 'guards', 'drift', 'disagreement', 'classShift']);
  assert.deepEqual(all.map((r) => r.killSwitch), [false, false, true, false, false, false]);
  assert.deepEqual(all.map((r) => r.verdict), ['fail', 'pass', 'fail', 'wait', 'pass', 'pass']);
  assert.deepEqual(judge({ criteria: {}, step: f, rollout: f }), []);
});
