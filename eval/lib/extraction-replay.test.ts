import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildConfig } from '../../gateway/config.js';
import { buildProfile } from '../../gateway/profile/build.js';
import { scorerOf } from '../../policies/guards/extraction-scorer.js';
import type { Profile } from '../../policies/guards/profile.js';
import { ASSETS } from '../../test/helpers/assets.js';
import { irisExamples } from './datasets.js';
import { DEFAULT_WINDOWS, readTrace, replayTrace } from './extraction-replay.js';
import { IRIS, requestOf, type Row } from './models.js';
import { Rng } from './random.js';
import { writeJsonLines, type Subjects, type TraceLine } from './sets.js';

let profile: Profile;
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bw-replay-'));
  const config = buildConfig({ auth: { insecureNoAuth: true }, models: { iris: { versions: { '1': { backend: { kind: 'onnx', path: join(ASSETS, 'models', IRIS.file) } } } } } }, '/');
  profile = await buildProfile({ config, model: 'iris', data: join(ASSETS, 'datasets/iris.csv'), map: { input: ['SepalLengthCm', 'SepalWidthCm', 'PetalLengthCm', 'PetalWidthCm'] } });
});
after(() => rm(dir, { recursive: true, force: true }));

/** A trace: an attacker sending 8 random rows (cm, up to a metre) per request, a probe re-sending one odd flower, a user sending real ones. */
function trace(): { lines: TraceLine[]; subjects: Subjects } {
  const rng = new Rng('replay-test');
  const real = irisExamples().map((e) => e.row);
  const lines: TraceLine[] = [];
  const add = (subject: string, t: number, rows: Row[]) => lines.push({ subject, t, request: requestOf(IRIS, rows) });
  for (let i = 0; i < 50; i++) add('mallory', 1_000 * i, Array.from({ length: 8 }, () => [0, 0, 0, 0].map(() => rng.uniform(0, 100))));
  for (let t = 0; t < 3 * 3_600_000; t += 30_000) add('probe', t + 7, [[9.5, 1.2, 0.3, 4.5]]);
  for (let t = 0; t < 3 * 3_600_000; t += rng.exponential(20_000)) add('alice', Math.round(t) + 3, [rng.pick(real)]);
  lines.sort((a, b) => a.t - b.t);
  return { lines, subjects: { alice: { role: 'benign', kind: 'interactive' }, mallory: { role: 'attacker', kind: 'uniform' }, probe: { role: 'benign', kind: 'probe' } } };
}

describe('extraction replay', () => {
  it('counts rows as queries, flags the attacker, never a probe re-sending one off-manifold row nor a user of real rows', () => {
    const { lines, subjects } = trace();
    const out = Object.fromEntries(replayTrace(profile, IRIS, lines, subjects).map((o) => [o.subject, o]));
    assert.equal(out.mallory.rows, 400);
    // Flagged off-manifold once 20 rows are in: after the third request of 8.
    assert.deepEqual([out.mallory.flaggedAfter, out.mallory.signals], [24, ['off-manifold']]);
    assert.ok(scorerOf(profile)([9.5, 1.2, 0.3, 4.5]).score > profile.calibration.ood, 'the probe\'s row is off the manifold');
    assert.equal(out.probe.flaggedAfter, undefined);
    assert.equal(out.probe.rows, 360);
    assert.equal(out.probe.peak['off-manifold'], 0, 'its one novel row is no evidence; its repeats none either');
    assert.equal(out.alice.flaggedAfter, undefined);
    assert.ok(out.alice.rows > 400, `${out.alice.rows}`);
  });

  it('the configuration\'s default windows; a subject missing from the subjects file is an error; traces read from a sets folder', async () => {
    assert.deepEqual(DEFAULT_WINDOWS, { windowMs: 3_600_000, windows: 24 });
    const { lines } = trace();
    assert.throws(() => replayTrace(profile, IRIS, lines, { alice: { role: 'benign', kind: 'interactive' } }), /subject (mallory|probe), which the subjects file does not list/);
    await mkdir(join(dir, 'extraction'));
    assert.equal(readTrace(dir, 'iris'), undefined);
    writeJsonLines(join(dir, 'extraction', 'iris.trace.jsonl.gz'), lines);
    await writeFile(join(dir, 'extraction', 'iris.subjects.json'), JSON.stringify(trace().subjects));
    const back = readTrace(dir, 'iris');
    assert.deepEqual([back?.lines.length, Object.keys(back?.subjects ?? {})], [lines.length, ['alice', 'mallory', 'probe']]);
  });
});
