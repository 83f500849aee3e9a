/**
 * The benchmark's target list and its focused runs (loadtests/lib): every target belongs to one
 * phase, (k0) and (k) sit side by side, and so do (n0), (n) and (s); BENCH_TARGETS is parsed
 * strictly, a focused run's results never take the name of a full run's, the configurations of (k0)
 * and (k) are valid gateway configurations that differ in `killSwitch.enabled` alone, and those of
 * (n0), (n) and (s) load, with the profile the benchmark builds through the real `breakwater
 * profile`, and differ in `guards` alone; (r) is (n0) plus `drift: { sampleRate: 1 }` alone; the
 * input guards' check is (n)/(n0) at 32 connections and drift monitoring's is (r)/(n0) ≤ 1.05 there;
 * (o0) and (o) are two versions with (r)'s profile and drift section, split 90 / 10 by the configuration
 * in (o0) and by a rollout with every criterion on in (o) (the same arms, and nothing else differs),
 * valid and loading, and the rollout's check is (o)/(o0) ≤ 1.10 at 32 connections; (t0) and (t) serve
 * iris in-process with (g0)'s JWT auth and differ in the `audit` section alone (a fresh Ed25519 key pair,
 * the loss window and the rest at their defaults), valid, and the audit trail's check is (t)/(t0) ≤ 1.10
 * at 32 connections.
 * The benchmark itself (timings) is not a test; its smoke test checks the running targets (GET
 * /admin/kill 404 on (k0), 200 on (k); x-guard and figures.guards on (n0), (n), (s); GET
 * /admin/models/iris/drift 404 DRIFT_NOT_MONITORED on (n0), a window with samples on (r); GET
 * /admin/models/iris/rollout 404 ROLLOUT_NOT_FOUND on (o0), running at weight 10 on (o); the trail
 * directory of (t) holding prediction entries, none of (t0)).
 */
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { buildConfig } from '../gateway/config.js';
import { AUDIT_DEFAULTS, prepareAudit } from '../loadtests/lib/audit.js';
import { BENCH_DRIFT, BENCH_GUARDS, prepareProfile } from '../loadtests/lib/guards.js';
import { PHASES } from '../loadtests/lib/phases.js';
import { BENCH_CANARY, BENCH_ROLLOUT, BENCH_SPLIT, DEFAULT_DISAGREEMENT_BUDGET } from '../loadtests/lib/rollout.js';
import { routesOf, started } from '../gateway/rollout/record.js';
import { checks } from '../loadtests/lib/ratios.js';
import type { Summary } from '../loadtests/lib/report.js';
import { resultsBase, targetsOf } from '../loadtests/lib/settings.js';
import { BENCH_KILL_SWITCH, LABELS, TARGET_IDS, gatewayConfig, jwtOnlyConfig, prepareIdentity, prepareModel, type TargetId } from '../loadtests/lib/targets.js';
import type { Profile } from '../policies/guards/profile.js';
import { runCli } from './helpers/gateway.js';

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

test('(n0), (n) and (s) are phase-1 targets loaded one right after the other', () => {
  const p1 = PHASES.find((p) => p.phase === 1);
  assert.ok(p1 !== undefined);
  const i = p1.targets.indexOf('n0');
  assert.ok(i >= 0);
  assert.deepEqual(p1.targets.slice(i, i + 3), ['n0', 'n', 's']);
  assert.deepEqual(targetsOf('n0,n,s'), ['n0', 'n', 's']);
  assert.equal(resultsBase(['n0', 'n', 's']), 'focused-n0-n-s');
});

test('(r) is a phase-1 target, one process like (n0), and `BENCH_TARGETS=n0,r` is a focused run of the two, written as focused-n0-r', () => {
  const p1 = PHASES.find((p) => p.phase === 1);
  assert.ok(p1 !== undefined);
  assert.equal(p1.workers, 1, 'one process, like (n0)');
  assert.ok(p1.targets.includes('n0') && p1.targets.includes('r'));
  assert.deepEqual(targetsOf('n0,r'), ['n0', 'r']);
  assert.equal(resultsBase(['n0', 'r']), 'focused-n0-r');
  assert.match(LABELS.r, /iris profile \+ drift/);
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

test('(n0), (n), (s), (r): the profile built by `breakwater profile` for the model they serve (with the drift reference); valid configurations that load with it, like (d) but for the profile, (n) and (s) differing from (n0) in guards alone, (r) in drift alone', { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bw-bench-guards-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const backend = prepareModel(dir);
  const profile = await prepareProfile(dir, backend);
  assert.match(profile.summary, /profile of iris version 1 written to .*iris-1\.json/);
  assert.match(profile.summary, /iris\.csv, 150 rows/);
  const p = JSON.parse(readFileSync(profile.file, 'utf8')) as Profile;
  assert.equal(p.model, 'iris');
  assert.ok(p.squeeze !== undefined && p.calibration.squeeze !== undefined, 'the squeezing guard can judge with it');

  const spec = { name: 'x', workers: 1 as const, backend };
  const raw = (guards?: Record<string, unknown>) => parse(gatewayConfig(18000, { ...spec, guarded: { profile: profile.file, ...(guards === undefined ? {} : { guards }) } }, undefined)) as Record<string, unknown> & { models: { iris: Record<string, unknown> } };
  const d = parse(gatewayConfig(18000, spec, undefined)) as Record<string, unknown> & { models: { iris: { versions: Record<string, Record<string, unknown>> } } };
  const [n0, n, s] = [raw(), raw(BENCH_GUARDS.n), raw(BENCH_GUARDS.s)];
  // (r): (n0) plus the drift section alone; the profile holds the drift reference it needs.
  const r = parse(gatewayConfig(18000, { ...spec, guarded: { profile: profile.file, drift: BENCH_DRIFT } }, undefined)) as typeof n0;
  assert.deepEqual({ ...r, models: { iris: { ...r.models.iris, drift: undefined } } }, { ...n0, models: { iris: { ...n0.models.iris, drift: undefined } } });
  assert.deepEqual(r.models.iris.drift, { sampleRate: 1 });
  assert.ok(p.drift !== undefined, 'the profile carries the drift reference');
  assert.equal(buildConfig(r, dir).models.iris?.drift?.sampleRate, 1);
  assert.deepEqual(n0.auth, { insecureNoAuth: true }, 'no identity, like (d)');
  assert.deepEqual(n0.models.iris, { versions: { '1': { ...d.models.iris.versions['1'], profile: profile.file } } }, '(d) plus the profile, no guards');
  const withoutGuards = (c: typeof n0) => ({ ...c, models: { iris: { ...c.models.iris, guards: undefined } } });
  assert.deepEqual(withoutGuards(n), withoutGuards(n0));
  assert.deepEqual(withoutGuards(s), withoutGuards(n0));

  const iris = (c: typeof n0) => buildConfig(c, dir).models.iris;
  assert.equal(iris(n0)?.versions['1']?.profile, profile.file);
  assert.equal(iris(n0)?.guards, undefined);
  assert.deepEqual([iris(n)?.guards?.contract?.mode, iris(n)?.guards?.ood?.mode, iris(n)?.guards?.squeeze?.mode ?? 'off'], ['flag', 'flag', 'off']);
  assert.deepEqual([iris(s)?.guards?.contract?.mode, iris(s)?.guards?.ood?.mode, iris(s)?.guards?.squeeze?.mode, iris(s)?.guards?.squeeze?.sampleRate], ['flag', 'flag', 'flag', 1]);

  // Loaded as serve would: the model with its profile (one that did not fit the model would be refused).
  const runs = await Promise.all(([['n0', n0], ['n', n], ['s', s], ['r', r]] as const).map(([id, c]) => {
    const file = join(dir, `${id}.yaml`);
    const extra = id === 'n0' ? {} : id === 'r' ? { drift: BENCH_DRIFT } : { guards: BENCH_GUARDS[id] };
    writeFileSync(file, gatewayConfig(18000, { ...spec, guarded: { profile: profile.file, ...extra } }, undefined));
    assert.deepEqual(parse(readFileSync(file, 'utf8')), c);
    return runCli(['validate', file], { timeoutMs: 60_000 });
  }));
  for (const run of runs) assert.equal(run.code, 0, run.stderr);
});

test('the input guards\' check: (n)/(n0) CPU per request ≤ 1.10 at 32 connections; the squeezing guard\'s cost per sampled request, (s) − (n), as information', () => {
  const at = (target: TargetId, connections: number, us: number): Summary => ({
    phase: 1, target, label: LABELS[target], connections, rounds: 3, rps: 1000, p50Ms: 1, p99Ms: 2, frontCpuUsPerReq: us, frontCores: 1,
    totalCpuUsPerReq: us, loadgenCpuUsPerReq: 10, completed: 3000, non2xx: 0, errors: 0, timeouts: 0,
  });
  const lines = (n: number) => checks([at('n0', 32, 100), at('n', 32, n), at('s', 32, n + 55.5), at('n0', 1, 200), at('n', 1, 230), at('s', 1, 300)], 2);
  const guard = (c: ReturnType<typeof checks>) => c.filter((x) => x.name.includes('(n)/(n0)'));
  const [pass32, info1] = guard(lines(110));
  assert.ok(pass32 !== undefined && info1 !== undefined);
  assert.match(pass32.name, /32 connections/);
  assert.equal(pass32.pass, true);
  assert.equal(pass32.limit, '≤ 1.10');
  assert.equal(info1.pass, undefined, 'at one connection: information');
  assert.equal(guard(lines(111))[0]?.pass, false);
  const squeeze = lines(110).filter((x) => x.name.includes('(s)/(n)'));
  assert.equal(squeeze.length, 2);
  assert.ok(squeeze.every((x) => x.pass === undefined), 'information, not a check');
  assert.match(squeeze[0]!.explanation, /\+55\.5 µs of CPU per sampled request/);
  assert.match(squeeze[1]!.explanation, /\+70\.0 µs of CPU per sampled request/);
});

test('drift monitoring\'s check: (r)/(n0) CPU per request ≤ 1.05 at 32 connections; at 1 connection information', () => {
  const at = (target: TargetId, connections: number, us: number): Summary => ({
    phase: 1, target, label: LABELS[target], connections, rounds: 3, rps: 1000, p50Ms: 1, p99Ms: 2, frontCpuUsPerReq: us, frontCores: 1,
    totalCpuUsPerReq: us, loadgenCpuUsPerReq: 10, completed: 3000, non2xx: 0, errors: 0, timeouts: 0,
  });
  const drift = (r32: number) => checks([at('n0', 32, 100), at('r', 32, r32), at('n0', 1, 200), at('r', 1, 260)], 2)
    .filter((x) => x.name.includes('(r)/(n0)'));
  const [pass32, info1] = drift(105);
  assert.ok(pass32 !== undefined && info1 !== undefined);
  assert.equal(drift(105).length, 2);
  assert.match(pass32.name, /drift monitoring .* at most 5% CPU per request.*32 connections/);
  assert.equal(pass32.limit, '≤ 1.05');
  assert.equal(pass32.pass, true);
  assert.match(pass32.explanation, /105\.0 vs 100\.0 µs\/req/);
  assert.match(info1.name, /1 connection/);
  assert.equal(info1.pass, undefined, 'at one connection: information, even at 1.30');
  assert.equal(drift(105.1)[0]?.pass, false);
  assert.deepEqual(checks([at('n0', 32, 100), at('n0', 1, 200)], 2).filter((x) => x.name.includes('(r)/(n0)')), [], 'no (r) measured, no check');
});

test('(o0) and (o) are phase-1 targets, one process, loaded one right after the other; `BENCH_TARGETS=o0,o` is a focused run of the two, written as focused-o0-o', () => {
  const p1 = PHASES.find((p) => p.phase === 1);
  assert.ok(p1 !== undefined);
  assert.equal(p1.workers, 1);
  const i = p1.targets.indexOf('o0');
  assert.ok(i >= 0);
  assert.deepEqual(p1.targets.slice(i, i + 2), ['o0', 'o']);
  assert.deepEqual(targetsOf('o0,o'), ['o0', 'o']);
  assert.equal(resultsBase(['o0', 'o']), 'focused-o0-o');
  assert.match(LABELS.o0, /two versions split stable 90 \/ canary 10/);
  assert.match(LABELS.o, /rollout/);
});

test('(o0), (o): two versions with the profile and drift section of (r), split 90 / 10 by the configuration in (o0) and by a rollout with every criterion on in (o), the same arms; valid configurations that load', { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bw-bench-rollout-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const backend = prepareModel(dir);
  const profile = await prepareProfile(dir, backend);
  const spec = { name: 'x', workers: 1 as const, backend };
  const guarded = (canary: { traffic?: Record<string, unknown>; rollout?: Record<string, unknown> }) => ({ ...spec, guarded: { profile: profile.file, drift: BENCH_DRIFT, canary } });
  type Raw = Record<string, unknown> & { models: { iris: Record<string, unknown> & { versions: Record<string, Record<string, unknown>> } } };
  const [o0, o] = [guarded({ traffic: BENCH_SPLIT }), guarded({ rollout: BENCH_ROLLOUT })].map((x) => parse(gatewayConfig(18000, x, undefined)) as Raw);
  const r = parse(gatewayConfig(18000, { ...spec, guarded: { profile: profile.file, drift: BENCH_DRIFT } }, undefined)) as Raw;
  // (o0) and (o) differ in traffic (o0) against rollout (o), nothing else.
  const without = (c: Raw) => ({ ...c, models: { iris: { ...c.models.iris, traffic: undefined, rollout: undefined } } });
  assert.deepEqual(without(o), without(o0));
  assert.equal(o.models.iris.traffic, undefined, 'the rollout sets the routes itself');
  assert.equal(o0.models.iris.rollout, undefined);
  // Both: (r)'s version, twice, stable 1, and (r)'s drift section.
  assert.deepEqual(Object.keys(o0.models.iris.versions).sort(), [BENCH_CANARY.stable, BENCH_CANARY.canary].sort());
  for (const v of [BENCH_CANARY.stable, BENCH_CANARY.canary]) assert.deepEqual(o0.models.iris.versions[v], r.models.iris.versions['1']);
  assert.equal(o0.models.iris.stable, BENCH_CANARY.stable);
  assert.deepEqual(o0.models.iris.drift, r.models.iris.drift);
  assert.deepEqual({ ...without(o0), models: { iris: { ...without(o0).models.iris, versions: undefined, stable: undefined } } },
    { ...r, models: { iris: { ...r.models.iris, versions: undefined, stable: undefined, traffic: undefined, rollout: undefined } } });

  const built0 = buildConfig(o0, dir).models.iris;
  const built = buildConfig(o, dir).models.iris;
  assert.ok(built0 !== undefined && built !== undefined);
  assert.equal(built0.rollout, undefined);
  const ro = built.rollout;
  assert.ok(ro !== undefined);
  assert.deepEqual(Object.keys(ro.criteria).sort(), ['disagreement', 'drift', 'errorRate', 'guards', 'latencyP99'], 'every criterion');
  assert.equal(ro.criteria.disagreement?.budget, DEFAULT_DISAGREEMENT_BUDGET, 'the disagreement sample at its default');
  assert.equal(ro.steps[0]?.weight, BENCH_CANARY.weight);
  assert.equal(ro.steps.at(-1)?.weight, 100);
  assert.ok(ro.steps[0]!.minDurationMs >= 30 * 86_400_000 && ro.steps[0]!.minRequests >= 100_000_000, 'the first step outlasts any run');
  for (const c of [ro.criteria.errorRate, ro.criteria.latencyP99, ro.criteria.guards, ro.criteria.disagreement]) assert.ok((c?.minSamples ?? 0) >= 10_000_000);
  // The routes the rollout sets at its first step are (o0)'s, arm for arm (names, versions, weights).
  const record = started({ id: 'x', model: 'iris', canary: ro.canary, stable: ro.stable ?? built.stable, spec: ro, base: { rules: [] }, source: 'config', specSha256: '', startedAt: 0, startedBy: 'breakwater' }, 'bench');
  assert.deepEqual(routesOf(record).routes, built0.traffic?.routes);

  const runs = await Promise.all(([['o0', o0], ['o', o]] as const).map(([id, c]) => {
    const file = join(dir, `${id}.yaml`);
    writeFileSync(file, gatewayConfig(18000, id === 'o0' ? guarded({ traffic: BENCH_SPLIT }) : guarded({ rollout: BENCH_ROLLOUT }), undefined));
    assert.deepEqual(parse(readFileSync(file, 'utf8')), c);
    return runCli(['validate', file], { timeoutMs: 60_000 });
  }));
  for (const run of runs) assert.equal(run.code, 0, run.stderr);
});

test('the rollout\'s check: (o)/(o0) CPU per request ≤ 1.10 at 32 connections; at 1 connection information', () => {
  const at = (target: TargetId, connections: number, us: number): Summary => ({
    phase: 1, target, label: LABELS[target], connections, rounds: 3, rps: 1000, p50Ms: 1, p99Ms: 2, frontCpuUsPerReq: us, frontCores: 1,
    totalCpuUsPerReq: us, loadgenCpuUsPerReq: 10, completed: 3000, non2xx: 0, errors: 0, timeouts: 0,
  });
  const rollout = (o32: number) => checks([at('o0', 32, 100), at('o', 32, o32), at('o0', 1, 200), at('o', 1, 260)], 2)
    .filter((x) => x.name.includes('(o)/(o0)'));
  const [pass32, info1] = rollout(110);
  assert.ok(pass32 !== undefined && info1 !== undefined);
  assert.equal(rollout(110).length, 2);
  assert.match(pass32.name, /rollout .* at most 10% CPU per request.*32 connections/);
  assert.equal(pass32.limit, '≤ 1.10');
  assert.equal(pass32.pass, true);
  assert.match(pass32.explanation, /110\.0 vs 100\.0 µs\/req/);
  assert.equal(info1.pass, undefined, 'at one connection: information, even at 1.30');
  assert.equal(rollout(110.1)[0]?.pass, false);
  assert.deepEqual(checks([at('o0', 32, 100)], 2).filter((x) => x.name.includes('(o)/(o0)')), [], 'no (o) measured, no check');
});

test('(t0) and (t) are phase-1 targets, one process, loaded one right after the other; `BENCH_TARGETS=t0,t` is a focused run of the two, written as focused-t0-t', () => {
  const p1 = PHASES.find((p) => p.phase === 1);
  assert.ok(p1 !== undefined);
  assert.equal(p1.workers, 1);
  const i = p1.targets.indexOf('t0');
  assert.ok(i >= 0);
  assert.deepEqual(p1.targets.slice(i, i + 2), ['t0', 't']);
  assert.deepEqual(targetsOf('t0,t'), ['t0', 't']);
  assert.equal(resultsBase(['t0', 't']), 'focused-t0-t');
  assert.match(LABELS.t0, /JWT, no audit/);
  assert.match(LABELS.t, /audit trail/);
});

test('(t0), (t): iris in-process with (g0)\'s JWT auth, differing in the audit section alone (a fresh Ed25519 key pair, the defaults otherwise); valid configurations', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bw-bench-audit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const backend = prepareModel(dir);
  const identity = prepareIdentity(dir);
  const audit = prepareAudit(dir);
  const spec = { name: 'x', workers: 1 as const, backend, identity: jwtOnlyConfig(identity) };
  const t0 = parse(gatewayConfig(18000, spec, undefined)) as Record<string, unknown>;
  const tr = parse(gatewayConfig(18000, { ...spec, audit: audit.section }, undefined)) as Record<string, unknown>;
  const g0 = parse(gatewayConfig(18000, { ...spec, backend: { kind: 'oip-http', url: 'http://127.0.0.1:9', model: 'iris' } }, undefined)) as Record<string, unknown>;
  assert.equal(t0.audit, undefined);
  assert.deepEqual({ ...tr, audit: undefined }, { ...t0, audit: undefined }, 'the audit section is the only difference');
  assert.deepEqual(t0.auth, g0.auth, '(g0)\'s JWT auth');
  assert.deepEqual(t0.rateLimits, g0.rateLimits);
  assert.equal(t0.state, undefined, 'the memory store');
  const a = tr.audit as Record<string, unknown>;
  assert.deepEqual(Object.keys(a).sort(), ['dir', 'publicKeyFiles', 'signingKeyFile'], 'the rest at the defaults');
  assert.ok((a.dir as string).startsWith(dir));
  const key = createPrivateKey(readFileSync(a.signingKeyFile as string, 'utf8'));
  assert.equal(key.asymmetricKeyType, 'ed25519');
  const pub = createPublicKey(readFileSync((a.publicKeyFiles as string[])[0] as string, 'utf8'));
  assert.deepEqual(pub.export({ type: 'spki', format: 'der' }), createPublicKey(key).export({ type: 'spki', format: 'der' }), 'the signing key\'s own public key is listed');

  const built = buildConfig(tr, dir);
  assert.ok(built.audit !== undefined);
  assert.equal(built.audit.maxLossMs, AUDIT_DEFAULTS.maxLossMs);
  assert.equal(built.audit.checkpointMs, AUDIT_DEFAULTS.checkpointMs);
  assert.equal(built.audit.predictions, AUDIT_DEFAULTS.predictions);
  assert.equal(buildConfig(t0, dir).audit, undefined);

  const runs = await Promise.all(([['t0', spec], ['t', { ...spec, audit: audit.section }]] as const).map(([id, x]) => {
    const file = join(dir, `${id}.yaml`);
    writeFileSync(file, gatewayConfig(18000, x, undefined));
    return runCli(['validate', file], { timeoutMs: 30_000 });
  }));
  for (const run of runs) assert.equal(run.code, 0, run.stderr);
});

test('the audit trail\'s check: (t)/(t0) CPU per request ≤ 1.10 at 32 connections; at 1 connection information', () => {
  const at = (target: TargetId, connections: number, us: number): Summary => ({
    phase: 1, target, label: LABELS[target], connections, rounds: 3, rps: 1000, p50Ms: 1, p99Ms: 2, frontCpuUsPerReq: us, frontCores: 1,
    totalCpuUsPerReq: us, loadgenCpuUsPerReq: 10, completed: 3000, non2xx: 0, errors: 0, timeouts: 0,
  });
  const audit = (t32: number) => checks([at('t0', 32, 100), at('t', 32, t32), at('t0', 1, 200), at('t', 1, 260)], 2)
    .filter((x) => x.name.includes('(t)/(t0)'));
  const [pass32, info1] = audit(110);
  assert.ok(pass32 !== undefined && info1 !== undefined);
  assert.equal(audit(110).length, 2);
  assert.match(pass32.name, /audit trail .* at most 10% CPU per request.*32 connections/);
  assert.equal(pass32.limit, '≤ 1.10');
  assert.equal(pass32.pass, true);
  assert.match(pass32.explanation, /110\.0 vs 100\.0 µs\/req/);
  assert.equal(info1.pass, undefined, 'at one connection: information, even at 1.30');
  assert.equal(audit(110.1)[0]?.pass, false);
  assert.deepEqual(checks([at('t0', 32, 100)], 2).filter((x) => x.name.includes('(t)/(t0)')), [], 'no (t) measured, no check');
});
