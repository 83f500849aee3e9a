/** While draining, requests that still arrive (kept-alive connections) get SHUTTING_DOWN as JSON. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { request } from 'undici';
import { ASSETS } from './helpers/assets.js';
import { startInProcess } from './helpers/gateway.js';

test('a draining gateway answers 503 SHUTTING_DOWN, closes the connection and reports not ready', async () => {
  const gw = await startInProcess({ models: { iris: { versions: { '1': { backend: { kind: 'onnx', path: join(ASSETS, 'models/iris_mlp_dynamic.onnx') } } } } } });
  try {
    gw.serving.drain();
    const res = await request(`${gw.url}/v2/models/iris/infer`, { method: 'POST', body: '{}' });
    assert.equal(res.statusCode, 503);
    assert.equal(res.headers.connection, 'close');
    assert.deepEqual(await res.body.json(), { error: 'gateway is shutting down', code: 'SHUTTING_DOWN' });
    const ready = await request(`${gw.url}/v2/health/ready`);
    assert.equal(ready.statusCode, 503);
    await ready.body.dump();
  } finally {
    await gw.close();
  }
});
