import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildConfig, ConfigError, parseRollout } from '../config.js';

const version = (profile?: string) => ({ backend: { kind: 'onnx', path: 'm.onnx' }, ...(profile === undefined ? {} : { profile }) });
const NO_AUTH = { insecureNoAuth: true };

/** A model of versions 1 (stable) and 2, with drift monitored or not. */
function modelOf(drift: boolean) {
  return buildConfig({ auth: NO_AUTH, models: { m: { versions: { '1': version('p.json'), '2': version('p.json') }, stable: '1', ...(drift ? { drift: {} } : {}) } } }, '/base').models.m;
}

const valid = {
  canary: '2',
  steps: [{ weight: 5, minRequests: 200 }, { weight: 50, minRequests: 500, minDurationMs: 1000 }, { weight: 100, minRequests: 1000 }],
  criteria: { errorRate: { minSamples: 200 }, latencyP99: { minSamples: 200 }, guards: { minSamples: 100 }, disagreement: { minSamples: 300 } },
};

function problemsOf(input: unknown, drift = false): readonly string[] {
  try {
    parseRollout(input, modelOf(drift));
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.problems;
  }
  assert.fail('expected a ConfigError');
}

function buildProblems(rollout: unknown, drift = false): readonly string[] {
  try {
    buildConfig({ auth: NO_AUTH, models: { m: { versions: { '1': version('p.json'), '2': version('p.json') }, stable: '1', ...(drift ? { drift: {} } : {}), rollout } } }, '/base');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.problems;
  }
  assert.fail('expected a ConfigError');
}

test('a valid rollout is accepted with its defaults filled, frozen', () => {
  const r = parseRollout(valid, modelOf(false));
  assert.equal(r.canary, '2');
  assert.equal(r.stable, undefined, 'stable is the model\'s unless named');
  assert.deepEqual(r.steps, [
    { weight: 5, minRequests: 200, minDurationMs: 60_000 },
    { weight: 50, minRequests: 500, minDurationMs: 1000 },
    { weight: 100, minRequests: 1000, minDurationMs: 60_000 },
  ]);
  assert.equal(r.pauseAfterMs, 600_000);
  assert.deepEqual(r.criteria.errorRate, { minSamples: 200, maxIncrease: 0.01, confidence: 0.99, killSwitch: true });
  assert.deepEqual(r.criteria.latencyP99, { minSamples: 200, maxRatio: 1.5, slackMs: 5 });
  assert.deepEqual(r.criteria.guards, { minSamples: 100, maxIncrease: 0.02, confidence: 0.99, killSwitch: true });
  assert.deepEqual(r.criteria.disagreement, { minSamples: 300, maxRate: 0.05, maxClassShift: 0.05, confidence: 0.99, budget: 0.01, maxConcurrent: 8, timeoutMs: 5000 });
  assert.equal(r.criteria.drift, undefined);
  assert.ok(Object.isFrozen(r) && Object.isFrozen(r.steps[0]) && Object.isFrozen(r.criteria.errorRate));
  assert.equal((valid.steps[0] as { minDurationMs?: number }).minDurationMs, undefined, 'the input is not changed');
  // A drift criterion on a model whose drift is monitored, and an explicit stable.
  const d = parseRollout({ ...valid, stable: '1', criteria: { drift: {} } }, modelOf(true));
  assert.deepEqual(d.criteria.drift, { on: ['inputs', 'outputs'] });
  assert.equal(d.stable, '1');
  // One step of 100 is a valid rollout (judged once, then promoted).
  parseRollout({ canary: '2', steps: [{ weight: 100, minRequests: 10 }], criteria: { errorRate: { minSamples: 10 } } }, modelOf(false));
});

test('every problem of a rollout is named in one ConfigError', () => {
  const problems = problemsOf({
    canary: '1',
    steps: [{ weight: 10, minRequests: 1 }, { weight: 10, minRequests: 1 }, { weight: 5, minRequests: 1 }, { weight: 50, minRequests: 1 }],
    criteria: { errorRate: {}, drift: {} },
  });
  const all = problems.join('\n');
  assert.ok(problems.includes('rollout.canary: the canary must differ from the stable version (1)'), all);
  assert.ok(problems.includes('rollout.steps.1.weight: steps must increase (10 then 10)'), all);
  assert.ok(problems.includes('rollout.steps.2.weight: steps must increase (10 then 5)'), all);
  assert.ok(!problems.some((p) => p.startsWith('rollout.steps.3.weight')), `5 then 50 increases\n${all}`);
  assert.ok(problems.includes('rollout.steps: the last step must be 100 (the canary serves everyone before it is promoted); it is 50'), all);
  assert.ok(problems.includes("criteria.errorRate: must have required property 'minSamples'"), all);
  assert.ok(problems.includes('rollout.criteria.drift: the model\'s drift is not monitored (models.<m>.drift)'), all);
  assert.equal(problems.length, 6, all);
});

test('an unknown canary or stable version, and empty criteria, are refused', () => {
  const unknown = problemsOf({ ...valid, canary: '9', stable: '8' });
  assert.ok(unknown.includes('rollout.canary: version "9" is not among the model\'s versions (1, 2)'), unknown.join('\n'));
  assert.ok(unknown.includes('rollout.stable: version "8" is not among the model\'s versions (1, 2)'), unknown.join('\n'));
  assert.deepEqual(problemsOf({ ...valid, stable: '2' }), ['rollout.canary: the canary must differ from the stable version (2)'], 'the named stable, not the model\'s');
  const empty = problemsOf({ ...valid, criteria: {} });
  assert.deepEqual(empty, ['rollout.criteria: name at least one criterion (errorRate, latencyP99, guards, drift, disagreement): a rollout judged on nothing would promote on no evidence']);
});

test('the schema: required fields, ranges and unknown fields', () => {
  assert.ok(problemsOf({}).length >= 3, 'canary, steps and criteria are required');
  assert.ok(problemsOf(null).length > 0);
  assert.ok(problemsOf({ ...valid, steps: [] }).some((p) => p.startsWith('steps:')), 'at least one step');
  assert.ok(problemsOf({ ...valid, steps: [{ weight: 0, minRequests: 1 }, { weight: 100, minRequests: 1 }] }).some((p) => p.startsWith('steps.0.weight:')));
  assert.ok(problemsOf({ ...valid, steps: [{ weight: 100 }] }).includes("steps.0: must have required property 'minRequests'"));
  assert.ok(problemsOf({ ...valid, criteria: { latencyP99: { minSamples: 5 } } }).some((p) => p.startsWith('criteria.latencyP99.minSamples:')), 'minSamples at least 10');
  assert.ok(problemsOf({ ...valid, criteria: { disagreement: { minSamples: 100, budget: 0 } } }).some((p) => p.startsWith('criteria.disagreement.budget:')), 'a budget of 0 copies nothing');
  assert.ok(problemsOf({ ...valid, criteria: { errorRate: { minSamples: 100, confidence: 1 } } }).some((p) => p.startsWith('criteria.errorRate.confidence:')));
  assert.ok(problemsOf({ ...valid, colour: 'red' }).includes('(top level): unknown field "colour"'));
  assert.ok(problemsOf({ ...valid, criteria: { accuracy: { minSamples: 100 } } }).includes('criteria: unknown field "accuracy"'));
  assert.ok(problemsOf({ ...valid, pauseAfterMs: 10 }).some((p) => p.startsWith('pauseAfterMs:')));
  assert.ok(problemsOf({ ...valid, criteria: { drift: { on: [] } } }, true).some((p) => p.startsWith('criteria.drift.on:')));
});

test('prototype keys are refused in a rollout', () => {
  const problems = problemsOf(JSON.parse('{"canary":"2","steps":[{"weight":100,"minRequests":1}],"criteria":{"errorRate":{"minSamples":100},"__proto__":{"x":1}}}'));
  assert.ok(problems.some((p) => p === 'rollout.criteria.__proto__: "__proto__" is not allowed as a key'), problems.join('\n'));
});

test('the configuration file\'s models.<m>.rollout reports the same problems under its own path', () => {
  const problems = buildProblems({
    canary: '1',
    steps: [{ weight: 10, minRequests: 1 }, { weight: 10, minRequests: 1 }, { weight: 50, minRequests: 1 }],
    criteria: { drift: {} },
  });
  const all = problems.join('\n');
  assert.ok(problems.includes('models.m.rollout.canary: the canary must differ from the stable version (1)'), all);
  assert.ok(problems.includes('models.m.rollout.steps.1.weight: steps must increase (10 then 10)'), all);
  assert.ok(problems.includes('models.m.rollout.steps: the last step must be 100 (the canary serves everyone before it is promoted); it is 50'), all);
  assert.ok(problems.includes('models.m.rollout.criteria.drift: the model\'s drift is not monitored (models.<m>.drift)'), all);
  assert.equal(problems.length, 4, all);
  assert.deepEqual(buildProblems({ ...valid, canary: '7', criteria: {} }), [
    'models.m.rollout.canary: version "7" is not among the model\'s versions (1, 2)',
    'models.m.rollout.criteria: name at least one criterion (errorRate, latencyP99, guards, drift, disagreement): a rollout judged on nothing would promote on no evidence',
  ]);
  assert.ok(buildProblems({ ...valid, criteria: { errorRate: {} } }).includes("models.m.rollout.criteria.errorRate: must have required property 'minSamples'"));
  // With drift monitored the drift criterion is fine, and the defaults are filled as parseRollout fills them.
  const cfg = buildConfig({ auth: NO_AUTH, models: { m: { versions: { '1': version('p.json'), '2': version('p.json') }, drift: {}, rollout: { ...valid, canary: '1', stable: '2', criteria: { drift: {} } } } } }, '/base');
  const r = cfg.models.m.rollout!;
  assert.deepEqual(r.criteria.drift, { on: ['inputs', 'outputs'] });
  assert.equal(r.pauseAfterMs, 600_000);
  assert.equal(r.steps[0].minDurationMs, 60_000);
  assert.deepEqual(r, parseRollout({ ...valid, canary: '1', stable: '2', criteria: { drift: {} } }, cfg.models.m));
});

test('a rollout whose stable is the model\'s default (highest) version: the canary must differ from it', () => {
  const problems = (() => {
    try {
      buildConfig({ auth: NO_AUTH, models: { m: { versions: { '1': version(), '2': version() }, rollout: { ...valid, canary: '2' } } } }, '/base');
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      return e.problems;
    }
    assert.fail('expected a ConfigError');
  })();
  assert.deepEqual(problems, ['models.m.rollout.canary: the canary must differ from the stable version (2)']);
});
