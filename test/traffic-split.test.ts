/**
 * A 50/50 split over two real ONNX versions behind real JWT authentication: each subject is served
 * by the same version, with the same x-route-reason, on every request; a header rule overrides the
 * split; a pinned version is served as asked.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import type { RunningGateway } from '../gateway/main.js';
import { ASSETS } from './helpers/assets.js';
import { startInProcess } from './helpers/gateway.js';
import { makeIssuer, type Issuer } from './helpers/tokens.js';

const ISS = 'https://issuer.test/';
const AUD = 'breakwater';
const BODY = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] });
const iris = { backend: { kind: 'onnx', path: join(ASSETS, 'models/iris_mlp_dynamic.onnx') } };

let gw: RunningGateway;
let issuer: Issuer;

before(async () => {
  issuer = makeIssuer({ alg: 'ES256' });
  gw = await startInProcess({
    auth: { issuer: ISS, audience: AUD, keys: [issuer.keyConfig] },
    models: {
      iris: {
        stable: '1',
        versions: { '1': iris, '2': iris },
        traffic: {
          routes: [{ version: '1', weight: 50 }, { version: '2', weight: 50, name: 'candidate' }],
          rules: [{ name: 'testers', version: '2', header: { name: 'x-breakwater-tester', equals: '1' } }],
        },
      },
    },
  });
});

after(() => gw.close());

async function infer(subject: string, headers: Record<string, string> = {}, path = '/v2/models/iris/infer') {
  const token = issuer.sign({ iss: ISS, aud: AUD, sub: subject, scope: 'predict:*' });
  const res = await request(`${gw.url}${path}`, { method: 'POST', body: BODY, headers: { authorization: `Bearer ${token}`, ...headers } });
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, text);
  return { version: String(res.headers['x-model-version']), reason: String(res.headers['x-route-reason']) };
}

test('each subject is served by the same version on every request, and both arms are used', async () => {
  const seen = new Set<string>();
  for (let i = 0; i < 40; i++) {
    const first = await infer(`user-${i}`);
    assert.deepEqual(first, first.version === '1' ? { version: '1', reason: 'stable' } : { version: '2', reason: 'candidate' });
    for (let k = 0; k < 3; k++) assert.deepEqual(await infer(`user-${i}`), first);
    seen.add(first.version);
  }
  assert.deepEqual([...seen].sort(), ['1', '2']);
});

test('a header rule routes to its version whatever the subject', async () => {
  for (let i = 0; i < 20; i++) assert.deepEqual(await infer(`user-${i}`, { 'x-breakwater-tester': '1' }), { version: '2', reason: 'rule:testers' });
});

test('a pinned version is served as asked', async () => {
  for (let i = 0; i < 10; i++) {
    assert.deepEqual(await infer(`user-${i}`, { 'x-breakwater-tester': '1' }, '/v2/models/iris/versions/1/infer'), { version: '1', reason: 'pinned' });
  }
});
