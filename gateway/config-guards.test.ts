/** The guards section (issue 10): what the configuration refuses before anything starts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildConfig, ConfigError, guardsOn } from './config.js';

const NO_AUTH = { insecureNoAuth: true };
const v = (profile?: string) => ({ backend: { kind: 'onnx', path: 'm.onnx' }, ...(profile === undefined ? {} : { profile }) });

function problemsOf(input: unknown): readonly string[] {
  try {
    buildConfig(input, '/base');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.problems;
  }
  assert.fail('expected a ConfigError');
}

test('guards are off unless configured; defaults are filled and profiles resolved against the file', () => {
  const cfg = buildConfig({ auth: NO_AUTH, models: { m: { versions: { '1': v('p/1.json') }, guards: { contract: { mode: 'reject' } } } } }, '/base');
  const g = cfg.models.m.guards!;
  assert.equal(g.contract?.mode, 'reject');
  assert.equal(g.contract?.tolerance, 0.05);
  assert.equal(g.targetFpr, 0.01);
  assert.equal(g.failClosed, false);
  assert.equal(cfg.models.m.versions['1'].profile, '/base/p/1.json');
  assert.deepEqual(guardsOn(g), ['contract']);
  assert.deepEqual(guardsOn(buildConfig({ auth: NO_AUTH, models: { m: { versions: { '1': v() } } } }, '/base').models.m.guards), []);
});

test('a guard that is on needs a profile on every version', () => {
  const problems = problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v('a.json'), '2': v() }, guards: { ood: { mode: 'flag' } } } } });
  assert.equal(problems.length, 1);
  assert.match(problems[0], /^models\.m\.guards: guards ood need a reference profile on every version; missing on 2 /);
  // Off guards need nothing.
  buildConfig({ auth: NO_AUTH, models: { m: { versions: { '1': v() }, guards: { ood: { mode: 'off' } } } } }, '/base');
});

test('route mode needs routeTo, and routeTo must be a version', () => {
  assert.match(problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v('a') }, guards: { contract: { mode: 'route' } } } } }).join('\n'), /routeTo: guards contract are in route mode/);
  assert.match(problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v('a') }, guards: { routeTo: '9', ood: { mode: 'flag' } } } } }).join('\n'), /routeTo: version "9" is not among its versions \(1\)/);
});

test('modes and numbers outside their range are refused by the schema', () => {
  assert.ok(problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v('a') }, guards: { contract: { mode: 'throttle' } } } } }).length > 0);
  assert.ok(problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v('a') }, guards: { extraction: { mode: 'route' } } } } }).length > 0);
  assert.ok(problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v('a') }, guards: { targetFpr: 0 } } } }).length > 0);
  assert.ok(problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v('a') }, guards: { squeeze: { mode: 'flag', sampleRate: 1.5 } } } } }).length > 0);
});
