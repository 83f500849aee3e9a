import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { ModelMetadata } from '../../adapters/adapter.js';
import { profileInputs } from '../../policies/guards/features.js';
import { dataFormat, parseColumnMap, parseCsv, readReferenceData } from './read-data.js';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function file(name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bw-data-'));
  dirs.push(dir);
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

test('parseCsv: quoted commas, quotes and line breaks; CRLF; a byte order mark; blank lines', () => {
  const text = '\ufeffname,age,note\r\n"Allen, Miss. Elisabeth",29,"said ""hi""\nthen left"\r\n\r\nBob,,\n';
  assert.deepEqual(parseCsv(text), [['name', 'age', 'note'], ['Allen, Miss. Elisabeth', '29', 'said "hi"\nthen left'], ['Bob', '', '']]);
  assert.deepEqual(parseCsv('a,b\n1,2'), [['a', 'b'], ['1', '2']], 'no final line break');
  assert.throws(() => parseCsv('a,b\n"1,2\n'), /ends inside a quoted field/);
});

test('parseColumnMap and dataFormat', () => {
  assert.deepEqual(parseColumnMap(['input=A, B,C', 'x=y']), { input: ['A', 'B', 'C'], x: ['y'] });
  assert.throws(() => parseColumnMap(['input']), /--map "input" is not INPUT=COLUMN/);
  assert.throws(() => parseColumnMap(['a=b', 'a=c']), /names input "a" twice/);
  assert.equal(dataFormat('x.jsonl', 'a,b'), 'jsonl');
  assert.equal(dataFormat('x.csv', '{'), 'csv');
  assert.equal(dataFormat('x.txt', '  {"inputs":[]}'), 'jsonl');
  assert.equal(dataFormat('x', 'a,b'), 'csv');
});

const IRIS: ModelMetadata = { platform: 'onnx_onnxv1', inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }], outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 3] }] };

test('readReferenceData: a CSV with a column map, its SHA-256, extra columns ignored', async () => {
  const text = 'Id,SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm,Species\n1,5.1,3.5,1.4,0.2,Iris-setosa\n2,4.9,3,1.4,0.2,Iris-setosa\n';
  const path = await file('iris.csv', text);
  const data = await readReferenceData(path, profileInputs(IRIS.inputs), IRIS, { input: ['SepalLengthCm', 'SepalWidthCm', 'PetalLengthCm', 'PetalWidthCm'] });
  assert.equal(data.format, 'csv');
  assert.equal(data.sha256, createHash('sha256').update(text).digest('hex'));
  assert.deepEqual(data.rows, [[5.1, 3.5, 1.4, 0.2], [4.9, 3, 1.4, 0.2]]);
  await assert.rejects(readReferenceData(path, profileInputs(IRIS.inputs), IRIS), /the header has no column input\[0\]/);
  await assert.rejects(readReferenceData(path, profileInputs(IRIS.inputs), IRIS, { inptu: ['Id'] }), /--map names "inptu", which is not an input of the model \(input\)/);
  await assert.rejects(readReferenceData(await file('empty.csv', ''), profileInputs(IRIS.inputs), IRIS), /the CSV is empty/);
});

test('readReferenceData: JSONL infer bodies, each row of a batch, checked against the model like a request', async () => {
  const line = (rows: number[][]) => JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [rows.length, 4], data: rows.flat() }] });
  const path = await file('iris.jsonl', `${line([[5.1, 3.5, 1.4, 0.2], [7, 3.2, 4.7, 1.4]])}\n\n${line([[6.3, 3.3, 6, 2.5]])}\n`);
  const data = await readReferenceData(path, profileInputs(IRIS.inputs), IRIS);
  assert.equal(data.format, 'jsonl');
  assert.deepEqual(data.rows, [[5.1, 3.5, 1.4, 0.2], [7, 3.2, 4.7, 1.4], [6.3, 3.3, 6, 2.5]]);
  const withNaN = await file('nan.jsonl', '{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":["NaN",1,2,3]}],"extra":1}\n');
  assert.deepEqual((await readReferenceData(withNaN, profileInputs(IRIS.inputs), IRIS)).rows, [[null, 1, 2, 3]], 'missing values and unknown members are read leniently');
  const wrong = await file('bad.jsonl', `${line([[1, 2, 3, 4]])}\n{"inputs":[{"name":"input","datatype":"FP32","shape":[1,5],"data":[1,2,3,4,5]}]}\n`);
  await assert.rejects(readReferenceData(wrong, profileInputs(IRIS.inputs), IRIS), /^Error: line 2: .*shape/);
  await assert.rejects(readReferenceData(await file('x.jsonl', 'not json\n'), profileInputs(IRIS.inputs), IRIS), /line 1:/);
  await assert.rejects(readReferenceData(path, profileInputs(IRIS.inputs), IRIS, { input: ['a', 'b', 'c', 'd'] }), /--map applies to CSV data only/);
});
