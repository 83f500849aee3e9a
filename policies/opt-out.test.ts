import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildConfig, type GatewayConfig } from '../gateway/config.js';
import { GatewayError } from '../gateway/errors.js';
import { ANONYMOUS } from './authenticate.js';
import { newOutcome, PolicyChain, type ChainOutcome } from './chain.js';
import { createOptOutPolicy, GENERIC_HUMAN_DECISION, REASON_EXPERIMENTS, REASON_FALLBACK } from './opt-out.js';
import { CONTINUE, OPT_OUT, type Decision, type PolicyAction, type PolicyContext } from './policy.js';
import type { Principal } from './principal.js';
import { testContext, viewOf } from './test-context.js';
import { createTrafficPolicy, effectiveTraffic } from './traffic-split.js';

const onnx = { backend: { kind: 'onnx', path: '/abs/m.onnx' } };
const { experiments: E, tracking: T, automatedDecision: A } = OPT_OUT;
const HUMAN = 'write to appeals@example.test to have a person decide';

/**
 * split: stable 2, canary 3 (50/50), a rule to 4, a 100 % shadow to 5; version 1 is an old one no
 * split reaches. fallback: a fallback version. human: no fallback, a humanDecision text. plain:
 * nothing but a stable version.
 */
function config(over: { splitFallback?: string; stable?: string } = {}): GatewayConfig {
  const five = { '1': onnx, '2': onnx, '3': onnx, '4': onnx, '5': onnx };
  return buildConfig({
    auth: { insecureNoAuth: true },
    models: {
      split: {
        versions: five,
        stable: over.stable ?? '2',
        traffic: {
          routes: [{ version: over.stable ?? '2', weight: 50 }, { version: '3', weight: 50, name: 'canary' }],
          rules: [{ name: 'qa', version: '4', header: { name: 'x-qa', equals: '1' } }],
          shadow: { version: '5', percent: 100 },
        },
        ...(over.splitFallback === undefined ? {} : { fallback: { version: over.splitFallback } }),
      },
      fallback: { versions: { '1': onnx, '2': onnx, review: onnx }, stable: '2', fallback: { version: 'review' } },
      human: { versions: { '1': onnx }, fallback: { humanDecision: HUMAN } },
      plain: { versions: { '1': onnx } },
    },
  }, '/');
}

function principal(subject: string): Principal {
  return { subject, tenant: 'acme', scopes: new Set(['predict:*']), expiresAt: Date.now() + 60_000 };
}

/** A registry stand-in: the policy only ever asks bits(subject). */
function registry(entries: Record<string, number>): { bits(subject: string): number; lookups: number } {
  const m = new Map(Object.entries(entries));
  return {
    lookups: 0,
    bits(subject) {
      this.lookups++;
      return m.get(subject) ?? 0;
    },
  };
}

const DEFAULT = config();

/** A request for `model` as served under `over.config` (default: config()); `stable` as mid-reload. */
function ctx(p: Principal | undefined, model: string, over: { pinned?: string; action?: PolicyAction; stable?: string; headers?: Record<string, string>; config?: GatewayConfig } = {}): PolicyContext {
  return testContext(model, {
    principal: p,
    pinnedVersion: over.pinned,
    action: over.action,
    headers: over.headers,
    served: viewOf(over.config ?? DEFAULT, model, over.stable),
  });
}

/** The request phase as the gateway runs it: traffic split, then opt-outs. */
function setup(bits: Record<string, number>, cfg = config()) {
  const traffic = createTrafficPolicy(effectiveTraffic(cfg));
  const optOuts = registry(bits);
  const policy = createOptOutPolicy({ optOuts, experiments: traffic });
  const chain = new PolicyChain([traffic, policy]);
  return {
    traffic,
    optOuts,
    policy,
    decide: (c: PolicyContext): Decision => {
      const d = policy.evaluate(c);
      assert.ok(!(d instanceof Promise), 'opt-outs answer from memory');
      return d;
    },
    /** Runs the chain; returns the outcome, or the GatewayError it was denied with. */
    run(c: PolicyContext): ChainOutcome | GatewayError {
      const out = newOutcome(c);
      try {
        assert.equal(chain.run('request', c, out), undefined, 'synchronous');
      } catch (e) {
        assert.ok(e instanceof GatewayError, String(e));
        return e;
      }
      return out;
    },
  };
}

function outcome(x: ChainOutcome | GatewayError): ChainOutcome {
  assert.ok(!(x instanceof GatewayError), `denied: ${x instanceof GatewayError ? x.message : ''}`);
  return x;
}

/** Subjects the 50/50 split sends to the canary (version 3) and to stable. */
function subjectsByArm(n: number): { canary: string[]; stable: string[] } {
  const { run } = setup({});
  const canary: string[] = [];
  const stable: string[] = [];
  for (let i = 0; i < n; i++) {
    const s = `user-${i}`;
    (outcome(run(ctx(principal(s), 'split'))).version === '3' ? canary : stable).push(s);
  }
  return { canary, stable };
}

test('no principal, the anonymous principal and a subject without opt-outs get the shared CONTINUE, after one lookup at most', () => {
  const { decide, optOuts } = setup({ anonymous: E | T | A });
  assert.equal(decide(ctx(undefined, 'split')), CONTINUE);
  assert.equal(decide(ctx(ANONYMOUS, 'split')), CONTINUE, 'the anonymous principal is everyone: its "subject" opted out of nothing');
  assert.equal(optOuts.lookups, 0, 'no lookup without a subject of its own');
  assert.equal(decide(ctx(principal('alice'), 'split')), CONTINUE);
  assert.equal(decide(ctx(principal('alice'), 'fallback', { pinned: '1' })), CONTINUE);
  assert.equal(optOuts.lookups, 2);
});

test('experiments: every subject of a split model is served by the stable version, without shadow, reason opt-out:experiments', () => {
  const { canary, stable } = subjectsByArm(200);
  assert.ok(canary.length > 50 && stable.length > 50, 'the split sends subjects both ways without the opt-out');
  const { run } = setup(Object.fromEntries([...canary, ...stable].map((s) => [s, E])));
  for (const s of [...canary, ...stable]) {
    const out = outcome(run(ctx(principal(s), 'split')));
    assert.deepEqual([out.version, out.reason, out.shadow, out.optOuts], ['2', REASON_EXPERIMENTS, undefined, E], s);
    const qa = outcome(run(ctx(principal(s), 'split', { headers: { 'x-qa': '1' } })));
    assert.deepEqual([qa.version, qa.reason, qa.shadow], ['2', REASON_EXPERIMENTS, undefined], 'a rule is an experiment too');
  }
  const control = outcome(setup({}).run(ctx(principal(canary[0]), 'split')));
  assert.deepEqual([control.version, control.reason, control.shadow?.version], ['3', 'canary', '5'], 'without the opt-out: canary and shadow');
});

test('experiments: a pinned experimental version is replaced by stable; a pinned version no split reaches is honoured', () => {
  const { run } = setup({ alice: E });
  for (const v of ['3', '4', '5']) {
    const out = outcome(run(ctx(principal('alice'), 'split', { pinned: v })));
    assert.deepEqual([out.version, out.reason, out.optOuts], ['2', REASON_EXPERIMENTS, E], `pinned ${v}`);
  }
  for (const v of ['1', '2']) {
    const out = outcome(run(ctx(principal('alice'), 'split', { pinned: v })));
    assert.deepEqual([out.version, out.reason, out.optOuts], [v, 'pinned', E], `pinned ${v}`);
  }
});

test('experiments: a model without experimental versions is served as asked, the bits still reported', () => {
  const { run, decide } = setup({ alice: E });
  const out = outcome(run(ctx(principal('alice'), 'plain')));
  assert.deepEqual([out.version, out.reason, out.optOuts], ['1', 'stable', E]);
  assert.equal(decide(ctx(principal('alice'), 'plain')), decide(ctx(principal('alice'), 'fallback')), 'one frozen decision per set of bits');
  assert.ok(Object.isFrozen(decide(ctx(principal('alice'), 'plain'))));
});

test('experiments follow the live split: a model that gains a canary at run time routes opted-out subjects to stable', () => {
  const cfg = config();
  const { run, traffic } = setup({ alice: E }, cfg);
  assert.equal(outcome(run(ctx(principal('alice'), 'plain'))).reason, 'stable');
  const plain = { versions: ['1', '2'], stable: '1', traffic: { routes: [{ version: '1', weight: 0 }, { version: '2', weight: 100 }], rules: [] } };
  traffic.update(new Map([...effectiveTraffic(cfg), ['plain', plain]]));
  const out = outcome(run(ctx(principal('alice'), 'plain')));
  assert.deepEqual([out.version, out.reason], ['1', REASON_EXPERIMENTS]);
});

test('tracking: served as split, but never mirrored, the bits reported', () => {
  const { canary } = subjectsByArm(40);
  const { run } = setup(Object.fromEntries(canary.map((s) => [s, T])));
  for (const s of canary) {
    const out = outcome(run(ctx(principal(s), 'split')));
    assert.deepEqual([out.version, out.reason, out.shadow, out.optOuts], ['3', 'canary', undefined, T], s);
  }
});

test('automated-decision: the fallback version serves, even over a pinned version; reason fallback, no shadow', () => {
  const { run } = setup({ alice: A });
  for (const pinned of [undefined, '1', '2']) {
    const out = outcome(run(ctx(principal('alice'), 'fallback', { pinned })));
    assert.deepEqual([out.version, out.reason, out.shadow, out.optOuts], ['review', REASON_FALLBACK, undefined, A], `pinned ${pinned}`);
  }
  const withFallback = config({ splitFallback: '1' });
  const split = outcome(setup({ alice: A }, withFallback).run(ctx(principal('alice'), 'split', { config: withFallback })));
  assert.deepEqual([split.version, split.reason, split.shadow], ['1', REASON_FALLBACK, undefined], 'overrides the split and its shadow');
});

test('automated-decision without a fallback: 403 HUMAN_DECISION_REQUIRED with the model\'s procedure, or a generic one', () => {
  const { run } = setup({ alice: A });
  const human = run(ctx(principal('alice'), 'human'));
  assert.ok(human instanceof GatewayError);
  assert.deepEqual([human.code, human.status, human.detail], ['HUMAN_DECISION_REQUIRED', 403, HUMAN]);
  const generic = run(ctx(principal('alice'), 'split', { pinned: '1' }));
  assert.ok(generic instanceof GatewayError);
  assert.deepEqual([generic.code, generic.detail], ['HUMAN_DECISION_REQUIRED', GENERIC_HUMAN_DECISION]);
});

test('automated-decision does not apply to metadata: reading a model decides nothing', () => {
  const { run } = setup({ alice: A, bob: A | E });
  const out = outcome(run(ctx(principal('alice'), 'human', { action: 'metadata' })));
  assert.deepEqual([out.version, out.optOuts], ['1', A]);
  const fb = outcome(run(ctx(principal('alice'), 'fallback', { action: 'metadata' })));
  assert.deepEqual([fb.version, fb.reason], ['2', 'stable']);
  const both = outcome(run(ctx(principal('bob'), 'split', { action: 'metadata' })));
  assert.deepEqual([both.version, both.reason, both.optOuts], ['2', REASON_EXPERIMENTS, A | E], 'experiments still apply');
});

test('combinations: every set of bits is reported whole; automated-decision comes first, then experiments', () => {
  const { canary } = subjectsByArm(20);
  const s = canary[0];
  const cases: [number, string, string, string | undefined, string][] = [
    // bits, model, version, reason (undefined: denied), what it shows
    [E | T, 'split', '2', REASON_EXPERIMENTS, 'stable, not mirrored'],
    [T | A, 'fallback', 'review', REASON_FALLBACK, 'fallback'],
    [E | A, 'fallback', 'review', REASON_FALLBACK, 'the fallback wins over stable'],
    [E | T | A, 'split', '', undefined, 'no fallback: refused'],
    [E | T | A, 'fallback', 'review', REASON_FALLBACK, 'all three, with a fallback'],
  ];
  for (const [bits, model, version, reason, why] of cases) {
    const r = setup({ [s]: bits }).run(ctx(principal(s), model));
    if (reason === undefined) {
      assert.ok(r instanceof GatewayError && r.code === 'HUMAN_DECISION_REQUIRED', why);
      continue;
    }
    const out = outcome(r);
    assert.deepEqual([out.version, out.reason, out.shadow, out.optOuts], [version, reason, undefined, bits], why);
  }
});

test('an unknown model is left to answer 404: the bits are reported, nothing is routed', () => {
  const { run } = setup({ alice: E | A });
  const out = outcome(run(ctx(principal('alice'), 'nope')));
  assert.deepEqual([out.version, out.reason, out.optOuts], ['', 'stable', E | A]);
});

test('a reload brings new fallbacks and stable versions with the served model, with nothing to update in the policy', () => {
  const { run, traffic } = setup({ alice: A, bob: E });
  assert.ok(run(ctx(principal('alice'), 'split')) instanceof GatewayError);
  const next = config({ splitFallback: '1', stable: '4' });
  traffic.update(effectiveTraffic(next));
  const alice = outcome(run(ctx(principal('alice'), 'split', { config: next })));
  assert.deepEqual([alice.version, alice.reason], ['1', REASON_FALLBACK]);
  const bob = outcome(run(ctx(principal('bob'), 'split', { config: next })));
  assert.deepEqual([bob.version, bob.reason], ['4', REASON_EXPERIMENTS]);
  traffic.update(effectiveTraffic(config()));
  assert.ok(run(ctx(principal('alice'), 'split')) instanceof GatewayError, 'the fallback is gone again: the served model says so');
});

test('the serving table\'s stable version wins over the configuration\'s while they differ (mid-reload)', () => {
  const { run } = setup({ bob: E });
  const out = outcome(run(ctx(principal('bob'), 'split', { stable: '1' })));
  assert.deepEqual([out.version, out.reason], ['1', REASON_EXPERIMENTS]);
});
