/**
 * Every answer comes from the catalogue (issue 8, finding class 3): what the framework's router,
 * Node's HTTP parser or Node's server would answer by themselves (a URL it cannot decode, a path
 * parameter over the router's limit, a header section over Node's limit, a malformed request line,
 * a missing or doubled Host, an expectation, CONNECT) is answered as catalogue JSON, with the
 * catalogue's status, no framework name or code, no `statusCode` field, and no echo of the path.
 * Spoken as raw bytes over node:net to a gateway in this process, in front of a real backend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RunningGateway } from '../gateway/main.js';
import { ERRORS, type ErrorCode } from '../gateway/errors.js';
import { startFakeOipBackend, type FakeOipBackend } from './helpers/backends.js';
import { startInProcess } from './helpers/gateway.js';
import { exchange, rawRequest, talk, type RawAnswer } from './helpers/raw-http.js';

let backend: FakeOipBackend;
let gw: RunningGateway;
let port: number;

const BODY = JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: [1] }] });
const LONG_NAME = 'n'.repeat(300);

before(async () => {
  backend = await startFakeOipBackend(
    { name: 'm', platform: 'fake-oip', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 1] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }] },
    () => ({ outputs: [{ name: 'y', datatype: 'FP32', shape: [1], data: [1] }] }),
  );
  gw = await startInProcess({
    models: { m: { maxBodyBytes: 64 * 1024, versions: { '1': { backend: { kind: 'oip-http', url: backend.url, model: 'm' } } } } },
  });
  port = Number(new URL(gw.url).port);
});

after(async () => {
  await gw.close();
  await backend.close();
});

/**
 * The invariants of every error answer: the catalogue's status for the code, JSON content type, a
 * body of exactly `{error, code}`, and nothing of the framework or of what the client sent.
 */
function assertCatalogue(a: RawAnswer, status: number, code: ErrorCode, echoes: readonly string[] = []): void {
  assert.equal(a.status, status, a.text.slice(0, 400));
  assert.match(a.headers['content-type'] ?? '', /^application\/json(;|$)/, a.text.slice(0, 400));
  const body = JSON.parse(a.body) as Record<string, unknown>;
  assert.deepEqual(Object.keys(body).sort(), ['code', 'error'], a.body);
  assert.equal(body.code, code, a.body);
  assert.equal(ERRORS[code].status, status);
  assert.equal(typeof body.error, 'string');
  for (const leak of [/FST_/, /fastify/i, /statusCode/, /avvio|find-my-way|llhttp|HPE_/i]) assert.doesNotMatch(a.text, leak, a.text.slice(0, 400));
  for (const echo of echoes) assert.ok(!a.body.includes(echo), `the answer echoes ${echo.slice(0, 40)}: ${a.body}`);
}

describe('the router\'s own errors', () => {
  const cases: [string, string, number, ErrorCode, string[]][] = [
    ['a broken percent-encoding in a model path', 'GET /v2/models/%E0%A4%A/ready HTTP/1.1', 400, 'BAD_URL', ['%E0%A4%A', '/v2/models']],
    ['a broken percent-encoding on infer', 'POST /v2/models/%E0%A4%A/infer HTTP/1.1', 400, 'BAD_URL', ['%E0%A4%A', '/infer']],
    ['a lone % in a path', 'GET /v2/models/%/ready HTTP/1.1', 400, 'BAD_URL', ['/v2/models/%']],
    ['a lone % under /admin', 'GET /admin/models/%/traffic HTTP/1.1', 400, 'BAD_URL', ['/admin/models/%']],
    ['a model name over the parameter limit', `GET /v2/models/${LONG_NAME}/ready HTTP/1.1`, 414, 'URI_TOO_LONG', [LONG_NAME.slice(0, 64)]],
    ['a version over the parameter limit', `POST /v2/models/m/versions/${LONG_NAME}/infer HTTP/1.1`, 414, 'URI_TOO_LONG', [LONG_NAME.slice(0, 64)]],
    ['an admin path parameter over the limit', `GET /admin/models/${LONG_NAME}/traffic HTTP/1.1`, 414, 'URI_TOO_LONG', [LONG_NAME.slice(0, 64)]],
  ];
  for (const [what, line, status, code, echoes] of cases) {
    test(`${what}: ${status} ${code}`, async () => {
      const a = await exchange(port, rawRequest(line));
      assertCatalogue(a, status, code, echoes);
      assert.ok(a.headers['x-request-id'], 'the answer carries its request id');
    });
  }
});

describe('what Node\'s parser refuses before a request exists', () => {
  const cases: [string, string, number, ErrorCode][] = [
    ['a header section over 16 KiB', `GET /v2 HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
    ['a request line over 16 KiB', `GET /v2/${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
    ['a request line that is not HTTP', 'GARBAGE\r\n\r\n', 400, 'BAD_REQUEST'],
    ['an unknown method', 'FROB /v2 HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'BAD_REQUEST'],
    ['a target that is not a path', 'GET v2 HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'BAD_REQUEST'],
    ['an HTTP/2 preface on an HTTP/1.1 port', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400, 'BAD_REQUEST'],
    ['a header name with a space', 'GET /v2 HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n', 400, 'BAD_REQUEST'],
    ['a control character in a header value', 'GET /v2 HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n', 400, 'BAD_REQUEST'],
    ['two different Content-Lengths', 'POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n', 400, 'BAD_REQUEST'],
    ['Content-Length and Transfer-Encoding together', 'POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'BAD_REQUEST'],
    ['a Transfer-Encoding that does not end in chunked', 'POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', 400, 'BAD_REQUEST'],
    ['a chunk size that is not hex', 'POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400, 'BAD_REQUEST'],
  ];
  for (const [what, bytes, status, code] of cases) {
    test(`${what}: ${status} ${code}`, async () => {
      assertCatalogue(await exchange(port, bytes), status, code);
    });
  }
});

describe('what Node\'s server would answer by itself', () => {
  test('an HTTP/1.1 request without Host: 400 BAD_REQUEST in JSON, not a bare 400', async () => {
    assertCatalogue(await exchange(port, 'GET /v2 HTTP/1.1\r\nConnection: close\r\n\r\n'), 400, 'BAD_REQUEST');
  });

  test('two Host headers: 400 BAD_REQUEST (RFC 9112 §3.2), not whichever Node kept', async () => {
    assertCatalogue(await exchange(port, 'GET /v2 HTTP/1.1\r\nHost: a\r\nhost: b\r\nConnection: close\r\n\r\n'), 400, 'BAD_REQUEST');
  });

  test('HTTP/1.0 without Host is still served', async () => {
    const a = await exchange(port, 'GET /v2/health/live HTTP/1.0\r\n\r\n');
    assert.equal(a.status, 200, a.text);
  });

  test('an expectation other than 100-continue: 417 EXPECTATION_FAILED in JSON', async () => {
    assertCatalogue(await exchange(port, rawRequest('POST /v2/models/m/infer HTTP/1.1', ['Content-Type: application/json', 'Expect: teapot'], BODY)), 417, 'EXPECTATION_FAILED');
  });

  test('CONNECT: 400 BAD_REQUEST in JSON, not a silently closed socket', async () => {
    assertCatalogue(await exchange(port, 'CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n'), 400, 'BAD_REQUEST', ['evil.test']);
  });

  test('a method the route does not take: 405 METHOD_NOT_ALLOWED with Allow, not echoing the path', async () => {
    const a = await exchange(port, rawRequest('GET /v2/models/m/infer HTTP/1.1'));
    assertCatalogue(a, 405, 'METHOD_NOT_ALLOWED', ['/v2/models/m/infer']);
    assert.equal(a.headers.allow, 'POST');
  });

  test('a method no route has anywhere (PROPFIND): 405 on a known path, 404 elsewhere', async () => {
    assertCatalogue(await exchange(port, rawRequest('PROPFIND /v2 HTTP/1.1')), 405, 'METHOD_NOT_ALLOWED');
    assertCatalogue(await exchange(port, rawRequest('PROPFIND /nowhere HTTP/1.1')), 404, 'NOT_FOUND', ['/nowhere']);
  });

  test('an unknown path: 404 NOT_FOUND without the path', async () => {
    assertCatalogue(await exchange(port, rawRequest('GET /v2/nowhere/at/all HTTP/1.1')), 404, 'NOT_FOUND', ['nowhere']);
  });

  test('a query string of thousands of malformed pairs changes no answer', async () => {
    const junk = '%E0%A4%A=%&__proto__[x]=1&a=%zz&'.repeat(300);
    const ok = await exchange(port, rawRequest(`GET /v2/health/ready?${junk} HTTP/1.1`));
    assert.equal(ok.status, 200, ok.text.slice(0, 300));
    assert.deepEqual(JSON.parse(ok.body), { ready: true });
    assertCatalogue(await exchange(port, rawRequest(`GET /v2/nowhere?${junk} HTTP/1.1`)), 404, 'NOT_FOUND', ['__proto__', '%zz']);
  });
});

describe('bodies the framework reads', () => {
  const traffic = JSON.stringify({ routes: [{ version: '1', weight: 100 }], reason: 'test' });

  test('admin: a body that is not JSON is 400 BAD_JSON', async () => {
    assertCatalogue(await exchange(port, rawRequest('PUT /admin/models/m/traffic HTTP/1.1', ['Content-Type: application/json'], '{"routes": [')), 400, 'BAD_JSON', ['"routes"']);
  });

  test('admin: an empty body sent as JSON is 400 BAD_REQUEST', async () => {
    assertCatalogue(await exchange(port, rawRequest('PUT /admin/models/m/traffic HTTP/1.1', ['Content-Type: application/json'], '')), 400, 'BAD_REQUEST');
  });

  test('admin: a body over the admin limit is 413 PAYLOAD_TOO_LARGE', async () => {
    const big = JSON.stringify({ routes: [], reason: 'x'.repeat(300 * 1024) });
    assertCatalogue(await exchange(port, rawRequest('PUT /admin/models/m/traffic HTTP/1.1', ['Content-Type: application/json'], big)), 413, 'PAYLOAD_TOO_LARGE');
  });

  test('admin: a body of another type is 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    assertCatalogue(await exchange(port, rawRequest('PUT /admin/models/m/traffic HTTP/1.1', ['Content-Type: text/xml'], traffic)), 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  test('infer: a Content-Length over the framework\'s body limit is 413 at once, the body never sent', async () => {
    const a = await exchange(port, 'POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n');
    assertCatalogue(a, 413, 'PAYLOAD_TOO_LARGE');
  });

  test('the admin route itself still works', async () => {
    const a = await exchange(port, rawRequest('PUT /admin/models/m/traffic HTTP/1.1', ['Content-Type: application/json'], traffic));
    assert.equal(a.status, 200, a.text.slice(0, 400));
  });
});

describe('Expect: 100-continue', () => {
  const head = (path: string, type: string) =>
    `POST ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: ${type}\r\nExpect: 100-continue\r\nContent-Length: ${BODY.length}\r\n\r\n`;

  test('a request refused from its headers is answered without inviting the body', async () => {
    const calls = backend.calls();
    const a = await exchange(port, head('/v2/models/m/infer', 'text/plain'));
    assertCatalogue(a, 415, 'UNSUPPORTED_MEDIA_TYPE');
    assert.doesNotMatch(a.text, /^HTTP\/1\.1 100 /, 'no 100 Continue before a refusal');
    assert.equal(backend.calls(), calls);
  });

  test('an accepted request gets 100 Continue when its body is read, then its answer', async () => {
    let sent = false;
    const a = await talk(port, (socket) => socket.write(head('/v2/models/m/infer', 'application/json')), 5_000, (text, socket) => {
      if (!sent && /^HTTP\/1\.1 100 Continue\r\n\r\n/.test(text)) {
        sent = true;
        socket.write(BODY);
      }
    });
    assert.ok(sent, 'the gateway invited the body');
    assert.equal(a.status, 200, a.text.slice(0, 400));
  });
});
