/**
 * Slow and malformed clients: the gateway answers on its own timers with the catalogue's JSON, and
 * never holds a socket for a client that stalls.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { RunningGateway } from '../gateway/main.js';
import { ASSETS } from './helpers/assets.js';
import { startInProcess } from './helpers/gateway.js';

let gw: RunningGateway;
let port: number;

before(async () => {
  gw = await startInProcess({
    server: { headersTimeoutMs: 300, requestTimeoutMs: 600 },
    models: { iris: { versions: { '1': { backend: { kind: 'onnx', path: join(ASSETS, 'models/iris_mlp_dynamic.onnx') } } } } },
  });
  port = Number(new URL(gw.url).port);
});

after(() => gw.close());

/** Writes `chunks` (with optional pauses) on a raw socket; resolves with everything read until close. */
function raw(chunks: (string | number)[], timeoutMs = 5000): Promise<{ text: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`socket still open after ${timeoutMs} ms; read: ${text}`));
    }, timeoutMs);
    socket.on('data', (d) => (text += d.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, ms: performance.now() - started });
    });
    void (async () => {
      for (const c of chunks) {
        if (typeof c === 'number') await new Promise((r) => setTimeout(r, c));
        else if (!socket.destroyed) socket.write(c);
      }
    })();
  });
}

function bodyOf(text: string): { code?: string } {
  return JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { code?: string };
}

test('a client that never finishes its headers gets 408 REQUEST_TIMEOUT and is disconnected', async () => {
  const { text, ms } = await raw(['POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\n']);
  assert.match(text, /^HTTP\/1\.1 408 /);
  assert.equal(bodyOf(text).code, 'REQUEST_TIMEOUT');
  assert.ok(ms < 2000, `closed after ${ms} ms`);
});

test('a client that stalls in its body gets 408 and is disconnected', async () => {
  const head = 'POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"inputs":';
  const { text, ms } = await raw([head]);
  assert.match(text, /^HTTP\/1\.1 408 /);
  assert.equal(bodyOf(text).code, 'REQUEST_TIMEOUT');
  assert.ok(ms < 2500, `closed after ${ms} ms`);
});

test('headers over the limit get 431 HEADERS_TOO_LARGE', async () => {
  const { text } = await raw([`GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`]);
  assert.match(text, /^HTTP\/1\.1 431 /);
  assert.equal(bodyOf(text).code, 'HEADERS_TOO_LARGE');
});

test('a request that is not HTTP gets 400 BAD_REQUEST as JSON', async () => {
  const { text } = await raw(['HELLO THERE\r\n\r\n']);
  assert.match(text, /^HTTP\/1\.1 400 /);
  assert.equal(bodyOf(text).code, 'BAD_REQUEST');
});
