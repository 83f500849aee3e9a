/**
 * `breakwater validate` through the real command line: it loads every model as `serve` would and
 * exits 1 on whatever `serve` would refuse or leave out, naming model, version and file; it checks a
 * repository without identity flags; an unreachable remote backend is only a warning, as serve
 * retries it.
 */
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { ASSETS } from './helpers/assets.js';
import { makeRepository, runCli, spawnGateway, writeTempFile } from './helpers/gateway.js';
import { freePort } from './helpers/redis.js';

const IRIS = join(ASSETS, 'models/iris_mlp_dynamic.onnx');
const TITANIC = join(ASSETS, 'models/titanic_logreg_nozipmap.onnx');
const temp: string[] = [];

after(async () => {
  for (const d of temp) await rm(d, { recursive: true, force: true });
});

// No identity variables from the environment: validation must not need them.
const NO_IDENTITY = { JWT_ISSUER: '', JWT_AUDIENCE: '', JWT_PUBLIC_KEY_FILE: '', JWKS_URL: '' };
const breakwater = (args: readonly string[]) => runCli(args, { env: NO_IDENTITY, timeoutMs: 30_000 });

/** A repository of real models plus garbage files at `garbage` (model name → version). */
async function repository(good: Record<string, Record<string, string>>, garbage: Record<string, string> = {}): Promise<string> {
  const dir = await makeRepository(good);
  temp.push(dir);
  for (const [model, version] of Object.entries(garbage)) {
    await mkdir(join(dir, model, version), { recursive: true });
    await writeFile(join(dir, model, version, 'model.onnx'), 'this is not an ONNX model\n');
  }
  return dir;
}

async function configFile(config: Record<string, unknown>): Promise<string> {
  const file = await writeTempFile('breakwater.yaml', stringify(config));
  temp.push(dirname(file));
  return file;
}

describe('breakwater validate', { timeout: 90_000 }, () => {
  test('a repository whose model.onnx is garbage fails, naming every broken model, version and file; serve refuses it too', async () => {
    const dir = await repository({ iris: { 1: IRIS } }, { titanic: '2', broken: '1' });
    const r = await breakwater(['validate', '--model-repository', dir]);
    assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
    for (const [model, version] of [['titanic', '2'], ['broken', '1']]) {
      const file = join(dir, model, version, 'model.onnx');
      assert.ok(r.stderr.includes(`model ${model} version ${version} failed to load from ${file}`), r.stderr);
    }
    assert.match(r.stderr, /not a valid ONNX model/);
    assert.doesNotMatch(r.stdout, /valid/);
    await assert.rejects(
      spawnGateway(['serve', '--model-repository', dir, '--port', '0', '--insecure-no-auth'], { timeoutMs: 30_000 }),
      /exited with 1 before serving/,
    );
  });

  test('a configuration file naming a garbage model file fails the same way', async () => {
    const dir = await repository({}, { m: '1' });
    const garbage = join(dir, 'm', '1', 'model.onnx');
    const file = await configFile({ auth: { insecureNoAuth: true }, models: { iris: { versions: { 1: { backend: { kind: 'onnx', path: IRIS } }, 2: { backend: { kind: 'onnx', path: garbage } } } } } });
    const r = await breakwater(['validate', file]);
    assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
    assert.ok(r.stderr.includes(`${file} is not valid`), r.stderr);
    assert.ok(r.stderr.includes(`model iris version 2 failed to load from ${garbage}`), r.stderr);
  });

  test('a repository with skipped entries fails and says which and why', async () => {
    const dir = await repository({ iris: { 1: IRIS } });
    await mkdir(join(dir, 'no-versions', 'latest'), { recursive: true });
    await mkdir(join(dir, 'iris', '2'), { recursive: true });
    const r = await breakwater(['validate', '--model-repository', dir]);
    assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /model "no-versions": folder "latest" is not a positive integer version/);
    assert.match(r.stderr, /model "no-versions": no version folder with a model\.onnx; model skipped \(serve would start without it\)/);
    assert.match(r.stderr, /model "iris" version 2: no model\.onnx; ignored \(serve would start without it\)/);
  });

  test('a good repository passes without identity flags, lists what serve would serve and says what serve will need', async () => {
    const dir = await repository({ iris: { 1: IRIS, 2: IRIS }, titanic: { 1: TITANIC } });
    const r = await breakwater(['validate', '--model-repository', dir]);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.ok(r.stdout.includes(`${dir}: valid (2 models: iris, titanic)`), r.stdout);
    assert.match(r.stdout, /iris: versions 1, 2 \(stable 2\)/);
    assert.match(r.stderr, /warning: no identity provider is configured here; serve will need --jwt-public-key/);
  });

  test('identity that is given is checked in full: a missing key file fails as serve would', async () => {
    const dir = await repository({ iris: { 1: IRIS } });
    const partial = await breakwater(['validate', '--model-repository', dir, '--jwt-issuer', 'https://idp.example']);
    assert.equal(partial.code, 1, partial.stderr);
    assert.match(partial.stderr, /auth\.audience: required/);

    const missingKey = join(dir, 'no-such-key.pem');
    const file = await configFile({
      auth: { issuer: 'https://idp.example', audience: 'breakwater', keys: [{ publicKeyFile: missingKey, algorithms: ['ES256'] }] },
      models: { iris: { versions: { 1: { backend: { kind: 'onnx', path: IRIS } } } } },
    });
    const r = await breakwater(['validate', file]);
    assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /auth\.keys\.0: cannot read its file: ENOENT/);
  });

  test('an unreachable remote backend is a warning: exit 0, and the output says serve retries it', async () => {
    const port = await freePort();
    const file = await configFile({
      auth: { insecureNoAuth: true },
      models: {
        iris: { versions: { 1: { backend: { kind: 'onnx', path: IRIS } } } },
        remote: { versions: { 1: { backend: { kind: 'oip-http', url: `http://127.0.0.1:${port}`, model: 'm', connectTimeoutMs: 500, timeoutMs: 1000 } } } },
      },
    });
    const r = await breakwater(['validate', file]);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /valid \(2 models: iris, remote\)/);
    assert.match(r.stderr, new RegExp(`warning: model remote version 1: the backend at http://127\\.0\\.0\\.1:${port} \\(model m\\) is not reachable \\(.*ECONNREFUSED.*\\); serve starts anyway`));
    assert.match(r.stderr, /keeps retrying in the background/);
  });
});
