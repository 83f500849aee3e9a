import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ASSETS } from '../test/helpers/assets.js';
import { DATATYPES, type Datatype } from './adapter.js';
import {
  DATATYPE_INFO, elementCount, fp16BitsToNumber, isDatatype, numberToFp16Bits, toJsonData, toTypedArray,
} from './tensors.js';

interface DtypeCase {
  request: { inputs: { name: string; datatype: Datatype; shape: number[]; data: unknown[] }[] };
  expected_outputs: { name: string; datatype: Datatype; shape: number[]; data: unknown[] }[];
  fp16_raw_hex_le?: { inputs: string[]; outputs: string[] };
}
const dtypeCases = (JSON.parse(readFileSync(join(ASSETS, 'samples/onnx-node-dtype-cases.json'), 'utf8')) as { cases: DtypeCase[] }).cases;

function leHex(bits: Uint16Array): string {
  return Buffer.from(bits.buffer, bits.byteOffset, bits.byteLength).toString('hex');
}

test('the datatype table covers all 13 datatypes with their binary widths', () => {
  const widths: Record<Datatype, number> = {
    BOOL: 1, UINT8: 1, UINT16: 2, UINT32: 4, UINT64: 8, INT8: 1, INT16: 2, INT32: 4, INT64: 8,
    FP16: 2, FP32: 4, FP64: 8, BYTES: 0,
  };
  for (const dt of DATATYPES) {
    assert.equal(DATATYPE_INFO[dt].byteSize, widths[dt], dt);
    if (dt !== 'BYTES') assert.equal(DATATYPE_INFO[dt].array?.BYTES_PER_ELEMENT, widths[dt], dt);
    assert.ok(isDatatype(dt));
  }
  assert.equal(DATATYPE_INFO.INT64.max, 2n ** 63n - 1n);
  assert.equal(DATATYPE_INFO.UINT64.max, 2n ** 64n - 1n);
  assert.equal(DATATYPE_INFO.INT8.min, -128);
  assert.ok(!isDatatype('FLOAT32'));
  assert.ok(!isDatatype(undefined));
});

test('element count of a scalar is one and of a zero dimension is zero', () => {
  assert.equal(elementCount([]), 1);
  assert.equal(elementCount([2, 3, 4]), 24);
  assert.equal(elementCount([5, 0, 7]), 0);
});

test('FP16 sample [3,2,1] encodes to the little-endian bytes 00420040003c and back', () => {
  const bits = toTypedArray('FP16', [3, 2, 1]);
  assert.ok(bits instanceof Uint16Array);
  assert.equal(leHex(bits), '00420040003c');
  assert.deepEqual(toJsonData('FP16', bits), [3, 2, 1]);
});

test('FP16 onnx-node cases match their raw little-endian hex', () => {
  const fp16 = dtypeCases.filter((c) => c.fp16_raw_hex_le !== undefined);
  assert.ok(fp16.length > 0);
  for (const c of fp16) {
    const hex = c.fp16_raw_hex_le!;
    c.request.inputs.forEach((input, i) => assert.equal(leHex(toTypedArray('FP16', input.data) as Uint16Array), hex.inputs[i]));
    c.expected_outputs.forEach((out, i) => {
      const raw = Buffer.from(hex.outputs[i], 'hex');
      const bits = new Uint16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
      assert.deepEqual(toJsonData('FP16', bits), out.data);
    });
  }
});

test('every non-NaN FP16 bit pattern survives a round trip through a number', () => {
  for (let b = 0; b < 0x10000; b++) {
    const x = fp16BitsToNumber(b);
    if (Number.isNaN(x)) {
      assert.equal((b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0, true);
      continue;
    }
    if (numberToFp16Bits(x) !== b) assert.fail(`bits 0x${b.toString(16)} -> ${x} -> 0x${numberToFp16Bits(x).toString(16)}`);
  }
});

test('FP16 conversion rounds to nearest even, including subnormals, overflow, signed zero and NaN', () => {
  const cases: [number, number][] = [
    [65504, 0x7bff], [65519.99, 0x7bff], [65520, 0x7c00], [1e10, 0x7c00], [-1e10, 0xfc00],
    [Infinity, 0x7c00], [-Infinity, 0xfc00], [0, 0], [-0, 0x8000], [NaN, 0x7e00],
    [0.1, 0x2e66], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [1 + 2 ** -11 + 2 ** -40, 0x3c01],
    [2 ** -24, 0x0001], [2 ** -25, 0x0000], [2 ** -25 * 1.5, 0x0001], [1.5 * 2 ** -24, 0x0002],
    [2.5 * 2 ** -24, 0x0002], [2 ** -14, 0x0400], [2 ** -14 - 2 ** -25, 0x0400], [1023 * 2 ** -24, 0x03ff],
    [Number.MIN_VALUE, 0], [-Number.MIN_VALUE, 0x8000],
  ];
  for (const [x, bits] of cases) assert.equal(numberToFp16Bits(x), bits, `${x}`);
  assert.equal(fp16BitsToNumber(0x0001), 2 ** -24);
  assert.equal(fp16BitsToNumber(0x03ff), 1023 * 2 ** -24);
  assert.ok(Object.is(fp16BitsToNumber(0x8000), -0));
  assert.ok(Number.isNaN(fp16BitsToNumber(0x7e00)));
  assert.equal(fp16BitsToNumber(0xfc00), -Infinity);
});

test('JSON values of every datatype become the datatype\'s typed array', () => {
  const cases: [Datatype, unknown[], unknown][] = [
    ['BOOL', [true, false], new Uint8Array([1, 0])],
    ['UINT8', [0, 255], new Uint8Array([0, 255])],
    ['UINT16', [0, 65535], new Uint16Array([0, 65535])],
    ['UINT32', [0, 4294967295], new Uint32Array([0, 4294967295])],
    ['UINT64', [0, 9007199254740991, '18446744073709551615'], new BigUint64Array([0n, 9007199254740991n, 2n ** 64n - 1n])],
    ['INT8', [-128, 127], new Int8Array([-128, 127])],
    ['INT16', [-32768, 32767], new Int16Array([-32768, 32767])],
    ['INT32', [-2147483648, 2147483647], new Int32Array([-2147483648, 2147483647])],
    ['INT64', [-1, '9007199254740993', '-9223372036854775808'], new BigInt64Array([-1n, 9007199254740993n, -(2n ** 63n)])],
    ['FP16', [1, -2, 'Infinity'], new Uint16Array([0x3c00, 0xc000, 0x7c00])],
    ['FP32', [0.5, 'NaN', '-Infinity'], new Float32Array([0.5, NaN, -Infinity])],
    ['FP64', [0.1, 'Infinity'], new Float64Array([0.1, Infinity])],
  ];
  for (const [dt, json, typed] of cases) assert.deepEqual(toTypedArray(dt, json), typed, dt);
  const strings = ['a', 'é'];
  assert.equal(toTypedArray('BYTES', strings), strings);
});

test('a typed array of the datatype\'s own kind is passed through without a copy', () => {
  const f = new Float32Array([1, 2]);
  assert.equal(toTypedArray('FP32', f), f);
  const b = new BigInt64Array([1n]);
  assert.equal(toTypedArray('INT64', b), b);
});

test('a typed array of another kind is converted to the datatype\'s kind', () => {
  assert.deepEqual(toTypedArray('FP16', new Float32Array([3, 2, 1])), new Uint16Array([0x4200, 0x4000, 0x3c00]));
  assert.deepEqual(toTypedArray('INT64', new Int32Array([-5, 7])), new BigInt64Array([-5n, 7n]));
  assert.deepEqual(toTypedArray('FP32', new BigInt64Array([3n])), new Float32Array([3]));
});

test('64-bit integers become JSON numbers up to 2^53-1 and decimal strings beyond', () => {
  const max = 2n ** 53n - 1n;
  assert.deepEqual(toJsonData('INT64', new BigInt64Array([1n, max, -max, max + 1n, -(max + 1n), -(2n ** 63n)])), [
    1, 9007199254740991, -9007199254740991, '9007199254740992', '-9007199254740992', '-9223372036854775808',
  ]);
  assert.deepEqual(toJsonData('UINT64', new BigUint64Array([0n, 2n ** 64n - 1n])), [0, '18446744073709551615']);
});

test('64-bit integer JSON conversion agrees with exact bigint arithmetic around every word boundary', () => {
  const edges = [0n, 1n, 2n ** 31n, 2n ** 32n, 2n ** 52n, 2n ** 53n, 2n ** 62n, 2n ** 63n];
  const signed: bigint[] = [];
  const unsigned: bigint[] = [];
  for (const e of edges) {
    for (const d of [-1n, 0n, 1n]) {
      for (const v of [e + d, -(e + d)]) {
        if (v >= -(2n ** 63n) && v < 2n ** 63n) signed.push(v);
        if (v >= 0n) unsigned.push(v, v + 2n ** 63n);
      }
    }
  }
  const exact = (v: bigint): unknown => (v <= 2n ** 53n - 1n && v >= -(2n ** 53n - 1n) ? Number(v) : v.toString());
  assert.deepEqual(toJsonData('INT64', new BigInt64Array(signed)), signed.map(exact));
  const u = unsigned.filter((v) => v < 2n ** 64n);
  assert.deepEqual(toJsonData('UINT64', new BigUint64Array(u)), u.map(exact));
});

test('BOOL bytes become booleans and non-finite floats become their string spellings', () => {
  assert.deepEqual(toJsonData('BOOL', new Uint8Array([1, 0, 1])), [true, false, true]);
  assert.deepEqual(toJsonData('FP32', new Float32Array([1.5, NaN, Infinity, -Infinity])), [1.5, 'NaN', 'Infinity', '-Infinity']);
  assert.deepEqual(toJsonData('FP64', new Float64Array([-0.25, NaN])), [-0.25, 'NaN']);
  assert.deepEqual(toJsonData('FP16', new Uint16Array([0x7c00, 0xfc00, 0x7e00, 0x3800])), ['Infinity', '-Infinity', 'NaN', 0.5]);
  assert.deepEqual(toJsonData('INT8', new Int8Array([-1, 2])), [-1, 2]);
});

test('plain arrays are already JSON values and pass through', () => {
  const data = [1, 2, 3];
  assert.equal(toJsonData('INT32', data), data);
});

test('every onnx-node expected output survives typed array and back to JSON', () => {
  const seen = new Set<Datatype>();
  for (const c of dtypeCases) {
    for (const t of [...c.request.inputs, ...c.expected_outputs]) {
      seen.add(t.datatype);
      assert.deepEqual(toJsonData(t.datatype, toTypedArray(t.datatype, t.data)), t.data, `${t.datatype} ${t.name}`);
    }
  }
  assert.equal(seen.size, 13);
});
