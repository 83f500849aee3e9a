/**
 * Every kind of bad input gets its 4xx and code, as JSON without a stack trace, and never reaches the
 * backend: the gateway sits in front of a real HTTP backend that counts the calls it receives.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import type { RunningGateway } from '../gateway/main.js';
import { startFakeOipBackend, type FakeOipBackend, type OipModelMetadataJson } from './helpers/backends.js';
import { startInProcess } from './helpers/gateway.js';

const WIDE: OipModelMetadataJson = {
  name: 'wide',
  platform: 'fake-oip',
  inputs: [
    { name: 'b', datatype: 'BOOL', shape: [-1, 2] },
    { name: 'i8', datatype: 'INT8', shape: [-1, 2] },
    { name: 'u8', datatype: 'UINT8', shape: [-1, 2] },
    { name: 'i64', datatype: 'INT64', shape: [-1, 2] },
    { name: 'u64', datatype: 'UINT64', shape: [-1, 2] },
    { name: 'f16', datatype: 'FP16', shape: [-1, 2] },
    { name: 'f32', datatype: 'FP32', shape: [-1, 2] },
    { name: 's', datatype: 'BYTES', shape: [-1, 1] },
  ],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }],
};

type Tensor = { name: string; datatype: string; shape: number[]; data?: unknown; parameters?: Record<string, unknown> };

function goodInputs(): Tensor[] {
  return [
    { name: 'b', datatype: 'BOOL', shape: [1, 2], data: [true, false] },
    { name: 'i8', datatype: 'INT8', shape: [1, 2], data: [-128, 127] },
    { name: 'u8', datatype: 'UINT8', shape: [1, 2], data: [0, 255] },
    { name: 'i64', datatype: 'INT64', shape: [1, 2], data: [-9007199254740991, '9223372036854775807'] },
    { name: 'u64', datatype: 'UINT64', shape: [1, 2], data: [0, '18446744073709551615'] },
    { name: 'f16', datatype: 'FP16', shape: [1, 2], data: [65504, -0.5] },
    { name: 'f32', datatype: 'FP32', shape: [1, 2], data: [[1.5, -2]] },
    { name: 's', datatype: 'BYTES', shape: [1, 1], data: ['hello'] },
  ];
}

/** The good request with one input replaced (or removed when `replacement` is null). */
function withInput(name: string, replacement: Partial<Tensor> | null): { inputs: Tensor[] } {
  const inputs = goodInputs().flatMap((t) => (t.name !== name ? [t] : replacement === null ? [] : [{ ...t, ...replacement }]));
  return { inputs };
}

let backend: FakeOipBackend;
let gw: RunningGateway;

before(async () => {
  backend = await startFakeOipBackend(WIDE, (req) => ({
    outputs: [{ name: 'y', datatype: 'FP32', shape: [req.inputs[0]?.shape[0] ?? 0], data: [1] }],
  }));
  gw = await startInProcess({
    models: {
      wide: {
        maxBodyBytes: 64 * 1024,
        maxElements: 1000,
        versions: { '1': { backend: { kind: 'oip-http', url: backend.url, model: 'wide' } } },
      },
    },
  });
});

after(async () => {
  await gw.close();
  await backend.close();
});

async function post(path: string, body: string | Buffer, headers: Record<string, string> = {}) {
  const res = await request(`${gw.url}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
}

async function expectRejected(body: unknown, status: number, code: string, path = '/v2/models/wide/infer', headers?: Record<string, string>) {
  const before = backend.calls();
  const payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const res = await post(path, payload, headers);
  assert.equal(res.status, status, `status for ${code}: ${res.text}`);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const parsed = JSON.parse(res.text) as { error: string; code: string };
  assert.equal(parsed.code, code, res.text);
  assert.equal(typeof parsed.error, 'string');
  assert.doesNotMatch(res.text, /\n\s+at |node:internal|127\.0\.0\.1/, 'no stack trace or internal address');
  assert.equal(backend.calls(), before, `${code} must not reach the backend`);
}

describe('a valid request (control)', () => {
  test('reaches the backend exactly once and answers 200', async () => {
    const before = backend.calls();
    const res = await post('/v2/models/wide/infer', JSON.stringify({ id: 'ok', inputs: goodInputs() }));
    assert.equal(res.status, 200, res.text);
    assert.equal(backend.calls(), before + 1);
    assert.equal(res.headers['x-model-version'], '1');
  });

  test('forwards the client body byte for byte, spacing and parameters included', async () => {
    const body = JSON.stringify({ parameters: { priority: 1, note: 'x' }, inputs: goodInputs() }, null, 1);
    const res = await post('/v2/models/wide/infer', body);
    assert.equal(res.status, 200, res.text);
    assert.equal(backend.inferCalls().at(-1)?.body.toString(), body);
  });
});

describe('malformed requests get 400', () => {
  test('body that is not JSON', () => expectRejected('{"inputs": [', 400, 'BAD_JSON'));
  test('empty body', () => expectRejected('', 400, 'BAD_REQUEST'));
  test('JSON that is not an object', () => expectRejected('[1,2]', 400, 'BAD_REQUEST'));
  test('missing inputs', () => expectRejected({ id: 'x' }, 400, 'BAD_REQUEST'));
  test('inputs not a list', () => expectRejected({ inputs: { b: 1 } }, 400, 'BAD_REQUEST'));
  test('id that is not a string', () => expectRejected({ id: 5, inputs: goodInputs() }, 400, 'BAD_REQUEST'));
  test('negative dimension', () => expectRejected(withInput('b', { shape: [-1, 2] }), 400, 'BAD_REQUEST'));
  test('unknown datatype', () => expectRejected(withInput('f32', { datatype: 'FLOAT' }), 400, 'UNKNOWN_DATATYPE'));
  test('input name over 256 characters', () => expectRejected(withInput('s', { name: 'n'.repeat(300) }), 400, 'BAD_REQUEST'));
});

describe('shape against data', () => {
  test('flat data shorter than the shape', () => expectRejected(withInput('f32', { data: [1] }), 400, 'SHAPE_DATA_MISMATCH'));
  test('ragged nested data', () => expectRejected(withInput('f32', { shape: [2, 2], data: [[1, 2], [3]] }), 400, 'SHAPE_DATA_MISMATCH'));
  test('nesting deeper than the shape', () => expectRejected(withInput('f32', { data: [[[1], [2]]] }), 400, 'SHAPE_DATA_MISMATCH'));
});

describe('values against their datatype', () => {
  test('INT8 above 127', () => expectRejected(withInput('i8', { data: [300, 1] }), 400, 'VALUE_OUT_OF_RANGE'));
  test('UINT8 below 0', () => expectRejected(withInput('u8', { data: [-1, 1] }), 400, 'VALUE_OUT_OF_RANGE'));
  test('integer type given a fraction', () => expectRejected(withInput('i8', { data: [1.5, 1] }), 400, 'INVALID_VALUE'));
  test('BOOL given a string', () => expectRejected(withInput('b', { data: ['yes', true] }), 400, 'INVALID_VALUE'));
  test('BOOL given a number', () => expectRejected(withInput('b', { data: [1, 0] }), 400, 'INVALID_VALUE'));
  test('INT64 beyond 2^53 as a JSON number', () => expectRejected(withInput('i64', { data: [9007199254740993, 1] }), 400, 'INVALID_VALUE'));
  test('INT64 string beyond 2^63-1', () => expectRejected(withInput('i64', { data: ['9223372036854775808', 1] }), 400, 'VALUE_OUT_OF_RANGE'));
  test('UINT64 negative string', () => expectRejected(withInput('u64', { data: ['-1', 1] }), 400, 'VALUE_OUT_OF_RANGE'));
  test('INT64 string that is not a number', () => expectRejected(withInput('i64', { data: ['12abc', 1] }), 400, 'INVALID_VALUE'));
  test('FP16 beyond 65504', () => expectRejected(withInput('f16', { data: [70000, 1] }), 400, 'VALUE_OUT_OF_RANGE'));
  test('FP32 beyond its range', () => expectRejected(withInput('f32', { data: [1e39, 1] }), 400, 'VALUE_OUT_OF_RANGE'));
  test('NaN refused by default', () => expectRejected(withInput('f32', { data: ['NaN', 1] }), 400, 'NON_FINITE_VALUE'));
  test('Infinity refused by default', () => expectRejected(withInput('f16', { data: ['-Infinity', 1] }), 400, 'NON_FINITE_VALUE'));
  test('BYTES given a number', () => expectRejected(withInput('s', { data: [5] }), 400, 'INVALID_VALUE'));
  test('FP32 given a boolean', () => expectRejected(withInput('f32', { data: [true, 1] }), 400, 'INVALID_VALUE'));
});

describe('the request against the model metadata', () => {
  test('an input the model does not have', () => expectRejected({ inputs: [...goodInputs(), { name: 'extra', datatype: 'FP32', shape: [1], data: [1] }] }, 400, 'UNKNOWN_INPUT'));
  test('a model input that is missing', () => expectRejected(withInput('u8', null), 400, 'MISSING_INPUT'));
  test('an input given twice', () => expectRejected({ inputs: [...goodInputs(), goodInputs()[0]] }, 400, 'DUPLICATE_INPUT'));
  test('a datatype other than the model\'s', () => expectRejected(withInput('f32', { datatype: 'FP64' }), 400, 'DATATYPE_MISMATCH'));
  test('a different rank', () => expectRejected(withInput('f32', { shape: [2], data: [1, 2] }), 400, 'SHAPE_MISMATCH'));
  test('a fixed dimension that differs', () => expectRejected(withInput('f32', { shape: [1, 3], data: [1, 2, 3] }), 400, 'SHAPE_MISMATCH'));
  test('inputs that disagree on the batch dimension', () => expectRejected(withInput('f32', { shape: [2, 2], data: [1, 2, 3, 4] }), 400, 'BATCH_MISMATCH'));
  test('an output the model does not have', () => expectRejected({ inputs: goodInputs(), outputs: [{ name: 'nope' }] }, 400, 'UNKNOWN_OUTPUT'));
});

describe('sizes', () => {
  test('a tensor over maxElements gets 413', () => {
    const n = 1001;
    return expectRejected(withInput('f32', { shape: [n, 2], data: new Array(n * 2).fill(0) }), 413, 'TOO_MANY_ELEMENTS');
  });
  test('a body over maxBodyBytes gets 413', () => expectRejected(JSON.stringify({ inputs: goodInputs(), pad: 'x'.repeat(70 * 1024) }), 413, 'PAYLOAD_TOO_LARGE'));
});

describe('unknown routes, models and versions', () => {
  test('unknown model gets 404', () => expectRejected({ inputs: goodInputs() }, 404, 'MODEL_NOT_FOUND', '/v2/models/nope/infer'));
  test('unknown version gets 404', () => expectRejected({ inputs: goodInputs() }, 404, 'VERSION_NOT_FOUND', '/v2/models/wide/versions/9/infer'));
  test('unknown route gets 404 JSON', () => expectRejected({}, 404, 'NOT_FOUND', '/v3/whatever'));
});

describe('binary tensor requests', () => {
  const header = JSON.stringify({ inputs: [{ name: 'f32', datatype: 'FP32', shape: [1, 2], parameters: { binary_data_size: 8 } }] });
  test('a header length that is not a number', () =>
    expectRejected(header, 400, 'BAD_BINARY_HEADER', undefined, { 'inference-header-content-length': 'abc' }));
  test('a header length beyond the body', () =>
    expectRejected(header, 400, 'BAD_BINARY_HEADER', undefined, { 'inference-header-content-length': String(header.length + 10) }));
  test('binary sizes that do not add up to the body', () =>
    expectRejected(Buffer.concat([Buffer.from(header), Buffer.alloc(4)]), 400, 'BAD_BINARY_HEADER', undefined, {
      'inference-header-content-length': String(Buffer.byteLength(header)),
      'content-type': 'application/octet-stream',
    }));
});

describe('a wrong method on an existing route gets 405 with Allow; unknown paths stay 404', () => {
  async function send(method: string, path: string) {
    const res = await request(`${gw.url}${path}`, { method, headers: method === 'GET' || method === 'HEAD' ? {} : { 'content-type': 'application/json' }, body: method === 'GET' || method === 'HEAD' ? undefined : '{}' });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, json: text === '' ? undefined : (JSON.parse(text) as { code: string; error: string }) };
  }
  const cases: [string, string, string][] = [
    ['GET', '/v2/models/wide/infer', 'POST'],
    ['GET', '/v2/models/wide/versions/1/infer?x=1', 'POST'],
    ['PUT', '/v2/health/ready', 'GET, HEAD'],
    ['DELETE', '/v2/models/wide', 'GET, HEAD'],
    ['POST', '/admin/models', 'GET, HEAD'],
    ['POST', '/admin/models/wide/traffic', 'PUT, DELETE'],
  ];
  for (const [method, path, allow] of cases) {
    test(`${method} ${path} is 405 METHOD_NOT_ALLOWED, Allow: ${allow}`, async () => {
      const before = backend.calls();
      const res = await send(method, path);
      assert.equal(res.status, 405, JSON.stringify(res.json));
      assert.equal(res.headers.allow, allow);
      assert.equal(res.json?.code, 'METHOD_NOT_ALLOWED');
      assert.ok(res.json?.error.includes(`${method} is not one of ${allow}`), res.json?.error);
      assert.equal(backend.calls(), before);
    });
  }

  test('a 405 under /admin carries the admin security headers', async () => {
    const res = await send('POST', '/admin/models');
    assert.equal(res.status, 405);
    assert.equal(res.headers['x-frame-options'], 'DENY');
    assert.equal(res.headers['cache-control'], 'no-store');
  });

  for (const [method, path] of [['GET', '/v2/nothing'], ['POST', '/v2/models/wide/infer/more'], ['PUT', '/admin/nothing']]) {
    test(`${method} ${path} (no route under any method) stays 404 NOT_FOUND`, async () => {
      const res = await send(method, path);
      assert.equal(res.status, 404);
      assert.equal(res.json?.code, 'NOT_FOUND');
      assert.equal(res.headers.allow, undefined);
    });
  }
});

describe('bodies the gateway cannot read get 415 UNSUPPORTED_MEDIA_TYPE before they are read', () => {
  const body = () => JSON.stringify({ inputs: goodInputs() });
  async function sendWith(method: string, path: string, headers: Record<string, string>, payload: string = body()) {
    const res = await request(`${gw.url}${path}`, { method, body: payload, headers });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, json: JSON.parse(text) as { code?: string; error?: string } };
  }

  const refused: [string, Record<string, string>, RegExp][] = [
    ['a gzip body', { 'content-type': 'application/json', 'content-encoding': 'gzip' }, /Content-Encoding "gzip" is not supported; send the body uncompressed/],
    ['a br body', { 'content-type': 'application/json', 'content-encoding': 'br' }, /Content-Encoding "br"/],
    ['a deflate body', { 'content-encoding': 'deflate' }, /Content-Encoding "deflate"/],
    ['a list of encodings', { 'content-type': 'application/json', 'content-encoding': 'gzip, identity' }, /Content-Encoding "gzip, identity"/],
    ['application/xml', { 'content-type': 'application/xml' }, /Content-Type "application\/xml" is not supported; send application\/json \(or application\/octet-stream/],
    ['text/plain', { 'content-type': 'text/plain' }, /Content-Type "text\/plain"/],
    ['a form body, as plain curl -d sends', { 'content-type': 'application/x-www-form-urlencoded' }, /curl -d .*add -H 'Content-Type: application\/json'/],
    ['JSON in another charset', { 'content-type': 'application/json; charset=iso-8859-1' }, /charset "iso-8859-1" is not supported/],
    ['a +json type (application/json only: test/content-negotiation.test.ts)', { 'content-type': 'application/vnd.oip.v2+json' }, /Content-Type "application\/vnd\.oip\.v2\+json" is not supported/],
  ];
  for (const [what, headers, message] of refused) {
    test(`infer: ${what}`, async () => {
      const before = backend.calls();
      const res = await sendWith('POST', '/v2/models/wide/infer', headers);
      assert.equal(res.status, 415, JSON.stringify(res.json));
      assert.equal(res.json.code, 'UNSUPPORTED_MEDIA_TYPE');
      assert.match(String(res.json.error), message);
      assert.equal(backend.calls(), before);
    });
  }

  const accepted: [string, Record<string, string>][] = [
    ['no Content-Type at all (tritonclient)', {}],
    ['application/json with a UTF-8 charset', { 'content-type': 'application/json; Charset="UTF-8"' }],
    ['application/octet-stream holding plain JSON (aiohttp clients)', { 'content-type': 'application/octet-stream' }],
    ['Content-Encoding: identity', { 'content-type': 'application/json', 'content-encoding': 'identity' }],
  ];
  for (const [what, headers] of accepted) {
    test(`infer accepts ${what}`, async () => {
      const res = await sendWith('POST', '/v2/models/wide/infer', headers);
      assert.equal(res.status, 200, JSON.stringify(res.json));
    });
  }

  test('admin and self-service JSON bodies: XML, forms and gzip are 415, JSON goes on', async () => {
    const traffic = JSON.stringify({ routes: [{ version: '1', weight: 100 }], reason: 'test' });
    for (const [path, method] of [['/admin/models/wide/traffic', 'PUT'], ['/admin/opt-outs/alice', 'PUT'], ['/me/opt-outs', 'PUT']]) {
      const unreadable: Record<string, string>[] = [{ 'content-type': 'application/xml' }, { 'content-type': 'application/x-www-form-urlencoded' }, { 'content-type': 'application/json', 'content-encoding': 'gzip' }];
      for (const headers of unreadable) {
        const res = await sendWith(method, path, headers, traffic);
        assert.equal(res.status, 415, `${method} ${path} ${JSON.stringify(headers)}: ${JSON.stringify(res.json)}`);
        assert.equal(res.json.code, 'UNSUPPORTED_MEDIA_TYPE');
        assert.doesNotMatch(String(res.json.error), /octet-stream/, 'admin bodies are JSON only');
      }
      const octets = await sendWith(method, path, { 'content-type': 'application/octet-stream' }, traffic);
      assert.equal(octets.status, 415, `${method} ${path} octet-stream`);
    }
    const ok = await sendWith('PUT', '/admin/models/wide/traffic', { 'content-type': 'application/json' }, traffic);
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
  });

  test('the refusal comes from the headers alone: a client that never sends its body is answered at once', async () => {
    const socket = connect(Number(new URL(gw.url).port), '127.0.0.1');
    const answer = new Promise<string>((resolve, reject) => {
      let text = '';
      socket.on('data', (chunk) => {
        text += chunk.toString();
        if (text.includes('\r\n\r\n')) resolve(text);
      });
      socket.once('error', reject);
      setTimeout(() => reject(new Error(`no answer within 3 s: ${text}`)), 3_000).unref();
    });
    socket.write('POST /v2/models/wide/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 5000\r\n\r\n');
    try {
      assert.match(await answer, /^HTTP\/1\.1 415 /);
    } finally {
      socket.destroy();
    }
  });
});
