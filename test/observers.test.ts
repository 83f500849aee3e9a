/**
 * The observer phase through a real gateway (iris on onnxruntime, real JWTs): observers that throw
 * or reject change no response, and a subject who opted out of tracking never has their payload or
 * answer handed to any observer, while their request is still counted. Refusals before the handler
 * (401) reach the observers too.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import type { RunningGateway } from '../gateway/main.js';
import type { Observer, RequestEnd } from '../gateway/observers.js';
import { REPO_ROOT, startInProcess } from './helpers/gateway.js';
import { AUDIENCE, ISSUER, testIssuer } from './helpers/load.js';

const issuer = testIssuer();
const IRIS = join(REPO_ROOT, 'demo/models/iris.onnx');
/** Marker values: if any observer saw the tracked subject's payload, these would be in what it kept. */
const MARKED = [[5.123456, 3.654321, 1.42424, 0.21212]];
const PLAIN = [[5.1, 3.5, 1.4, 0.2]];

const seen: RequestEnd[] = [];
const recording: Observer = { name: 'recording', onEnd: (e) => void seen.push(e) };
const throwing: Observer = { name: 'throwing', onEnd: () => { throw new Error('observer bug'); } };
const rejecting: Observer = { name: 'rejecting', onEnd: () => Promise.reject(new Error('async observer bug')) };

let quiet: RunningGateway;
let noisy: RunningGateway;

const token = (sub: string): string => issuer.sign({ sub, tenant: 'acme', scope: 'predict:*', exp: Math.floor(Date.now() / 1000) + 600 });

function config(): Record<string, unknown> {
  return {
    auth: { issuer: ISSUER, audience: AUDIENCE, keys: [issuer.keyConfig] },
    models: { iris: { versions: { '1': { backend: { kind: 'onnx', path: IRIS } } } } },
  };
}

before(async () => {
  quiet = await startInProcess(config());
  // The failing observers come first: the recording one after them must still see every request.
  noisy = await startInProcess(config(), REPO_ROOT, { observers: [throwing, rejecting, recording] });
});

after(async () => {
  await Promise.all([quiet?.close(), noisy?.close()]);
});

async function call(base: string, method: 'POST' | 'PUT', path: string, auth: string | undefined, body: unknown): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const res = await request(`${base}${path}`, {
    method,
    headers: { ...(auth === undefined ? {} : { authorization: `Bearer ${auth}` }), 'content-type': 'application/json', 'x-request-id': 'fixed-id' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

const predict = (base: string, sub: string | undefined, rows: number[][]) =>
  call(base, 'POST', '/v2/models/iris/infer', sub === undefined ? undefined : token(sub), { inputs: [{ name: 'input', datatype: 'FP32', shape: [rows.length, 4], data: rows }] });

test('observers that throw or reject change no response: the same answers, headers and codes as without them', async () => {
  for (const [sub, rows] of [['alice', PLAIN], ['bob', MARKED], [undefined, PLAIN]] as const) {
    const a = await predict(quiet.url, sub, rows as number[][]);
    const b = await predict(noisy.url, sub, rows as number[][]);
    assert.equal(b.status, a.status);
    assert.equal(b.text, a.text);
    for (const h of ['x-model-version', 'x-route-reason', 'content-type', 'www-authenticate']) assert.equal(b.headers[h], a.headers[h], h);
  }
  const ends = seen.filter((e) => e.model === 'iris' || e.code === 'UNAUTHENTICATED');
  assert.ok(ends.some((e) => e.code === 'UNAUTHENTICATED' && e.status === 401 && e.fault === 'client'), 'a refusal before the handler reaches the observers');
  const alice = ends.find((e) => e.principal?.subject === 'alice');
  assert.ok(alice?.payload !== undefined && alice.answer !== undefined, 'an ordinary caller\'s payload and answer are observed');
  assert.equal(alice.version, '1');
  assert.equal(alice.rows, 1);
});

test('a subject who opted out of tracking: served, counted, and nothing of their payload or answer reaches an observer', async () => {
  const optOut = await call(noisy.url, 'PUT', '/me/opt-outs', token('tess'), { kinds: ['tracking'] });
  assert.equal(optOut.status, 200, optOut.text);
  seen.length = 0;
  const r = await predict(noisy.url, 'tess', MARKED);
  assert.equal(r.status, 200);
  const control = await predict(noisy.url, 'carl', MARKED);
  assert.equal(control.status, 200);
  const tess = seen.find((e) => e.principal?.subject === 'tess');
  assert.ok(tess !== undefined, 'the request was observed (counted)');
  assert.equal(tess.payload, undefined);
  assert.equal(tess.answer, undefined);
  assert.equal(tess.status, 200);
  assert.equal(tess.rows, 1);
  const kept = (e: RequestEnd | undefined) => JSON.stringify({ ...e, log: undefined, served: undefined }, (_k, v: unknown) => (ArrayBuffer.isView(v) ? Array.from(v as Float32Array) : v));
  for (const marker of ['5.12345', '3.65432', '1.42424']) assert.ok(!kept(tess).includes(marker), `marker ${marker} not observed`);
  // The control subject's identical payload is observed: the check above could have failed.
  assert.ok(kept(seen.find((e) => e.principal?.subject === 'carl')).includes('5.12345'));
});
