import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildConfig, ConfigError, type GatewayConfig } from '../gateway/config.js';
import { CONTINUE, type Decision, type PolicyContext } from './policy.js';
import { testContext, viewOf, type TestContext } from './test-context.js';
import type { Principal } from './principal.js';
import { ANONYMOUS } from './authenticate.js';
import { bucketOf, createTrafficPolicy as createFromModels, effectiveTraffic, type TrafficOptions } from './traffic-split.js';

/** The policy over a configuration's own traffic (no run-time overrides). */
const createTrafficPolicy = (cfg: GatewayConfig, opts?: TrafficOptions) => {
  const p = createFromModels(effectiveTraffic(cfg), opts);
  return { name: p.name, phase: p.phase, evaluate: p.evaluate, update: (next: GatewayConfig) => p.update(effectiveTraffic(next)), experimentalVersions: p.experimentalVersions };
};

const onnx = { backend: { kind: 'onnx', path: '/abs/m.onnx' } };
const VERSIONS = { '1': onnx, '2': onnx, '3': onnx };

function config(traffic: unknown, stable = '2'): GatewayConfig {
  return buildConfig({ auth: { insecureNoAuth: true }, models: { m: { versions: VERSIONS, stable, traffic }, plain: { versions: { '1': onnx } } } }, '/');
}

function problemsOf(traffic: unknown): readonly string[] {
  try {
    config(traffic);
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.problems;
  }
  return assert.fail('expected a ConfigError');
}

function principal(subject: string, tenant?: string, ...scopes: string[]): Principal {
  return { subject, tenant, scopes: new Set(['predict:*', ...scopes]), expiresAt: Date.now() + 60_000 };
}

const SERVED = config({ routes: [{ version: '2', weight: 100 }] });

/** A request for model `m` (or `model`, served unless it is not in the configuration). */
function ctx(p: Principal | undefined, over: Omit<TestContext, 'principal' | 'served'> & { model?: string } = {}): PolicyContext {
  const model = over.model ?? 'm';
  return testContext(model, { ...over, principal: p, served: viewOf(SERVED, model) });
}

type Route = Extract<Decision, { kind: 'route' }>;

function routeOf(d: Decision | Promise<Decision>): Route {
  assert.ok(!(d instanceof Promise), 'the split reads memory only');
  assert.equal(d.kind, 'route');
  return d as Route;
}

const CANARY_10 = { routes: [{ version: '2', weight: 90 }, { version: '3', weight: 10, name: 'canary' }] };
const CANARY_20 = { routes: [{ version: '2', weight: 80 }, { version: '3', weight: 20, name: 'canary' }] };
const N = 100_000;

function shares(traffic: unknown, n: number): Map<string, number> {
  const policy = createTrafficPolicy(config(traffic));
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const r = routeOf(policy.evaluate(ctx(principal(`user-${i}`))));
    counts.set(r.reason, (counts.get(r.reason) ?? 0) + 1);
  }
  return new Map([...counts].map(([k, c]) => [k, (100 * c) / n]));
}

test('is a request-phase policy named traffic', () => {
  const p = createTrafficPolicy(config(CANARY_10));
  assert.equal(p.name, 'traffic');
  assert.equal(p.phase, 'request');
});

test('every subject keeps its arm across repeated evaluations', () => {
  const policy = createTrafficPolicy(config(CANARY_10));
  const again = createTrafficPolicy(config(CANARY_10)); // another replica, same configuration
  for (let i = 0; i < 10_000; i++) {
    const c = ctx(principal(`user-${i}`));
    const first = routeOf(policy.evaluate(c));
    for (let k = 0; k < 100; k++) assert.equal(policy.evaluate(c), first);
    assert.deepEqual(routeOf(again.evaluate(c)), first);
  }
});

test('raising a canary from 10% to 20% moves only stable subjects to the canary, about 10% of them', () => {
  const before = createTrafficPolicy(config(CANARY_10));
  const after = createTrafficPolicy(config(CANARY_20));
  let stableBefore = 0;
  let toCanary = 0;
  let toStable = 0;
  for (let i = 0; i < N; i++) {
    const c = ctx(principal(`user-${i}`));
    const a = routeOf(before.evaluate(c)).version;
    const b = routeOf(after.evaluate(c)).version;
    if (a === '2') stableBefore++;
    if (a === '2' && b === '3') toCanary++;
    if (a === '3' && b === '2') toStable++;
  }
  const moved = (100 * toCanary) / N;
  console.log(`10% → 20%: ${moved.toFixed(2)}% of all subjects moved stable → canary (${((100 * toCanary) / stableBefore).toFixed(2)}% of stable), ${toStable} canary → stable`);
  assert.equal(toStable, 0);
  assert.ok(moved >= 9 && moved <= 11, `moved ${moved}%`);
});

test('each arm gets its weight within one point, for a canary and a three-arm A/B/C split', () => {
  const canary = shares(CANARY_10, N);
  console.log('90/10:', Object.fromEntries(canary));
  assert.ok(Math.abs((canary.get('stable') ?? 0) - 90) <= 1);
  assert.ok(Math.abs((canary.get('canary') ?? 0) - 10) <= 1);
  const abc = shares({ routes: [{ version: '1', weight: 50 }, { version: '2', weight: 30 }, { version: '3', weight: 20 }] }, N);
  console.log('50/30/20:', Object.fromEntries(abc));
  assert.deepEqual([...abc.keys()].sort(), ['arm:1', 'arm:3', 'stable']);
  assert.ok(Math.abs((abc.get('arm:1') ?? 0) - 50) <= 1);
  assert.ok(Math.abs((abc.get('stable') ?? 0) - 30) <= 1);
  assert.ok(Math.abs((abc.get('arm:3') ?? 0) - 20) <= 1);
});

test('an arm of weight 0 gets nothing and an arm of weight 100 everything', () => {
  const all = shares({ routes: [{ version: '3', weight: 0 }, { version: '1', weight: 100 }, { version: '2', weight: 0 }] }, 10_000);
  assert.deepEqual(Object.fromEntries(all), { 'arm:1': 100 });
});

test('rules pin their version by claim or header whatever the bucket, first match first', () => {
  const policy = createTrafficPolicy(
    config({
      routes: [{ version: '2', weight: 100 }],
      rules: [
        { name: 'qa', version: '3', claim: { name: 'tenant', equals: 'qa' } },
        { name: 'testers', version: '1', header: { name: 'x-breakwater-tester', equals: '1' } },
        { name: 'internal', version: '1', claim: { name: 'scope', equals: 'internal' } },
        { name: 'carol', version: '3', claim: { name: 'sub', equals: 'carol' } },
      ],
    }),
  );
  for (let i = 0; i < 1000; i++) {
    assert.deepEqual(routeOf(policy.evaluate(ctx(principal(`u${i}`, 'qa')))), { kind: 'route', version: '3', reason: 'rule:qa' });
    const tester = ctx(principal(`u${i}`, 'acme'), { headers: { 'x-breakwater-tester': '1' } });
    assert.deepEqual(routeOf(policy.evaluate(tester)), { kind: 'route', version: '1', reason: 'rule:testers' });
  }
  // The first matching rule wins.
  assert.equal(routeOf(policy.evaluate(ctx(principal('u', 'qa'), { headers: { 'x-breakwater-tester': '1' } }))).reason, 'rule:qa');
  assert.equal(routeOf(policy.evaluate(ctx(principal('u', 'acme', 'internal')))).reason, 'rule:internal');
  assert.equal(routeOf(policy.evaluate(ctx(principal('carol')))).reason, 'rule:carol');
  // Exact comparison only: no prefix, no case folding.
  assert.equal(routeOf(policy.evaluate(ctx(principal('u', 'qa2')))).reason, 'stable');
  assert.equal(routeOf(policy.evaluate(ctx(principal('u'), { headers: { 'x-breakwater-tester': '11' } }))).reason, 'stable');
  // A claim rule never matches without a principal.
  assert.equal(routeOf(policy.evaluate(ctx(undefined))).reason, 'stable');
});

test('pinned versions, unknown models and models without a split are left alone', () => {
  const policy = createTrafficPolicy(config({ routes: [{ version: '3', weight: 100 }], rules: [{ name: 'qa', version: '1', claim: { name: 'tenant', equals: 'qa' } }] }));
  assert.equal(policy.evaluate(ctx(principal('u', 'qa'), { pinnedVersion: '2' })), CONTINUE);
  assert.equal(policy.evaluate(ctx(principal('u'), { pinnedVersion: '2' })), CONTINUE);
  assert.equal(policy.evaluate(ctx(principal('u'), { model: 'nope' })), CONTINUE);
  assert.equal(policy.evaluate(ctx(principal('u'), { model: 'plain' })), CONTINUE);
});

test('anonymous traffic is split per request, not per subject', () => {
  const policy = createTrafficPolicy(config(CANARY_10));
  // No principal, or the anonymous principal of auth.insecureNoAuth (the object itself, not a name).
  for (const p of [undefined, ANONYMOUS]) {
    const c = ctx(p);
    let canary = 0;
    for (let i = 0; i < 10_000; i++) if (routeOf(policy.evaluate(c)).version === '3') canary++;
    assert.ok(canary > 800 && canary < 1200, `canary ${canary} of 10,000`);
  }
});

test('buckets depend on the model as well as the subject', () => {
  let same = 0;
  for (let i = 0; i < 10_000; i++) if (bucketOf('a', `user-${i}`) === bucketOf('b', `user-${i}`)) same++;
  assert.ok(same < 10, `${same} subjects share a bucket across models`);
});

test('route reasons: the name if given, `stable` for the stable version, else arm:<version>', () => {
  const policy = createTrafficPolicy(config({ routes: [{ version: '2', weight: 100, name: 'control' }] }));
  assert.equal(routeOf(policy.evaluate(ctx(principal('u')))).reason, 'control');
  const other = createTrafficPolicy(config({ routes: [{ version: '3', weight: 100 }] }));
  assert.deepEqual(routeOf(other.evaluate(ctx(principal('u')))), { kind: 'route', version: '3', reason: 'arm:3' });
});

test('a split is checked when the configuration is built, with paths', () => {
  assert.deepEqual(problemsOf({ routes: [{ version: '2', weight: 90 }, { version: '3', weight: 20 }] }), [
    'models.m.traffic.routes: weights must sum to 100 (they sum to 110)',
  ]);
  assert.deepEqual(problemsOf({ routes: [{ version: '2', weight: 90 }, { version: '7', weight: 10 }] }), [
    'models.m.traffic.routes.1.version: version "7" is not among its versions (1, 2, 3)',
  ]);
  assert.deepEqual(
    problemsOf({
      routes: [{ version: '2', weight: 100 }],
      rules: [
        { name: 'both', version: '3', claim: { name: 'tenant', equals: 'qa' }, header: { name: 'x-t', equals: '1' } },
        { name: 'neither', version: '9' },
        { name: 'both', version: '3', header: { name: 'x-t', equals: '1' } },
      ],
    }),
    [
      'models.m.traffic.rules.0: give exactly one of claim, header',
      'models.m.traffic.rules.1.version: version "9" is not among its versions (1, 2, 3)',
      'models.m.traffic.rules.1: give exactly one of claim, header',
      'models.m.traffic.rules.2.name: "both" is used by an earlier rule',
    ],
  );
  const schema = problemsOf({
    routes: [{ version: '2', weight: 99.5 }, { version: '3', weight: -1 }],
    rules: [{ name: 'h', version: '3', header: { name: 'X-Tester', equals: '1' } }, { name: 'c', version: '3', claim: { name: 'email', equals: 'a' } }],
  });
  assert.ok(schema.includes('models.m.traffic.routes.0.weight: must be integer'), schema.join('\n'));
  assert.ok(schema.includes('models.m.traffic.routes.1.weight: must be >= 0'), schema.join('\n'));
  assert.ok(schema.some((p) => p.startsWith('models.m.traffic.rules.0.header.name: must match pattern')), schema.join('\n'));
  assert.ok(schema.includes('models.m.traffic.rules.1.claim.name: must be one of ["sub","tenant","scope"]'), schema.join('\n'));
  assert.deepEqual(problemsOf({ routes: [] }), ['models.m.traffic.routes: must NOT have fewer than 1 items']);
});

test('without a split the configuration has no traffic and rules default to none', () => {
  const cfg = buildConfig({ auth: { insecureNoAuth: true }, models: { m: { versions: VERSIONS } } }, '/');
  assert.equal(cfg.models.m?.traffic, undefined);
  assert.deepEqual(config({ routes: [{ version: '2', weight: 100 }] }).models.m?.traffic?.rules, []);
});

test('a reloaded configuration replaces the split whole, and can add or remove one', () => {
  const policy = createTrafficPolicy(config({ routes: [{ version: '2', weight: 100 }] }));
  const alice = ctx(principal('alice'));
  assert.equal(routeOf(policy.evaluate(alice)).version, '2');
  policy.update(config({ routes: [{ version: '3', weight: 100, name: 'canary' }] }));
  assert.deepEqual(routeOf(policy.evaluate(alice)), { kind: 'route', version: '3', reason: 'canary' });
  policy.update(config(undefined));
  assert.equal(policy.evaluate(alice), CONTINUE, 'no split any more: the stable version serves');
});

test('a token whose subject is literally "anonymous" is still sticky', () => {
  const policy = createTrafficPolicy(config({ routes: [{ version: '2', weight: 50 }, { version: '3', weight: 50 }] }));
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) seen.add(routeOf(policy.evaluate(ctx(principal('anonymous')))).version);
  assert.equal(seen.size, 1);
});
