/**
 * Content negotiation (issue 8, finding class 2): an inference body is read only when its headers say
 * it is what the gateway reads (no Content-Type, as tritonclient sends; application/json in UTF-8
 * however spelled; application/octet-stream for the binary extension), unencoded. Anything else is
 * 415 UNSUPPORTED_MEDIA_TYPE in catalogue JSON, before the body is read, and never reaches the backend.
 * Raw bytes over node:net, so the headers are exactly those written (two Content-Types, odd spacing).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RunningGateway } from '../gateway/main.js';
import { startFakeOipBackend, type FakeOipBackend } from './helpers/backends.js';
import { startInProcess } from './helpers/gateway.js';
import { encodeBinary } from './helpers/oip-client.js';
import { exchange, rawRequest } from './helpers/raw-http.js';

let backend: FakeOipBackend;
let gw: RunningGateway;
let port: number;

const REQUEST = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: [2.5] }] };
const BODY = JSON.stringify(REQUEST);
const INFER = 'POST /v2/models/m/infer HTTP/1.1';

before(async () => {
  backend = await startFakeOipBackend(
    { name: 'm', platform: 'fake-oip', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 1] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }] },
    (req) => ({ outputs: [{ name: 'y', datatype: 'FP32', shape: [1], data: [Number((req.inputs[0]?.data as number[] | undefined)?.flat()[0])] }] }),
  );
  gw = await startInProcess({ models: { m: { versions: { '1': { backend: { kind: 'oip-http', url: backend.url, model: 'm' } } } } } });
  port = Number(new URL(gw.url).port);
});

after(async () => {
  await gw.close();
  await backend.close();
});

describe('inference bodies the gateway reads', () => {
  const accepted: [string, string[]][] = [
    ['no Content-Type (tritonclient)', []],
    ['application/json', ['Content-Type: application/json']],
    ['charset=utf-8', ['Content-Type: application/json; charset=utf-8']],
    ['charset=UTF8', ['Content-Type: application/json; charset=UTF8']],
    ['a quoted "utf-8"', ['Content-Type: application/json; charset="utf-8"']],
    ['upper case and spaces everywhere', ['Content-Type:  APPLICATION/JSON ; CHARSET = " UTF-8 " ']],
    ['an empty parameter (a trailing ;)', ['Content-Type: application/json;']],
    ['Content-Encoding: identity', ['Content-Type: application/json', 'Content-Encoding: identity']],
    ['application/octet-stream holding plain JSON (aiohttp clients)', ['Content-Type: application/octet-stream']],
  ];
  for (const [what, headers] of accepted) {
    test(`${what}: 200`, async () => {
      const a = await exchange(port, rawRequest(INFER, headers, BODY));
      assert.equal(a.status, 200, a.text.slice(0, 400));
      assert.equal((JSON.parse(a.body) as { outputs: { data: number[] }[] }).outputs[0]?.data[0], 2.5);
    });
  }

  test('a chunked body: 200', async () => {
    const bytes = `${INFER}\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n` +
      `${BODY.length.toString(16)}\r\n${BODY}\r\n0\r\n\r\n`;
    const a = await exchange(port, bytes);
    assert.equal(a.status, 200, a.text.slice(0, 400));
  });

  for (const type of ['application/octet-stream', undefined]) {
    test(`the binary tensor extension with ${type ?? 'no Content-Type'}: 200`, async () => {
      const { body, headerLength } = encodeBinary(REQUEST);
      const headers = [`Inference-Header-Content-Length: ${headerLength}`, ...(type === undefined ? [] : [`Content-Type: ${type}`])];
      const a = await exchange(port, rawRequest(INFER, headers, body));
      assert.equal(a.status, 200, a.text.slice(0, 400));
      assert.equal((JSON.parse(a.body) as { outputs: { data: number[] }[] }).outputs[0]?.data[0], 2.5);
    });
  }
});

describe('inference bodies refused before they are read: 415 UNSUPPORTED_MEDIA_TYPE', () => {
  const refused: [string, string[], RegExp][] = [
    ['a +json type', ['Content-Type: application/vnd.oip.v2+json'], /Content-Type "application\/vnd\.oip\.v2\+json" is not supported/],
    ['application/problem+json', ['Content-Type: application/problem+json'], /is not supported/],
    ['application/json-seq', ['Content-Type: application/json-seq'], /Content-Type "application\/json-seq"/],
    ['application/jsonx', ['Content-Type: application/jsonx'], /Content-Type "application\/jsonx"/],
    ['text/json', ['Content-Type: text/json'], /Content-Type "text\/json"/],
    ['text/plain', ['Content-Type: text/plain'], /Content-Type "text\/plain"/],
    ['an empty Content-Type', ['Content-Type: '], /Content-Type "" is not supported/],
    ['a form body', ['Content-Type: application/x-www-form-urlencoded'], /curl -d/],
    ['an unknown parameter', ['Content-Type: application/json; foo=bar'], /parameter "foo" is not supported/],
    ['a malformed parameter', ['Content-Type: application/json;;; charset'], /parameter "charset" is malformed/],
    ['an unterminated quoted charset', ['Content-Type: application/json; charset="utf-8'], /is malformed/],
    ['another charset', ['Content-Type: application/json; charset=iso-8859-1'], /charset "iso-8859-1" is not supported; JSON is read as UTF-8/],
    ['UTF-16', ['Content-Type: application/json; charset=utf-16'], /charset "utf-16"/],
    ['the charset twice', ['Content-Type: application/json; charset=utf-8; charset=latin1'], /charset is given more than once/],
    ['the charset twice, both UTF-8', ['Content-Type: application/json; charset=utf-8; charset=utf8'], /charset is given more than once/],
    ['a parameter on octet-stream', ['Content-Type: application/octet-stream; charset=utf-8'], /parameter "charset" is not supported/],
    ['two Content-Types, JSON first', ['Content-Type: application/json', 'Content-Type: text/plain'], /Content-Type is given more than once/],
    ['two Content-Types, JSON last', ['Content-Type: text/plain', 'content-type: application/json'], /Content-Type is given more than once/],
    ['two identical Content-Types', ['Content-Type: application/json', 'Content-Type: application/json'], /Content-Type is given more than once/],
    ['gzip', ['Content-Type: application/json', 'Content-Encoding: gzip'], /Content-Encoding "gzip" is not supported; send the body uncompressed/],
    ['br', ['Content-Type: application/json', 'Content-Encoding: br'], /Content-Encoding "br"/],
    ['deflate without a Content-Type', ['Content-Encoding: deflate'], /Content-Encoding "deflate"/],
    ['a list of encodings', ['Content-Type: application/json', 'Content-Encoding: gzip, identity'], /Content-Encoding "gzip, identity"/],
    ['identity then gzip in two headers', ['Content-Type: application/json', 'Content-Encoding: identity', 'Content-Encoding: gzip'], /Content-Encoding "identity, gzip"/],
    ['an encoding on the binary extension', ['Content-Type: application/octet-stream', 'Content-Encoding: gzip'], /Content-Encoding "gzip"/],
  ];
  for (const [what, headers, message] of refused) {
    test(what, async () => {
      const calls = backend.calls();
      const a = await exchange(port, rawRequest(INFER, headers, BODY));
      assert.equal(a.status, 415, a.text.slice(0, 400));
      assert.match(a.headers['content-type'] ?? '', /^application\/json/);
      const body = JSON.parse(a.body) as { code?: string; error?: string };
      assert.equal(body.code, 'UNSUPPORTED_MEDIA_TYPE');
      assert.match(String(body.error), message);
      assert.equal(backend.calls(), calls, 'the backend was not called');
    });
  }

  for (const te of ['gzip, chunked', 'gzip', 'identity, chunked']) {
    test(`Transfer-Encoding: ${te}`, async () => {
      const calls = backend.calls();
      const bytes = `${INFER}\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: ${te}\r\n\r\n` +
        `${BODY.length.toString(16)}\r\n${BODY}\r\n0\r\n\r\n`;
      const a = await exchange(port, bytes);
      assert.equal(a.status, 415, a.text.slice(0, 400));
      const body = JSON.parse(a.body) as { code?: string; error?: string };
      assert.equal(body.code, 'UNSUPPORTED_MEDIA_TYPE');
      assert.match(String(body.error), /Transfer-Encoding ".*" is not supported/);
      assert.equal(backend.calls(), calls, 'the backend was not called');
    });
  }

  test('admin bodies: a +json type, an unknown parameter and two Content-Types are 415 too', async () => {
    const traffic = JSON.stringify({ routes: [{ version: '1', weight: 100 }], reason: 'test' });
    for (const headers of [['Content-Type: application/merge-patch+json'], ['Content-Type: application/json; foo=bar'], ['Content-Type: application/json', 'Content-Type: text/plain']]) {
      const a = await exchange(port, rawRequest('PUT /admin/models/m/traffic HTTP/1.1', headers, traffic));
      assert.equal(a.status, 415, `${headers.join(', ')}: ${a.text.slice(0, 400)}`);
      assert.equal((JSON.parse(a.body) as { code?: string }).code, 'UNSUPPORTED_MEDIA_TYPE');
    }
    const ok = await exchange(port, rawRequest('PUT /admin/models/m/traffic HTTP/1.1', ['Content-Type: application/json; charset=UTF-8'], traffic));
    assert.equal(ok.status, 200, ok.text.slice(0, 400));
  });

  test('a request without a body is not judged by its Content-Type', async () => {
    const a = await exchange(port, rawRequest('GET /v2/models/m/ready HTTP/1.1', ['Content-Type: text/plain', 'Content-Encoding: gzip']));
    assert.equal(a.status, 200, a.text.slice(0, 400));
  });
});
