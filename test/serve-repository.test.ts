/**
 * End to end through the real command line: gateway A serves a model repository built from every
 * verified sample in ../shared/assets (the four sample models and the 18 onnx-node datatype cases);
 * gateway B serves the same models as `oip-http` backends pointing at A, one of them under another
 * name. Both are checked against the recorded outputs, over JSON and over the binary tensor extension.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { ASSETS } from './helpers/assets.js';
import { makeRepository, spawnGateway, writeTempFile, type ChildGateway } from './helpers/gateway.js';
import {
  assertOutputs, decodeAnswer, encodeBinary, header, http, inferBinary, inferJson, inferPath, json, waitReady,
  type HttpAnswer, type OipRequest, type OipTensor, type Tolerance,
} from './helpers/oip-client.js';

interface TensorMeta { name: string; datatype?: string; shape?: number[]; non_tensor?: boolean }
interface Sample {
  model_file: string;
  oip_metadata: { inputs: TensorMeta[]; outputs: TensorMeta[] };
  request: OipRequest;
  expected_outputs: OipTensor[];
  tolerance?: number;
}
interface DtypeCase {
  model_dir: string;
  model_file: string;
  request: OipRequest;
  expected_outputs: OipTensor[];
  fp16_raw_hex_le?: { inputs: string[]; outputs: string[] };
}

const readJson = (rel: string): unknown => JSON.parse(readFileSync(join(ASSETS, rel), 'utf8'));
const SAMPLES = Object.entries(readJson('samples/model-samples.json') as Record<string, Sample>);
const CASES = (readJson('samples/onnx-node-dtype-cases.json') as { cases: DtypeCase[] }).cases
  .map((c) => ({ ...c, name: basename(c.model_dir) }));
const DTYPE_TOLERANCE: Tolerance = { rel: 1e-6 };
const T = { timeout: 20_000 };

/** How gateway B names each of A's models (default: the same name, version "1"). */
const B_NAMES: Record<string, { name: string; version: string; backendVersion?: string }> = {
  titanic_logreg_nozipmap: { name: 'titanic_front', version: '7' },
  test_max_float16: { name: 'half_max', version: '3', backendVersion: '1' },
  iris_mlp_dynamic: { name: 'iris_mlp_dynamic', version: '1', backendVersion: '1' },
};

/** One gateway under test: its URL and how it names and versions A's models. */
interface Target {
  readonly label: string;
  url(): string;
  name(model: string): string;
  version(model: string): string;
}

let gatewayA: ChildGateway | undefined;
let gatewayB: ChildGateway | undefined;
const tempDirs: string[] = [];

const A: Target = {
  label: 'gateway A (model repository)',
  url: () => gatewayA!.url,
  name: (m) => m,
  version: () => '1',
};
const B: Target = {
  label: 'gateway B (oip-http backends on A)',
  url: () => gatewayB!.url,
  name: (m) => B_NAMES[m]?.name ?? m,
  version: (m) => B_NAMES[m]?.version ?? '1',
};

before(async () => {
  const models: Record<string, Record<string, string>> = {};
  for (const [key, s] of SAMPLES) models[key] = { 1: join(ASSETS, s.model_file) };
  for (const c of CASES) models[c.name] = { 1: join(ASSETS, c.model_file) };
  const repo = await makeRepository(models);
  tempDirs.push(repo);
  gatewayA = await spawnGateway(['serve', '--model-repository', repo, '--port', '0', '--insecure-no-auth'], { timeoutMs: 30_000 });
  // The insecure switch is named as such and announced at start-up.
  assert.match(gatewayA.output(), /INSECURE: authentication is off/);
  await waitReady(gatewayA.url);

  const config = {
    auth: { insecureNoAuth: true },
    logging: { accessLog: false },
    models: Object.fromEntries(Object.keys(models).map((m) => {
      const backend = { kind: 'oip-http', url: gatewayA!.url, model: m, ...(B_NAMES[m]?.backendVersion ? { version: B_NAMES[m].backendVersion } : {}) };
      return [B.name(m), { versions: { [B.version(m)]: { backend } } }];
    })),
  };
  const file = await writeTempFile('gateway-b.yaml', stringify(config));
  tempDirs.push(dirname(file));
  gatewayB = await spawnGateway(['serve', '--config', file, '--port', '0'], { timeoutMs: 30_000 });
  await waitReady(gatewayB.url);
}, { timeout: 70_000 });

/** SIGTERM, then SIGKILL if the gateway has not exited within 15 s (it drains for at most 10 s). */
async function stop(g: ChildGateway | undefined): Promise<void> {
  if (g === undefined) return;
  const kill = setTimeout(() => g.process.kill('SIGKILL'), 15_000);
  try {
    await g.stop();
  } finally {
    clearTimeout(kill);
  }
}

after(async () => {
  await stop(gatewayB);
  await stop(gatewayA);
  for (const d of tempDirs) await rm(d, { recursive: true, force: true });
});

/** Status 200 with the infer answer's identity: model name, version (body and header), id. */
function assertIdentity(t: Target, model: string, a: HttpAnswer, body: Record<string, unknown>, id: string | undefined): void {
  assert.equal(a.status, 200, `status (body: ${a.body.toString('utf8', 0, 500)})`);
  assert.equal(body.model_name, t.name(model));
  assert.equal(body.model_version, t.version(model));
  assert.equal(header(a, 'x-model-version'), t.version(model));
  if (id !== undefined) assert.equal(body.id, id);
}

/** Asks for every output as binary. */
const allBinary = (req: OipRequest): OipRequest => ({ ...req, parameters: { ...req.parameters, binary_data_output: true } });

/** Checks a binary-extension answer: headers, every output raw, decoded outputs as expected. */
function assertBinaryAnswer(t: Target, model: string, a: HttpAnswer, expected: readonly OipTensor[], tol: Tolerance, id?: string) {
  assert.equal(a.status, 200, `status (body: ${a.body.toString('utf8', 0, 500)})`);
  assert.equal(header(a, 'content-type'), 'application/octet-stream');
  const d = decodeAnswer(a);
  assert.ok(d.headerLength !== undefined && d.headerLength < a.body.length, 'inference-header-content-length is set');
  assertIdentity(t, model, a, d.json, id);
  assert.deepEqual([...d.raw.keys()], expected.map((o) => o.name), 'every output came as raw bytes');
  assertOutputs(d.json.outputs, expected, tol, model);
  return d;
}

function serveChecks(t: Target): void {
  describe(`${t.label}: the sample models`, () => {
    for (const [key, s] of SAMPLES) {
      const id = s.request.id ?? `${key}-request`;
      const tol: Tolerance = { abs: s.tolerance ?? 0 };

      it(`${key}: metadata lists the sample's input and tensor output datatypes and shapes`, T, async () => {
        const a = await http(`${t.url()}/v2/models/${t.name(key)}`);
        assert.equal(a.status, 200, a.body.toString());
        assert.equal(header(a, 'x-model-version'), t.version(key));
        const md = json(a);
        assert.equal(md.name, t.name(key));
        assert.deepEqual(md.versions, [t.version(key)]);
        const meta = (l: TensorMeta[]) => l.filter((x) => !x.non_tensor).map(({ name, datatype, shape }) => ({ name, datatype, shape }));
        assert.deepEqual(md.inputs, meta(s.oip_metadata.inputs));
        assert.deepEqual(md.outputs, meta(s.oip_metadata.outputs));
        const nonTensor = s.oip_metadata.outputs.filter((x) => x.non_tensor).map((x) => x.name);
        if (nonTensor.length > 0) assert.deepEqual(md.parameters, { non_tensor_outputs: nonTensor });
        else assert.equal((md.parameters as Record<string, unknown> | undefined)?.non_tensor_outputs, undefined);
      });

      it(`${key}: JSON infer returns the recorded outputs and echoes id, model name and version`, T, async () => {
        const a = await inferJson(inferPath(t.url(), t.name(key)), { ...s.request, id });
        assert.match(header(a, 'content-type') ?? '', /^application\/json/);
        const body = json(a);
        assertIdentity(t, key, a, body, id);
        assertOutputs(body.outputs as OipTensor[], s.expected_outputs, tol, key);
      });

      it(`${key}: binary inputs and binary outputs give the recorded outputs`, T, async () => {
        const a = await inferBinary(inferPath(t.url(), t.name(key)), allBinary({ ...s.request, id }));
        assertBinaryAnswer(t, key, a, s.expected_outputs, tol, id);
      });

      it(`${key}: JSON infer without any Content-Type header is accepted`, T, async () => {
        const a = await inferJson(inferPath(t.url(), t.name(key)), { ...s.request, id }, null);
        const body = json(a);
        assertIdentity(t, key, a, body, id);
        assertOutputs(body.outputs as OipTensor[], s.expected_outputs, tol, key);
      });
    }

    it('titanic: a mix of binary and JSON inputs and of binary and JSON outputs', T, async () => {
      const [key, s] = SAMPLES.find(([k]) => k === 'titanic_logreg_nozipmap')!;
      const req: OipRequest = {
        ...s.request,
        id: 'mixed-1',
        outputs: [{ name: 'label', parameters: { binary_data: true } }, { name: 'probabilities', parameters: { binary_data: false } }],
      };
      const a = await inferBinary(inferPath(t.url(), t.name(key)), req, { binaryInputs: new Set(['pclass', 'sex', 'age']) });
      assert.equal(a.status, 200, a.body.toString());
      const d = decodeAnswer(a);
      assertIdentity(t, key, a, d.json, 'mixed-1');
      assert.deepEqual([...d.raw.keys()], ['label'], 'only label came as raw bytes');
      const probabilities = d.json.outputs.find((o) => o.name === 'probabilities');
      assert.equal(probabilities?.parameters?.binary_data_size, undefined, 'probabilities is JSON');
      assertOutputs(d.json.outputs, s.expected_outputs, { abs: s.tolerance }, key);
    });
  });

  describe(`${t.label}: every datatype (onnx-node cases)`, () => {
    for (const c of CASES) {
      const types = [...new Set([...c.request.inputs, ...c.expected_outputs].map((x) => x.datatype))].join('/');

      it(`${c.name}: JSON infer of ${types} returns the recorded outputs`, T, async () => {
        const a = await inferJson(inferPath(t.url(), t.name(c.name)), c.request);
        const body = json(a);
        assertIdentity(t, c.name, a, body, undefined);
        assertOutputs(body.outputs as OipTensor[], c.expected_outputs, DTYPE_TOLERANCE, c.name);
      });

      for (const contentType of ['application/octet-stream', null]) {
        const how = contentType === null ? 'without a Content-Type' : `as ${contentType}`;
        it(`${c.name}: binary ${types} inputs ${how} give binary outputs equal to the recorded ones`, T, async () => {
          const req = allBinary({ ...c.request, id: `${c.name}-bin` });
          const a = await inferBinary(inferPath(t.url(), t.name(c.name)), req, { contentType });
          const d = assertBinaryAnswer(t, c.name, a, c.expected_outputs, DTYPE_TOLERANCE, `${c.name}-bin`);
          if (c.fp16_raw_hex_le !== undefined) {
            assert.deepEqual(c.expected_outputs.map((o) => d.raw.get(o.name)?.toString('hex')), c.fp16_raw_hex_le.outputs);
          }
        });
      }

      if (c.request.inputs.length === 2) {
        it(`${c.name}: first input binary and second JSON, output JSON`, T, async () => {
          const a = await inferBinary(inferPath(t.url(), t.name(c.name)), c.request, { binaryInputs: new Set([c.request.inputs[0].name]) });
          assert.equal(a.status, 200, a.body.toString());
          assert.equal(header(a, 'inference-header-content-length'), undefined, 'a JSON answer');
          const body = json(a);
          assertIdentity(t, c.name, a, body, undefined);
          assertOutputs(body.outputs as OipTensor[], c.expected_outputs, DTYPE_TOLERANCE, c.name);
        });
      }
    }
  });
}

describe('the test client', () => {
  it('encodes the FP16 case inputs to the recorded little-endian bytes', () => {
    const c = CASES.find((x) => x.fp16_raw_hex_le !== undefined)!;
    const { body, headerLength } = encodeBinary(c.request);
    const raw = body.subarray(headerLength).toString('hex');
    assert.equal(raw, c.fp16_raw_hex_le!.inputs.join(''));
  });
});

serveChecks(A);
serveChecks(B);

describe('gateway B maps its names to A\'s', () => {
  it('answers for titanic_front with A\'s titanic_logreg_nozipmap and does not serve A\'s name', T, async () => {
    assert.equal((await http(`${B.url()}/v2/models/titanic_logreg_nozipmap`)).status, 404);
    const ready = await http(`${B.url()}/v2/models/titanic_front/versions/7/ready`);
    assert.equal(ready.status, 200);
    assert.deepEqual(json(ready), { name: 'titanic_front', ready: true });
  });
});
