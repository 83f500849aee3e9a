import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { applyOverrides, buildConfig, ConfigError } from './config.js';

const onnx = (path = 'm.onnx') => ({ backend: { kind: 'onnx', path } });
const NO_AUTH = { insecureNoAuth: true };

function problemsOf(input: unknown): readonly string[] {
  try {
    buildConfig(input, '/base');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.problems;
  }
  assert.fail('expected a ConfigError');
}

test('fills documented defaults, resolves relative paths and picks the highest version as stable', () => {
  const cfg = buildConfig({ auth: NO_AUTH, models: { m: { versions: { '2': onnx(), '10': onnx('/abs/x.onnx') } } } }, '/base');
  assert.equal(cfg.server.host, '127.0.0.1');
  assert.equal(cfg.server.port, 8080);
  const m = cfg.models.m;
  assert.equal(m.stable, '10');
  assert.equal(m.nonFinite, 'reject');
  assert.equal(m.inferTimeoutMs, 30_000);
  const v2 = m.versions['2'].backend;
  assert.equal(v2.kind, 'onnx');
  assert.equal(v2.kind === 'onnx' && v2.path, '/base/m.onnx');
  assert.equal(v2.kind === 'onnx' && v2.intraOpThreads, 1);
  assert.equal(m.versions['10'].backend.kind === 'onnx' && m.versions['10'].backend.path, '/abs/x.onnx');
});

test('the result is frozen all the way down', () => {
  const cfg = buildConfig({ auth: NO_AUTH, models: { m: { versions: { '1': onnx() } } } }, '/base');
  assert.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.models.m.versions['1'].backend));
  assert.throws(() => {
    (cfg.server as { port: number }).port = 1;
  }, TypeError);
});

test('fills oip-http defaults inside each backend', () => {
  const cfg = buildConfig({ auth: NO_AUTH, models: { m: { versions: { '1': { backend: { kind: 'oip-http', url: 'http://127.0.0.1:9000', model: 'x' } } } } } }, '/');
  const b = cfg.models.m.versions['1'].backend;
  assert.ok(b.kind === 'oip-http');
  assert.equal(b.timeoutMs, 10_000);
  assert.equal(b.connections, 64);
});

test('every problem is reported with its path', () => {
  const problems = problemsOf({
    server: { port: 70000, colour: 'red' },
    models: { m: { stable: '3', versions: { '1': { backend: { kind: 'onnx', path: 'a', intraOpThreads: 0 } } } } },
  });
  assert.ok(problems.some((p) => p.startsWith('server.port:')), problems.join('\n'));
  assert.ok(problems.some((p) => p === 'server: unknown field "colour"'), problems.join('\n'));
});

test('backend and stable problems name the model and version', () => {
  const problems = problemsOf({ models: { m: { stable: '3', versions: { '1': { backend: { kind: 'onnx', path: 'a', intraOpThreads: 0, extra: 1 } } } } } });
  assert.ok(problems.includes('models.m.versions.1.backend.intraOpThreads: must be >= 1'), problems.join('\n'));
  assert.ok(problems.includes('models.m.versions.1.backend: unknown field "extra"'), problems.join('\n'));
  assert.ok(problems.some((p) => p.startsWith('models.m.stable: version "3"')), problems.join('\n'));
});

test('an unknown backend kind and a bad url are rejected', () => {
  assert.ok(problemsOf({ models: { m: { versions: { '1': { backend: { kind: 'tf' } } } } } }).some((p) => p.includes('backend.kind')));
  assert.ok(problemsOf({ models: { m: { versions: { '1': { backend: { kind: 'oip-http', url: 'ftp://x', model: 'a' } } } } } })
    .some((p) => p.includes('backend.url')));
});

test('model names that could escape a path or start hidden are rejected', () => {
  assert.ok(problemsOf({ models: { '../x': { versions: { '1': onnx() } } } }).length > 0);
  assert.ok(problemsOf({ models: { '.hidden': { versions: { '1': onnx() } } } }).length > 0);
});

test('a configuration without models is rejected', () => {
  assert.ok(problemsOf({}).some((p) => p.includes('models')));
  assert.ok(problemsOf(null).length > 0);
});

test('authentication is required unless switched off by its insecure name', () => {
  const problems = problemsOf({ models: { m: { versions: { '1': onnx() } } } });
  assert.ok(problems.some((p) => p.startsWith('auth.issuer: required')), problems.join('\n'));
  assert.ok(problems.some((p) => p.startsWith('auth.audience: required')), problems.join('\n'));
  assert.ok(problems.some((p) => p.startsWith('auth: give keys or a jwks url')), problems.join('\n'));
});

test('an HS algorithm needs a secret and a secret only HS algorithms', () => {
  const base = { issuer: 'i', audience: 'a' };
  const pemWithHs = problemsOf({ auth: { ...base, keys: [{ publicKey: 'x', algorithms: ['HS256'] }] }, models: { m: { versions: { '1': onnx() } } } });
  assert.ok(pemWithHs.some((p) => p.includes('algorithm confusion')), pemWithHs.join('\n'));
  const secretWithRs = problemsOf({ auth: { ...base, keys: [{ secret: 's'.repeat(32), algorithms: ['RS256'] }] }, models: { m: { versions: { '1': onnx() } } } });
  assert.ok(secretWithRs.some((p) => p.includes('a secret can only be used with HS')), secretWithRs.join('\n'));
  const twoSources = problemsOf({ auth: { ...base, keys: [{ secret: 's'.repeat(32), publicKey: 'x', algorithms: ['HS256'] }] }, models: { m: { versions: { '1': onnx() } } } });
  assert.ok(twoSources.some((p) => p.includes('exactly one of')), twoSources.join('\n'));
});

test('a JWKS offers no symmetric algorithms', () => {
  const problems = problemsOf({ auth: { issuer: 'i', audience: 'a', jwks: { url: 'http://127.0.0.1:1/jwks', algorithms: ['HS256'] } }, models: { m: { versions: { '1': onnx() } } } });
  assert.ok(problems.some((p) => p.startsWith('auth.jwks.algorithms.0')), problems.join('\n'));
});

test('a key file given by flag that cannot be read, or is a private key, is refused naming the file', async () => {
  const refusal = (file: string) => {
    try {
      applyOverrides({ models: {} }, { jwtPublicKeyFile: file });
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      return e.message;
    }
    assert.fail('expected a ConfigError');
  };
  assert.match(refusal('/nonexistent/key.pem'), /\/nonexistent\/key\.pem:\n.*--jwt-public-key\) cannot be read: ENOENT/);
  const dir = await mkdtemp(join(tmpdir(), 'bw-config-'));
  const file = join(dir, 'private.pem');
  await writeFile(file, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
  assert.match(refusal(file), /is a private key: give the public key/);
  await rm(dir, { recursive: true });
});
