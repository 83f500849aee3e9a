import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { profileInputs } from '../../policies/guards/features.js';
import { oodScore } from '../../policies/guards/ood.js';
import { PROFILE_FORMAT, type Profile } from '../../policies/guards/profile.js';
import { ASSETS } from '../../test/helpers/assets.js';
import { buildConfig, type GatewayConfig } from '../config.js';
import { buildProfile, candidateSqueezers, featureProfiles, splitRows } from './build.js';

const IRIS_CSV = join(ASSETS, 'datasets/iris.csv');
const IRIS_MAP = { input: ['SepalLengthCm', 'SepalWidthCm', 'PetalLengthCm', 'PetalWidthCm'] };
const config = buildConfig({
  auth: { insecureNoAuth: true },
  models: { iris: { versions: { '1': { backend: { kind: 'onnx', path: join(ASSETS, 'models/iris_mlp_dynamic.onnx') } } } } },
}, '/');
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test('splitRows: 70 % reference, 30 % held out, disjoint, in a seeded random order', () => {
  const a = splitRows(1000, 1);
  assert.equal(a.reference.length, 700);
  assert.equal(a.heldOut.length, 300);
  assert.deepEqual([...a.reference, ...a.heldOut].sort((x, y) => x - y), Array.from({ length: 1000 }, (_, i) => i));
  assert.deepEqual(splitRows(1000, 1), a, 'the same seed, the same split');
  const b = splitRows(1000, 2);
  assert.notDeepEqual(b.reference, a.reference);
  assert.notDeepEqual(a.reference.slice(0, 20), [...a.reference].sort((x, y) => x - y).slice(0, 20), 'not in file order');
  // Sorted data (iris: 50 of each species in turn) lands in both parts in proportion.
  const firstThird = a.heldOut.filter((i) => i < 333).length;
  assert.ok(firstThird > 70 && firstThird < 130, `${firstThird} of 300 held-out rows from the first third`);
  assert.deepEqual(splitRows(10, 1, 0.7).reference.length, 7);
});

test('featureProfiles: ranges, moments, quantiles, missing rates, integers and categories', () => {
  const inputs = profileInputs([
    { name: 'n', datatype: 'FP32', shape: [-1, 1] },
    { name: 'k', datatype: 'INT64', shape: [-1, 1] },
    { name: 'c', datatype: 'BYTES', shape: [-1, 1] },
  ]);
  const [n, k, c] = featureProfiles(inputs, [[1, 1, 'b'], [2, 2, 'a'], [null, 3, 'b'], [3, 4, null]], [0.5]);
  // Three values: k = 3, so each side is widened by the whole spacing of the three (extreme-bounds.ts).
  assert.deepEqual(n, { kind: 'numeric', name: 'n', input: 'n', integer: true, min: 1, max: 3, mean: 2, std: 1, quantiles: [2], missingRate: 0.25, low: -1, high: 5 });
  assert.equal(k?.kind === 'numeric' && k.integer, true);
  assert.deepEqual(c, { kind: 'categorical', name: 'c', input: 'c', categories: { a: 1 / 3, b: 2 / 3 }, missingRate: 0.25 });
  assert.deepEqual(Object.keys(c?.kind === 'categorical' ? c.categories : {}), ['a', 'b'], 'categories sorted');
  const [f] = featureProfiles(inputs.slice(0, 1), [[0.5], [1]], [0.5]);
  assert.equal(f?.kind === 'numeric' && f.integer, false);
});

test('featureProfiles: an image\'s pixels share the contract bounds of all their values taken together', () => {
  const image = profileInputs([{ name: 'im', datatype: 'FP32', shape: [1, 1, 8, 8] }]);
  // 50 images, each inked (1) on pixel i mod 64 and 0.4 on the next: any one pixel's few values would
  // give it wide bounds, all 3200 together (k = 1) give the range itself.
  const rows = Array.from({ length: 50 }, (_, i) => {
    const row = new Array<number>(64).fill(0);
    row[i % 64] = 1;
    row[(i + 1) % 64] = 0.4;
    return row;
  });
  const fs = featureProfiles(image, rows, [0.5]);
  for (const f of fs) assert.deepEqual(f.kind === 'numeric' && [f.low, f.high], [0, 1], f.name);
  assert.deepEqual(fs[63]?.kind === 'numeric' && [fs[63].min, fs[63].max], [0, 0], 'a pixel never inked keeps its own min and max');
});

test('candidateSqueezers: images get 1 and 2 bits and a median; tabular inputs enough bits for their narrowest feature', () => {
  const image = profileInputs([{ name: 'Input3', datatype: 'FP32', shape: [1, 1, 28, 28] }]);
  const pixels = featureProfiles(image, [new Array(784).fill(0), new Array(784).fill(1)]);
  assert.deepEqual(candidateSqueezers(image, pixels), [
    { kind: 'bit-depth', input: 'Input3', bits: 1, min: 0, max: 1 },
    { kind: 'bit-depth', input: 'Input3', bits: 2, min: 0, max: 1 },
    { kind: 'median', input: 'Input3', size: 2 },
  ]);
  const tabular = profileInputs([
    { name: 'pclass', datatype: 'INT64', shape: [-1, 1] },
    { name: 'age', datatype: 'FP32', shape: [-1, 1] },
    { name: 'input', datatype: 'FP32', shape: [-1, 2] },
    { name: 'flat', datatype: 'FP32', shape: [-1, 1] },
  ]);
  const stats = featureProfiles(tabular, [[1, 0, 0, 0.1, 5], [3, 80, 8, 2.5, 5]]);
  assert.deepEqual(candidateSqueezers(tabular, stats), [
    { kind: 'bit-depth', input: 'age', bits: 4, min: 0, max: 80 },
    // 16 levels for the narrowest feature (2.4 wide) over 0..8: 2^6 levels
    { kind: 'bit-depth', input: 'input', bits: 6, min: 0, max: 8 },
  ], 'integer inputs and constant ones are not squeezed');
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bw-profile-'));
  dirs.push(dir);
  return dir;
}

test('buildProfile: iris from iris.csv with the real model: split, thresholds, squeeze on logits, drift bins; deterministic but for createdAt', async () => {
  const p = await buildProfile({ config, model: 'iris', data: IRIS_CSV, map: IRIS_MAP });
  assert.equal(p.format, PROFILE_FORMAT);
  assert.equal(p.version, '1', 'the stable version when none is named');
  assert.equal(p.modelSha256, '97504a48f12590e5f18b9f8b66495209a99c5851de5f79d1db0b04c91a8a6abb');
  assert.equal(p.data.sha256, '600ac44f23c2e6e0ae37daac8ceb2baba4df963efa580eb31b3b576b28e34c55');
  assert.deepEqual([p.data.rows, p.data.referenceRows, p.data.heldOutRows], [150, 105, 45]);
  assert.deepEqual(p.features.map((f) => f.name), ['input[0]', 'input[1]', 'input[2]', 'input[3]']);
  const sepal = p.features[0];
  assert.deepEqual(sepal?.kind === 'numeric' && [sepal.min, sepal.max], [4.3, 7.9], 'ranges from every row');
  for (const f of p.features) assert.ok(f.kind === 'numeric' && f.low !== undefined && f.high !== undefined && f.low <= f.min && f.high >= f.max, `${f.name}: contract bounds around [min, max]`);
  assert.equal(p.ood.method, 'mixture');
  assert.equal(p.calibration.targetFpr, 0.01);
  assert.equal(p.calibration.oodRows, 150, 'the mixture\'s threshold from cross-fitted scores of every row');
  assert.match(p.calibration.method, /except out of distribution \(a Gaussian mixture\): the mixture is fitted on every row/);
  assert.ok(oodScore(p.ood, [5.1, 3.5, 1.4, 0.2]) < p.calibration.ood, 'a real flower is below the threshold');
  assert.ok(oodScore(p.ood, [510, 350, 140, 20]) > p.calibration.ood, 'centimetres sent as tenths of millimetres are far above it');
  assert.equal(p.squeeze?.output, 'output');
  assert.equal(p.squeeze?.logits, true);
  assert.equal(p.calibration.squeeze?.length, p.squeeze?.squeezers.length, 'one threshold per kept squeezer');
  for (const t of p.calibration.squeeze ?? []) assert.ok(t > 0 && t < 2, `squeeze threshold ${t}`);
  assert.equal(p.calibration.squeezeRows, 150, 'every row scored for squeezing');
  assert.match(p.calibration.method, /squeeze: every one of the 150 rows scored/);
  assert.equal(p.extraction.stepQuantiles.length, p.quantileProbs.length);
  assert.ok(p.extraction.stepQuantiles[0] > 0, 'steps are measured between distinct rows: none is 0');
  assert.ok(p.extraction.tinyStep >= p.extraction.stepQuantiles[0] && p.extraction.tinyStep <= p.extraction.stepQuantiles[2], 'the tiny step: about the 1 % quantile');
  assert.ok(p.extraction.tinyRate >= 0.01 && p.extraction.tinyRate < 0.2, `tiny rate ${p.extraction.tinyRate}`);
  assert.ok(p.extraction.latticeRate >= 0 && p.extraction.latticeRate < 0.1, `lattice rate ${p.extraction.latticeRate}`);
  const drift = p.drift;
  assert.ok(drift !== undefined, 'the drift reference');
  assert.equal(drift.rows, 150);
  assert.deepEqual(drift.features.map((b) => [b.name, b.kind]), p.features.map((f) => [f.name, 'numeric']));
  for (const b of [...drift.features, ...drift.outputs]) {
    assert.equal(b.counts.reduce((x, y) => x + y, 0), 150, `${b.name}: every row counted`);
    if (b.kind === 'numeric') assert.ok(b.edges.length >= 5 && b.edges.length <= 9 && b.edges.every((e, i) => i === 0 || e > b.edges[i - 1]), `${b.name}: ${b.edges.length} ascending edges`);
  }
  assert.deepEqual(drift.output, { name: 'output', logits: true, classes: 3 }, 'the logits output (as the squeeze section says)');
  const classes = drift.outputs[0];
  assert.deepEqual(classes?.kind === 'categorical' && classes.categories, ['0', '1', '2']);
  for (const k of classes?.counts.slice(0, 3) ?? []) assert.ok(k >= 40 && k <= 60, `about 50 flowers of each species predicted: ${k}`);
  assert.equal(drift.outputs[1]?.name, 'output:score');

  const again = await buildProfile({ config, model: 'iris', version: '1', data: IRIS_CSV, map: IRIS_MAP });
  assert.deepEqual({ ...again, createdAt: '' }, { ...p, createdAt: '' });
  const other = await buildProfile({ config, model: 'iris', data: IRIS_CSV, map: IRIS_MAP, seed: 2, targetFpr: 0.05 });
  assert.equal(other.calibration.targetFpr, 0.05);
  assert.notEqual(other.calibration.ood, p.calibration.ood);
  // models.<m>.guards.targetFpr, read whether or not this build's schema names it.
  const guarded = { ...config, models: { iris: { ...config.models.iris, guards: { targetFpr: 0.02 } } } } as unknown as GatewayConfig;
  assert.equal((await buildProfile({ config: guarded, model: 'iris', data: IRIS_CSV, map: IRIS_MAP })).calibration.targetFpr, 0.02);
  const json = JSON.parse(JSON.stringify(p)) as Profile;
  assert.equal(oodScore(json.ood, [6, 3, 4, 1.3]), oodScore(p.ood, [6, 3, 4, 1.3]), 'a profile read back from JSON scores the same');
});

test('buildProfile: what it refuses, with the reason', async () => {
  await assert.rejects(buildProfile({ config, model: 'titanic', data: IRIS_CSV }), /model "titanic" is not in the configuration \(it has iris\)/);
  await assert.rejects(buildProfile({ config, model: 'iris', version: '9', data: IRIS_CSV, map: IRIS_MAP }), /model iris has no version "9" \(it has 1\)/);
  const dir = await tempDir();
  const small = join(dir, 'small.csv');
  const lines = (await readFile(IRIS_CSV, 'utf8')).split('\n').slice(0, 51);
  await writeFile(small, lines.join('\n'));
  await assert.rejects(buildProfile({ config, model: 'iris', data: small, map: IRIS_MAP }), /the data has 50 rows; at least 67 are needed/);
  await assert.rejects(buildProfile({ config, model: 'iris', data: join(dir, 'none.csv'), map: IRIS_MAP }), /ENOENT/);
});
