import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { buildConfig } from '../gateway/config.js';
import { ASSETS } from '../test/helpers/assets.js';
import { buildModelTable, retireTable, type ArtifactLoader } from './registry.js';

const IRIS = join(ASSETS, 'models/iris_mlp_dynamic.onnx');
const TITANIC = join(ASSETS, 'models/titanic_logreg_nozipmap.onnx');
const log = pino({ level: 'silent' });
const onnx = (path = IRIS) => ({ backend: { kind: 'onnx', path } });

test('a reload reuses unchanged versions and closes the removed ones once idle', async () => {
  const first = await buildModelTable(buildConfig({ auth: { insecureNoAuth: true }, models: { iris: { versions: { '1': onnx(), '2': onnx() } } } }, '/'), { log, tolerateUnreachable: false });
  const v1 = first.models.get('iris')?.versions.get('1');
  const v2 = first.models.get('iris')?.versions.get('2');
  assert.ok(v1 && v2);
  const second = await buildModelTable(buildConfig({ auth: { insecureNoAuth: true }, models: { iris: { versions: { '2': onnx() } } } }, '/'), { log, previous: first, tolerateUnreachable: false });
  assert.equal(second.models.get('iris')?.versions.get('2'), v2, 'unchanged version is the same session');

  first.acquire(); // a request still running on the old table
  const retired = retireTable(first, second);
  await new Promise((r) => setImmediate(r));
  assert.equal(await v1.adapter.ready(), true, 'not closed while a request uses the old table');
  first.release();
  await retired;
  assert.equal(await v1.adapter.ready(), false, 'removed version closed');
  assert.equal(await v2.adapter.ready(), true, 'kept version still open');
  await retireTable(second, undefined);
  assert.equal(await v2.adapter.ready(), false);
});

test('a table whose model fails to load closes what it opened and rejects', async () => {
  const cfg = buildConfig({ auth: { insecureNoAuth: true }, models: { ok: { versions: { '1': onnx() } }, broken: { versions: { '1': onnx(join('/nonexistent', 'm.onnx')) } } } }, '/');
  await assert.rejects(buildModelTable(cfg, { log, tolerateUnreachable: true }), /model broken version 1 failed to load/);
});

test('a version whose model file changed in place is loaded anew with its new hash; an unchanged one is reused', async () => {
  const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
  const dir = await mkdtemp(join(tmpdir(), 'bw-registry-'));
  const file = join(dir, 'model.onnx');
  await copyFile(IRIS, file);
  const cfg = buildConfig({ auth: { insecureNoAuth: true }, models: { m: { versions: { '1': onnx(file) } } } }, '/');
  const first = await buildModelTable(cfg, { log, tolerateUnreachable: false });
  const before = first.models.get('m')?.stable;
  assert.equal(before?.artifactSha256, sha256(IRIS));
  const same = await buildModelTable(cfg, { log, previous: first, tolerateUnreachable: false });
  assert.equal(same.models.get('m')?.stable, before, 'same file: the same session');

  await writeFile(file, readFileSync(TITANIC));
  const next = await buildModelTable(cfg, { log, previous: same, tolerateUnreachable: false });
  const after = next.models.get('m')?.stable;
  assert.notEqual(after, before, 'changed file: a new session');
  assert.equal(after?.artifactSha256, sha256(TITANIC));
  assert.deepEqual(after?.metadata?.inputs.map((i) => i.name), ['pclass', 'sex', 'age', 'fare', 'embarked']);
  await retireTable(same, next);
  await retireTable(next, undefined);
  await rm(dir, { recursive: true, force: true });
});

test('per-version artefacts load with the table, are reused while unchanged, reload their version when changed, and a broken one refuses the table', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bw-artifacts-'));
  const fileOf = (model: string, version: string) => join(dir, `${model}-${version}.json`);
  let loads = 0;
  // A stand-in for the reference profile of the input guards: a JSON file per version, named by its hash.
  const profiles: ArtifactLoader = {
    name: 'profile',
    source: async (model, version) => {
      try {
        return createHash('sha256').update(readFileSync(fileOf(model, version))).digest('hex');
      } catch {
        return undefined;
      }
    },
    load: async (model, version, _config, loaded) => {
      loads++;
      // Loaded after its model, so it can be checked against it.
      assert.deepEqual(loaded.metadata?.inputs.map((i) => i.name), ['input']);
      assert.equal(loaded.artifactSha256, createHash('sha256').update(readFileSync(IRIS)).digest('hex'));
      return JSON.parse(readFileSync(fileOf(model, version), 'utf8')) as unknown;
    },
  };
  const cfg = buildConfig({ auth: { insecureNoAuth: true }, models: { m: { versions: { '1': onnx(), '2': onnx() } } } }, '/');
  const log = pino({ level: 'silent' });
  try {
    await writeFile(fileOf('m', '1'), '{"fare":{"p99":512}}');
    const first = await buildModelTable(cfg, { log, tolerateUnreachable: false, artifacts: [profiles] });
    const v1 = first.models.get('m')?.versions.get('1');
    assert.deepEqual(v1?.artifacts.get('profile'), { fare: { p99: 512 } });
    assert.equal(first.models.get('m')?.versions.get('2')?.artifacts.size, 0, 'a version without one has none');

    const same = await buildModelTable(cfg, { log, previous: first, tolerateUnreachable: false, artifacts: [profiles] });
    assert.equal(same.models.get('m')?.versions.get('1'), v1, 'unchanged: the same version, not loaded again');
    assert.equal(loads, 1);

    await writeFile(fileOf('m', '1'), '{"fare":{"p99":600}}');
    const changed = await buildModelTable(cfg, { log, previous: same, tolerateUnreachable: false, artifacts: [profiles] });
    const v1b = changed.models.get('m')?.versions.get('1');
    assert.notEqual(v1b, v1, 'a changed artefact loads its version anew');
    assert.deepEqual(v1b?.artifacts.get('profile'), { fare: { p99: 600 } });
    assert.deepEqual(v1?.artifacts.get('profile'), { fare: { p99: 512 } }, 'a request holding the old table still sees the old one');

    await writeFile(fileOf('m', '2'), '{not json');
    await assert.rejects(buildModelTable(cfg, { log, previous: changed, tolerateUnreachable: false, artifacts: [profiles] }), /model m version 2 failed to load .*its profile could not be loaded/);
    await Promise.all([retireTable(first, changed), retireTable(changed, undefined)]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
