import assert from 'node:assert/strict';
import { test } from 'node:test';
import { numericBin } from '../drift/bins.js';
import { profileInputs } from '../../policies/guards/features.js';
import { featureProfiles } from './build.js';
import { driftEdges, driftReference } from './drift-reference.js';

const sorted = (values: number[]) => Float64Array.from(values).sort();

test('driftEdges: a continuous feature gets 9 edges, a tenth of the values in each bin, none on a value', () => {
  const values = Array.from({ length: 100 }, (_, i) => i + 1);
  const edges = driftEdges(sorted(values));
  assert.deepEqual(edges, [10.5, 20.5, 30.5, 40.5, 50.5, 60.5, 70.5, 80.5, 90.5]);
  const counts = new Array<number>(11).fill(0);
  for (const v of values) counts[numericBin(edges, v)]++;
  assert.deepEqual(counts, [10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 0]);
});

test('driftEdges: a 3-valued feature gets 3 edges (one below each value), a constant 1, no value none', () => {
  // 1309 Titanic-like classes: 323 first, 277 second, 709 third.
  const pclass = [...new Array(323).fill(1), ...new Array(277).fill(2), ...new Array(709).fill(3)];
  assert.deepEqual(driftEdges(sorted(pclass)), [0.5, 1.5, 2.5], 'the smallest value: as far below as halfway up to the next');
  assert.deepEqual(driftEdges(sorted([...new Array(95).fill(1), 2, 2, 2, 2, 2])), [0.5], 'a value below the 0.9 decile does not get an edge');
  assert.deepEqual(driftEdges(sorted(new Array(50).fill(7))), [3.5], 'a constant: half its magnitude below it');
  assert.deepEqual(driftEdges(sorted(new Array(50).fill(0))), [-0.5], 'a constant 0: at least ½ below');
  assert.deepEqual(driftEdges(sorted([])), []);
});

test('driftEdges: a value sent as FP32 falls into the bin of the same value sent as a double', () => {
  // One-decimal measurements (iris): an edge on a value would split 5.1 (JSON) from 5.099999904632568 (FP32).
  const values = Array.from({ length: 150 }, (_, i) => (43 + ((i * 7) % 37)) / 10);
  const edges = driftEdges(sorted(values));
  assert.ok(edges.length >= 5);
  for (const v of values) assert.equal(numericBin(edges, Math.fround(v)), numericBin(edges, v), `${v}`);
});

test('driftReference: bins and counts of every row, numeric and categorical, missing and other; no outputs without answers', () => {
  const inputs = profileInputs([
    { name: 'age', datatype: 'FP32', shape: [-1, 1] },
    { name: 'port', datatype: 'BYTES', shape: [-1, 1] },
  ]);
  const rows = [[1, 'S'], [2, 'C'], [3, 'S'], [4, null], [null, 'Q'], [Infinity, 'S'], [5, 'S'], [6, 'C'], [7, 'S'], [8, 'Q']];
  const ref = driftReference(featureProfiles(inputs, rows), rows);
  assert.equal(ref.rows, 10);
  assert.equal(ref.output, undefined);
  assert.deepEqual(ref.outputs, []);
  const [age, port] = ref.features;
  // Eight finite values 1..8: deciles at positions 0, 1, 2, 3, 4, 4, 5, 6, 7 → values 1..8.
  assert.deepEqual(age, { name: 'age', kind: 'numeric', edges: [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5], counts: [0, 1, 1, 1, 1, 1, 1, 1, 2, 1] }, 'Infinity: the top bin; null: missing');
  assert.deepEqual(port, { name: 'port', kind: 'categorical', categories: ['C', 'Q', 'S'], counts: [2, 2, 5, 0, 1] }, 'categories sorted as the encoder sorts them; other empty');
});

test('driftReference: the class and score blocks of the answers (logits: softmax first)', () => {
  const inputs = profileInputs([{ name: 'x', datatype: 'FP32', shape: [-1, 1] }]);
  const rows = Array.from({ length: 20 }, (_, i) => [i]);
  // Logits whose softmax tops at 0.55, 0.59, … 0.91: class 1 for even rows, 0 for odd ones.
  const answers = rows.map((_, i) => {
    const p = 0.55 + (i % 10) / 25;
    const top = Math.log(p);
    const rest = Math.log(1 - p);
    return i % 2 === 0 ? Float64Array.of(rest, top) : Float64Array.of(top, rest);
  });
  const ref = driftReference(featureProfiles(inputs, rows), rows, { output: { name: 'y', logits: true, classes: 2 }, rows: answers });
  assert.deepEqual(ref.output, { name: 'y', logits: true, classes: 2 });
  const [cls, score] = ref.outputs;
  assert.deepEqual(cls, { name: 'y:class', kind: 'categorical', categories: ['0', '1'], counts: [10, 10, 0, 0] });
  assert.equal(score?.kind === 'numeric' && score.edges.length, 9, 'ten distinct top probabilities, twice each: nine edges');
  assert.deepEqual(score?.counts, [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0]);
  const fewer = driftReference(featureProfiles(inputs, rows), rows, { output: { name: 'y', logits: true, classes: 2 }, rows: answers.slice(0, 16) });
  assert.equal(fewer.outputs[0]?.counts.reduce((a, b) => a + b, 0), 16, 'answered rows only (a fixed batch may leave the last rows out)');
});
