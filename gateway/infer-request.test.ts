import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Datatype, InferTensor } from '../adapters/adapter.js';
import { encodeBinaryRequest } from '../adapters/binary.js';
import { toJsonData } from '../adapters/tensors.js';
import { ASSETS } from '../test/helpers/assets.js';
import { isGatewayError, type ErrorCode } from './errors.js';
import { parseInferRequest, type ParseLimits } from './infer-request.js';

const readSample = (name: string): unknown => JSON.parse(readFileSync(join(ASSETS, 'samples', name), 'utf8'));
interface Tensor { name: string; datatype: Datatype; shape: number[]; data: unknown[] }
const dtypeCases = (readSample('onnx-node-dtype-cases.json') as { cases: { request: { inputs: Tensor[] } }[] }).cases;
const titanic = (readSample('model-samples.json') as Record<string, { request: { id: string; inputs: Tensor[] } }>)
  .titanic_logreg_nozipmap.request;

const LIMITS: ParseLimits = { maxElements: 1_000_000, nonFinite: 'reject', maxJsonDepth: 64, unknownMembers: 'refuse' };

function parse(json: unknown, limits: ParseLimits = LIMITS): ReturnType<typeof parseInferRequest> {
  return parseInferRequest(Buffer.from(JSON.stringify(json)), undefined, limits);
}

function one(datatype: string, data: unknown[], shape: unknown = [data.length], name = 'x'): unknown {
  return { inputs: [{ name, datatype, shape, data }] };
}

function rejects(fn: () => unknown, code: ErrorCode, status = 400, detail?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isGatewayError(e), String(e));
    assert.equal(e.code, code, e.message);
    assert.equal(e.status, status);
    if (detail !== undefined) assert.match(e.detail ?? '', detail);
    return true;
  });
}

test('every onnx-node dtype case parses to its flat data, covering all 13 datatypes', () => {
  const seen = new Set<string>();
  for (const c of dtypeCases) {
    const req = parse(c.request);
    c.request.inputs.forEach((input, i) => {
      seen.add(input.datatype);
      assert.deepEqual(req.inputs[i], { name: input.name, datatype: input.datatype, shape: input.shape, data: input.data });
    });
  }
  assert.equal(seen.size, 13);
});

test('the titanic request\'s nested data is flattened and the raw JSON and id are kept', () => {
  const body = Buffer.from(JSON.stringify(titanic));
  const req = parseInferRequest(body, undefined, LIMITS);
  assert.equal(req.id, 'titanic-1');
  assert.equal(req.rawJson, body);
  assert.deepEqual(req.inputs.map((t) => t.data), [[1, 1, 1], ['female', 'male', 'female'], [29, 0.9167, 2], [211.3375, 151.55, 151.55], ['S', 'S', 'S']]);
});

test('deeply nested data is flattened row-major', () => {
  const req = parse(one('INT32', [[[1, 2], [3, 4]], [[5, 6], [7, 8]]], [2, 2, 2]));
  assert.deepEqual(req.inputs[0].data, [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(parse(one('FP32', [[], []], [2, 0])).inputs[0].data, []);
  assert.deepEqual(parse(one('FP32', [7], [])).inputs[0].data, [7]);
});

test('ragged, partly nested or wrongly counted data is a shape/data mismatch', () => {
  rejects(() => parse(one('INT32', [[1, 2], [3]], [2, 2])), 'SHAPE_DATA_MISMATCH');
  rejects(() => parse(one('INT32', [[1, 2], 3], [2, 2])), 'SHAPE_DATA_MISMATCH');
  rejects(() => parse(one('INT32', [[1, 2, 3, 4], [5, 6, 7, 8]], [2, 2, 2])), 'SHAPE_DATA_MISMATCH');
  rejects(() => parse(one('INT32', [[1], [2]], [2])), 'SHAPE_DATA_MISMATCH');
  rejects(() => parse(one('INT32', [1, 2, 3], [2, 2])), 'SHAPE_DATA_MISMATCH', 400, /3 values, shape needs 4/);
  rejects(() => parse(one('INT32', [[1, 2]], [2, 1])), 'SHAPE_DATA_MISMATCH');
});

test('more elements than the limit is rejected before the data is read', () => {
  rejects(() => parse(one('FP32', [], [1000, 1001]), { ...LIMITS, maxElements: 1_000_000 }), 'TOO_MANY_ELEMENTS', 413);
  rejects(() => parse(one('FP32', [], [2 ** 52, 2 ** 52])), 'TOO_MANY_ELEMENTS', 413);
});

test('structural problems are bad requests', () => {
  rejects(() => parseInferRequest(Buffer.from('{"inputs": ['), undefined, LIMITS), 'BAD_JSON');
  rejects(() => parse([1]), 'BAD_REQUEST');
  rejects(() => parse({ inputs: [] }), 'BAD_REQUEST');
  rejects(() => parse({ id: 7, ...(one('INT8', [1]) as object) }), 'BAD_REQUEST');
  rejects(() => parse({ parameters: [], ...(one('INT8', [1]) as object) }), 'BAD_REQUEST');
  rejects(() => parse({ outputs: {}, ...(one('INT8', [1]) as object) }), 'BAD_REQUEST');
  rejects(() => parse({ outputs: [{ name: 'y' }, { name: 'y' }], ...(one('INT8', [1]) as object) }), 'BAD_REQUEST');
  rejects(() => parse({ outputs: [{ name: 'y', parameters: 1 }], ...(one('INT8', [1]) as object) }), 'BAD_REQUEST');
  rejects(() => parse(one('INT8', [1], [-1])), 'BAD_REQUEST');
  rejects(() => parse(one('INT8', [1], [1.5])), 'BAD_REQUEST');
  rejects(() => parse(one('INT8', [1], 'x')), 'BAD_REQUEST');
  rejects(() => parse(one('INT8', [1], [1], '')), 'BAD_REQUEST');
  rejects(() => parse(one('INT8', [1], [1], 'n'.repeat(257))), 'BAD_REQUEST');
  rejects(() => parse({ inputs: [{ name: 'x', datatype: 'INT8', shape: [1] }] }), 'BAD_REQUEST');
  rejects(() => parse({ inputs: [{ name: 'x', datatype: 'INT8', shape: [1], data: [1], parameters: 'p' }] }), 'BAD_REQUEST');
  const req = parse({ parameters: { p: 1 }, outputs: [{ name: 'y', parameters: { binary_data: true } }], ...(one('INT8', [1]) as object) });
  assert.deepEqual(req.outputs, [{ name: 'y', parameters: { binary_data: true } }]);
  assert.deepEqual(req.parameters, { p: 1 });
});

test('an unknown datatype and a repeated input name are rejected with their codes', () => {
  rejects(() => parse(one('FLOAT32', [1])), 'UNKNOWN_DATATYPE');
  rejects(() => parse({ inputs: [{ name: 'a', datatype: 'INT8', shape: [1], data: [1] }, { name: 'a', datatype: 'INT8', shape: [1], data: [2] }] }), 'DUPLICATE_INPUT');
});

test('BOOL takes only true and false, as Triton\'s JSON does', () => {
  assert.deepEqual(parse(one('BOOL', [true, false])).inputs[0].data, [true, false]);
  rejects(() => parse(one('BOOL', [true, 1])), 'INVALID_VALUE', 400, /element 1/);
  rejects(() => parse(one('BOOL', ['true'])), 'INVALID_VALUE');
});

test('integers must be integers inside their datatype\'s range', () => {
  rejects(() => parse(one('INT32', [1.5])), 'INVALID_VALUE');
  rejects(() => parse(one('INT32', ['1'])), 'INVALID_VALUE');
  rejects(() => parse(one('INT8', [128])), 'VALUE_OUT_OF_RANGE');
  rejects(() => parse(one('INT16', [-32769])), 'VALUE_OUT_OF_RANGE');
  rejects(() => parse(one('UINT8', [-1])), 'VALUE_OUT_OF_RANGE');
  rejects(() => parse(one('UINT32', [4294967296])), 'VALUE_OUT_OF_RANGE');
  rejects(() => parse(one('INT32', [2147483648])), 'VALUE_OUT_OF_RANGE');
});

test('64-bit integers beyond 2^53 come as decimal strings, checked against the exact range', () => {
  const req = parse(one('INT64', ['9223372036854775807', '-9223372036854775808', '9007199254740993', '123', -5]));
  assert.deepEqual(req.inputs[0].data, ['9223372036854775807', '-9223372036854775808', '9007199254740993', 123, -5]);
  assert.deepEqual(parse(one('UINT64', ['18446744073709551615', 0])).inputs[0].data, ['18446744073709551615', 0]);
  rejects(() => parse(one('INT64', ['9223372036854775808'])), 'VALUE_OUT_OF_RANGE');
  rejects(() => parse(one('UINT64', ['18446744073709551616'])), 'VALUE_OUT_OF_RANGE');
  rejects(() => parse(one('UINT64', ['-1'])), 'VALUE_OUT_OF_RANGE');
  rejects(() => parse(one('UINT64', [-1])), 'VALUE_OUT_OF_RANGE');
  rejects(() => parse(one('INT64', [1e300])), 'VALUE_OUT_OF_RANGE');
  for (const bad of ['1e5', ' 12', '12a', '+1', '1.0', '', '123456789012345678901', true, null]) {
    rejects(() => parse(one('INT64', [bad])), 'INVALID_VALUE');
  }
});

test('a 64-bit integer beyond 2^53 sent as a JSON number is refused with a hint to send a string', () => {
  const body = Buffer.from('{"inputs":[{"name":"x","datatype":"INT64","shape":[1],"data":[9007199254740993]}]}');
  rejects(() => parseInferRequest(body, undefined, LIMITS), 'INVALID_VALUE', 400, /decimal string/);
});

test('floats must be numbers within the datatype\'s finite range', () => {
  assert.deepEqual(parse(one('FP16', [65504, -65504])).inputs[0].data, [65504, -65504]);
  rejects(() => parse(one('FP16', [65505])), 'VALUE_OUT_OF_RANGE');
  assert.deepEqual(parse(one('FP32', [3.4028234663852886e38])).inputs[0].data, [3.4028234663852886e38]);
  rejects(() => parse(one('FP32', [-3.5e38])), 'VALUE_OUT_OF_RANGE');
  assert.deepEqual(parse(one('FP64', [1e308])).inputs[0].data, [1e308]);
  const overflow = Buffer.from('{"inputs":[{"name":"x","datatype":"FP64","shape":[1],"data":[1e999]}]}');
  rejects(() => parseInferRequest(overflow, undefined, LIMITS), 'VALUE_OUT_OF_RANGE');
  rejects(() => parse(one('FP32', ['1.5'])), 'INVALID_VALUE');
  rejects(() => parse(one('FP32', [true])), 'INVALID_VALUE');
});

test('NaN and Infinity strings are refused or kept as the model\'s policy says', () => {
  for (const s of ['NaN', 'Infinity', '-Infinity']) {
    rejects(() => parse(one('FP32', [1, s])), 'NON_FINITE_VALUE', 400, /element 1/);
    assert.deepEqual(parse(one('FP64', [s]), { ...LIMITS, nonFinite: 'allow' }).inputs[0].data, [s]);
  }
  rejects(() => parse(one('FP32', ['nan']), { ...LIMITS, nonFinite: 'allow' }), 'INVALID_VALUE');
});

test('BYTES takes only strings', () => {
  rejects(() => parse(one('BYTES', ['a', 5])), 'INVALID_VALUE');
  rejects(() => parse(one('BYTES', [['a']], [1])), 'SHAPE_DATA_MISMATCH');
});

test('details name the input and element, cut long names and never echo values', () => {
  const longName = 'n'.repeat(200);
  rejects(() => parse(one('INT32', [[1, 2], [3, 'x'.repeat(100_000)]], [2, 2], longName)), 'INVALID_VALUE', 400, /^input 'n{64}…' element 3: /);
  assert.throws(() => parse(one('INT32', ['x'.repeat(100_000)])), (e: unknown) => isGatewayError(e) && e.message.length < 200);
});

const ALL_BINARY: InferTensor[] = [
  { name: 'bool', datatype: 'BOOL', shape: [2], data: [true, false] },
  { name: 'u8', datatype: 'UINT8', shape: [2], data: [0, 255] },
  { name: 'u16', datatype: 'UINT16', shape: [1], data: [65535] },
  { name: 'u32', datatype: 'UINT32', shape: [1], data: [4294967295] },
  { name: 'u64', datatype: 'UINT64', shape: [1], data: ['18446744073709551615'] },
  { name: 'i8', datatype: 'INT8', shape: [1], data: [-128] },
  { name: 'i16', datatype: 'INT16', shape: [1], data: [-32768] },
  { name: 'i32', datatype: 'INT32', shape: [1], data: [-2147483648] },
  { name: 'i64', datatype: 'INT64', shape: [2], data: ['-9223372036854775808', 7] },
  { name: 'f16', datatype: 'FP16', shape: [3], data: [3, 2, 1] },
  { name: 'f32', datatype: 'FP32', shape: [1, 2], data: [0.5, -1] },
  { name: 'f64', datatype: 'FP64', shape: [1], data: [0.1] },
  { name: 'bytes', datatype: 'BYTES', shape: [2], data: ['abc', 'ü'] },
];

test('a binary request with every datatype parses to typed arrays with the same values', () => {
  const names = new Set(ALL_BINARY.map((t) => t.name));
  const { body, headerLength } = encodeBinaryRequest({ id: 'b1' }, ALL_BINARY, names);
  const req = parseInferRequest(body, headerLength, LIMITS);
  assert.equal(req.id, 'b1');
  assert.equal(req.rawJson, undefined);
  req.inputs.forEach((t, i) => {
    assert.equal(t.parameters, undefined, 'binary_data_size is not passed on');
    assert.equal(ArrayBuffer.isView(t.data), t.datatype !== 'BYTES');
    assert.deepEqual(toJsonData(t.datatype, t.data), ALL_BINARY[i].data, t.datatype);
  });
});

test('binary and JSON inputs mix in one binary request, and other input parameters are kept', () => {
  const inputs: InferTensor[] = [
    { name: 'a', datatype: 'FP32', shape: [2], data: [1, 2], parameters: { note: 'n' } },
    { name: 'b', datatype: 'INT32', shape: [2, 1], data: [[3], [4]] },
  ];
  const { body, headerLength } = encodeBinaryRequest({}, inputs, new Set(['a']));
  const req = parseInferRequest(body, headerLength, LIMITS);
  assert.ok(req.inputs[0].data instanceof Float32Array);
  assert.deepEqual(req.inputs[0].parameters, { note: 'n' });
  assert.deepEqual(req.inputs[1].data, [3, 4]);
});

test('binary values are checked: non-finite floats by policy, BOOL bytes 0/1', () => {
  const f = [{ name: 'x', datatype: 'FP32', shape: [2], data: new Float32Array([1, NaN]) }] as const;
  const { body, headerLength } = encodeBinaryRequest({}, f, new Set(['x']));
  rejects(() => parseInferRequest(body, headerLength, LIMITS), 'NON_FINITE_VALUE');
  assert.ok(Number.isNaN((parseInferRequest(body, headerLength, { ...LIMITS, nonFinite: 'allow' }).inputs[0].data as Float32Array)[1]));
  const b = [{ name: 'x', datatype: 'BOOL', shape: [1], data: new Uint8Array([2]) }] as const;
  const bool = encodeBinaryRequest({}, b, new Set(['x']));
  rejects(() => parseInferRequest(bool.body, bool.headerLength, LIMITS), 'INVALID_VALUE');
});

test('malformed binary requests are bad binary headers', () => {
  const header = (inputs: unknown[]): Buffer => Buffer.from(JSON.stringify({ inputs }));
  const sized = { name: 'x', datatype: 'INT16', shape: [2], parameters: { binary_data_size: 4 } };
  const h = header([sized]);
  const ok = Buffer.concat([h, Buffer.alloc(4)]);
  assert.equal(parseInferRequest(ok, h.length, LIMITS).inputs[0].data.length, 2);
  rejects(() => parseInferRequest(ok, ok.length + 1, LIMITS), 'BAD_BINARY_HEADER');
  rejects(() => parseInferRequest(Buffer.concat([ok, Buffer.alloc(1)]), h.length, LIMITS), 'BAD_BINARY_HEADER');
  const wrongSize = header([{ ...sized, shape: [3] }]);
  rejects(() => parseInferRequest(Buffer.concat([wrongSize, Buffer.alloc(4)]), wrongSize.length, LIMITS), 'BAD_BINARY_HEADER');
  const both = header([{ ...sized, data: [1, 2] }]);
  rejects(() => parseInferRequest(Buffer.concat([both, Buffer.alloc(4)]), both.length, LIMITS), 'BAD_BINARY_HEADER');
  rejects(() => parseInferRequest(h, undefined, LIMITS), 'BAD_BINARY_HEADER');
  rejects(() => parseInferRequest(Buffer.from('not json'), 8, LIMITS), 'BAD_JSON');
});

test('a request asking for binary outputs offers no raw JSON to forward', () => {
  const x = { name: 'x', datatype: 'FP32', shape: [1], data: [1] };
  assert.equal(parse({ inputs: [x], parameters: { binary_data_output: true } }).rawJson, undefined);
  assert.equal(parse({ inputs: [x], outputs: [{ name: 'y', parameters: { binary_data: true } }] }).rawJson, undefined);
  assert.ok(parse({ inputs: [x], outputs: [{ name: 'y' }], parameters: { priority: 1 } }).rawJson !== undefined);
});

test('shared-memory tensors are refused wherever they are asked for', () => {
  const x = { name: 'x', datatype: 'FP32', shape: [1], data: [1] };
  rejects(() => parse({ inputs: [{ ...x, parameters: { shared_memory_region: 'r' } }] }), 'BAD_REQUEST', 400, /shared-memory/);
  rejects(() => parse({ inputs: [x], outputs: [{ name: 'y', parameters: { shared_memory_region: 'r' } }] }), 'BAD_REQUEST', 400, /shared-memory/);
  rejects(() => parse({ inputs: [x], parameters: { shared_memory_byte_size: 4 } }), 'BAD_REQUEST', 400, /shared-memory/);
});
