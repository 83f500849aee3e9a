/**
 * Secure by default (issue 8, class 6): the request limits are on unless a limit is set to 0, and
 * a gateway started with one off says so at start-up; one started with the defaults says nothing.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import pino from 'pino';
import { buildConfig } from '../gateway/config.js';
import { startGateway } from '../gateway/main.js';
import { join } from 'node:path';
import { ASSETS } from './helpers/assets.js';
import { REPO_ROOT } from './helpers/gateway.js';
import { AUDIENCE, ISSUER, testIssuer } from './helpers/load.js';

const issuer = testIssuer();

async function warningsOf(requests: Record<string, unknown> | undefined): Promise<string[]> {
  const lines: { level: number; msg: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as { level: number; msg: string });
      done();
    },
  });
  const cfg = buildConfig({
    server: { port: 0, host: '127.0.0.1' },
    auth: { issuer: ISSUER, audience: AUDIENCE, keys: [issuer.keyConfig] },
    ...(requests === undefined ? {} : { rateLimits: { requests } }),
    models: { iris: { versions: { '1': { backend: { kind: 'onnx', path: join(ASSETS, 'models/iris_mlp_dynamic.onnx') } } } } },
  }, REPO_ROOT, 'test');
  const gw = await startGateway({ config: cfg, log: pino({ level: 'warn' }, sink), loadConfig: async () => cfg });
  await gw.close();
  return lines.filter((l) => l.level === 40).map((l) => l.msg);
}

test('defaults: both request limits on, no warning about them', async () => {
  const warnings = await warningsOf(undefined);
  assert.deepEqual(warnings.filter((m) => m.includes('rateLimits.requests')), []);
});

test('a request limit set to 0 is named in a start-up warning', async () => {
  const subject = await warningsOf({ perSubject: { limit: 0 } });
  assert.ok(subject.some((m) => m.startsWith('rateLimits.requests.perSubject.limit is 0')), subject.join('\n'));
  assert.ok(!subject.some((m) => m.includes('failedAuthPerAddress')));
  const address = await warningsOf({ failedAuthPerAddress: { limit: 0 } });
  assert.ok(address.some((m) => m.startsWith('rateLimits.requests.failedAuthPerAddress.limit is 0')), address.join('\n'));
});
