/**
 * What parseInferRequest lets through to a backend that receives the client's bytes: only the
 * protocol's members (or none of the others, re-serialised), scalar parameters, and a JSON header of
 * a binary request held to the same rules as a plain body (issue 8, finding class 1).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConfig, ConfigError } from './config.js';
import { isGatewayError, type ErrorCode } from './errors.js';
import { parseInferRequest, type ParseLimits } from './infer-request.js';

const LIMITS: ParseLimits = { maxElements: 1_000_000, nonFinite: 'reject', maxJsonDepth: 64, unknownMembers: 'refuse' };
const DROP: ParseLimits = { ...LIMITS, unknownMembers: 'drop' };
const X = { name: 'x', datatype: 'FP32', shape: [1], data: [1] };

const parse = (json: unknown, limits = LIMITS) => parseInferRequest(Buffer.from(JSON.stringify(json)), undefined, limits);
const parseText = (text: string, limits = LIMITS) => parseInferRequest(Buffer.from(text), undefined, limits);

function rejects(fn: () => unknown, code: ErrorCode, detail: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isGatewayError(e), String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.detail ?? '', detail);
    return true;
  });
}

/** A binary-extension body from a header given as text and the raw bytes after it. */
function binaryBody(header: string, raw: Buffer): { body: Buffer; headerLength: number } {
  const h = Buffer.from(header);
  return { body: Buffer.concat([h, raw]), headerLength: h.length };
}

test('parameter values other than strings, numbers and booleans are refused, naming the parameter', () => {
  for (const value of [{ a: 1 }, [1], null, { nested: { deeper: [[[]]] } }]) {
    rejects(() => parse({ inputs: [X], parameters: { custom: value } }), 'BAD_REQUEST', /parameters: parameter 'custom' must be a string, number or boolean/);
    rejects(() => parse({ inputs: [{ ...X, parameters: { custom: value } }] }), 'BAD_REQUEST', /input 'x': parameter 'custom'/);
    rejects(() => parse({ inputs: [X], outputs: [{ name: 'y', parameters: { custom: value } }] }), 'BAD_REQUEST', /output 'y': parameter 'custom'/);
  }
});

test('a parameter number must be one every parser reads alike', () => {
  rejects(() => parseText('{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"parameters":{"sequence_id":18446744073709551615}}'), 'BAD_REQUEST', /'sequence_id' is beyond/);
  rejects(() => parseText('{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"parameters":{"t":1e999}}'), 'BAD_REQUEST', /'t' is beyond/);
  // A whole value past 2^53 is refused however it is written: after parsing, 1e300 and an integer look alike.
  rejects(() => parseText('{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"parameters":{"t":1e300}}'), 'BAD_REQUEST', /'t' is beyond/);
  assert.deepEqual(parse({ inputs: [X], parameters: { sequence_id: '18446744073709551615', a: 9007199254740991, b: 0.1, c: -2.5e-300, d: 1.5e10 } }).parameters,
    { sequence_id: '18446744073709551615', a: 9007199254740991, b: 0.1, c: -2.5e-300, d: 1.5e10 });
});

test('Triton\'s own extension parameters pass', () => {
  const req = parse({
    inputs: [{ ...X, parameters: { note: 'n' } }],
    outputs: [{ name: 'y', parameters: { binary_data: false, classification: 3 } }],
    parameters: { binary_data_output: false, priority: 1, timeout: 100000, sequence_id: 42, sequence_start: true, sequence_end: false },
  });
  assert.deepEqual(req.outputs, [{ name: 'y', parameters: { binary_data: false, classification: 3 } }]);
  const bin = binaryBody('{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}}],"parameters":{"binary_data_output":true}}', Buffer.alloc(4));
  assert.equal(parseInferRequest(bin.body, bin.headerLength, LIMITS).inputs[0].data.length, 1);
});

test('members the protocol does not define are refused by default, at every level, the name cut short', () => {
  rejects(() => parse({ inputs: [X], extra: 1 }), 'BAD_REQUEST', /the request has a member the protocol does not define: 'extra'/);
  rejects(() => parse({ inputs: [{ ...X, shared: true }] }), 'BAD_REQUEST', /inputs\[0\] has a member .*'shared'/);
  rejects(() => parse({ inputs: [X], outputs: [{ name: 'y', datatype: 'FP32' }] }), 'BAD_REQUEST', /outputs\[0\] has a member .*'datatype'/);
  assert.throws(() => parse({ inputs: [X], ['k'.repeat(10_000)]: 1 }), (e: unknown) => isGatewayError(e) && e.message.length < 300);
});

test('with unknownMembers: drop, they are left out and the body is no longer forwarded as it came', () => {
  const req = parse({ inputs: [{ ...X, extra: [[[1]]] }], outputs: [{ name: 'y', x: 1 }], other: { deep: [1] } }, DROP);
  assert.equal(req.rawJson, undefined, 'bytes holding dropped members must be re-serialised');
  assert.deepEqual(req.inputs[0], X);
  assert.deepEqual(req.outputs, [{ name: 'y' }]);
  assert.deepEqual(Object.keys(req), ['inputs', 'outputs']);
  const clean = parse({ id: 'a', inputs: [X] }, DROP);
  assert.ok(clean.rawJson !== undefined, 'a body with nothing to drop is still passed through');
});

test('a plain body that breaks a scan rule is refused before its fields are looked at', () => {
  rejects(() => parseText('{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"id":"a","id":"b"}'), 'AMBIGUOUS_JSON', /same key twice/);
  rejects(() => parseText('{"inputs":[{"name":"x","name":"y","datatype":"FP32","shape":[1],"data":[1]}]}'), 'AMBIGUOUS_JSON', /same key twice/);
  rejects(() => parseText('{"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"data":["\\ud800"]}]}'), 'AMBIGUOUS_JSON', /lone surrogate/);
  rejects(() => parseText('{"__proto__":{"inputs":1},"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}', DROP), 'AMBIGUOUS_JSON', /prototype/);
  rejects(() => parseText(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"z":${'['.repeat(20_000)}${']'.repeat(20_000)}}`, DROP), 'BAD_JSON', /deeper than 64/);
  const invalid = Buffer.concat([Buffer.from('{"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"data":["'), Buffer.from([0xff]), Buffer.from('"]}]}')]);
  rejects(() => parseInferRequest(invalid, undefined, LIMITS), 'BAD_JSON', /not valid UTF-8/);
});

test('nested data is limited by maxJsonDepth: rank 61 passes at 64, rank 62 does not', () => {
  const nest = (rank: number): unknown => (rank === 0 ? 1 : [nest(rank - 1)]);
  const input = (rank: number) => ({ inputs: [{ name: 'x', datatype: 'FP32', shape: new Array<number>(rank).fill(1), data: nest(rank) }] });
  assert.deepEqual(parse(input(61)).inputs[0].data, [1]);
  rejects(() => parse(input(62)), 'BAD_JSON', /deeper than 64/);
  assert.deepEqual(parse(input(62), { ...LIMITS, maxJsonDepth: 65 }).inputs[0].data, [1]);
});

test('a binary request\'s JSON header gets the same rules', () => {
  const raw = Buffer.alloc(4);
  const head = (extra: string) => binaryBody(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}${extra}}]}`, raw);
  const cases: [string, ErrorCode, RegExp][] = [
    [',"name":"y"', 'AMBIGUOUS_JSON', /same key twice/],
    [',"parameters":{"binary_data_size":0}', 'AMBIGUOUS_JSON', /same key twice/],
    [',"data":["\\udc00"]', 'AMBIGUOUS_JSON', /lone surrogate/],
    [',"constructor":1', 'AMBIGUOUS_JSON', /prototype/],
    [`,"z":${'['.repeat(100)}${']'.repeat(100)}`, 'BAD_JSON', /deeper than 64/],
    [',"extra":1', 'BAD_REQUEST', /inputs\[0\] has a member .*'extra'/],
  ];
  for (const [extra, code, detail] of cases) {
    const { body, headerLength } = head(extra);
    rejects(() => parseInferRequest(body, headerLength, LIMITS), code, detail);
  }
  const bad = binaryBody('{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4,"p":{"q":1}}}]}', raw);
  rejects(() => parseInferRequest(bad.body, bad.headerLength, LIMITS), 'BAD_REQUEST', /parameter 'p'/);
  const utf8 = Buffer.concat([Buffer.from('{"id":"'), Buffer.from([0xc3]), Buffer.from('","inputs":[{"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}}]}')]);
  rejects(() => parseInferRequest(Buffer.concat([utf8, raw]), utf8.length, LIMITS), 'BAD_JSON', /JSON header is not valid UTF-8/);
  const dropped = head(',"extra":1');
  assert.equal(parseInferRequest(dropped.body, dropped.headerLength, DROP).inputs[0].data.length, 1);
});

test('the model settings: maxJsonDepth 64 and unknownMembers refuse by default, a depth below 4 refused', () => {
  const versions = { '1': { backend: { kind: 'onnx', path: 'm.onnx' } } };
  const m = buildConfig({ auth: { insecureNoAuth: true }, models: { m: { versions } } }, '/base').models.m;
  assert.equal(m.maxJsonDepth, 64);
  assert.equal(m.unknownMembers, 'refuse');
  assert.throws(() => buildConfig({ auth: { insecureNoAuth: true }, models: { m: { versions, maxJsonDepth: 3 } } }, '/base'), ConfigError);
  assert.throws(() => buildConfig({ auth: { insecureNoAuth: true }, models: { m: { versions, unknownMembers: 'keep' } } }, '/base'), ConfigError);
});
