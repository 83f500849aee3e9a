/**
 * The bundled demo as a newcomer meets it: package.json's `start` command (run after the build,
 * without its prestart) serves titanic (two versions, 2 stable) and iris with the recorded answers,
 * and `breakwater validate` accepts the demo file and points at the problem in a broken one.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { parse, stringify } from 'yaml';
import { ASSETS } from './helpers/assets.js';
import { REPO_ROOT, spawnShellGateway, stopWithin, writeTempFile, type ChildGateway } from './helpers/gateway.js';

interface Tensor { name: string; datatype: string; shape: number[]; data: unknown[] }
interface Sample { request: { inputs: unknown[] }; expected_outputs: Tensor[]; tolerance: number }
const SAMPLES = JSON.parse(readFileSync(join(ASSETS, 'samples/model-samples.json'), 'utf8')) as Record<string, Sample>;
const START = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start;
const DEMO_CONFIG = join(REPO_ROOT, 'demo/breakwater.yaml');

const agent = new Agent({ connections: 4 });
let gw: ChildGateway | undefined;
let spawnedAt = 0;

after(async () => {
  if (gw !== undefined) await stopWithin(gw);
  await agent.close();
});

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

/** The token the demo prints at start-up (`export TOKEN=...`). */
function demoToken(): string {
  assert.ok(gw, 'the demo is running');
  const m = /export TOKEN=(\S+)/.exec(gw.output());
  assert.ok(m?.[1], `the demo printed a token:\n${gw.output()}`);
  return m[1];
}

async function call(path: string, body?: unknown, token: string | null = demoToken()): Promise<{ status: number; version: unknown; text: string }> {
  assert.ok(gw, 'the demo is running');
  const auth: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` };
  const res = await request(`${gw.url}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: body === undefined ? auth : { 'content-type': 'application/json', ...auth },
    dispatcher: agent, headersTimeout: 10_000, bodyTimeout: 10_000,
  });
  return { status: res.statusCode, version: res.headers['x-model-version'], text: await res.body.text() };
}

function assertOutputs(text: string, sample: Sample): void {
  const got = (JSON.parse(text) as { outputs: Tensor[] }).outputs;
  assert.deepEqual(got.map((o) => o.name).sort(), sample.expected_outputs.map((o) => o.name).sort());
  for (const exp of sample.expected_outputs) {
    const out = got.find((o) => o.name === exp.name);
    assert.ok(out);
    assert.equal(out.datatype, exp.datatype, exp.name);
    assert.deepEqual(out.shape, exp.shape, exp.name);
    assert.equal(out.data.length, exp.data.length, exp.name);
    out.data.forEach((v, i) => {
      assert.ok(Math.abs(Number(v) - Number(exp.data[i])) <= sample.tolerance, `${exp.name}[${i}] = ${String(v)}, recorded ${String(exp.data[i])}`);
    });
  }
}

/** Runs `node bin/breakwater.js <args>` (bounded) and reports its exit code and output. */
function breakwater(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(REPO_ROOT, 'bin/breakwater.js'), ...args], { cwd: REPO_ROOT, timeout: 15_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('the bundled demo', { timeout: 90_000 }, () => {
  before(async () => {
    spawnedAt = Date.now();
    gw = await spawnShellGateway(START, { env: { PORT: '0', HOST: '127.0.0.1' }, timeoutMs: 15_000 });
  });

  test('`npm start`\'s command serves on PORT=0 and is ready within 15 s of being started', async () => {
    assert.match(START, /serve --demo/);
    assert.ok(gw);
    assert.match(gw.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    let ready = await call('/v2/health/ready');
    while (ready.status !== 200 && Date.now() - spawnedAt < 15_000) {
      await sleep(100);
      ready = await call('/v2/health/ready');
    }
    assert.deepEqual([ready.status, ready.text], [200, '{"ready":true}']);
    assert.ok(Date.now() - spawnedAt < 15_000, `ready after ${Date.now() - spawnedAt} ms`);
  });

  test('titanic answers the recorded outputs from its stable version 2', async () => {
    const sample = SAMPLES.titanic_logreg_nozipmap;
    const res = await call('/v2/models/titanic/infer', sample.request);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.version, '2');
    assert.equal((JSON.parse(res.text) as { model_version: string }).model_version, '2');
    assertOutputs(res.text, sample);
    const md = await call('/v2/models/titanic');
    assert.deepEqual((JSON.parse(md.text) as { versions: string[] }).versions, ['1', '2']);
  });

  test('pinning titanic version 1 is answered by version 1 with the recorded outputs', async () => {
    const sample = SAMPLES.titanic_logreg_nozipmap;
    const res = await call('/v2/models/titanic/versions/1/infer', sample.request);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.version, '1');
    assert.equal((JSON.parse(res.text) as { model_version: string }).model_version, '1');
    assertOutputs(res.text, sample);
  });

  test('iris answers the recorded outputs', async () => {
    const sample = SAMPLES.iris_mlp_dynamic;
    const res = await call('/v2/models/iris/infer', sample.request);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.version, '1');
    assertOutputs(res.text, sample);
  });

  test('the demo refuses a request without a token', async () => {
    const res = await call('/v2/models/iris/infer', { inputs: [] }, null);
    assert.equal(res.status, 401, res.text);
    assert.equal((JSON.parse(res.text) as { code: string }).code, 'UNAUTHENTICATED');
  });

  test('`breakwater token` mints a token the demo accepts, limited to its scope', async () => {
    const minted = await breakwater(['token', '--sub', 'alice', '--tenant', 'acme', '--scope', 'predict:iris', '--ttl', '5m']);
    assert.equal(minted.code, 0, minted.stderr);
    const token = minted.stdout.trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const iris = SAMPLES.iris_mlp_dynamic;
    assert.equal((await call('/v2/models/iris/infer', iris.request, token)).status, 200);
    const titanic = await call('/v2/models/titanic/infer', SAMPLES.titanic_logreg_nozipmap.request, token);
    assert.equal(titanic.status, 403, titanic.text);
  });

  test('`breakwater validate demo/breakwater.yaml` exits 0', async () => {
    const r = await breakwater(['validate', 'demo/breakwater.yaml']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /valid \(2 models: titanic, iris\)/);
  });

  test('`breakwater validate` of a broken file exits 1 and names where the problem is', async () => {
    const demo = parse(readFileSync(DEMO_CONFIG, 'utf8')) as { models: Record<string, { stable?: string; versions: Record<string, { backend: Record<string, unknown> }> }> };
    const broken: { what: string; edit: (c: typeof demo) => void; mentions: string }[] = [
      { what: 'a value out of range', edit: (c) => void (c.models.titanic.versions['2'].backend.intraOpThreads = 0), mentions: 'models.titanic.versions.2.backend.intraOpThreads' },
      { what: 'an unknown field', edit: (c) => void (c.models.iris.versions['1'].backend.pth = 'x.onnx'), mentions: 'models.iris.versions.1.backend: unknown field "pth"' },
      { what: 'a stable version that does not exist', edit: (c) => void (c.models.titanic.stable = '3'), mentions: 'models.titanic.stable' },
    ];
    for (const b of broken) {
      const config = structuredClone(demo);
      b.edit(config);
      const file = await writeTempFile('broken.yaml', stringify(config));
      const r = await breakwater(['validate', file]);
      assert.equal(r.code, 1, `${b.what}: ${r.stdout}${r.stderr}`);
      assert.ok(r.stderr.includes(b.mentions), `${b.what}: stderr should name ${b.mentions}:\n${r.stderr}`);
      assert.ok(r.stderr.includes(file), `${b.what}: stderr should name the file:\n${r.stderr}`);
    }
    const file = await writeTempFile('broken.yaml', 'models:\n  iris: [\n');
    const r = await breakwater(['validate', file]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /not valid YAML/);
    assert.ok(r.stderr.includes(file), r.stderr);
  });
});
