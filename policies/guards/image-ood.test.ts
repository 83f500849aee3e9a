import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ASSETS } from '../../test/helpers/assets.js';
import { compileImage, fitImageOod, IMAGE_OOD_FOLDS, imageScore } from './image-ood.js';
import { knnMeanDistance, knnReference } from './knn.js';
import type { ImageOod } from './profile.js';

const D = 784;
const SHAPE = [1, 28, 28];
/** 100 real digits (10 of each), in an order that mixes the classes. */
const DIGITS: Float64Array[] = (() => {
  const { samples } = JSON.parse(readFileSync(join(ASSETS, 'datasets/mnist-samples-100.json'), 'utf8')) as { samples: { pixels: number[] }[] };
  return samples.map((s, i) => ({ s, key: (i * 37) % 100 })).sort((a, b) => a.key - b.key).map(({ s }) => Float64Array.from(s.pixels));
})();

const stack = (rows: readonly Float64Array[]): Float64Array => {
  const out = new Float64Array(rows.length * D);
  rows.forEach((r, i) => out.set(r, i * D));
  return out;
};

/** The served score of `x` by a part fitted on `rows`, through the compiled path the request path uses. */
function served(image: ImageOod, rows: readonly Float64Array[], x: Float64Array): number {
  const distance = knnMeanDistance(x, knnReference(stack(rows), rows.length, D, 5));
  return imageScore(compileImage(image, 5), x, distance);
}

test('cross-fitting: each row\'s calibration score is what a detector fitted without its fold gives it when served', () => {
  const { scores } = fitImageOod(SHAPE, stack(DIGITS), DIGITS.length, D, 5);
  assert.equal(scores.length, 100);
  assert.ok(scores.every((s) => Number.isFinite(s) && s >= 0));
  for (const fold of [0, 3]) {
    const kept = DIGITS.filter((_, i) => i % IMAGE_OOD_FOLDS !== fold);
    const { image } = fitImageOod(SHAPE, stack(kept), kept.length, D, 5);
    for (let r = fold; r < 100; r += 20) {
      assert.ok(Math.abs(served(image, kept, DIGITS[r]) - scores[r]) < 1e-6 * (1 + scores[r]), `row ${r}: served ${served(image, kept, DIGITS[r])}, cross-fitted ${scores[r]}`);
    }
  }
});

test('blank, grey, inverted, noisy, misplaced, a filled box: each far above every digit\'s cross-fitted score', () => {
  const { image, scores } = fitImageOod(SHAPE, stack(DIGITS), DIGITS.length, D, 5);
  const worst = Math.max(...scores);
  const digit = DIGITS[0];
  const probes: Record<string, Float64Array> = {
    blank: new Float64Array(D),
    grey: new Float64Array(D).fill(0.3),
    inverted: digit.map((v) => 1 - v),
    noisy: digit.map((v, i) => Math.min(1, Math.max(0, v + (((i * 7919) % 101) / 101 - 0.5)))),
    misplaced: digit.map((_, i) => (i % 28 >= 8 ? digit[i - 8] : 0)), // moved 8 pixels right
    box: Float64Array.from({ length: D }, (_, i) => (Math.floor(i / 28) >= 6 && Math.floor(i / 28) < 22 && i % 28 >= 8 && i % 28 < 20 ? 1 : 0)),
  };
  for (const [name, x] of Object.entries(probes)) {
    const s = served(image, DIGITS, x);
    assert.ok(s > worst + 5, `${name}: ${s.toFixed(1)} vs the digits' worst ${worst.toFixed(1)}`);
  }
});

test('the fitted part: the reference range, one edge descriptor per row, the statistics named; JSON scores the same', () => {
  const { image } = fitImageOod(SHAPE, stack(DIGITS), DIGITS.length, D, 5);
  assert.deepEqual([image.low, image.high, image.rowShape], [0, 1, SHAPE]);
  assert.equal(image.edges.reference.length, 100 * 128);
  assert.equal(image.stats.names.length, image.stats.center.length);
  assert.equal(image.pixelTail.scores.length, 100);
  const x = DIGITS[5].map((v, i) => (i % 28 > 0 ? DIGITS[5][i - 1] : 0)); // moved one pixel right
  const json = JSON.parse(JSON.stringify(image)) as ImageOod;
  assert.equal(served(json, DIGITS, x), served(image, DIGITS, x));
  assert.throws(() => fitImageOod([1, 28, 27], stack(DIGITS), 100, D, 5), /has 756 values, not 784/);
});
