import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { applyOverrides, buildConfig, ConfigError, guardsOn } from './config.js';

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

test('a split may not list a version twice, nor reuse an arm or rule name, and names every problem (issue 8, class 8)', () => {
  const problems = problemsOf({
    auth: NO_AUTH,
    models: {
      m: {
        versions: { '1': onnx(), '2': onnx() },
        traffic: {
          routes: [{ version: '1', weight: 50, name: 'a' }, { version: '1', weight: 25, name: 'a' }, { version: '2', weight: 25 }],
          rules: [{ name: 'qa', version: '2', header: { name: 'x-qa', equals: '1' } }, { name: 'qa', version: '2', header: { name: 'x-qa', equals: '2' } }],
        },
      },
    },
  });
  assert.deepEqual(problems, [
    'models.m.traffic.routes.1.version: version "1" is already routed by routes.0',
    'models.m.traffic.routes.1.name: "a" is used by routes.0',
    'models.m.traffic.rules.1.name: "qa" is used by an earlier rule',
  ]);
});

test('prototype keys are refused anywhere in the file, each named, and never as model or version names (issue 8, class 8)', () => {
  const fromYaml = JSON.parse('{"auth":{"insecureNoAuth":true},"models":{"m":{"versions":{"1":{"backend":{"kind":"onnx","path":"m.onnx","__proto__":{"x":1}}}}}},"server":{"constructor":{"prototype":1}}}') as unknown;
  const problems = problemsOf(fromYaml);
  for (const path of ['models.m.versions.1.backend.__proto__', 'server.constructor', 'server.constructor.prototype']) {
    assert.ok(problems.some((p) => p.startsWith(`${path}: `)), `${path} named in:\n${problems.join('\n')}`);
  }
  for (const name of ['constructor', 'prototype', '__proto__']) {
    const models = JSON.parse(`{"${name}":{"versions":{"1":{"backend":{"kind":"onnx","path":"m.onnx"}}}}}`) as unknown;
    assert.ok(problemsOf({ auth: NO_AUTH, models }).length > 0, `a model named ${name}`);
    const versions = JSON.parse(`{"m":{"versions":{"${name}":{"backend":{"kind":"onnx","path":"m.onnx"}}}}}`) as unknown;
    assert.ok(problemsOf({ auth: NO_AUTH, models: versions }).length > 0, `a version named ${name}`);
  }
});

test('request limits, the scope claim, GET /v2 and trusted proxies have secure defaults and are checked', () => {
  const cfg = buildConfig({ auth: NO_AUTH, models: { m: { versions: { '1': onnx() } } } }, '/base');
  assert.deepEqual(cfg.rateLimits.requests, { perSubject: { limit: 60_000, windowMs: 60_000 }, failedAuthPerAddress: { limit: 300, windowMs: 60_000 } });
  assert.equal(cfg.auth.scopeClaim, 'scope');
  assert.equal(cfg.server.advertiseVersion, 'authenticated');
  assert.deepEqual(cfg.server.trustProxy, []);
  const problems = problemsOf({
    auth: NO_AUTH,
    server: { trustProxy: ['10.0.0.0/8', 'loopback', '::1', 'proxy.internal', '10.0.0.0/40'] },
    rateLimits: { rules: [{ name: 'requests', by: 'subject', limit: 1, windowMs: 1000 }] },
    models: { m: { versions: { '1': onnx() } } },
  });
  assert.deepEqual(problems, [
    'rateLimits.rules.0.name: "requests" names a request limit (rateLimits.requests); choose another',
    'server.trustProxy.3: "proxy.internal" is not an IP address, a CIDR, or loopback/linklocal/uniquelocal',
    'server.trustProxy.4: "10.0.0.0/40" is not an IP address, a CIDR, or loopback/linklocal/uniquelocal',
  ]);
});

// The guards section (issue 10): what the configuration refuses before anything starts.
const v = (profile?: string) => ({ backend: { kind: 'onnx', path: 'm.onnx' }, ...(profile === undefined ? {} : { profile }) });

test('guards are off unless configured; defaults are filled and profiles resolved against the file', () => {
  const cfg = buildConfig({ auth: NO_AUTH, models: { m: { versions: { '1': v('p/1.json') }, guards: { contract: { mode: 'reject' } } } } }, '/base');
  const g = cfg.models.m.guards!;
  assert.equal(g.contract?.mode, 'reject');
  assert.equal(g.contract?.tolerance, 0.05);
  assert.equal(g.targetFpr, 0.01);
  assert.equal(g.failClosed, false);
  assert.equal(cfg.models.m.versions['1'].profile, '/base/p/1.json');
  assert.deepEqual(guardsOn(g), ['contract']);
  assert.deepEqual(guardsOn(buildConfig({ auth: NO_AUTH, models: { m: { versions: { '1': v() } } } }, '/base').models.m.guards), []);
});

test('a guard that is on needs a profile on every version', () => {
  const problems = problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v('a.json'), '2': v() }, guards: { ood: { mode: 'flag' } } } } });
  assert.equal(problems.length, 1);
  assert.match(problems[0], /^models\.m\.guards: guards ood need a reference profile on every version; missing on 2 /);
  // Off guards need nothing.
  buildConfig({ auth: NO_AUTH, models: { m: { versions: { '1': v() }, guards: { ood: { mode: 'off' } } } } }, '/base');
});

test('route mode needs routeTo, and routeTo must be a version', () => {
  assert.match(problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v('a') }, guards: { contract: { mode: 'route' } } } } }).join('\n'), /routeTo: guards contract are in route mode/);
  assert.match(problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v('a') }, guards: { routeTo: '9', ood: { mode: 'flag' } } } } }).join('\n'), /routeTo: version "9" is not among its versions \(1\)/);
});

test('modes and numbers outside their range are refused by the schema', () => {
  assert.ok(problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v('a') }, guards: { contract: { mode: 'throttle' } } } } }).length > 0);
  assert.ok(problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v('a') }, guards: { extraction: { mode: 'route' } } } } }).length > 0);
  assert.ok(problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v('a') }, guards: { targetFpr: 0 } } } }).length > 0);
  assert.ok(problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v('a') }, guards: { squeeze: { mode: 'flag', sampleRate: 1.5 } } } } }).length > 0);
});

test('drift: defaults; every version needs a profile or a baseline; a baseline needs a window of samples; thresholds in order', () => {
  const v = (profile?: string) => ({ backend: { kind: 'onnx', path: 'm.onnx' }, ...(profile === undefined ? {} : { profile }) });
  const c = buildConfig({ auth: NO_AUTH, models: { m: { versions: { '1': v('a.json') }, drift: {} } } }, '/base');
  assert.deepEqual(c.models.m.drift, {
    enabled: true,
    sampleRate: 1,
    window: { samples: 1000, mode: 'sliding' },
    thresholds: { psiWarning: 0.1, psiDrift: 0.2, alpha: 0.01, minSamples: 500, confirmations: 2 },
    flushMs: 1000,
    evaluateMs: 1000,
  });
  assert.ok(problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v('a.json'), '2': v() }, drift: {} } } })
    .some((p) => /models\.m\.drift: drift needs a reference for every version: a profile .* or a baseline .*; missing on 2/.test(p)));
  buildConfig({ auth: NO_AUTH, models: { m: { versions: { '1': v() }, drift: { baseline: { samples: 1000 } } } } }, '/base');
  buildConfig({ auth: NO_AUTH, models: { m: { versions: { '1': v() }, drift: { enabled: false } } } }, '/base');
  assert.ok(problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v() }, drift: { baseline: { samples: 1000 }, window: { seconds: 60 } } } } })
    .some((p) => /a baseline of samples needs a window of samples/.test(p)));
  assert.ok(problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v('a.json') }, drift: { thresholds: { psiWarning: 0.3 } } } } })
    .some((p) => /psiWarning \(0\.3\) must not exceed psiDrift \(0\.2\)/.test(p)));
  assert.ok(problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v('a.json') }, drift: { sampleRate: 2 } } } }).some((p) => p.includes('sampleRate')));
  assert.ok(problemsOf({ auth: NO_AUTH, models: { m: { versions: { '1': v('a.json') }, drift: { window: { samples: 0 } } } } }).some((p) => p.includes('window.samples')));
});
