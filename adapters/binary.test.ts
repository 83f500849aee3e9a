import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Datatype, InferTensor } from './adapter.js';
import {
  checkBinaryValues, decodeBinaryRequestBody, decodeBinaryResponseBody, decodeTensorBytes,
  encodeBinaryRequest, encodeBinaryResponse, encodeTensorBytes,
} from './binary.js';
import { toJsonData } from './tensors.js';
import { isGatewayError, type ErrorCode } from '../gateway/errors.js';

function throwsCode(fn: () => unknown, code: ErrorCode, status = 400): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isGatewayError(e), String(e));
    assert.equal(e.code, code, e.message);
    assert.equal(e.status, status);
    return true;
  });
}

/** A body whose header JSON is `header` followed by `tail`, in a buffer starting at offset 0. */
function body(header: unknown, ...tail: Buffer[]): { body: Buffer; headerLength: number } {
  const h = Buffer.from(JSON.stringify(header));
  const all = Buffer.concat([h, ...tail]);
  const out = Buffer.from(new ArrayBuffer(all.length));
  all.copy(out);
  return { body: out, headerLength: h.length };
}

const ALL: InferTensor[] = [
  { name: 'bool', datatype: 'BOOL', shape: [3], data: [true, false, true] },
  { name: 'u8', datatype: 'UINT8', shape: [2], data: [0, 255] },
  { name: 'u16', datatype: 'UINT16', shape: [2], data: [1, 65535] },
  { name: 'u32', datatype: 'UINT32', shape: [2], data: [1, 4294967295] },
  { name: 'u64', datatype: 'UINT64', shape: [2], data: [1, '18446744073709551615'] },
  { name: 'i8', datatype: 'INT8', shape: [2], data: [-128, 127] },
  { name: 'i16', datatype: 'INT16', shape: [2], data: [-32768, 32767] },
  { name: 'i32', datatype: 'INT32', shape: [2], data: [-2147483648, 2147483647] },
  { name: 'i64', datatype: 'INT64', shape: [2, 1], data: ['-9223372036854775808', '9007199254740993'] },
  { name: 'f16', datatype: 'FP16', shape: [3], data: [3, 2, 1] },
  { name: 'f32', datatype: 'FP32', shape: [2], data: [0.5, -1.25] },
  { name: 'f64', datatype: 'FP64', shape: [2], data: [0.1, 1e300] },
  { name: 'bytes', datatype: 'BYTES', shape: [3], data: ['abc', '', 'héllo'] },
];

test('raw bytes follow the extension: FP16 bits, one byte per BOOL, length-prefixed BYTES', () => {
  assert.equal(encodeTensorBytes('FP16', [3, 2, 1]).toString('hex'), '00420040003c');
  assert.equal(encodeTensorBytes('BOOL', [true, false]).toString('hex'), '0100');
  assert.equal(encodeTensorBytes('INT32', [1, -1]).toString('hex'), '01000000ffffffff');
  assert.equal(encodeTensorBytes('BYTES', ['ab', '']).toString('hex'), '020000006162' + '00000000');
  assert.equal(encodeTensorBytes('UINT64', ['18446744073709551615']).toString('hex'), 'ffffffffffffffff');
});

test('a request with every datatype in binary decodes back to the same values', () => {
  const { body: b, headerLength } = encodeBinaryRequest({ id: 'r1' }, ALL, new Set(ALL.map((t) => t.name)));
  const { header, binary } = decodeBinaryRequestBody(b, headerLength);
  const inputs = (header as { inputs: { name: string; parameters: { binary_data_size: number }; data?: unknown }[] }).inputs;
  assert.equal((header as { id: string }).id, 'r1');
  assert.equal(binary.size, ALL.length);
  ALL.forEach((t, i) => {
    assert.equal(inputs[i].data, undefined);
    const raw = binary.get(i)!;
    assert.equal(inputs[i].parameters.binary_data_size, raw.length);
    const count = t.shape.reduce((a, d) => a * d, 1);
    const decoded = decodeTensorBytes(t.datatype, count, raw, t.name);
    const expected = t.datatype === 'INT64' ? ['-9223372036854775808', '9007199254740993'] : t.data;
    assert.deepEqual(toJsonData(t.datatype, decoded), expected, t.datatype);
  });
});

test('aligned binary data is a view on the body and unaligned data is copied aligned', () => {
  const f32 = Buffer.from(new Float32Array([1.5, -2]).buffer);
  for (const pad of ['', ' ', '  ', '   ']) {
    const h = Buffer.from(`${JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2], parameters: { binary_data_size: 8 } }] })}${pad}`);
    const b = Buffer.from(new ArrayBuffer(h.length + 8));
    h.copy(b);
    f32.copy(b, h.length);
    const raw = decodeBinaryRequestBody(b, h.length).binary.get(0)!;
    const arr = decodeTensorBytes('FP32', 2, raw, 'x') as Float32Array;
    assert.deepEqual(Array.from(arr), [1.5, -2]);
    assert.equal(arr.buffer === b.buffer, h.length % 4 === 0, `header length ${h.length}`);
  }
});

test('only inputs with binary_data_size take bytes from the body, in input order', () => {
  const { body: b, headerLength } = body(
    {
      inputs: [
        { name: 'a', datatype: 'INT8', shape: [2], parameters: { binary_data_size: 2 } },
        { name: 'b', datatype: 'INT8', shape: [1], data: [9] },
        { name: 'c', datatype: 'INT8', shape: [1], parameters: { binary_data_size: 1 } },
      ],
    },
    Buffer.from([1, 2, 3]),
  );
  const { binary } = decodeBinaryRequestBody(b, headerLength);
  assert.deepEqual([...binary.keys()], [0, 2]);
  assert.deepEqual([...binary.get(0)!], [1, 2]);
  assert.deepEqual([...binary.get(2)!], [3]);
});

test('a binary response carries binary outputs after the header and the others inline', () => {
  const outputs: InferTensor[] = [
    { name: 'label', datatype: 'INT64', shape: [3], data: new BigInt64Array([1n, 0n, 2n ** 60n]) },
    { name: 'probabilities', datatype: 'FP32', shape: [3, 2], data: new Float32Array([0.25, 0.75, 0.5, 0.5, 1, 0]) },
    { name: 'half', datatype: 'FP16', shape: [3], data: new Uint16Array([0x4200, 0x4000, 0x3c00]) },
  ];
  const head = { model_name: 'm', model_version: '1', id: 'q' };
  const { body: b, headerLength } = encodeBinaryResponse(head, outputs, new Set(['probabilities', 'half']));
  const { header, binary } = decodeBinaryResponseBody(b, headerLength);
  assert.deepEqual(header, {
    model_name: 'm', model_version: '1', id: 'q',
    outputs: [
      { name: 'label', datatype: 'INT64', shape: [3], data: [1, 0, '1152921504606846976'] },
      { name: 'probabilities', datatype: 'FP32', shape: [3, 2], parameters: { binary_data_size: 24 } },
      { name: 'half', datatype: 'FP16', shape: [3], parameters: { binary_data_size: 6 } },
    ],
  });
  assert.deepEqual(Array.from(decodeTensorBytes('FP32', 6, binary.get(1)!, 'p') as Float32Array), [0.25, 0.75, 0.5, 0.5, 1, 0]);
  assert.equal(binary.get(2)!.toString('hex'), '00420040003c');
  assert.equal(b.length, headerLength + 30);
});

test('a header length beyond the body or not a non-negative integer is a bad binary header', () => {
  const { body: b, headerLength } = body({ inputs: [] });
  throwsCode(() => decodeBinaryRequestBody(b, headerLength + 1), 'BAD_BINARY_HEADER');
  throwsCode(() => decodeBinaryRequestBody(b, -1), 'BAD_BINARY_HEADER');
  throwsCode(() => decodeBinaryRequestBody(b, 1.5), 'BAD_BINARY_HEADER');
  throwsCode(() => decodeBinaryRequestBody(b, NaN), 'BAD_BINARY_HEADER');
});

test('a binary header that is not JSON is BAD_JSON', () => {
  throwsCode(() => decodeBinaryRequestBody(Buffer.from('{"inputs": [xyz'), 10), 'BAD_JSON');
});

test('binary sizes that run past the body or leave bytes over are rejected', () => {
  const input = (size: unknown): unknown => ({ inputs: [{ name: 'x', datatype: 'UINT8', shape: [2], parameters: { binary_data_size: size } }] });
  const past = body(input(3), Buffer.from([1, 2]));
  throwsCode(() => decodeBinaryRequestBody(past.body, past.headerLength), 'BAD_BINARY_HEADER');
  const over = body(input(2), Buffer.from([1, 2, 3]));
  throwsCode(() => decodeBinaryRequestBody(over.body, over.headerLength), 'BAD_BINARY_HEADER');
  const noBinary = body({ inputs: [{ name: 'x', datatype: 'UINT8', shape: [1], data: [1] }] }, Buffer.from([1]));
  throwsCode(() => decodeBinaryRequestBody(noBinary.body, noBinary.headerLength), 'BAD_BINARY_HEADER');
  for (const bad of [-1, 1.5, '2', null]) {
    const b = body(input(bad), Buffer.from([1, 2]));
    throwsCode(() => decodeBinaryRequestBody(b.body, b.headerLength), 'BAD_BINARY_HEADER');
  }
});

test('binary_data_size that does not match shape times element size is rejected', () => {
  throwsCode(() => decodeTensorBytes('FP32', 3, Buffer.alloc(8), 'x'), 'BAD_BINARY_HEADER');
  throwsCode(() => decodeTensorBytes('INT64', 1, Buffer.alloc(9), 'x'), 'BAD_BINARY_HEADER');
  assert.equal((decodeTensorBytes('FP64', 0, Buffer.alloc(0), 'x') as Float64Array).length, 0);
});

test('malformed BYTES elements are rejected', () => {
  const two = encodeTensorBytes('BYTES', ['ab', 'c']);
  throwsCode(() => decodeTensorBytes('BYTES', 3, two, 'x'), 'BAD_BINARY_HEADER'); // ends before element 2
  throwsCode(() => decodeTensorBytes('BYTES', 1, two, 'x'), 'BAD_BINARY_HEADER'); // bytes left over
  throwsCode(() => decodeTensorBytes('BYTES', 1, Buffer.from('05000000616263', 'hex'), 'x'), 'BAD_BINARY_HEADER');
  throwsCode(() => decodeTensorBytes('BYTES', 1, Buffer.from('0100', 'hex'), 'x'), 'BAD_BINARY_HEADER');
});

test('BYTES elements must be UTF-8, and a real U+FFFD is kept', () => {
  throwsCode(() => decodeTensorBytes('BYTES', 1, Buffer.from('02000000c328', 'hex'), 'x'), 'INVALID_VALUE');
  assert.deepEqual(decodeTensorBytes('BYTES', 1, encodeTensorBytes('BYTES', ['a\uFFFDb']), 'x'), ['a\uFFFDb']);
});

test('binary BOOL bytes must be 0 or 1 and non-finite floats follow the policy', () => {
  throwsCode(() => checkBinaryValues('BOOL', new Uint8Array([0, 1, 2]), 'input x', 'allow'), 'INVALID_VALUE');
  const cases: [Datatype, Float32Array | Float64Array | Uint16Array][] = [
    ['FP32', new Float32Array([1, NaN])],
    ['FP64', new Float64Array([Infinity])],
    ['FP16', new Uint16Array([0x3c00, 0xfc00])],
  ];
  for (const [dt, data] of cases) {
    throwsCode(() => checkBinaryValues(dt, data, 'input x', 'reject'), 'NON_FINITE_VALUE');
    checkBinaryValues(dt, data, 'input x', 'allow');
  }
  checkBinaryValues('FP32', new Float32Array([1, -0, 3.4e38]), 'input x', 'reject');
});
