/**
 * The input guards end to end (issue 10): profiles built from the team's reference data with the
 * real models (`buildProfile`, what `breakwater profile` runs), served by a gateway with the guards
 * on, each mode through HTTP: contract `reject` (422 INPUT_REJECTED naming the guard, nothing of its
 * score), ood `flag` (served, x-guard), contract `route` (served by guards.routeTo, reason
 * guard:contract), squeeze `reject` on MNIST (the answer discarded), a failing guard served unless
 * failClosed, and every verdict counted in the model's figures. The inputs that should fire are
 * checked to be out of the profile with the guards' own functions first, so the test shows the
 * modes, not the detection rates (the evaluation, `npm run eval:guards`, measures those).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { metrics } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { request } from 'undici';
import { METRIC } from '../gateway/telemetry/names.js';
import { buildConfig } from '../gateway/config.js';
import type { RunningGateway } from '../gateway/main.js';
import { buildProfile } from '../gateway/profile/build.js';
import { checkContract } from '../policies/guards/contract.js';
import { featureRows } from '../policies/guards/features.js';
import { oodScore } from '../policies/guards/ood.js';
import type { Profile } from '../policies/guards/profile.js';
import { OnnxAdapter } from '../adapters/onnx.js';
import { squeezeFired, squeezeRequests, squeezeScores } from '../policies/guards/squeeze.js';
import type { InferRequest } from '../adapters/adapter.js';
import { ASSETS } from './helpers/assets.js';
import { startInProcess } from './helpers/gateway.js';

const MODELS = {
  titanic: join(ASSETS, 'models/titanic_logreg_nozipmap.onnx'),
  iris: join(ASSETS, 'models/iris_mlp_dynamic.onnx'),
  mnist: join(ASSETS, 'models/mnist_cntk_opset7.onnx'),
};
const onnx = (path: string, profile?: string) => ({ backend: { kind: 'onnx', path }, ...(profile === undefined ? {} : { profile }) });

let dir: string;
const profiles: Record<string, Profile> = {};
let gw: RunningGateway;
let mnistPixels: number[][];
const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
const provider = new MeterProvider({ readers: [reader] });

async function profileOf(model: keyof typeof MODELS, data: string, map?: Record<string, string[]>): Promise<string> {
  const config = buildConfig({ auth: { insecureNoAuth: true }, models: { [model]: { versions: { '1': onnx(MODELS[model]) } } } }, dir, 'test');
  const p = await buildProfile({ config, model, version: '1', data, map });
  profiles[model] = p;
  const file = join(dir, `${model}.json`);
  await writeFile(file, JSON.stringify(p));
  return file;
}

const iris = (rows: number[][]): object => ({ inputs: [{ name: 'input', datatype: 'FP32', shape: [rows.length, 4], data: rows.flat() }] });
const titanic = (r: { pclass: number; sex: string; age: number; fare: number; embarked: string }): object => ({
  inputs: [
    { name: 'pclass', datatype: 'INT64', shape: [1, 1], data: [r.pclass] },
    { name: 'sex', datatype: 'BYTES', shape: [1, 1], data: [r.sex] },
    { name: 'age', datatype: 'FP32', shape: [1, 1], data: [r.age] },
    { name: 'fare', datatype: 'FP32', shape: [1, 1], data: [r.fare] },
    { name: 'embarked', datatype: 'BYTES', shape: [1, 1], data: [r.embarked] },
  ],
});
const mnistBody = (pixels: readonly number[]): InferRequest => ({ inputs: [{ name: 'Input3', datatype: 'FP32', shape: [1, 1, 28, 28], data: Float32Array.from(pixels) }] });
const mnistJson = (pixels: readonly number[]): object => ({ inputs: [{ name: 'Input3', datatype: 'FP32', shape: [1, 1, 28, 28], data: [...pixels] }] });

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: Record<string, unknown> }

async function infer(model: string, body: object): Promise<Answer> {
  const res = await request(`${gw.url}/v2/models/${model}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.statusCode, headers: res.headers, body: (await res.body.json()) as Record<string, unknown> };
}

/** Whether the squeezing guard fires on an MNIST image, computed with its own functions on the real model. */
async function squeezeFires(pixels: readonly number[]): Promise<boolean> {
  const sq = profiles.mnist?.squeeze;
  const thresholds = profiles.mnist?.calibration.squeeze;
  assert.ok(sq !== undefined && thresholds !== undefined);
  const adapter = new OnnxAdapter({ kind: 'onnx', path: MODELS.mnist, intraOpThreads: 1, interOpThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
  await adapter.load();
  try {
    const req = mnistBody(pixels);
    const opts = { deadline: Date.now() + 10_000, requestId: 'guards-test' };
    const answer = await adapter.infer(req, opts);
    const squeezed = await Promise.all(squeezeRequests(sq, req, false).map((r) => adapter.infer(r, opts)));
    return squeezeFired(squeezeScores(sq, answer, squeezed, 1), thresholds);
  } finally {
    await adapter.close();
  }
}

before(async () => {
  metrics.setGlobalMeterProvider(provider);
  dir = await mkdtemp(join(tmpdir(), 'bw-guards-'));
  const samples = JSON.parse(await readFile(join(ASSETS, 'datasets/mnist-samples-100.json'), 'utf8')) as { samples: { pixels: number[] }[] };
  mnistPixels = samples.samples.map((s) => s.pixels);
  await writeFile(join(dir, 'mnist.jsonl'), `${mnistPixels.map((p) => JSON.stringify(mnistJson(p))).join('\n')}\n`);
  const [titanicProfile, irisProfile, mnistProfile] = await Promise.all([
    profileOf('titanic', join(ASSETS, 'datasets/titanic3.csv')),
    profileOf('iris', join(ASSETS, 'datasets/iris.csv'), { input: ['SepalLengthCm', 'SepalWidthCm', 'PetalLengthCm', 'PetalWidthCm'] }),
    profileOf('mnist', join(dir, 'mnist.jsonl')),
  ]);
  // A profile without its squeeze calibration: the squeezing guard cannot judge with it (it fails).
  const broken = { ...profiles.mnist, squeeze: undefined, calibration: { ...profiles.mnist!.calibration, squeeze: undefined } };
  const mnistBroken = join(dir, 'mnist-no-squeeze.json');
  await writeFile(mnistBroken, JSON.stringify(broken));
  gw = await startInProcess({
    models: {
      titanic: { versions: { '1': onnx(MODELS.titanic, titanicProfile) }, nonFinite: 'allow', guards: { contract: { mode: 'reject' } } },
      iris: { versions: { '1': onnx(MODELS.iris, irisProfile) }, guards: { contract: { mode: 'reject' }, ood: { mode: 'flag' } } },
      // Both versions run the same file: the route shows in x-model-version and x-route-reason.
      'iris-routed': { versions: { '1': onnx(MODELS.iris, irisProfile), '2': onnx(MODELS.iris, irisProfile) }, stable: '1', guards: { routeTo: '2', contract: { mode: 'route' } } },
      mnist: { versions: { '1': onnx(MODELS.mnist, mnistProfile) }, maxBodyBytes: 1 << 20, guards: { squeeze: { mode: 'reject' } } },
      'mnist-open': { versions: { '1': onnx(MODELS.mnist, mnistBroken) }, maxBodyBytes: 1 << 20, guards: { squeeze: { mode: 'reject' } } },
      'mnist-closed': { versions: { '1': onnx(MODELS.mnist, mnistBroken) }, maxBodyBytes: 1 << 20, guards: { failClosed: true, squeeze: { mode: 'reject' } } },
    },
  }, dir);
});

after(async () => {
  await gw?.close();
  await provider.shutdown();
  await rm(dir, { recursive: true, force: true });
});

describe('input guards through a gateway with real models', { timeout: 120_000 }, () => {
  test('contract, reject: an unknown category and a fare far beyond the reference are refused 422 naming the guard; a real passenger is served', async () => {
    const p = profiles.titanic!;
    const real = { pclass: 1, sex: 'female', age: 29, fare: 211.3375, embarked: 'S' };
    for (const bad of [{ ...real, sex: 'unknown' }, { ...real, fare: 52_000 }]) {
      assert.ok(checkContract(p, featureRows(p, { inputs: (titanic(bad) as { inputs: never[] }).inputs })[0]!, 0.05) !== undefined);
      const a = await infer('titanic', titanic(bad));
      assert.equal(a.status, 422);
      assert.equal(a.body.code, 'INPUT_REJECTED');
      assert.match(String(a.body.error), /contract guard/);
      assert.doesNotMatch(JSON.stringify(a.body), /\d\.\d|threshold|score/, 'no score or threshold is shown');
    }
    const ok = await infer('titanic', titanic(real));
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['x-guard'], undefined);
  });

  test('ood, flag: a flower whose measurements are each in range but together unlike any iris is served with x-guard: ood', async () => {
    const p = profiles.iris!;
    const odd = [5.0, 3.4, 6.5, 0.2]; // a setosa's sepals and width with a virginica's petal length
    const row = featureRows(p, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: Float32Array.from(odd) }] })[0]!;
    assert.equal(checkContract(p, row, 0.05), undefined, 'each value is within the reference ranges');
    assert.ok(oodScore(p.ood, row) > p.calibration.ood, 'and the row is out of distribution');
    const a = await infer('iris', iris([[5.1, 3.5, 1.4, 0.2], odd]));
    assert.equal(a.status, 200);
    assert.equal(a.headers['x-guard'], 'ood');
    const clean = await infer('iris', iris([[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]));
    assert.equal(clean.status, 200);
    assert.equal(clean.headers['x-guard'], undefined);
  });

  test('contract, route: an out-of-range row is served by guards.routeTo, with reason guard:contract', async () => {
    const a = await infer('iris-routed', iris([[51, 3.5, 1.4, 0.2]]));
    assert.equal(a.status, 200);
    assert.equal(a.headers['x-model-version'], '2');
    assert.equal(a.headers['x-route-reason'], 'guard:contract');
    assert.equal(a.headers['x-guard'], 'contract');
    assert.equal(a.body.model_version, '2');
    const clean = await infer('iris-routed', iris([[5.1, 3.5, 1.4, 0.2]]));
    assert.equal(clean.headers['x-model-version'], '1');
    assert.equal(clean.headers['x-route-reason'], 'stable');
  });

  test('squeeze, reject: a digit under a perturbation the squeezing undoes is refused after the answer; the clean digit is served', async () => {
    // Deterministic ±0.3 perturbations of the first digits (a seeded sign pattern): the first whose
    // squeezed answers disagree beyond a squeezer's threshold is the one sent.
    let chosen: number[] | undefined;
    let clean: number[] | undefined;
    for (let d = 0; d < mnistPixels.length && (chosen === undefined || clean === undefined); d++) {
      const pixels = mnistPixels[d]!;
      if (clean === undefined && !(await squeezeFires(pixels))) clean = pixels;
      if (chosen === undefined) {
        let s = d + 1;
        const noisy = pixels.map((x) => {
          s = (s * 1103515245 + 12345) & 0x7fffffff;
          return Math.min(1, Math.max(0, x + (s & 1 ? 0.3 : -0.3)));
        });
        if (await squeezeFires(noisy)) chosen = noisy;
      }
    }
    assert.ok(chosen !== undefined && clean !== undefined, 'a perturbed digit above the threshold and a clean one below it');
    const a = await infer('mnist', mnistJson(chosen));
    assert.equal(a.status, 422);
    assert.equal(a.body.code, 'INPUT_REJECTED');
    assert.match(String(a.body.error), /squeeze guard/);
    const ok = await infer('mnist', mnistJson(clean));
    assert.equal(ok.status, 200);
  });

  test('a guard that fails is counted and the request served; with failClosed, a failing guard in reject mode refuses 503 GUARD_UNAVAILABLE', async () => {
    const open = await infer('mnist-open', mnistJson(mnistPixels[0]!));
    assert.equal(open.status, 200);
    const closed = await infer('mnist-closed', mnistJson(mnistPixels[0]!));
    assert.equal(closed.status, 503);
    assert.equal(closed.body.code, 'GUARD_UNAVAILABLE');
  });

  test('every verdict is in the model\'s figures, by version, guard and outcome', async () => {
    const figures = async (m: string) => {
      const res = await request(`${gw.url}/admin/models/${m}`);
      const json = (await res.body.json()) as { figures: { guards: Record<string, Record<string, Record<string, number>>> } };
      return json.figures.guards;
    };
    const t = await figures('titanic');
    assert.equal(t['1']?.contract?.reject, 2);
    assert.equal(t['1']?.contract?.pass, 1);
    const i = await figures('iris');
    assert.equal(i['1']?.ood?.flag, 1);
    assert.equal(i['1']?.ood?.pass, 1);
    assert.equal(i['1']?.contract?.pass, 2);
    assert.equal((await figures('iris-routed'))['1']?.contract?.route, 1);
    assert.equal((await figures('mnist-open'))['1']?.squeeze?.error, 1);
    const m = await figures('mnist');
    assert.equal(m['1']?.squeeze?.reject, 1);
    assert.equal(m['1']?.squeeze?.pass, 1);
  });

  test('verdicts are metrics by model, version, guard and outcome; each sampled squeeze is timed', async () => {
    await reader.forceFlush();
    const all = exporter.getMetrics().flatMap((rm) => rm.scopeMetrics).flatMap((sm) => sm.metrics);
    const points = (name: string) => all.filter((m) => m.descriptor.name === name).at(-1)?.dataPoints ?? [];
    const count = (attrs: Record<string, string>) => points(METRIC.guardOutcomes).find((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v))?.value;
    assert.equal(count({ model: 'titanic', model_version: '1', guard: 'contract', outcome: 'reject' }), 2);
    assert.equal(count({ model: 'iris', model_version: '1', guard: 'ood', outcome: 'flag' }), 1);
    assert.equal(count({ model: 'iris-routed', model_version: '1', guard: 'contract', outcome: 'route' }), 1);
    assert.equal(count({ model: 'mnist-closed', model_version: '1', guard: 'squeeze', outcome: 'error' }), 1);
    const timed = points(METRIC.guardSqueezeDuration).find((p) => p.attributes.model === 'mnist');
    assert.ok(timed !== undefined && (timed.value as { count: number }).count >= 2, 'the squeeze calls of model mnist were timed');
  });
});
