import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ASSETS } from '../test/helpers/assets.js';
import { scanModelRepository, type RepositoryScan } from './model-repository.js';

// dist/gateway/ → repo root → ../shared
const MODELS = join(ASSETS, 'models');
const TITANIC = join(MODELS, 'titanic_logreg_nozipmap.onnx');
const IRIS = join(MODELS, 'iris_mlp_dynamic.onnx');

async function place(root: string, rel: string, source: string, how: 'copy' | 'link' = 'link'): Promise<string> {
  const target = join(root, rel);
  await mkdir(join(target, '..'), { recursive: true });
  if (how === 'copy') await copyFile(source, target);
  else await symlink(source, target);
  return target;
}

describe('scanModelRepository', () => {
  let root: string;
  let scan: RepositoryScan;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'bw-repo-'));
    await place(root, 'titanic/1/model.onnx', TITANIC, 'copy');
    await place(root, 'titanic/2/model.onnx', TITANIC);
    await place(root, 'titanic/10/model.onnx', TITANIC);
    await mkdir(join(root, 'titanic/latest'), { recursive: true }); // not a number
    await place(root, 'titanic/0/model.onnx', TITANIC); // not positive
    await place(root, 'titanic/03/model.onnx', TITANIC); // leading zero
    await mkdir(join(root, 'titanic/4'), { recursive: true }); // no model file
    await writeFile(join(root, 'titanic/config.yaml'), 'nonFinite: allow\ninferTimeoutMs: 500\nintraOpThreads: 2\n');
    await place(root, 'iris/1/model.onnx', IRIS);
    await place(root, 'iris/2/model.onnx', IRIS);
    await writeFile(join(root, 'iris/config.yaml'), 'stable: 1\n');
    await place(root, 'mnist.v1-b_2/7/model.onnx', IRIS);
    await writeFile(join(root, 'mnist.v1-b_2/README.md'), 'notes');
    await place(root, '.hidden/1/model.onnx', IRIS);
    await place(root, 'bad name/1/model.onnx', IRIS);
    await place(root, `${'x'.repeat(129)}/1/model.onnx`, IRIS);
    await place(root, 'empty/junk/model.onnx', IRIS);
    await place(root, 'broken/1/model.onnx', IRIS);
    await writeFile(join(root, 'broken/config.yaml'), 'a: [unclosed\n');
    await place(root, 'listy/1/model.onnx', IRIS);
    await writeFile(join(root, 'listy/config.yaml'), '- 1\n- 2\n');
    await place(root, 'wrongstable/1/model.onnx', IRIS);
    await writeFile(join(root, 'wrongstable/config.yaml'), 'stable: "9"\n');
    await writeFile(join(root, 'README.txt'), 'a loose file is not a model');
    await symlink(join(root, 'iris'), join(root, 'iris-alias'));
    scan = await scanModelRepository(root);
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const model = (name: string) => scan.models.find((m) => m.name === name);

  it('lists the valid models sorted by name, following symlinked folders', () => {
    assert.deepEqual(scan.models.map((m) => m.name), ['iris', 'iris-alias', 'mnist.v1-b_2', 'titanic']);
  });

  it('keeps only positive integer version folders that hold model.onnx, sorted numerically', () => {
    const titanic = model('titanic');
    assert.ok(titanic);
    assert.deepEqual(titanic.versions.map((v) => v.version), ['1', '2', '10']);
    assert.deepEqual(titanic.versions.map((v) => v.path), ['1', '2', '10'].map((v) => join(root, 'titanic', v, 'model.onnx')));
  });

  it('makes the highest numeric version stable', () => {
    assert.equal(model('titanic')?.stable, '10');
    assert.equal(model('mnist.v1-b_2')?.stable, '7');
  });

  it('passes config.yaml keys through as settings', () => {
    assert.deepEqual(model('titanic')?.settings, { nonFinite: 'allow', inferTimeoutMs: 500, intraOpThreads: 2 });
    assert.deepEqual(model('mnist.v1-b_2')?.settings, {});
  });

  it('honours a stable override in config.yaml that names an existing version', () => {
    assert.equal(model('iris')?.stable, '1');
    assert.deepEqual(model('iris')?.settings, { stable: 1 });
  });

  it('skips a model whose stable override names no version folder rather than serving another', () => {
    assert.equal(model('wrongstable'), undefined);
    assert.ok(scan.warnings.some((w) => w.startsWith('model "wrongstable": config.yaml stable version "9"')));
  });

  it('skips bad model names, hidden folders and junk with a warning each', () => {
    const w = scan.warnings.join('\n');
    for (const name of ['.hidden', 'bad name', 'x'.repeat(129)]) {
      assert.equal(model(name), undefined);
      assert.ok(w.includes(`folder "${name}" is not a valid model name`), name);
    }
    assert.ok(w.includes('model "titanic": folder "latest" is not a positive integer version'));
    assert.ok(w.includes('model "titanic": folder "0"'));
    assert.ok(w.includes('model "titanic": folder "03"'));
    assert.ok(w.includes('model "titanic" version 4: no model.onnx'));
    assert.ok(w.includes('model "empty": no version folder'));
    assert.ok(!w.includes('README'));
  });

  it('skips a model whose config.yaml is not valid YAML or not a mapping', () => {
    assert.equal(model('broken'), undefined);
    assert.equal(model('listy'), undefined);
    assert.ok(scan.warnings.some((w) => w.startsWith('model "broken": config.yaml cannot be read or parsed')));
    assert.ok(scan.warnings.some((w) => w.startsWith('model "listy": config.yaml is not a YAML mapping')));
  });

  it('rejects a repository without models, naming the folder', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'bw-empty-'));
    try {
      await mkdir(join(empty, 'nothing-here'));
      await assert.rejects(scanModelRepository(empty), (e: Error) => e.message.includes(empty) && e.message.includes('holds no model'));
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('rejects a repository folder that does not exist, naming it', async () => {
    const missing = join(root, 'does-not-exist');
    await assert.rejects(scanModelRepository(missing), (e: Error) => e.message.includes(missing) && e.message.includes('ENOENT'));
  });
});
