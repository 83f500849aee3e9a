import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Squeezer } from '../../policies/guards/profile.js';
import { MAX_CLEAN_SCORE, selectionMethod, selectSqueezers, squeezerName } from './squeezer-selection.js';

/** n clean scores: mostly tiny, with `high` of them at `value` (answers the squeezer moved). */
function cleanScores(n: number, high: number, value: number): number[] {
  return Array.from({ length: n }, (_, i) => (i < high ? value : 0.001 * ((i * 37) % 100) / 100));
}

test('selectSqueezers: a squeezer that moves more than targetFpr of clean answers as far as MAX_CLEAN_SCORE is left out', () => {
  assert.equal(MAX_CLEAN_SCORE, 1);
  const gentle = cleanScores(500, 3, 0.8); // 0.6 % of rows moved, to 0.8
  const fine = cleanScores(500, 3, 0.4);
  const harsh = cleanScores(500, 12, 1.5); // 2.4 % of rows flipped to another class
  const choice = selectSqueezers([gentle, fine, harsh], 0.01);
  assert.deepEqual(choice.kept, [0, 1]);
  assert.ok(choice.alone[2] >= 1, `harsh alone ${choice.alone[2]}`);
  assert.ok(choice.alone[0] < 1 && choice.alone[1] < 1);
  // Each kept squeezer at 0.5 %: 500 rows, the 3rd largest score is the order statistic.
  assert.deepEqual(choice.thresholds, [0.8, 0.4]);
});

test('selectSqueezers: the kept thresholds split the false-positive budget, so the union flags at most targetFpr', () => {
  const a = cleanScores(1000, 0, 0).map((x, i) => (i % 97 === 0 ? 0.3 + i / 10_000 : x));
  const b = cleanScores(1000, 0, 0).map((x, i) => (i % 89 === 1 ? 0.2 + i / 10_000 : x));
  const { kept, thresholds } = selectSqueezers([a, b], 0.02);
  assert.deepEqual(kept, [0, 1]);
  const flagged = a.filter((x, i) => x > thresholds[0] || b[i] > thresholds[1]).length;
  assert.ok(flagged <= 20, `${flagged} of 1000 clean rows flagged`);
  assert.ok(flagged > 0);
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
  const text = selectionMethod(candidates, { kept: [0], thresholds: [0.5], alone: [0.5, 1.1] }, 500, 0.01);
  assert.match(text, /every one of the 500 rows scored/);
  assert.match(text, /left out: median 2x2 Input3 \(1\.10\)/);
  assert.match(text, /targetFpr\/1 = 0\.01/);
  assert.match(selectionMethod(candidates, { kept: [0, 1], thresholds: [0.5, 0.6], alone: [0.5, 0.6] }, 500, 0.01), /\(none was\)/);
});
