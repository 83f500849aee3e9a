import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { irisSpecies, RECIPES, recipeLines, shiftedShare, type Recipe } from './drift-recipes.js';
import { IRIS, rowsOf, TITANIC, type Row } from './models.js';
import type { OipRequest } from './sets.js';

const TITANIC_REF: Row[] = [
  [1, 'female', 29, 211.3375, 'S'], [1, 'male', 0.9167, 151.55, 'S'], [2, 'male', null, 13, 'C'],
  [3, 'female', 18, 7.75, 'Q'], [3, 'male', 40, 8.05, 'S'], [2, 'female', 30, 21, 'missing'],
];
const IRIS_REF: Row[] = [[5.1, 3.5, 1.4, 0.2], [4.9, 3, 1.3, 0.2], [6, 2.2, 4, 1], [5.9, 3, 4.2, 1.5], [6.3, 3.3, 6, 2.5], [7.2, 3, 5.8, 1.6]];

const recipe = (name: string): Recipe => RECIPES.find((r) => r.name === name) as Recipe;
const rowsOfLines = (lines: string[], spec = TITANIC): Row[] => lines.flatMap((l) => rowsOf(spec, JSON.parse(l) as OipRequest));
const allLines = (r: Recipe, ref: Row[], seed = 's', limit?: number): string[] => [...recipeLines(r, r.model === 'iris' ? IRIS : TITANIC, ref, seed, 1000, limit)].flat();
const key = (row: Row): string => JSON.stringify(row);

describe('drift stream recipes', () => {
  it('the shifted share: 0 before the change, a step for a sudden shift, a linear ramp for a gradual one', () => {
    const sudden = { kind: 'sudden' as const, changeAt: [3000] };
    const gradual = { kind: 'gradual' as const, changeAt: [3000, 8000] };
    assert.deepEqual([2999, 3000, 9999].map((i) => shiftedShare(sudden, i)), [0, 1, 1]);
    assert.deepEqual([2999, 3000, 5500, 7999, 8000].map((i) => shiftedShare(gradual, i)), [0, 0, 0.5, 4999 / 5000, 1]);
    assert.equal(shiftedShare({ kind: 'control', changeAt: [] }, 5), 0);
    assert.deepEqual([2999, 3000].map((i) => shiftedShare({ ...sudden, share: 0.2 }, i)), [0, 0.2]);
    assert.equal(shiftedShare({ ...gradual, share: 0.4 }, 5500), 0.2);
  });

  it('names iris species by petal length: setosa < 2.5 ≤ versicolor < 4.85 ≤ virginica', () => {
    assert.deepEqual([[5, 3, 1.4, 0.2], [6, 3, 2.5, 1], [6, 3, 4.84, 1.5], [6, 3, 4.85, 1.8]].map(irisSpecies), ['setosa', 'versicolor', 'versicolor', 'virginica']);
  });

  it('before the change every row is a reference row; after a sudden subset shift only rows of the subset come', () => {
    const rows = rowsOfLines(allLines(recipe('titanic-sudden-first-class'), TITANIC_REF));
    assert.equal(rows.length, 10_000);
    const reference = new Set(TITANIC_REF.map(key));
    assert.ok(rows.every((r) => reference.has(key(r))));
    assert.ok(rows.slice(3000).every((r) => r[0] === 1));
    const before = rows.slice(0, 3000).filter((r) => r[0] === 1).length / 3000;
    assert.ok(Math.abs(before - 2 / 6) < 0.03, `first-class share before the change ${before}`);
  });

  it('a mapped shift rescales the column and keeps a missing value missing', () => {
    const rows = rowsOfLines(allLines(recipe('titanic-sudden-age-months'), TITANIC_REF));
    const ages = new Set(rows.slice(3000).map((r) => r[2]));
    assert.deepEqual([...ages].sort(), [11.0004, 216, 348, 360, 480, null].sort(), 'ages ×12, rounded to 4 decimals');
    assert.ok(rows.slice(0, 3000).every((r) => r[2] === null || TITANIC_REF.some((x) => x[2] === r[2])));
  });

  it('a gradual shift mixes in shifted rows at the ramp\'s share', () => {
    const rows = rowsOfLines(allLines(recipe('iris-gradual-virginica-only'), IRIS_REF), IRIS);
    const virginica = (from: number, to: number): number => rows.slice(from, to).filter((r) => irisSpecies(r) === 'virginica').length / (to - from);
    // Unshifted, a third of the rows are virginica; at share s it is s + (1 − s)/3.
    assert.ok(Math.abs(virginica(0, 3000) - 1 / 3) < 0.04);
    assert.ok(Math.abs(virginica(5000, 6000) - (0.5 + 0.5 / 3)) < 0.06, `${virginica(5000, 6000)}`);
    assert.equal(virginica(8000, 10_000), 1);
  });

  it('is seeded: the same seed writes the same lines, another seed others, and a shorter build is a prefix', () => {
    const r = recipe('iris-sudden-drop-setosa');
    const a = allLines(r, IRIS_REF, 'seed-a');
    assert.deepEqual(allLines(r, IRIS_REF, 'seed-a'), a);
    assert.notDeepEqual(allLines(r, IRIS_REF, 'seed-b'), a);
    assert.deepEqual(allLines(r, IRIS_REF, 'seed-a', 2500), a.slice(0, 2500));
    assert.ok(rowsOfLines(a.slice(3000), IRIS).every((row) => irisSpecies(row) !== 'setosa'));
  });

  it('lists the issue\'s streams: a million-request control built on demand, sudden and gradual shifts with valid change points', () => {
    const names = new Set(RECIPES.map((r) => r.name));
    assert.equal(names.size, RECIPES.length);
    assert.ok(RECIPES.some((r) => r.kind === 'control' && r.requests >= 1_000_000 && r.onDemand === true));
    for (const r of RECIPES) {
      assert.equal(r.changeAt.length, r.kind === 'control' ? 0 : r.kind === 'sudden' ? 1 : 2, r.name);
      assert.equal(r.shift === undefined, r.kind === 'control', r.name);
      assert.ok(r.changeAt.every((c, i) => c > (i === 0 ? 0 : r.changeAt[i - 1]) && c < r.requests), r.name);
    }
    assert.throws(() => [...recipeLines(recipe('iris-sudden-setosa-only'), IRIS, IRIS_REF.slice(2), 's')], /no reference row passes/);
  });
});
