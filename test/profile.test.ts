/**
 * `breakwater profile` through the real command line on the team's reference data (Titanic, iris,
 * the MNIST samples as JSONL) with the real models, then the profiles it wrote served by a gateway:
 * loaded with their models, swapped by a reload when rebuilt, and a profile that does not fit its
 * model refused (the reload, and `breakwater validate`) with a message naming the difference.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { loadConfigFile } from '../gateway/config.js';
import { startGateway } from '../gateway/main.js';
import { PROFILE_ARTIFACT } from '../gateway/profile/loader.js';
import type { Profile } from '../policies/guards/profile.js';
import { ASSETS } from './helpers/assets.js';
import { runCli } from './helpers/gateway.js';

let dir: string;
let config: string;
const breakwater = (args: readonly string[]) => runCli(args, { timeoutMs: 60_000 });
const readProfile = async (name: string) => JSON.parse(await readFile(join(dir, name), 'utf8')) as Profile;
const IRIS_MAP = ['--map', 'input=SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm'];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bw-profile-cli-'));
  const samples = JSON.parse(await readFile(join(ASSETS, 'datasets/mnist-samples-100.json'), 'utf8')) as { samples: { pixels: number[] }[] };
  const lines = samples.samples.map((s) => JSON.stringify({ inputs: [{ name: 'Input3', datatype: 'FP32', shape: [1, 1, 28, 28], data: s.pixels }] }));
  await writeFile(join(dir, 'mnist.jsonl'), `${lines.join('\n')}\n`);
  config = join(dir, 'breakwater.yaml');
  await writeFile(config, stringify({
    auth: { insecureNoAuth: true },
    models: {
      titanic: { versions: { '1': { backend: { kind: 'onnx', path: join(ASSETS, 'models/titanic_logreg_nozipmap.onnx') } } }, nonFinite: 'allow' },
      iris: { versions: { '1': { backend: { kind: 'onnx', path: join(ASSETS, 'models/iris_mlp_dynamic.onnx') } } } },
      mnist: { versions: { '1': { backend: { kind: 'onnx', path: join(ASSETS, 'models/mnist_cntk_opset7.onnx') } } } },
    },
  }));
});
after(() => rm(dir, { recursive: true, force: true }));

describe('breakwater profile', { timeout: 180_000 }, () => {
  test('titanic from titanic3.csv: the model\'s five inputs from their columns, empty cells missing, squeezing its probabilities', async () => {
    const r = await breakwater(['profile', '--config', config, '--model', 'titanic', '--data', join(ASSETS, 'datasets/titanic3.csv'), '--out', join(dir, 'titanic-1.json')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /profile of titanic version 1 written to .*titanic-1\.json/);
    assert.match(r.stdout, /titanic3\.csv, 1309 rows: 916 reference, 393 held out /);
    assert.match(r.stdout, /out-of-distribution: Gaussian mixture of [1-4] components?, threshold -?\d[^ ]* cross-fitted on 1309 rows/);
    assert.match(r.stdout, /squeeze: 4-bit age \(threshold \d[^)]*\), 4-bit fare \(threshold \d[^)]*\) on probabilities, from 1309 rows/);
    const p = await readProfile('titanic-1.json');
    assert.equal(p.modelSha256, 'bea427a029b80668e32bcee091c43d0fc5b3eb7eace3e1b557df8f6fca288818');
    assert.equal(p.data.sha256, 'be4571dad20dbeb54cacb10d8f24019bf9c3f7ddea9bd1c69f05d33f3b1ecc1e');
    const byName = Object.fromEntries(p.features.map((f) => [f.name, f]));
    assert.deepEqual(byName.embarked?.kind === 'categorical' && Object.keys(byName.embarked.categories), ['C', 'Q', 'S']);
    assert.equal(byName.age?.missingRate.toFixed(4), (263 / 1309).toFixed(4));
    assert.deepEqual(byName.fare?.kind === 'numeric' && [byName.fare.min, byName.fare.max], [0, 512.3292]);
    assert.equal(p.squeeze?.logits, false);
    assert.equal(p.calibration.squeeze?.length, 2, 'a threshold per squeezer');
    assert.match(r.stdout, /drift reference: 5 features binned \(3 numeric, 2 categorical; 36 bins\), outputs binned: probabilities:class \(2 classes\) and probabilities:score \(9 edges\), from 1309 rows/);
    const drift = Object.fromEntries((p.drift?.features ?? []).map((b) => [b.name, b]));
    assert.deepEqual(drift.pclass, { name: 'pclass', kind: 'numeric', edges: [0.5, 1.5, 2.5], counts: [0, 323, 277, 709, 0] }, 'three classes, a bin each');
    assert.deepEqual(drift.embarked, { name: 'embarked', kind: 'categorical', categories: ['C', 'Q', 'S'], counts: [270, 123, 914, 0, 2] });
    assert.equal(drift.age?.counts.at(-1), 263, 'missing ages: the last bin');
  });

  test('iris from iris.csv with --map; without it the missing columns are named', async () => {
    const r = await breakwater(['profile', '--config', config, '--model', 'iris', '--version', '1', '--data', join(ASSETS, 'datasets/iris.csv'), ...IRIS_MAP, '--out', join(dir, 'iris-1.json')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /150 rows: 105 reference, 45 held out/);
    assert.match(r.stdout, /squeeze: 6-bit input \(threshold \d[^)]*\) on output \(logits\), from 150 rows/);
    assert.match(r.stdout, /drift reference: 4 features binned \(4 numeric, 0 categorical; \d+ bins\), outputs binned: output:class \(3 classes\) and output:score \(\d edges\) after softmax, from 150 rows/);
    const bad = await breakwater(['profile', '--config', config, '--model', 'iris', '--data', join(ASSETS, 'datasets/iris.csv'), '--out', join(dir, 'x.json')]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /cannot build the profile of iris from .*iris\.csv: the header has no column input\[0\], input\[1\], input\[2\], input\[3\] for input "input"/);
  });

  test('mnist from 100 digits as JSONL: the image detector on every digit; of the candidate squeezers, the 2x2 median (which moves clean digits\' answers) left out', async () => {
    const r = await breakwater(['profile', '--config', config, '--model', 'mnist', '--data', join(dir, 'mnist.jsonl'), '--out', join(dir, 'mnist-1.json')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /100 rows: 70 reference, 30 held out/);
    assert.match(r.stdout, /out-of-distribution: image \(pixels, edges, statistics; 100 rows\), threshold [\d.]+ cross-fitted on 100 rows \(target false-positive rate 0.01, at 90 % confidence\)/);
    assert.match(r.stdout, /squeeze: 1-bit Input3 \(threshold \d[^)]*\), 2-bit Input3 \(threshold \d[^)]*\) on Plus214_Output_0 \(logits\), from 100 rows/);
    const p = await readProfile('mnist-1.json');
    assert.match(p.calibration.method, /left out: median 2x2 Input3 \(\d/);
    assert.equal(p.features.length, 784);
    assert.match(r.stdout, /drift reference: 784 features binned \(784 numeric, 0 categorical; \d+ bins\), outputs binned: Plus214_Output_0:class \(10 classes\) and Plus214_Output_0:score \(\d edges\) after softmax, from 100 rows/);
    assert.equal(p.ood.method === 'knn' && p.ood.rows, 100);
    assert.equal(p.calibration.oodRows, 100);
    assert.match(p.calibration.method, /except out of distribution \(an image model\): the detector is fitted on every row/);
  });

  test('usage mistakes: exit 2 with the usage; an unknown model: exit 1 naming the models', async () => {
    const missing = await breakwater(['profile', '--config', config, '--model', 'iris']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--model and --data are required[\s\S]*breakwater profile --model M/);
    const fpr = await breakwater(['profile', '--config', config, '--model', 'iris', '--data', 'x.csv', '--target-fpr', '2']);
    assert.equal(fpr.code, 2);
    assert.match(fpr.stderr, /--target-fpr must be between 0 and 1/);
    const unknown = await breakwater(['profile', '--config', config, '--model', 'resnet', '--data', join(ASSETS, 'datasets/iris.csv')]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /model "resnet" is not in the configuration \(it has titanic, iris, mnist\)/);
  });

  test('served: each version loads its profile; a rebuilt one is swapped in by a reload; one that does not fit is refused, the old one kept', async () => {
    const served = join(dir, 'served.yaml');
    const text = (await readFile(config, 'utf8'))
      .replace(/(titanic_logreg_nozipmap\.onnx\n)/, '$1        profile: titanic-1.json\n')
      .replace(/(iris_mlp_dynamic\.onnx\n)/, '$1        profile: iris-1.json\n')
      .replace(/(mnist_cntk_opset7\.onnx\n)/, '$1        profile: mnist-1.json\n');
    await writeFile(served, text);
    const cfg = await loadConfigFile(served);
    const gw = await startGateway({ config: cfg, log: pino({ level: 'silent' }), loadConfig: () => loadConfigFile(served) });
    try {
      const profileOf = (model: string) => gw.serving.table.models.get(model)?.versions.get('1')?.artifacts.get(PROFILE_ARTIFACT) as Profile | undefined;
      for (const m of ['titanic', 'iris', 'mnist']) assert.equal(profileOf(m)?.calibration.ood, (await readProfile(`${m}-1.json`)).calibration.ood, m);
      const before = profileOf('iris');

      const rebuilt = await breakwater(['profile', '--config', config, '--model', 'iris', '--data', join(ASSETS, 'datasets/iris.csv'), ...IRIS_MAP, '--seed', '7', '--out', join(dir, 'iris-1.json')]);
      assert.equal(rebuilt.code, 0, rebuilt.stderr);
      await gw.reload();
      const after = profileOf('iris');
      assert.notEqual(after, before);
      assert.equal(after?.calibration.ood, (await readProfile('iris-1.json')).calibration.ood);
      assert.notEqual(after?.calibration.ood, before?.calibration.ood);
      assert.equal(profileOf('titanic'), profileOf('titanic'), 'unchanged ones are kept');

      await writeFile(join(dir, 'iris-1.json'), await readFile(join(dir, 'titanic-1.json')));
      await assert.rejects(gw.reload(), /model iris version 1 failed to load .*the profile .*iris-1\.json does not fit this version: it was built for titanic version 1, a model file with SHA-256 bea427a029b8…, and this version's file has 97504a48f125…/);
      assert.equal(profileOf('iris'), after, 'the old table, and its profile, keep serving');
      const res = await fetch(`${gw.url}/v2/models/iris/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] }) });
      assert.equal(res.status, 200);

      const v = await runCli(['validate', served], { timeoutMs: 30_000, env: { JWT_ISSUER: '', JWT_AUDIENCE: '', JWT_PUBLIC_KEY_FILE: '', JWKS_URL: '' } });
      assert.equal(v.code, 1);
      assert.match(v.stderr, /model iris version 1 failed to load .*does not fit this version: .*the model has input "input" \(FP32 \[4\] per row\), which the profile lacks/);
    } finally {
      await gw.close();
    }
  });
});
