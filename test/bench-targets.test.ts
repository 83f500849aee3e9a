/**
 * The benchmark's target list and its focused runs (loadtests/lib): every target belongs to one
 * phase, (k0) and (k) sit side by side, BENCH_TARGETS is parsed strictly, a focused run's results
 * never take the name of a full run's, and the configurations of (k0) and (k) are valid gateway
 * configurations that differ in `killSwitch.enabled` alone. The benchmark itself (timings) is not a
 * test; its smoke test checks the running pair (GET /admin/kill 404 on (k0), 200 on (k)).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { buildConfig } from '../gateway/config.js';
import { PHASES } from '../loadtests/lib/phases.js';
import { resultsBase, targetsOf } from '../loadtests/lib/settings.js';
import { BENCH_KILL_SWITCH, LABELS, TARGET_IDS, gatewayConfig, jwtOnlyConfig, prepareIdentity } from '../loadtests/lib/targets.js';

test('every target is in exactly one phase, in the order of TARGET_IDS, with a label', () => {
  assert.deepEqual(PHASES.flatMap((p) => p.targets), TARGET_IDS);
  for (const id of TARGET_IDS) assert.match(LABELS[id], new RegExp(`^\\(${id.replace('*', '\\*')}\\) `));
});

test('(k0) and (k) are phase-1 targets loaded one right after the other', () => {
  const p1 = PHASES.find((p) => p.phase === 1);
  assert.ok(p1 !== undefined);
  assert.equal(p1.workers, 1);
  const i = p1.targets.indexOf('k0');
  assert.ok(i >= 0);
  assert.equal(p1.targets[i + 1], 'k');
});

test('BENCH_TARGETS: unset or blank is every target; ids are trimmed; an unknown id is an error naming the known ones', () => {
  assert.equal(targetsOf(undefined), undefined);
  assert.equal(targetsOf('  '), undefined);
  assert.deepEqual(targetsOf('k0, k'), ['k0', 'k']);
  assert.deepEqual(targetsOf('c*,d*'), ['c*', 'd*']);
  assert.throws(() => targetsOf('k0,kk'), /BENCH_TARGETS: unknown target "kk".*k0, k/);
});

test('a focused run is written beside latest.*, never over it', () => {
  assert.equal(resultsBase(undefined), 'latest');
  assert.equal(resultsBase(['k0', 'k']), 'focused-k0-k');
  assert.equal(resultsBase(['c*', 'd*']), 'focused-cstar-dstar');
  for (const ids of [['a'], ['k'], ['c*']] as const) assert.notEqual(resultsBase(ids), 'latest');
});

test('(k0) and (k): valid configurations, two versions with rollbackTo naming the other, differing only in killSwitch.enabled', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bw-bench-targets-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const identity = prepareIdentity(dir);
  const backend = { kind: 'oip-http', url: 'http://127.0.0.1:9', model: 'iris' };
  const spec = { name: 'x', workers: 1 as const, backend, identity: jwtOnlyConfig(identity) };
  const off = parse(gatewayConfig(18000, { ...spec, killSwitch: 'off' }, undefined)) as Record<string, unknown>;
  const on = parse(gatewayConfig(18000, { ...spec, killSwitch: 'on' }, undefined)) as Record<string, unknown>;

  assert.deepEqual(off.killSwitch, { enabled: false });
  assert.deepEqual(on.killSwitch, { enabled: true });
  assert.deepEqual({ ...on, killSwitch: undefined }, { ...off, killSwitch: undefined });

  const k = BENCH_KILL_SWITCH;
  assert.notEqual(k.rollbackTo, k.stable);
  for (const raw of [off, on]) {
    const cfg = buildConfig(raw, dir);
    const iris = cfg.models.iris;
    assert.ok(iris !== undefined);
    assert.deepEqual(Object.keys(iris.versions).sort(), [k.stable, k.rollbackTo].sort());
    assert.equal(iris.stable, k.stable);
    assert.equal(iris.killSwitch?.rollbackTo, k.rollbackTo);
    assert.equal(iris.traffic, undefined, 'no split: every request goes to the stable version, as in (g0)');
  }
  assert.equal(buildConfig(off, dir).killSwitch.enabled, false);
  assert.equal(buildConfig(on, dir).killSwitch.enabled, true);
});
