import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import type { ModelMetadata } from '../../adapters/adapter.js';
import { buildModelTable, retireTable } from '../../adapters/registry.js';
import type { Profile } from '../../policies/guards/profile.js';
import { ASSETS } from '../../test/helpers/assets.js';
import { buildConfig } from '../config.js';
import { buildProfile } from './build.js';
import { PROFILE_ARTIFACT, profileLoader, profileProblems } from './loader.js';

const IRIS_MODEL = join(ASSETS, 'models/iris_mlp_dynamic.onnx');
const IRIS_SHA = '97504a48f12590e5f18b9f8b66495209a99c5851de5f79d1db0b04c91a8a6abb';
const METADATA: ModelMetadata = { platform: 'onnx_onnxv1', inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }], outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 3] }] };
const LOADED = { metadata: METADATA, artifactSha256: IRIS_SHA };
const log = pino({ level: 'silent' });
let profile: Profile;
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bw-loader-'));
  const config = buildConfig({ auth: { insecureNoAuth: true }, models: { iris: { versions: { '1': { backend: { kind: 'onnx', path: IRIS_MODEL } } } } } }, '/');
  profile = await buildProfile({ config, model: 'iris', data: join(ASSETS, 'datasets/iris.csv'), map: { input: ['SepalLengthCm', 'SepalWidthCm', 'PetalLengthCm', 'PetalWidthCm'] } });
});
after(() => rm(dir, { recursive: true, force: true }));

/** The profile with `change` applied to a deep copy. */
function edited(change: (p: Record<string, any>) => void): unknown {
  const copy = JSON.parse(JSON.stringify(profile)) as Record<string, any>;
  change(copy);
  return copy;
}

test('profileProblems: a profile built for the model fits it; with unknown metadata or hash what can be checked is', () => {
  assert.deepEqual(profileProblems(profile, LOADED), []);
  assert.deepEqual(profileProblems(profile, { metadata: undefined, artifactSha256: undefined }), []);
});

test('profileProblems: format, hash, names, datatypes, row shapes and order, each named', () => {
  assert.deepEqual(profileProblems([], LOADED), ['not a profile: the file must hold a JSON object']);
  assert.deepEqual(profileProblems(edited((p) => (p.format = 'breakwater.profile/9')), LOADED), ['unknown format "breakwater.profile/9": this gateway reads "breakwater.profile/1" (rebuild it with breakwater profile)']);
  assert.deepEqual(profileProblems(edited((p) => (p.modelSha256 = 'ab'.repeat(32))), LOADED), [`it was built for iris version 1, a model file with SHA-256 ${'ab'.repeat(6)}…, and this version's file has 97504a48f125… (rebuild it with breakwater profile)`]);
  assert.deepEqual(profileProblems(edited((p) => (p.modelSha256 = null)), LOADED), [], 'a profile built through a remote backend carries no hash');
  assert.deepEqual(profileProblems(edited((p) => (p.inputs[0].datatype = 'FP64')), LOADED), ['input "input": the profile has datatype FP64, the model FP32']);
  assert.deepEqual(profileProblems(edited((p) => (p.inputs[0].rowShape = [5])), LOADED), ['input "input": the profile has row shape [5], the model [4]']);
  assert.deepEqual(profileProblems(edited((p) => (p.inputs[0].name = 'x')), LOADED), [
    'the model has input "input" (FP32 [4] per row), which the profile lacks',
    'the profile has input "x", which the model lacks (it has input)',
  ]);
  assert.deepEqual(profileProblems(edited((p) => (p.squeeze.output = 'probabilities')), LOADED), ['its squeeze section compares output "probabilities", which the model lacks']);
  const two: ModelMetadata = { ...METADATA, inputs: [{ name: 'a', datatype: 'FP32', shape: [-1, 2] }, { name: 'b', datatype: 'FP32', shape: [-1, 2] }] };
  const swapped = edited((p) => {
    p.inputs = [{ name: 'b', datatype: 'FP32', rowShape: [2], firstFeature: 0, featureCount: 2 }, { name: 'a', datatype: 'FP32', rowShape: [2], firstFeature: 2, featureCount: 2 }];
  });
  assert.match(profileProblems(swapped, { metadata: two, artifactSha256: IRIS_SHA }).join(), /inputs are in another order than the model's \(a, b\)/);
});

test('profileProblems: parts that do not fit together (what the guards would index into)', () => {
  assert.match(profileProblems(edited((p) => p.ood.components[0].precision.pop()), LOADED).join(), /a mixture model needs components, each with a weight, a logNorm, a mean of 4 and a precision of 4×4 numbers/);
  assert.match(profileProblems(edited((p) => (p.ood.components = [])), LOADED).join(), /a mixture model needs components/);
  assert.match(profileProblems(edited((p) => delete p.ood.components[0].logNorm), LOADED).join(), /a mixture model needs components/);
  // A profile written before the mixture: one Gaussian.
  const gaussian = (mean: number[], precision: number[]) => edited((p) => (p.ood = { method: 'mahalanobis', encoder: p.ood.encoder, mean, precision }));
  assert.deepEqual(profileProblems(gaussian([0, 0, 0, 0], Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0))), LOADED), []);
  assert.match(profileProblems(gaussian([0, 0, 0, 0], [1, 0, 0]), LOADED).join(), /a Mahalanobis model needs a mean of 4 and a precision of 4×4 numbers/);
  assert.match(profileProblems(edited((p) => p.features.pop()), LOADED).join(), /`features` must hold one entry per feature of the inputs \(4\)/);
  assert.match(profileProblems(edited((p) => (p.features[1].quantiles = [1])), LOADED).join(), /feature 1 \("input\[1\]"\): a numeric feature needs/);
  assert.match(profileProblems(edited((p) => (p.ood.method = 'isolation-forest')), LOADED).join(), /`ood.method` "isolation-forest" is unknown/);
  assert.match(profileProblems(edited((p) => delete p.calibration.squeeze), LOADED).join(), /a profile with a squeeze section needs its thresholds, one per squeezer \(1\)/);
  assert.match(profileProblems(edited((p) => p.calibration.squeeze.push(0.5)), LOADED).join(), /needs its thresholds, one per squeezer \(1\)/);
  assert.match(profileProblems(edited((p) => (p.calibration.squeeze = 0.25)), LOADED).join(), /one threshold for all squeezers, as profiles were written before each squeezer had its own \(rebuild it with breakwater profile\)/);
  assert.match(profileProblems(edited((p) => (p.features[1].low = p.features[1].min + 0.1)), LOADED).join(), /feature 1 \("input\[1\]"\): its contract bounds low and high must be numbers with low <= min and high >= max/);
  assert.match(profileProblems(edited((p) => (p.features[2].high = '9')), LOADED).join(), /feature 2 \("input\[2\]"\): its contract bounds/);
  assert.deepEqual(profileProblems(edited((p) => p.features.forEach((f: Record<string, unknown>) => { delete f.low; delete f.high; })), LOADED), [], 'a profile written before the bounds loads (the contract uses [min, max])');
  assert.match(profileProblems(edited((p) => (p.extraction.stepQuantiles = [])), LOADED).join(), /stepQuantiles/);
  assert.match(profileProblems(edited((p) => delete p.extraction.latticeRate), LOADED).join(), /`extraction.latticeRate` must be a share, 0 to 1 \(profiles from before it: rebuild/);
  assert.match(profileProblems(edited((p) => Object.assign(p.extraction, { latticeRate: 1.5 })), LOADED).join(), /latticeRate/);
  assert.match(profileProblems(edited((p) => Object.assign(p.extraction, { tinyStep: -1, tinyRate: null })), LOADED).join(), /`extraction.tinyStep` must be a distance.*`extraction.tinyRate` must be a share/);
  assert.match(profileProblems(edited((p) => Object.assign(p.ood, { method: 'knn', k: 5, rows: 2, reference: [1, 2] })), LOADED).join(), /a knn model needs k \(1 to rows\) and rows × 4 reference values/);
});

test('profileProblems: the drift reference, when present: bins, counts, names and outputs that fit, each problem named', () => {
  assert.ok(profile.drift !== undefined && profile.drift.features.length === 4 && profile.drift.output?.name === 'output');
  assert.deepEqual(profileProblems(edited((p) => delete p.drift), LOADED), [], 'a profile written before the drift reference loads');
  const drift = (change: (d: Record<string, any>) => void): string => profileProblems(edited((p) => change(p.drift)), LOADED).join('; ');
  assert.equal(drift((d) => d.features[0].counts.pop()), '`drift.features[0]` ("input[0]"): it needs 11 counts (whole numbers, 0 or more), one per bin');
  assert.match(drift((d) => (d.features[1].counts[0] = -1)), /`drift.features\[1\]` \("input\[1\]"\): it needs 10 counts/);
  assert.match(drift((d) => d.features[0].edges.reverse()), /`drift.features\[0\]` \("input\[0\]"\): its edges must be finite numbers in strictly ascending order/);
  assert.match(drift((d) => (d.features[0].edges[1] = d.features[0].edges[0])), /strictly ascending/);
  assert.equal(drift((d) => { [d.features[0], d.features[1]] = [d.features[1], d.features[0]]; }), '`drift.features[0]` is named "input[1]", where "input[0]" belongs; `drift.features[1]` is named "input[0]", where "input[1]" belongs');
  assert.match(drift((d) => Object.assign(d.features[2], { kind: 'categorical', categories: ['a'] })), /`drift.features\[2\]` \("input\[2\]"\) must be numeric, not categorical/);
  assert.equal(drift((d) => d.features.pop()), '`drift.features` must hold one entry per feature of the profile (4), in order');
  assert.equal(drift((d) => (d.features[3].counts[0] += 1)), '`drift.features[3]` ("input[3]"): its counts add up to 151, not the 150 rows');
  assert.match(drift((d) => (d.rows = 0)), /`drift.rows` must be a positive integer/);
  assert.equal(drift((d) => d.outputs.pop()), '`drift.outputs` must hold the two blocks of output "output": "output:class", then "output:score"');
  assert.equal(drift((d) => d.outputs.reverse()), '`drift.outputs[0]` is named "output:score", where "output:class" belongs; `drift.outputs[0]` ("output:class") must be categorical, not numeric; `drift.outputs[1]` is named "output:class", where "output:score" belongs; `drift.outputs[1]` ("output:score") must be numeric, not categorical');
  assert.match(drift((d) => (d.outputs[0].categories = ['a', 'b', 'c'])), /`drift.outputs\[0\]` \("output:class"\): its categories must be the classes "0" … "2"/);
  assert.match(drift((d) => (d.outputs[0].categories = ['0', '0', '1'])), /its categories must be distinct strings/);
  assert.match(drift((d) => (d.outputs[1].counts[0] -= 1)), /the class and score blocks must count the same answers, at most one per row \(150 and 149 for 150 rows\)/);
  assert.match(drift((d) => (d.output.classes = 1)), /`drift.output` needs a name, logits \(true or false\) and classes \(2 or more\)/);
  assert.equal(drift((d) => delete d.output), '`drift.outputs` must be an empty list when there is no `drift.output`');
  assert.deepEqual(drift((d) => { delete d.output; d.outputs = []; }), '', 'a model without a class-score output has no output blocks');
  assert.equal(profileProblems(edited((p) => (p.drift = [])), LOADED).join(), '`drift` must be an object with rows, features and outputs');
  const renamed = edited((p) => {
    p.drift.output.name = 'probabilities';
    p.drift.outputs[0].name = 'probabilities:class';
    p.drift.outputs[1].name = 'probabilities:score';
  });
  assert.deepEqual(profileProblems(renamed, LOADED), ['its drift reference bins output "probabilities", which the model lacks']);
  assert.deepEqual(profileProblems(renamed, { metadata: undefined, artifactSha256: undefined }), [], 'a remote model not yet seen: checked for the rest');
});

test('the profile artefact: loaded with the table (frozen), reused while unchanged, swapped when the file changes, refused when it does not fit', async () => {
  const path = join(dir, 'iris-1.json');
  await writeFile(path, JSON.stringify(profile));
  const cfg = buildConfig({ auth: { insecureNoAuth: true }, models: { iris: { versions: { '1': { backend: { kind: 'onnx', path: IRIS_MODEL }, profile: 'iris-1.json' }, '2': { backend: { kind: 'onnx', path: IRIS_MODEL } } } } } }, dir);
  assert.equal(cfg.models.iris?.versions['1']?.profile, path, 'resolved against the configuration\'s folder');
  const loaders = [profileLoader()];
  const first = await buildModelTable(cfg, { log, tolerateUnreachable: false, artifacts: loaders });
  const v1 = first.models.get('iris')?.versions.get('1');
  const loaded = v1?.artifacts.get(PROFILE_ARTIFACT) as Profile;
  assert.equal(loaded.calibration.ood, profile.calibration.ood);
  assert.ok(Object.isFrozen(loaded) && Object.isFrozen(loaded.ood), 'frozen: the guards share it');
  assert.equal(first.models.get('iris')?.versions.get('2')?.artifacts.has(PROFILE_ARTIFACT), false);

  const same = await buildModelTable(cfg, { log, previous: first, tolerateUnreachable: false, artifacts: loaders });
  assert.equal(same.models.get('iris')?.versions.get('1'), v1, 'unchanged: reused');

  await writeFile(path, JSON.stringify({ ...profile, calibration: { ...profile.calibration, ood: 99 } }));
  const changed = await buildModelTable(cfg, { log, previous: same, tolerateUnreachable: false, artifacts: loaders });
  assert.equal((changed.models.get('iris')?.versions.get('1')?.artifacts.get(PROFILE_ARTIFACT) as Profile).calibration.ood, 99, 'a new profile file is swapped in');
  assert.equal((v1?.artifacts.get(PROFILE_ARTIFACT) as Profile).calibration.ood, profile.calibration.ood, 'the old table keeps its own');

  await writeFile(path, JSON.stringify(edited((p) => (p.inputs[0].rowShape = [5]))));
  await assert.rejects(
    buildModelTable(cfg, { log, previous: changed, tolerateUnreachable: false, artifacts: loaders }),
    (e: Error) => e.message.includes(`model iris version 1 failed to load from ${IRIS_MODEL}: its profile could not be loaded: the profile ${path} does not fit this version: input "input": the profile has row shape [5], the model [4]`),
  );
  await writeFile(path, '{"format": ');
  await assert.rejects(buildModelTable(cfg, { log, previous: changed, tolerateUnreachable: false, artifacts: loaders }), /the profile .* is not JSON/);
  await rm(path);
  await assert.rejects(buildModelTable(cfg, { log, previous: changed, tolerateUnreachable: false, artifacts: loaders }), /the profile .*iris-1\.json cannot be read \(ENOENT\)/);
  await Promise.all([retireTable(first, changed), retireTable(changed, undefined)]);
});

test('profileProblems: an image model\'s profile with its image part fits; each broken part of it is named', async () => {
  const samples = JSON.parse(await readFile(join(ASSETS, 'datasets/mnist-samples-100.json'), 'utf8')) as { samples: { pixels: number[] }[] };
  const data = join(dir, 'mnist.jsonl');
  await writeFile(data, samples.samples.map((s) => JSON.stringify({ inputs: [{ name: 'Input3', datatype: 'FP32', shape: [1, 1, 28, 28], data: s.pixels }] })).join('\n'));
  const config = buildConfig({ auth: { insecureNoAuth: true }, models: { mnist: { versions: { '1': { backend: { kind: 'onnx', path: join(ASSETS, 'models/mnist_cntk_opset7.onnx') } } } } } }, '/');
  const mnist = await buildProfile({ config, model: 'mnist', data });
  assert.ok(mnist.ood.method === 'knn' && mnist.ood.image !== undefined);
  assert.equal(mnist.calibration.oodRows, 100);
  const unknown = { metadata: undefined, artifactSha256: undefined };
  assert.deepEqual(profileProblems(mnist, unknown), []);
  const broken = (change: (p: Record<string, any>) => void): string => {
    const copy = JSON.parse(JSON.stringify(mnist)) as Record<string, any>;
    change(copy);
    return profileProblems(copy, unknown).join('; ');
  };
  assert.deepEqual(broken((p) => delete p.ood.image), '', 'without its image part: a plain knn model');
  assert.match(broken((p) => (p.ood.image.rowShape = [1, 27, 28])), /`ood.image`: its row shape must be that of the model's one image input, of 784 values/);
  assert.match(broken((p) => delete p.ood.image.high), /needs the pixel range/);
  assert.match(broken((p) => (p.ood.image.pixelTail.scores = [3, 2, 1])), /pixelTail, edges.tail and stats.tail each need at least 12 ascending scores/);
  assert.match(broken((p) => (p.ood.image.stats.tail.tailMean = 0)), /stats.tail each need/);
  assert.match(broken((p) => p.ood.image.edges.reference.pop()), /`ood.image.edges.reference` must hold rows of 128 numbers/);
  assert.match(broken((p) => p.ood.image.stats.names.reverse()), /`ood.image.stats` must name the statistics ink, peak/);
  assert.match(broken((p) => p.ood.image.stats.precision.pop()), /precision \(15×15\)/);
  assert.match(broken((p) => (p.calibration.oodRows = 0)), /`calibration.oodRows`, when given, must be a positive integer/);
});
