import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { InferRequest, InferResponse } from '../../adapters/adapter.js';
import { OnnxAdapter } from '../../adapters/onnx.js';
import { ASSETS } from '../../test/helpers/assets.js';
import type { SqueezeProfile } from './profile.js';
import { bitDepth, median, squeezeFired, squeezeRequests, squeezeScores } from './squeeze.js';

function close(actual: ArrayLike<number>, expected: readonly number[], eps = 1e-9): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= eps, `[${i}] ${actual[i]} vs ${expected[i]}`);
}

describe('bit-depth squeezer', () => {
  it('1 bit over [0, 1] binarises, clamping values outside the range', () => {
    const out = new Float64Array(5);
    bitDepth([0.2, 0.49, 0.7, -1, 2], 0, 5, 1, 0, 1, out, 0);
    close(out, [0, 0, 1, 0, 1]);
  });

  it('3 bits over [-1, 1]: 8 levels 2/7 apart', () => {
    const out = new Float64Array(3);
    bitDepth(new Float32Array([0.1, -0.9, 1]), 0, 3, 3, -1, 1, out, 0);
    // 0.1 → level round(0.55·7)=4 → −1 + 8/7; −0.9 → level round(0.05·7)=0 → −1; 1 → level 7 → 1.
    close(out, [-1 + 8 / 7, -1, 1], 1e-7);
  });
});

describe('median squeezer', () => {
  it('3×3 with edges replicated: a corner takes the median of its replicated window', () => {
    const img = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    const out = new Float64Array(9);
    median(img, 0, 9, 3, 3, 3, out, 0, new Float64Array(9));
    // (0,0): window 1 1 2 / 1 1 2 / 4 4 5 → sorted 1 1 1 1 2 2 4 4 5 → 2. Centre: 1…9 → 5.
    // (0,1): 1 2 3 / 1 2 3 / 4 5 6 → 3. (1,0): 1 1 2 / 4 4 5 / 7 7 8 → 4. (2,2): 5 6 6 / 8 9 9 / 8 9 9 → 8.
    close(out, [2, 3, 3, 4, 5, 6, 7, 7, 8]);
  });

  it('removes an isolated spike and keeps a flat region', () => {
    const img = new Float32Array(16);
    img[5] = 9;
    const out = new Float64Array(16);
    median(img, 0, 16, 4, 4, 3, out, 0, new Float64Array(9));
    close(out, new Array(16).fill(0));
  });

  it('2×2 takes the upper middle value over offsets −1…0 (scipy\'s size=2)', () => {
    const img = [1, 4, 2, 8];
    const out = new Float64Array(4);
    median(img, 0, 4, 2, 2, 2, out, 0, new Float64Array(4));
    // (0,0): all four replicate (0,0) → 1. (0,1): 1 4 1 4 → sorted 1 1 4 4 → rank 2 → 4.
    // (1,0): 1 1 2 2 → 2. (1,1): 1 4 2 8 → 1 2 4 8 → 4.
    close(out, [1, 4, 2, 4]);
  });

  it('filters each image of a batch on its own', () => {
    const out = new Float64Array(8);
    median([0, 0, 0, 9, 5, 5, 5, 5], 0, 8, 2, 2, 3, out, 0, new Float64Array(9));
    close(out, [0, 0, 0, 0, 5, 5, 5, 5]);
  });
});

const IRIS_SQ: SqueezeProfile = {
  output: 'output', logits: true,
  squeezers: [{ kind: 'bit-depth', input: 'input', bits: 1, min: 0, max: 10 }, { kind: 'bit-depth', input: 'input', bits: 2, min: 0, max: 3 }],
};

describe('squeezeRequests', () => {
  const request: InferRequest = {
    inputs: [
      { name: 'input', datatype: 'FP32', shape: [2, 2], data: [1, 6, 2.6, 1.2] },
      { name: 'other', datatype: 'BYTES', shape: [2, 1], data: ['a', 'b'] },
    ],
    outputs: [{ name: 'label' }],
    rawJson: Buffer.from('{}'),
  };

  it('dynamic batch: one request, every squeezer\'s copy of every row, squeezer-major; untouched inputs repeated', () => {
    const [r, ...more] = squeezeRequests(IRIS_SQ, request, true);
    assert.equal(more.length, 0);
    assert.equal(r.rawJson, undefined, 'the original bytes are never forwarded for a changed request');
    assert.deepEqual(r.outputs, [{ name: 'output' }]);
    const input = r.inputs[0];
    assert.deepEqual(input.shape, [4, 2]);
    assert.ok(input.data instanceof Float32Array);
    // 1 bit over [0,10]: 1→0, 6→10, 2.6→0, 1.2→0. 2 bits over [0,3]: 1→1, 6→3, 2.6→3, 1.2→1.
    close(input.data as Float32Array, [0, 10, 0, 0, 1, 3, 3, 1]);
    assert.deepEqual(r.inputs[1], { name: 'other', datatype: 'BYTES', shape: [4, 1], data: ['a', 'b', 'a', 'b'] });
  });

  it('fixed batch: one request per squeezer, each with the original shapes', () => {
    const rs = squeezeRequests(IRIS_SQ, request, false);
    assert.equal(rs.length, 2);
    close(rs[0].inputs[0].data as Float32Array, [0, 10, 0, 0]);
    close(rs[1].inputs[0].data as Float32Array, [1, 3, 3, 1]);
    assert.deepEqual(rs[1].inputs[0].shape, [2, 2]);
    assert.equal(rs[1].inputs[1], request.inputs[1]);
  });

  it('integer inputs get whole numbers (UINT8 image, 4 bits over [0, 255]: multiples of 17)', () => {
    const sq: SqueezeProfile = { output: 'o', logits: false, squeezers: [{ kind: 'bit-depth', input: 'img', bits: 4, min: 0, max: 255 }] };
    const [r] = squeezeRequests(sq, { inputs: [{ name: 'img', datatype: 'UINT8', shape: [1, 1, 2, 2], data: new Uint8Array([0, 20, 130, 255]) }] }, true);
    assert.deepEqual(r.inputs[0].data, [0, 17, 136, 255]);
  });

  it('refuses what it cannot squeeze', () => {
    const sq: SqueezeProfile = { output: 'o', logits: false, squeezers: [{ kind: 'median', input: 'x', size: 2 }] };
    assert.throws(() => squeezeRequests(sq, { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], data: new Float32Array(8) }] }, true), /needs an image input/);
    assert.throws(() => squeezeRequests(sq, { inputs: [{ name: 'x', datatype: 'BYTES', shape: [1, 1, 1, 1], data: ['a'] }] }, true), /FP32, FP64 and integer/);
    assert.throws(() => squeezeRequests(sq, { inputs: [{ name: 'y', datatype: 'FP32', shape: [1, 1, 1, 1], data: [0] }] }, true), /no input "x"/);
  });
});

describe('squeezeScores', () => {
  const ln3 = Math.log(3);
  const answer = (data: number[], rows: number): InferResponse => ({ outputs: [{ name: 'output', datatype: 'FP32', shape: [rows, data.length / rows], data }] });

  /** Scores squeezer by squeezer, row by row. */
  const each = (scores: Float64Array[]): number[][] => scores.map((s) => [...s]);

  it('softmax of logits, then the L1 distance per squeezer and row (hand-computed)', () => {
    // Row 0: original [0, ln3] → [0.25, 0.75]; squeezer 1 [0, 0] → [0.5, 0.5] (L1 0.5); squeezer 2 [ln3, 0] → [0.75, 0.25] (L1 1).
    // Row 1: original [0, 0] → [0.5, 0.5]; squeezer 1 [0, 0] (L1 0); squeezer 2 [0, ln3] → [0.25, 0.75] (L1 0.5).
    const original = answer([0, ln3, 0, 0], 2);
    const batched = answer([0, 0, 0, 0, ln3, 0, 0, ln3], 4);
    const scores = squeezeScores(IRIS_SQ, original, [batched], 2);
    assert.equal(scores.length, 2);
    close(scores[0], [0.5, 0], 1e-12);
    close(scores[1], [1, 0.5], 1e-12);
    // The same answers split per squeezer give the same scores.
    assert.deepEqual(each(squeezeScores(IRIS_SQ, original, [answer([0, 0, 0, 0], 2), answer([ln3, 0, 0, ln3], 2)], 2)), each(scores));
  });

  it('probabilities are compared as given when the output is not logits', () => {
    const sq = { ...IRIS_SQ, logits: false };
    const [a, b] = squeezeScores(sq, answer([0.9, 0.1], 1), [answer([0.6, 0.4], 1), answer([0.8, 0.2], 1)], 1);
    close(a, [0.6], 1e-12);
    close(b, [0.2], 1e-12);
  });

  it('a NaN answer is the largest disagreement; a missing output or row is an error', () => {
    assert.deepEqual(each(squeezeScores({ ...IRIS_SQ, logits: false }, answer([0.9, 0.1], 1), [answer([Number.NaN, 0.4], 1), answer([0.9, 0.1], 1)], 1)), [[2], [0]]);
    assert.throws(() => squeezeScores(IRIS_SQ, { outputs: [] }, [], 1), /no output "output"/);
    assert.throws(() => squeezeScores(IRIS_SQ, answer([0, 0], 1), [answer([0, 0], 1)], 1), /expected 2 squeezed rows, the answers hold 1/);
    assert.throws(() => squeezeScores(IRIS_SQ, answer([0, 0], 1), [answer([0, 0, 0], 1), answer([0, 0, 0], 1)], 1), /expected 2 squeezed rows, the answers hold 3/);
  });
});

describe('squeezeFired', () => {
  const scores = [Float64Array.of(0.1, 0.4), Float64Array.of(0.9, 0.2)];

  it('fires when any row\'s score under any squeezer is above that squeezer\'s own threshold', () => {
    assert.equal(squeezeFired(scores, [0.5, 1]), false, '0.9 is below the second squeezer\'s threshold of 1');
    assert.equal(squeezeFired(scores, [0.3, 1]), true, 'row 1 under the first squeezer: 0.4 > 0.3');
    assert.equal(squeezeFired(scores, [0.5, 0.85]), true, 'row 0 under the second squeezer: 0.9 > 0.85');
    assert.equal(squeezeFired(scores, [0.4, 0.9]), false, 'a score equal to its threshold does not fire');
  });

  it('refuses thresholds that do not match the squeezers', () => {
    assert.throws(() => squeezeFired(scores, [0.5]), /2 squeezers, 1 thresholds/);
  });
});

describe('squeezing the real iris model (dynamic batch): one batched call', () => {
  const adapter = new OnnxAdapter({
    kind: 'onnx', path: join(ASSETS, 'models/iris_mlp_dynamic.onnx'), intraOpThreads: 1, interOpThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
  });
  after(() => adapter.close());
  const sq: SqueezeProfile = {
    output: 'output', logits: true,
    squeezers: [{ kind: 'bit-depth', input: 'input', bits: 3, min: 0, max: 8 }, { kind: 'bit-depth', input: 'input', bits: 5, min: 0, max: 8 }],
  };
  const opts = () => ({ deadline: Date.now() + 10_000, requestId: 'squeeze-test' });

  it('the squeezer-major batch gives the same scores as one request per squeezer', async () => {
    await adapter.load();
    // iris.csv Id 1, 51, 101, and a versicolor/virginica border row (Id 71).
    const request: InferRequest = { inputs: [{ name: 'input', datatype: 'FP32', shape: [4, 4], data: new Float32Array([5.1, 3.5, 1.4, 0.2, 7.0, 3.2, 4.7, 1.4, 6.3, 3.3, 6.0, 2.5, 5.9, 3.2, 4.8, 1.8]) }] };
    const original = await adapter.infer(request, opts());
    const batched = squeezeRequests(sq, request, true);
    assert.equal(batched.length, 1);
    assert.deepEqual(batched[0].inputs[0].shape, [8, 4]);
    const together = squeezeScores(sq, original, [await adapter.infer(batched[0], opts())], 4);
    const apart = squeezeScores(sq, original, await Promise.all(squeezeRequests(sq, request, false).map((r) => adapter.infer(r, opts()))), 4);
    together.forEach((s, k) => close(s, [...apart[k]], 1e-6));
    for (const s of together) for (const x of s) assert.ok(x >= 0 && x <= 2);
    // 3 bits over [0, 8] moves values by up to 0.57 cm: the border row moves most (either squeezer).
    const largest = [0, 1, 2, 3].map((r) => Math.max(together[0][r], together[1][r]));
    console.log(`iris squeeze scores (the larger of the two squeezers'): ${largest.map((x) => x.toFixed(3)).join(', ')}`);
    assert.equal(largest.indexOf(Math.max(...largest)), 3, `scores ${largest.map((x) => x.toFixed(3)).join(', ')}`);
  });
});

describe('squeezing the real MNIST model (fixed batch 1) on real digits', () => {
  interface Digit { label: number; pixels: number[] }
  const digits = (JSON.parse(readFileSync(join(ASSETS, 'datasets/mnist-samples-100.json'), 'utf8')) as { samples: Digit[] }).samples;
  const adapter = new OnnxAdapter({
    kind: 'onnx', path: join(ASSETS, 'models/mnist_cntk_opset7.onnx'), intraOpThreads: 1, interOpThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
  });
  after(() => adapter.close());
  // Xu et al.'s squeezers for MNIST: 1-bit depth and a 2×2 median filter.
  const sq: SqueezeProfile = {
    output: 'Plus214_Output_0', logits: true,
    squeezers: [{ kind: 'bit-depth', input: 'Input3', bits: 1, min: 0, max: 1 }, { kind: 'median', input: 'Input3', size: 2 }],
  };
  const opts = () => ({ deadline: Date.now() + 10_000, requestId: 'squeeze-test' });

  /** The larger of the two squeezers' scores. */
  async function score(pixels: ArrayLike<number>): Promise<number> {
    const request: InferRequest = { inputs: [{ name: 'Input3', datatype: 'FP32', shape: [1, 1, 28, 28], data: Float32Array.from(pixels) }] };
    const original = await adapter.infer(request, opts());
    const squeezed = await Promise.all(squeezeRequests(sq, request, false).map((r) => adapter.infer(r, opts())));
    return Math.max(...squeezeScores(sq, original, squeezed, 1).map((s) => s[0]));
  }

  /** ±0.3 on every pixel with a random sign (seeded), clipped to [0, 1]. */
  function noisy(pixels: readonly number[], seed: number): Float32Array {
    let s = seed >>> 0;
    return Float32Array.from(pixels, (p) => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return Math.min(1, Math.max(0, p + (s & 0x10000 ? 0.3 : -0.3)));
    });
  }

  it('clean digits score low; the same digits with ±0.3 sign noise score clearly higher', async () => {
    await adapter.load();
    assert.equal(adapter.metadata().inputs[0].shape[0], 1, 'the model\'s batch is fixed: one request per squeezer');
    const clean: number[] = [];
    const noise: number[] = [];
    for (const [i, d] of digits.entries()) {
      clean.push(await score(d.pixels));
      noise.push(await score(noisy(d.pixels, i + 1)));
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const sorted = [...clean].sort((a, b) => a - b);
    const median = sorted[sorted.length >> 1];
    const higher = noise.filter((n, i) => n > clean[i]).length;
    console.log(`MNIST squeeze scores over ${digits.length} digits: clean mean ${mean(clean).toFixed(3)} (median ${median.toFixed(3)}), noisy mean ${mean(noise).toFixed(3)}; noisy above clean for ${higher}`);
    assert.ok(mean(clean) < 0.25, `clean mean ${mean(clean)}`);
    assert.ok(mean(noise) > 2 * mean(clean), `noisy mean ${mean(noise)} vs clean ${mean(clean)}`);
    assert.ok(higher >= 80, `noisy above clean for ${higher} of 100 digits`);
  });
});
