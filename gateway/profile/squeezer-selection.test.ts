import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Squeezer } from '../../policies/guards/profile.js';
import { calibrateThreshold } from '../../policies/guards/calibrate.js';
import { MAX_CLEAN_SCORE, selectionMethod, selectSqueezers, sharedThresholds, squeezerName } from './squeezer-selection.js';

/** n clean scores: mostly tiny, with `high` of them at `value` (answers the squeezer moved). */
function cleanScores(n: number, high: number, value: number): number[] {
  return Array.from({ length: n }, (_, i) => (i < high ? value : 0.001 * ((i * 37) % 100) / 100));
}

test('selectSqueezers: a squeezer that moves more than targetFpr of clean answers as far as MAX_CLEAN_SCORE is left out', () => {
  assert.equal(MAX_CLEAN_SCORE, 1);
  const gentle = cleanScores(500, 3, 0.8); // 0.6 % of rows moved, to 0.8
  const fine = cleanScores(500, 3, 0.4).reverse(); // other rows than gentle's
  const harsh = cleanScores(500, 12, 1.5); // 2.4 % of rows flipped to another class
  const choice = selectSqueezers([gentle, fine, harsh], 0.01);
  assert.deepEqual(choice.kept, [0, 1]);
  assert.ok(choice.alone[2] >= 1, `harsh alone ${choice.alone[2]}`);
  assert.ok(choice.alone[0] < 1 && choice.alone[1] < 1);
  // At 1 % each would flag its 3 moved rows, 6 of 500 in all: (6 + 1)/501 > 1 %. The common rate
  // falls until neither does (rate 0.6 %: the 3rd largest score of each is the order statistic).
  assert.deepEqual(choice.thresholds, [0.8, 0.4]);
  assert.ok(choice.rate > 0.005 && choice.rate <= 0.006, `rate ${choice.rate}`);
});

/** Clean rows the thresholds flag under any squeezer. */
const flaggedBy = (scores: readonly number[][], t: readonly number[]): number => scores[0].filter((_, r) => scores.some((s, k) => s[r] > t[k])).length;

test('sharedThresholds: squeezers that flag different clean rows share the budget: (flagged + 1)/(n + 1) <= targetFpr', () => {
  const a = cleanScores(1000, 0, 0).map((x, i) => (i % 97 === 0 ? 0.3 + i / 10_000 : x));
  const b = cleanScores(1000, 0, 0).map((x, i) => (i % 89 === 1 ? 0.2 + i / 10_000 : x));
  const { rate, thresholds } = sharedThresholds([a, b], 0.02);
  const flagged = flaggedBy([a, b], thresholds);
  assert.ok((flagged + 1) / 1001 <= 0.02, `${flagged} of 1000 clean rows flagged`);
  assert.ok(flagged >= 15, `${flagged}: the budget is used`);
  assert.ok(rate < 0.02 && rate >= 0.01 - 1e-9, `rate ${rate}: about half each`);
});

test('sharedThresholds: squeezers that flag the same clean rows each get nearly the whole budget', () => {
  const a = cleanScores(1000, 0, 0).map((x, i) => (i % 60 === 0 ? 0.5 + i / 10_000 : x));
  const b = a.map((x) => x / 2);
  const { rate, thresholds } = sharedThresholds([a, b], 0.02);
  assert.ok(rate > 0.015, `rate ${rate}`);
  assert.ok((flaggedBy([a, b], thresholds) + 1) / 1001 <= 0.02);
});

test('sharedThresholds: with too few rows to promise the bound, each squeezer gets targetFpr / m', () => {
  const a = cleanScores(60, 2, 0.5);
  const b = cleanScores(60, 1, 0.3);
  const { rate, thresholds } = sharedThresholds([a, b], 0.01);
  assert.equal(rate, 0.005);
  assert.deepEqual(thresholds, [calibrateThreshold(a, 0.005), calibrateThreshold(b, 0.005)]);
});

test('selectSqueezers: when every candidate disrupts clean data, the least disruptive is kept', () => {
  const worse = cleanScores(300, 30, 1.8);
  const bad = cleanScores(300, 30, 1.2);
  const choice = selectSqueezers([worse, bad], 0.01);
  assert.deepEqual(choice.kept, [1]);
  assert.deepEqual(choice.thresholds, [choice.alone[1]], 'alone, it has the whole budget');
  assert.ok(choice.alone[1] < choice.alone[0]);
  assert.throws(() => selectSqueezers([], 0.01), /no candidate/);
});

test('squeezerName and selectionMethod say what was kept and left out', () => {
  const candidates: Squeezer[] = [
    { kind: 'bit-depth', input: 'Input3', bits: 1, min: 0, max: 1 },
    { kind: 'median', input: 'Input3', size: 2 },
  ];
  assert.deepEqual(candidates.map(squeezerName), ['1-bit Input3', 'median 2x2 Input3']);
  const text = selectionMethod(candidates, { kept: [0], rate: 0.01, thresholds: [0.5], alone: [0.5, 1.1] }, 500, 0.01);
  assert.match(text, /every one of the 500 rows scored/);
  assert.match(text, /left out: median 2x2 Input3 \(1\.10\)/);
  assert.match(text, /a common rate q = 0\.0100/);
  assert.match(selectionMethod(candidates, { kept: [0, 1], rate: 0.006, thresholds: [0.5, 0.6], alone: [0.5, 0.6] }, 500, 0.01), /\(none was\)/);
});
