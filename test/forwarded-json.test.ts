/**
 * Issue 8, finding class 1 (parser differentials in the JSON pass-through), end to end: a gateway in
 * front of a real HTTP backend that records the bytes it receives. Every body a backend's parser
 * could read otherwise than the gateway did is refused with its catalogue code and never reaches the
 * backend; a body that passes reaches it byte for byte, and those bytes read, strictly, as exactly
 * the request the gateway validated.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { scanJson } from '../adapters/json-scan.js';
import type { RunningGateway } from '../gateway/main.js';
import { startFakeOipBackend, type FakeOipBackend, type OipModelMetadataJson } from './helpers/backends.js';
import { startInProcess } from './helpers/gateway.js';

const METADATA: OipModelMetadataJson = {
  name: 'fwd',
  platform: 'fake-oip',
  inputs: [
    { name: 'x', datatype: 'FP32', shape: [-1, 2] },
    { name: 's', datatype: 'BYTES', shape: [-1, 1] },
  ],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }],
};

const X = '{"name":"x","datatype":"FP32","shape":[1,2],"data":[1.5,-2]}';
const S = '{"name":"s","datatype":"BYTES","shape":[1,1],"data":["hello"]}';
/** A valid body with `head` (members, each followed by a comma) before its inputs. */
const body = (head = '', x = X, s = S): string => `{${head}"inputs":[${x},${s}]}`;

let backend: FakeOipBackend;
let gw: RunningGateway;

before(async () => {
  backend = await startFakeOipBackend(METADATA, (req) => ({
    outputs: [{ name: 'y', datatype: 'FP32', shape: [req.inputs[0]?.shape[0] ?? 0], data: [1] }],
  }));
  const versions = { '1': { backend: { kind: 'oip-http', url: backend.url, model: 'fwd' } } };
  gw = await startInProcess({ models: { fwd: { versions }, lenient: { unknownMembers: 'drop', versions } } });
});

after(async () => {
  await gw.close();
  await backend.close();
});

async function post(model: string, payload: string | Buffer, headers: Record<string, string> = {}) {
  const res = await request(`${gw.url}/v2/models/${model}/infer`, {
    method: 'POST', body: payload, headers: { 'content-type': 'application/json', ...headers },
  });
  return { status: res.statusCode, text: await res.body.text() };
}

async function refused(payload: string | Buffer, code: string, detail: RegExp, model = 'fwd', headers?: Record<string, string>): Promise<void> {
  const calls = backend.calls();
  const res = await post(model, payload, headers);
  assert.equal(res.status, 400, res.text);
  const parsed = JSON.parse(res.text) as { error: string; code: string };
  assert.equal(parsed.code, code, res.text);
  assert.match(parsed.error, detail);
  assert.ok(res.text.length < 400, 'the answer does not echo the body');
  assert.equal(backend.calls(), calls, `${code} must not reach the backend`);
}

/** The body as a backend with a strict parser reads it: no duplicates, UTF-8 only (or it throws). */
function strictRead(bytes: Buffer): unknown {
  const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  const json: unknown = JSON.parse(text);
  scanJson(text, 1000);
  return json;
}

describe('bodies parsers may read differently never reach the backend', () => {
  test('a key twice: at the top, in an input, in parameters', async () => {
    await refused(body('"id":"a","id":"b",'), 'AMBIGUOUS_JSON', /same key twice/);
    // JavaScript keeps the last datatype (FP32, valid); a parser keeping the first reads INT8.
    await refused(body('', '{"name":"x","datatype":"INT8","datatype":"FP32","shape":[1,2],"data":[1.5,-2]}'), 'AMBIGUOUS_JSON', /same key twice/);
    await refused(body('', '{"name":"x","datatype":"FP32","shape":[1,2],"data":[1.5,-2],"parameters":{"p":1,"p":"2"}}'), 'AMBIGUOUS_JSON', /same key twice/);
    await refused(body('', X, '{"name":"s","name":"x","datatype":"BYTES","shape":[1,1],"data":["hello"]}'), 'AMBIGUOUS_JSON', /same key twice/);
    await refused(body('"parameters":{"shared_memory_region":"r","\\u0073hared_memory_region":"r"},'), 'AMBIGUOUS_JSON', /same key twice/);
  });

  test('a lone surrogate escape, in a value or a key', async () => {
    await refused(body('', X, '{"name":"s","datatype":"BYTES","shape":[1,1],"data":["\\ud800"]}'), 'AMBIGUOUS_JSON', /lone surrogate/);
    await refused(body('"id":"\\udfff",'), 'AMBIGUOUS_JSON', /lone surrogate/);
    await refused(body('"parameters":{"\\ud83d":1},'), 'AMBIGUOUS_JSON', /lone surrogate/);
  });

  test('bytes that are not UTF-8', async () => {
    const [head, tail] = body('', X, '{"name":"s","datatype":"BYTES","shape":[1,1],"data":["@"]}').split('@');
    await refused(Buffer.concat([Buffer.from(head), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from(tail)]), 'BAD_JSON', /not valid UTF-8/);
    await refused(Buffer.concat([Buffer.from(head), Buffer.from([0xc0, 0xa2]), Buffer.from(tail)]), 'BAD_JSON', /not valid UTF-8/);
  });

  test('prototype keys at any depth', async () => {
    await refused(body('"__proto__":{"id":"x"},'), 'AMBIGUOUS_JSON', /prototype keys/);
    await refused(body('"parameters":{"constructor":"c"},'), 'AMBIGUOUS_JSON', /prototype keys/, 'lenient');
    await refused(body('', '{"name":"x","datatype":"FP32","shape":[1,2],"data":[1.5,-2],"parameters":{"prototype":1}}'), 'AMBIGUOUS_JSON', /prototype keys/);
  });

  test('nesting tens of thousands deep, even where members are dropped', async () => {
    const deep = `"z":${'['.repeat(30_000)}${']'.repeat(30_000)},`;
    await refused(body(deep), 'BAD_JSON', /deeper than 64/);
    await refused(body(deep), 'BAD_JSON', /deeper than 64/, 'lenient');
    await refused(body(`"parameters":{"p":${'{"a":'.repeat(100)}1${'}'.repeat(100)}},`), 'BAD_JSON', /deeper than 64/);
  });

  test('parameters that are objects or arrays, naming the parameter', async () => {
    await refused(body('"parameters":{"custom":{"a":[1]}},'), 'BAD_REQUEST', /parameter 'custom' must be a string, number or boolean/);
    await refused(body('', '{"name":"x","datatype":"FP32","shape":[1,2],"data":[1.5,-2],"parameters":{"q":[1]}}'), 'BAD_REQUEST', /input 'x': parameter 'q'/);
    await refused(body('"outputs":[{"name":"y","parameters":{"r":null}}],'), 'BAD_REQUEST', /output 'y': parameter 'r'/);
    await refused(body('"parameters":{"sequence_id":18446744073709551615},'), 'BAD_REQUEST', /'sequence_id' is beyond/);
  });

  test('members the protocol does not define, by default', async () => {
    await refused(body('"client_extra":{"anything":[1,2]},'), 'BAD_REQUEST', /the request has a member the protocol does not define: 'client_extra'/);
    await refused(body('', '{"name":"x","datatype":"FP32","shape":[1,2],"data":[1.5,-2],"shm":"r"}'), 'BAD_REQUEST', /inputs\[0\] .*'shm'/);
    await refused(body(`"${'m'.repeat(5000)}":1,`), 'BAD_REQUEST', /does not define: 'm{64}…'/);
  });

  test('a binary request whose JSON header breaks the same rules', async () => {
    const bin = '{"name":"x","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}';
    const cases: [string, string, RegExp][] = [
      [`{"inputs":[${bin},"name":"y"},${S}]}`, 'AMBIGUOUS_JSON', /same key twice/],
      [`{"inputs":[${bin}},${S}],"parameters":{"__proto__":1}}`, 'AMBIGUOUS_JSON', /prototype/],
      [`{"inputs":[${bin},"data2":1},${S}]}`, 'BAD_REQUEST', /'data2'/],
      [`{"inputs":[${bin}},${S}],"parameters":{"p":{}}}`, 'BAD_REQUEST', /parameter 'p'/],
    ];
    for (const [header, code, detail] of cases) {
      const h = Buffer.from(header);
      const headers = { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(h.length) };
      await refused(Buffer.concat([h, Buffer.alloc(8)]), code, detail, 'fwd', headers);
    }
  });
});

describe('what passes reaches the backend as it was validated', () => {
  test('byte for byte, and a strict parser reads exactly the validated request', async () => {
    const sent = body(
      '"id":"r-\\u00e9\\ud83d\\ude00","parameters":{"priority":1,"note":"a\\"b\\\\"},"outputs":[{"name":"y","parameters":{"classification":0}}],',
      ' { "shape" : [1,2], "name":"x", "data":[[1.5e0, -2]] ,"datatype":"FP32"}',
      '{"name":"s","datatype":"BYTES","shape":[1,1],"data":["\\"]}{\\\\ \\u0000 😀"],"parameters":{"p":true}}',
    );
    const res = await post('fwd', sent);
    assert.equal(res.status, 200, res.text);
    const received = backend.inferCalls().at(-1)!.body;
    assert.equal(received.toString('utf8'), sent);
    assert.deepEqual(strictRead(received), {
      id: 'r-é😀',
      parameters: { priority: 1, note: 'a"b\\' },
      outputs: [{ name: 'y', parameters: { classification: 0 } }],
      inputs: [
        { shape: [1, 2], name: 'x', data: [[1.5, -2]], datatype: 'FP32' },
        { name: 's', datatype: 'BYTES', shape: [1, 1], data: ['"]}{\\ \u0000 😀'], parameters: { p: true } },
      ],
    });
    assert.equal((JSON.parse(res.text) as { id?: string }).id, 'r-é😀');
  });

  test('unknownMembers: drop forwards the request without them, re-serialised', async () => {
    const sent = body('"extra":{"deep":[[1]]},"id":"d",', '{"name":"x","datatype":"FP32","shape":[1,2],"data":[1.5,-2],"note":1}');
    const res = await post('lenient', sent);
    assert.equal(res.status, 200, res.text);
    const received = strictRead(backend.inferCalls().at(-1)!.body) as Record<string, unknown>;
    assert.deepEqual(Object.keys(received).sort(), ['id', 'inputs']);
    assert.deepEqual(received.inputs, [
      { name: 'x', datatype: 'FP32', shape: [1, 2], data: [1.5, -2] },
      { name: 's', datatype: 'BYTES', shape: [1, 1], data: ['hello'] },
    ]);
  });
});
