import assert from 'node:assert/strict';
import { test } from 'node:test';
import { argmaxAt, compileDrift, topProbability } from './bin-row.js';
import type { DriftReference } from './bins.js';

/** Two features (numeric: 4 bins; categorical: 4 bins) and a 3-class output (class: 5 bins; score: 4 bins). */
const REF: DriftReference = {
  rows: 10,
  features: [
    { name: 'age', kind: 'numeric', edges: [10, 20], counts: [2, 3, 4, 1] },
    { name: 'port', kind: 'categorical', categories: ['C', 'Q'], counts: [5, 3, 1, 1] },
  ],
  output: { name: 'p', logits: false, classes: 3 },
  outputs: [
    { name: 'p:class', kind: 'categorical', categories: ['0', '1', '2'], counts: [3, 3, 4, 0, 0] },
    { name: 'p:score', kind: 'numeric', edges: [0.5, 0.8], counts: [2, 4, 4, 0] },
  ],
};

/** The bins that hold something, as "block:bin" keys with their counts. */
function filled(counts: ArrayLike<number>, offsets: readonly number[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] === 0) continue;
    let block = 0;
    while (block + 1 < offsets.length && (offsets[block + 1] as number) <= i) block++;
    out[`${block}:${i - (offsets[block] as number)}`] = counts[i] as number;
  }
  return out;
}

test('compileDrift: blocks laid out as the features in order, then the class and score blocks, each binCount long', () => {
  const c = compileDrift(REF);
  assert.deepEqual(c.offsets, [0, 4, 8, 13]);
  assert.equal(c.binsTotal, 17);
  const bare = compileDrift({ rows: 10, features: REF.features, outputs: [] });
  assert.deepEqual([bare.offsets, bare.binsTotal], [[0, 4], 8], 'no class-score output: no output blocks');
});

test('addFeatures: each feature adds 1 to its bin: below the first edge, on an edge (the bin above), beyond the last; categories, other, missing', () => {
  const c = compileDrift(REF);
  const counts = new Int32Array(c.binsTotal);
  c.addFeatures([5, 'C'], counts);
  c.addFeatures([10, 'Q'], counts);
  c.addFeatures([19.99, 'S'], counts);
  c.addFeatures([1e9, null], counts);
  c.addFeatures([null, ''], counts);
  c.addFeatures([Number.NaN, 'C'], counts);
  c.addFeatures(['7', 7], counts);
  assert.deepEqual(filled(counts, c.offsets), {
    '0:0': 1, // 5
    '0:1': 2, // 10 (on the edge), 19.99
    '0:2': 1, // 1e9
    '0:3': 3, // null, NaN, a string where a number belongs
    '1:0': 2, // C
    '1:1': 1, // Q
    '1:2': 2, // S and the number 7: other
    '1:3': 2, // null, ''
  });
  const floats = new Float64Array(c.binsTotal);
  c.addFeatures([15], floats);
  assert.deepEqual(filled(floats, c.offsets), { '0:1': 1, '1:3': 1 }, 'a short row: its absent features are missing (a Float64Array counts too)');
});

test('addOutputRow: the class bin and the score bin of one row of a batch, by offset and width', () => {
  const c = compileDrift(REF);
  const counts = new Array<number>(c.binsTotal).fill(0);
  const batch = Float32Array.of(0.05, 0.05, 0.9, /**/ 0.6, 0.3, 0.1, /**/ 0.45, 0.1, 0.45);
  for (let r = 0; r < 3; r++) c.addOutputRow(batch, r * 3, 3, counts);
  assert.deepEqual(filled(counts, c.offsets), {
    '2:2': 1, '2:0': 2, // classes 2, 0 and 0 (a tie goes to the first)
    '3:0': 1, // 0.45
    '3:1': 1, // 0.6
    '3:2': 1, // 0.9
  });
  const other = new Array<number>(c.binsTotal).fill(0);
  c.addOutputRow([0.1, 0.1, 0.1, 0.7], 0, 4, other);
  c.addOutputRow([0.5, Number.NaN, 0.5], 0, 3, other);
  assert.deepEqual(filled(other, c.offsets), { '2:3': 1, '3:1': 1, '2:4': 1, '3:3': 1 }, 'a fourth class: other; a NaN: missing in both blocks');
  const bare = compileDrift({ rows: 10, features: REF.features, outputs: [] });
  const none = new Int32Array(bare.binsTotal);
  bare.addOutputRow([0.2, 0.8], 0, 2, none);
  assert.deepEqual([...none], new Array(8).fill(0), 'without a class-score output nothing is counted');
});

test('addOutputRow: logits go through softmax for the score; the class is the largest logit', () => {
  const c = compileDrift({ ...REF, output: { name: 'p', logits: true, classes: 3 } });
  const counts = new Int32Array(c.binsTotal);
  c.addOutputRow([0, Math.log(3), -Infinity], 0, 3, counts); // softmax: 0.25, 0.75, 0
  c.addOutputRow([5, 5, 5], 0, 3, counts); // 1/3 each
  c.addOutputRow([Infinity, 0, 0], 0, 3, counts); // softmax undefined: class 0, score missing
  assert.deepEqual(filled(counts, c.offsets), { '2:1': 1, '2:0': 2, '3:1': 1, '3:0': 1, '3:3': 1 });
});

test('topProbability and argmaxAt: probabilities, logits, ties, NaN and empty rows', () => {
  assert.equal(topProbability([0.2, 0.5, 0.3], 0, 3, false), 0.5);
  assert.ok(Math.abs(topProbability([1, 2, 3], 0, 3, true) - Math.exp(3) / (Math.exp(1) + Math.exp(2) + Math.exp(3))) < 1e-15);
  assert.ok(Math.abs(topProbability([1000, 1000], 0, 2, true) - 0.5) < 1e-15, 'large logits do not overflow');
  assert.ok(Number.isNaN(topProbability([0.5, Number.NaN], 0, 2, false)));
  assert.ok(Number.isNaN(topProbability([], 0, 0, true)));
  assert.equal(argmaxAt([9, 1, 4, 7, 7], 2, 3), 1, 'within the row at offset 2: 4, 7, 7');
  assert.equal(argmaxAt([-Infinity, -Infinity], 0, 2), 0);
  assert.equal(argmaxAt([1, Number.NaN], 0, 2), -1);
  assert.equal(argmaxAt([], 0, 0), -1);
});

test('compileDrift: an output whose class and score blocks are not there is refused', () => {
  assert.throws(() => compileDrift({ ...REF, outputs: [] }), /the drift reference of output "p" needs a categorical block "p:class" and a numeric block "p:score"/);
  assert.throws(() => compileDrift({ ...REF, outputs: [REF.outputs[1], { ...REF.outputs[0], name: 'q:class' }] as DriftReference['outputs'] }), /needs a categorical block "p:class"/);
});

test('compileDrift: class categories in another order are looked up, not assumed', () => {
  const c = compileDrift({ ...REF, outputs: [{ name: 'p:class', kind: 'categorical', categories: ['2', '0', '1'], counts: [0, 0, 0, 0, 0] }, REF.outputs[1]] as DriftReference['outputs'] });
  const counts = new Int32Array(c.binsTotal);
  c.addOutputRow([0.1, 0.2, 0.7], 0, 3, counts);
  assert.equal(counts[8], 1, 'class 2 is the first category');
});
