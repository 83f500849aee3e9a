/**
 * The squeezing guard's decisions around its inference: sampling, the borderline gate, the
 * threshold, the deadline it passes, and a failure reported as `error`. The model is a function of
 * the request here (two classes, logits = ±(mean of the input)), so squeezed copies really change
 * the answer; the end-to-end run on the real MNIST model is in test/guards.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InferRequest, InferResponse } from '../../adapters/adapter.js';
import type { GuardsConfig } from '../../gateway/config.js';
import type { GuardOutcome } from './guard-events.js';
import type { Profile } from './profile.js';
import { SqueezeGuard, type SqueezeCall } from './squeeze-guard.js';

/** Logits [m, -m] per row, m = the row's mean: a 1-bit squeeze of values near 0.5 moves them far. */
function model(req: InferRequest): InferResponse {
  const t = req.inputs[0]!;
  const rows = t.shape[0]!;
  const width = (t.data as Float32Array).length / rows;
  const out = new Float32Array(rows * 2);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let j = 0; j < width; j++) m += (t.data as Float32Array)[r * width + j]! - 0.5;
    out[2 * r] = (m / width) * 8;
    out[2 * r + 1] = -(m / width) * 8;
  }
  return { outputs: [{ name: 'y', datatype: 'FP32', shape: [rows, 2], data: out }] };
}

const profile = {
  squeeze: { output: 'y', logits: true, squeezers: [{ kind: 'bit-depth', input: 'x', bits: 1, min: 0, max: 1 }] },
  calibration: { squeeze: [0.5] },
} as unknown as Profile;

function call(values: number[], guards: Partial<GuardsConfig['squeeze']>, run?: SqueezeCall['run'], withProfile: Profile = profile): SqueezeCall & { deadlines: number[] } {
  const request: InferRequest = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, values.length], data: Float32Array.from(values) }] };
  const deadlines: number[] = [];
  return {
    model: 'm', version: '1', profile: withProfile, request, answer: model(request), batchDynamic: true, deadline: Date.now() + 5000,
    guards: { targetFpr: 0.01, failClosed: false, timeoutMs: 100, squeeze: { mode: 'flag', sampleRate: 1, borderline: 0, ...guards } } as GuardsConfig,
    deadlines,
    run: run ?? (async (r, by) => {
      deadlines.push(by);
      return model(r);
    }),
  };
}

function guard(random = () => 0): { g: SqueezeGuard; seen: GuardOutcome[] } {
  const seen: GuardOutcome[] = [];
  return { g: new SqueezeGuard({ events: { outcome: (_m, _v, _g, o) => void seen.push(o) }, random }), seen };
}

test('an answer that squeezing overturns fires in the guard\'s mode; one it keeps passes', async () => {
  const { g, seen } = guard();
  // 0.9 everywhere: class 0 (p ≈ 0.96); squeezed to 1: class 0 (p ≈ 0.98). L1 ≈ 0.04: kept.
  assert.equal(await g.judge(call([0.9, 0.9, 0.9, 0.9], {})), 'pass');
  // Three values just above 0.5, one below: weakly class 1 (p ≈ 0.57); squeezed to 1, 1, 1, 0:
  // class 0 (p ≈ 0.98). L1 ≈ 1.1, above the threshold 0.5.
  assert.equal(await g.judge(call([0.51, 0.51, 0.51, 0.4], { mode: 'reject' })), 'reject');
  assert.deepEqual(seen, ['pass', 'reject']);
});

test('each squeezer is held to its own threshold', async () => {
  const { g } = guard();
  // [0.51, 0.51, 0.51, 0.4]: 1 bit moves the answer by L1 ≈ 1.1 (above); 2 bits (0.51 → 2/3,
  // 0.4 → 1/3) by L1 ≈ 0.72.
  const two = (thresholds: number[]): Profile => ({
    squeeze: { output: 'y', logits: true, squeezers: [{ kind: 'bit-depth', input: 'x', bits: 1, min: 0, max: 1 }, { kind: 'bit-depth', input: 'x', bits: 2, min: 0, max: 1 }] },
    calibration: { squeeze: thresholds },
  }) as unknown as Profile;
  const row = [0.51, 0.51, 0.51, 0.4];
  assert.equal(await g.judge(call(row, {}, undefined, two([2, 0.5]))), 'flag', 'the 2-bit squeezer is above its 0.5');
  assert.equal(await g.judge(call(row, {}, undefined, two([2, 0.8]))), 'pass', 'neither is above its own');
  assert.equal(await g.judge(call(row, {}, undefined, two([1, 2]))), 'flag', 'the 1-bit squeezer is above its 1');
});

test('the extra inference is bounded by timeoutMs, never beyond the request\'s deadline', async () => {
  const { g } = guard();
  const c = call([0.9, 0.9], {});
  const before = Date.now();
  await g.judge(c);
  assert.ok(c.deadlines[0]! <= before + 100 + 5 && c.deadlines[0]! <= c.deadline);
});

test('not sampled: skipped without inference; borderline > 0: only answers closer than it are judged', async () => {
  const { g } = guard(() => 0.7);
  let ran = 0;
  const counting: SqueezeCall['run'] = async (r) => {
    ran++;
    return model(r);
  };
  assert.equal(await g.judge(call([0.51, 0.51, 0.51, 0.4], { sampleRate: 0.5 }, counting)), 'skipped');
  assert.equal(ran, 0);
  // A confident answer (mean 0.4 above 0.5: probabilities ~0.96/0.04) is not borderline at 0.5.
  assert.equal(await g.judge(call([0.9, 0.9, 0.9, 0.9], { borderline: 0.5 }, counting)), 'skipped');
  assert.equal(ran, 0);
  assert.equal(await g.judge(call([0.51, 0.51, 0.51, 0.4], { borderline: 0.5 }, counting)), 'flag');
  assert.equal(ran, 1);
});

test('a failing inference is an error outcome, reported to onError, never thrown', async () => {
  const errors: unknown[] = [];
  const g = new SqueezeGuard({ events: { outcome: () => undefined }, onError: (_m, e) => void errors.push(e) });
  const failing: SqueezeCall['run'] = async () => {
    throw new Error('backend down');
  };
  assert.equal(await g.judge(call([0.5], {}, failing)), 'error');
  assert.equal(errors.length, 1);
});
