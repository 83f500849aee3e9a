import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TensorMetadata } from '../../adapters/adapter.js';
import { csvColumns, featureCount, featureNames, featureRows, isImageInput, profileInputs, requestFromRows, rowsFromCsv } from './features.js';

const TITANIC: TensorMetadata[] = [
  { name: 'pclass', datatype: 'INT64', shape: [-1, 1] },
  { name: 'sex', datatype: 'BYTES', shape: [-1, 1] },
  { name: 'age', datatype: 'FP32', shape: [-1, 1] },
  { name: 'fare', datatype: 'FP32', shape: [-1, 1] },
  { name: 'embarked', datatype: 'BYTES', shape: [-1, 1] },
];

test('profileInputs: one feature per element of a row, numbered across inputs; rows of images', () => {
  const t = profileInputs(TITANIC);
  assert.deepEqual(t.map((i) => [i.name, i.firstFeature, i.featureCount, i.rowShape]), [
    ['pclass', 0, 1, [1]], ['sex', 1, 1, [1]], ['age', 2, 1, [1]], ['fare', 3, 1, [1]], ['embarked', 4, 1, [1]],
  ]);
  const [iris] = profileInputs([{ name: 'input', datatype: 'FP32', shape: [-1, 4] }]);
  assert.deepEqual(featureNames(iris!), ['input[0]', 'input[1]', 'input[2]', 'input[3]']);
  const mnist = profileInputs([{ name: 'Input3', datatype: 'FP32', shape: [1, 1, 28, 28] }]);
  assert.equal(mnist[0]?.featureCount, 784);
  assert.equal(featureCount({ inputs: mnist }), 784);
  assert.equal(isImageInput(mnist[0]!), true);
  assert.equal(isImageInput(iris!), false);
  assert.equal(isImageInput({ rowShape: [3, 8] }), false, 'one wide dimension is no image');
  assert.deepEqual(featureNames({ name: 'x', featureCount: 1 }), ['x']);
  assert.throws(() => profileInputs([{ name: 'seq', datatype: 'FP32', shape: [-1, -1] }]), /input "seq" has a dynamic dimension beyond the batch/);
  assert.throws(() => profileInputs([{ name: 's', datatype: 'FP32', shape: [] }]), /scalar/);
});

test('featureRows: per batch row, NaN and "" are missing, Infinity stays, typed arrays and JSON forms alike', () => {
  const layout = { inputs: profileInputs(TITANIC) };
  const rows = featureRows(layout, {
    inputs: [
      { name: 'pclass', datatype: 'INT64', shape: [3, 1], data: new BigInt64Array([1n, 2n, 3n]) },
      { name: 'sex', datatype: 'BYTES', shape: [3, 1], data: ['female', '', 'male'] },
      { name: 'age', datatype: 'FP32', shape: [3, 1], data: new Float32Array([29, NaN, Infinity]) },
      { name: 'fare', datatype: 'FP32', shape: [3, 1], data: [7.25, 'NaN', '-Infinity'] },
      { name: 'embarked', datatype: 'BYTES', shape: [3, 1], data: ['S', 'C', 'Q'] },
    ],
  });
  assert.deepEqual(rows, [
    [1, 'female', 29, 7.25, 'S'],
    [2, null, null, null, 'C'],
    [3, 'male', Infinity, -Infinity, 'Q'],
  ]);
  const missingInput = featureRows(layout, { inputs: [{ name: 'pclass', datatype: 'INT64', shape: [1, 1], data: [1] }] });
  assert.deepEqual(missingInput, [[1, null, null, null, null]], 'an input the request lacks leaves its features missing');
});

test('featureRows: FP16 bit patterns, BOOL and an image row-major', () => {
  const [h] = profileInputs([{ name: 'h', datatype: 'FP16', shape: [-1, 3] }]);
  // 0x3c00 = 1, 0xc000 = -2, 0x7c00 = +Infinity
  assert.deepEqual(featureRows({ inputs: [h!] }, { inputs: [{ name: 'h', datatype: 'FP16', shape: [1, 3], data: new Uint16Array([0x3c00, 0xc000, 0x7c00]) }] }), [[1, -2, Infinity]]);
  assert.deepEqual(featureRows({ inputs: [h!] }, { inputs: [{ name: 'h', datatype: 'FP16', shape: [1, 3], data: [0.5, 1, 2] }] }), [[0.5, 1, 2]], 'FP16 as JSON numbers is read as is');
  const [b] = profileInputs([{ name: 'b', datatype: 'BOOL', shape: [-1, 2] }]);
  assert.deepEqual(featureRows({ inputs: [b!] }, { inputs: [{ name: 'b', datatype: 'BOOL', shape: [2, 2], data: [true, false, new Uint8Array([1])[0], 0] }] }), [[1, 0], [1, 0]]);
  const [img] = profileInputs([{ name: 'im', datatype: 'FP32', shape: [-1, 1, 2, 2] }]);
  assert.deepEqual(featureRows({ inputs: [img!] }, { inputs: [{ name: 'im', datatype: 'FP32', shape: [2, 1, 2, 2], data: [1, 2, 3, 4, 5, 6, 7, 8] }] }), [[1, 2, 3, 4], [5, 6, 7, 8]]);
});

test('rowsFromCsv: columns named after inputs or input[i], or mapped; other columns ignored; empty cells missing', () => {
  const inputs = profileInputs(TITANIC);
  const header = ['name', 'pclass', 'survived', 'sex', 'age', 'fare', 'embarked'];
  const rows = rowsFromCsv(inputs, header, [
    ['Allen, Miss. Elisabeth', '1', '1', 'female', '29', '211.3375', 'S'],
    ['Someone', '3', '0', 'male', '', '', ''],
  ]);
  assert.deepEqual(rows, [[1, 'female', 29, 211.3375, 'S'], [3, 'male', null, null, null]]);

  const iris = profileInputs([{ name: 'input', datatype: 'FP32', shape: [-1, 4] }]);
  const irisHeader = ['Id', 'SepalLengthCm', 'SepalWidthCm', 'PetalLengthCm', 'PetalWidthCm', 'Species'];
  const map = { input: ['SepalLengthCm', 'SepalWidthCm', 'PetalLengthCm', 'PetalWidthCm'] };
  assert.deepEqual(rowsFromCsv(iris, irisHeader, [['1', '5.1', '3.5', '1.4', '0.2', 'Iris-setosa']], map), [[5.1, 3.5, 1.4, 0.2]]);
  assert.deepEqual(rowsFromCsv(iris, ['input[3]', 'input[2]', 'input[1]', 'input[0]'], [['4', '3', '2', '1']]), [[1, 2, 3, 4]], 'input[i] columns in any order');
  assert.deepEqual(csvColumns(iris, ['a', 'input[0]', 'input[1]', 'input[2]', 'input[3]']), [1, 2, 3, 4]);

  assert.throws(() => rowsFromCsv(iris, irisHeader, []), /the header has no column input\[0\], input\[1\], input\[2\], input\[3\] for input "input"/);
  assert.throws(() => rowsFromCsv(iris, irisHeader, [], { input: ['SepalLengthCm'] }), /input "input" has 4 features per row; the column map names 1/);
  assert.throws(() => rowsFromCsv(inputs, header, [['x', 'first', '1', 'female', '29', '1', 'S']]), /record 1, column "pclass": "first" is not a number \(the input is INT64\)/);
});

test('requestFromRows is featureRows\' inverse: missing as NaN or "", a missing integer refused', () => {
  const inputs = profileInputs(TITANIC);
  const rows = [[1, 'female', 29, 7.25, 'S'], [3, null, null, null, 'Q']];
  const request = requestFromRows(inputs, rows);
  assert.deepEqual(request.inputs.map((t) => t.shape), [[2, 1], [2, 1], [2, 1], [2, 1], [2, 1]]);
  assert.deepEqual(request.inputs[2]?.data, [29, NaN]);
  assert.deepEqual(request.inputs[1]?.data, ['female', '']);
  assert.deepEqual(featureRows({ inputs }, request), rows);
  assert.throws(() => requestFromRows(inputs, [[null, 'male', 1, 1, 'S']]), /row 1: input "pclass" \(INT64\) cannot carry a missing value/);
  const img = profileInputs([{ name: 'im', datatype: 'FP32', shape: [1, 1, 2, 2] }]);
  assert.deepEqual(requestFromRows(img, [[1, 2, 3, 4]]).inputs[0]?.shape, [1, 1, 2, 2]);
});
