/**
 * Reloading a running gateway (a real child process, a real YAML file): SIGHUP with a broken file
 * keeps the old configuration; SIGHUP with a good file swaps it under load without failing a single
 * request; `server.watchConfig` reloads on file changes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { copyFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { stringify } from 'yaml';
import { ASSETS } from './helpers/assets.js';
import { logLines, spawnGateway, stopWithin, waitForOutput, writeTempFile, type ChildGateway } from './helpers/gateway.js';

const IRIS_ONNX = join(ASSETS, 'models/iris_mlp_dynamic.onnx');
const TITANIC_ONNX = join(ASSETS, 'models/titanic_logreg_nozipmap.onnx');

interface Sample {
  request: { inputs: unknown[] };
  expected_outputs: { name: string; datatype: string; shape: number[]; data: number[] }[];
  tolerance: number;
}
const SAMPLES = JSON.parse(readFileSync(join(ASSETS, 'samples/model-samples.json'), 'utf8')) as Record<string, Sample>;
const TITANIC = SAMPLES.titanic_logreg_nozipmap;
const IRIS_TOLERANCE = SAMPLES.iris_mlp_dynamic.tolerance;
/** The first row of the recorded iris sample (iris.csv Id 1) and its recorded logits. */
const IRIS_BODY = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }] });
const IRIS_EXPECTED = SAMPLES.iris_mlp_dynamic.expected_outputs[0].data.slice(0, 3);
const TITANIC_BODY = JSON.stringify(TITANIC.request);

const onnx = (path: string) => ({ backend: { kind: 'onnx', path } });

function configText(models: Record<string, unknown>, server: Record<string, unknown> = {}): string {
  return stringify({ auth: { insecureNoAuth: true }, server: { host: '127.0.0.1', port: 0, ...server }, logging: { accessLog: false }, models });
}

/** iris with versions "1" and "2" (the same file), `stable` as given. */
const irisTwoVersions = (stable: string, server?: Record<string, unknown>) =>
  configText({ iris: { stable, versions: { '1': onnx(IRIS_ONNX), '2': onnx(IRIS_ONNX) } } }, server);

const agent = new Agent({ connections: 32, keepAliveTimeout: 4_000 });
const gateways: ChildGateway[] = [];

after(async () => {
  await Promise.all(gateways.map((gw) => stopWithin(gw)));
  await agent.close();
});

async function start(config: string): Promise<{ gw: ChildGateway; file: string }> {
  const file = await writeTempFile('breakwater.yaml', config);
  const gw = await spawnGateway(['serve', '--config', file]);
  gateways.push(gw);
  return { gw, file };
}

interface Answer { status: number; version: string | undefined; body: string }

async function call(url: string, method: 'GET' | 'POST' = 'GET', body?: string): Promise<Answer> {
  const res = await request(url, {
    method, body, dispatcher: agent, headersTimeout: 10_000, bodyTimeout: 10_000,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
  });
  const text = await res.body.text();
  const v = res.headers['x-model-version'];
  return { status: res.statusCode, version: typeof v === 'string' ? v : undefined, body: text };
}

/** Why an iris answer is wrong, or undefined if it is a correct 200 from one of `versions` of `model`. */
function irisProblem(a: Answer, versions: readonly string[], model = 'iris'): string | undefined {
  if (a.status !== 200) return `status ${a.status}: ${a.body.slice(0, 200)}`;
  if (a.version === undefined || !versions.includes(a.version)) return `x-model-version ${a.version}, expected one of ${versions.join(', ')}`;
  const parsed = JSON.parse(a.body) as { model_name: string; model_version: string; outputs: { name: string; shape: number[]; data: number[] }[] };
  if (parsed.model_name !== model || parsed.model_version !== a.version) return `body names ${parsed.model_name} version ${parsed.model_version}`;
  const out = parsed.outputs?.[0];
  if (parsed.outputs?.length !== 1 || out.name !== 'output' || JSON.stringify(out.shape) !== '[1,3]') return `outputs ${a.body.slice(0, 200)}`;
  if (out.data.some((x, i) => Math.abs(x - IRIS_EXPECTED[i]) > IRIS_TOLERANCE)) return `logits ${JSON.stringify(out.data)}, expected ${JSON.stringify(IRIS_EXPECTED)}`;
  return undefined;
}

function titanicProblem(a: Answer): string | undefined {
  if (a.status !== 200) return `status ${a.status}: ${a.body.slice(0, 200)}`;
  const parsed = JSON.parse(a.body) as { outputs: { name: string; data: number[] }[] };
  for (const exp of TITANIC.expected_outputs) {
    const got = parsed.outputs.find((o) => o.name === exp.name);
    if (got === undefined || got.data.length !== exp.data.length) return `output ${exp.name}: ${a.body.slice(0, 200)}`;
    if (got.data.some((x, i) => Math.abs(Number(x) - exp.data[i]) > TITANIC.tolerance)) return `output ${exp.name}: ${JSON.stringify(got.data)}`;
  }
  return undefined;
}

const inferIris = (gw: ChildGateway, version?: string) =>
  call(`${gw.url}/v2/models/iris${version === undefined ? '' : `/versions/${version}`}/infer`, 'POST', IRIS_BODY);

/** Sends SIGHUP and waits for the gateway to log the outcome; returns that log line. */
async function sighup(gw: ChildGateway): Promise<Record<string, unknown>> {
  const from = gw.output().length;
  gw.process.kill('SIGHUP');
  const text = await waitForOutput(gw, /reload applied|reload rejected/, { from, timeoutMs: 10_000 });
  const line = logLines(text).find((l) => /reload applied|reload rejected/.test(String(l.msg)));
  assert.ok(line, text);
  return line;
}

/** The load settings of the reload-under-load tests: SIGHUP at 1 s of a bounded 3 s run. */
function reloadAfterOneSecond(gw: ChildGateway, applied: (at: number) => void) {
  return {
    durationMs: 3_000, maxRequests: 30_000, triggerAfterMs: 1_000,
    during: async () => {
      const line = await sighup(gw);
      applied(Date.now());
      assert.match(String(line.msg), /reload applied/, JSON.stringify(line));
    },
  };
}

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

/** One outcome of a load-loop request, in the order that loop saw them. */
interface Outcome { readonly kind: string; readonly startedAt: number }

interface LoadSpec {
  readonly name: string;
  readonly loops: number;
  readonly send: () => Promise<Answer>;
  /** The outcome's kind (e.g. "v1", "404"), or a failure description starting with "FAIL". */
  readonly classify: (a: Answer) => string;
}

/**
 * Runs request loops (bounded by `durationMs` and `maxRequests` in total), calling `during` once
 * `triggerAfterMs` has passed. Socket errors count as failures. Returns each loop's outcomes.
 */
async function underLoad(
  specs: readonly LoadSpec[],
  opts: { durationMs: number; maxRequests: number; triggerAfterMs: number; during: () => Promise<void> },
): Promise<{ results: Map<string, Outcome[][]>; failures: string[]; total: number }> {
  const t0 = Date.now();
  const stopAt = t0 + opts.durationMs;
  let total = 0;
  const failures: string[] = [];
  const results = new Map<string, Outcome[][]>();
  const loops: Promise<void>[] = [];
  for (const spec of specs) {
    const perLoop: Outcome[][] = [];
    results.set(spec.name, perLoop);
    for (let i = 0; i < spec.loops; i++) {
      const seen: Outcome[] = [];
      perLoop.push(seen);
      loops.push((async () => {
        while (Date.now() < stopAt && total < opts.maxRequests) {
          total++;
          const startedAt = Date.now();
          let kind: string;
          try {
            kind = spec.classify(await spec.send());
          } catch (e) {
            kind = `FAIL socket error ${(e as Error).message}`;
          }
          if (kind.startsWith('FAIL')) failures.push(`${spec.name}: ${kind}`);
          seen.push({ kind, startedAt });
        }
      })());
    }
  }
  const trigger = (async () => {
    await sleep(opts.triggerAfterMs);
    await opts.during();
  })();
  await Promise.all([...loops, trigger]);
  return { results, failures, total };
}

/** Each loop's outcomes are a run of `before` followed by a run of `afterKind` (either may be empty). */
function assertSwitchesOnce(loops: readonly Outcome[][], before: string, afterKind: string, what: string): void {
  for (const seen of loops) {
    const kinds = seen.map((o) => o.kind);
    const firstAfter = kinds.indexOf(afterKind);
    const cut = firstAfter === -1 ? kinds.length : firstAfter;
    assert.ok(kinds.slice(0, cut).every((k) => k === before), `${what}: unexpected outcome before the switch: ${[...new Set(kinds)].join(', ')}`);
    assert.ok(kinds.slice(cut).every((k) => k === afterKind), `${what}: went back to ${before} after answering ${afterKind}`);
  }
}

describe('reloading the configuration', { timeout: 120_000 }, () => {
  test('SIGHUP with a broken file keeps serving the old configuration and logs why it was rejected', { timeout: 60_000 }, async () => {
    const { gw, file } = await start(irisTwoVersions('1'));
    const before = await inferIris(gw);
    assert.equal(irisProblem(before, ['1']), undefined);

    const missing = join(dirname(file), 'no-such-model.onnx');
    const broken: { what: string; text: string; mentions: readonly string[] }[] = [
      { what: 'invalid YAML', text: 'models:\n  iris: [\n    stable: "2"\n', mentions: ['not valid YAML', file] },
      {
        what: 'a schema error',
        text: configText({ iris: { stable: '2', versions: { '1': onnx(IRIS_ONNX), '2': { backend: { kind: 'onnx', path: IRIS_ONNX, intraOpThreads: 0 } } } } }),
        mentions: ['models.iris.versions.2.backend.intraOpThreads', 'must be >= 1'],
      },
      {
        what: 'an onnx path that does not exist',
        text: configText({ iris: { stable: '2', versions: { '1': onnx(IRIS_ONNX), '2': onnx(missing) } } }),
        mentions: ['model iris version 2 failed to load', 'not found'],
      },
    ];
    for (const b of broken) {
      await writeFile(file, b.text);
      const line = await sighup(gw);
      assert.match(String(line.msg), /reload rejected/, `${b.what}: ${JSON.stringify(line)}`);
      for (const m of b.mentions) assert.ok(String(line.problem).includes(m), `${b.what}: the log should mention "${m}": ${JSON.stringify(line)}`);
      for (let i = 0; i < 5; i++) {
        assert.equal(irisProblem(await inferIris(gw), ['1']), undefined, `${b.what}: the old configuration answers`);
      }
      assert.equal(irisProblem(await inferIris(gw, '2'), ['2']), undefined, `${b.what}: version 2 as it was`);
      const ready = await call(`${gw.url}/v2/health/ready`);
      assert.deepEqual([ready.status, ready.body], [200, '{"ready":true}'], `${b.what}: readiness`);
    }

    // Rejections leave SIGHUP working: a good file is applied.
    await writeFile(file, irisTwoVersions('2'));
    assert.match(String((await sighup(gw)).msg), /reload applied/);
    assert.equal(irisProblem(await inferIris(gw), ['2']), undefined);
  });

  test('SIGHUP with a new stable version under load fails no request and switches every client to it', { timeout: 60_000 }, async (t) => {
    const { gw, file } = await start(irisTwoVersions('1'));
    assert.equal(irisProblem(await inferIris(gw), ['1']), undefined);
    await writeFile(file, irisTwoVersions('2'));

    let appliedSeenAt = Infinity;
    const { results, failures, total } = await underLoad(
      [{
        name: 'iris (stable)', loops: 16, send: () => inferIris(gw),
        classify: (a) => { const p = irisProblem(a, ['1', '2']); return p === undefined ? `v${a.version}` : `FAIL ${p}`; },
      }],
      reloadAfterOneSecond(gw, (at) => (appliedSeenAt = at)),
    );

    t.diagnostic(`${total} requests, ${failures.length} failed`);
    assert.deepEqual(failures.slice(0, 10), [], `${failures.length} of ${total} requests failed`);
    const loops = results.get('iris (stable)') ?? [];
    const all = loops.flat();
    assert.ok(all.some((o) => o.kind === 'v1'), 'version 1 answered before the reload');
    assert.ok(all.some((o) => o.kind === 'v2'), 'version 2 answered after the reload');
    // Once the gateway said it applied the reload, every new request is answered by version 2,
    // and no client that got version 2 ever gets version 1 again.
    const late = all.filter((o) => o.startedAt > appliedSeenAt);
    assert.ok(late.length > 0, 'requests were sent after the reload was applied');
    assert.deepEqual([...new Set(late.map((o) => o.kind))], ['v2']);
    assertSwitchesOnce(loops, 'v1', 'v2', 'iris (stable)');

    assert.equal(irisProblem(await inferIris(gw), ['2']), undefined);
    assert.equal(irisProblem(await inferIris(gw, '1'), ['1']), undefined, 'version 1 is still servable when pinned');
    assert.doesNotMatch(gw.output(), /closing retired model versions failed/);
  });

  test('SIGHUP that removes a version and adds a model under load fails no request to what remains', { timeout: 60_000 }, async (t) => {
    const { gw, file } = await start(irisTwoVersions('1'));
    await writeFile(file, configText({
      iris: { stable: '2', versions: { '2': onnx(IRIS_ONNX) } },
      titanic: { versions: { '1': onnx(TITANIC_ONNX) } },
    }));
    const missingCode = (a: Answer, code: string) => a.status === 404 && (JSON.parse(a.body) as { code?: string }).code === code;

    let appliedSeenAt = Infinity;
    const { results, failures, total } = await underLoad(
      [
        {
          name: 'iris (stable)', loops: 6, send: () => inferIris(gw),
          classify: (a) => { const p = irisProblem(a, ['1', '2']); return p === undefined ? `v${a.version}` : `FAIL ${p}`; },
        },
        {
          name: 'iris version 2', loops: 6, send: () => inferIris(gw, '2'),
          classify: (a) => { const p = irisProblem(a, ['2']); return p === undefined ? 'v2' : `FAIL ${p}`; },
        },
        {
          // The removed version: answered until the reload, then VERSION_NOT_FOUND; nothing else.
          name: 'iris version 1 (removed)', loops: 2, send: () => inferIris(gw, '1'),
          classify: (a) => {
            if (missingCode(a, 'VERSION_NOT_FOUND')) return '404';
            const p = irisProblem(a, ['1']);
            return p === undefined ? 'v1' : `FAIL ${p}`;
          },
        },
        {
          // The added model: MODEL_NOT_FOUND until the reload, then correct answers; nothing else.
          name: 'titanic (added)', loops: 2, send: () => call(`${gw.url}/v2/models/titanic/infer`, 'POST', TITANIC_BODY),
          classify: (a) => {
            if (missingCode(a, 'MODEL_NOT_FOUND')) return '404';
            const p = titanicProblem(a);
            return p === undefined ? 'ok' : `FAIL ${p}`;
          },
        },
      ],
      reloadAfterOneSecond(gw, (at) => (appliedSeenAt = at)),
    );

    t.diagnostic(`${total} requests, ${failures.length} failed`);
    assert.deepEqual(failures.slice(0, 10), [], `${failures.length} of ${total} requests failed`);
    const outcomes = (name: string) => results.get(name) ?? [];
    const kindsAfter = (name: string) => [...new Set(outcomes(name).flat().filter((o) => o.startedAt > appliedSeenAt).map((o) => o.kind))];
    assertSwitchesOnce(outcomes('iris (stable)'), 'v1', 'v2', 'iris (stable)');
    assertSwitchesOnce(outcomes('iris version 1 (removed)'), 'v1', '404', 'iris version 1 (removed)');
    assertSwitchesOnce(outcomes('titanic (added)'), '404', 'ok', 'titanic (added)');
    assert.deepEqual(kindsAfter('iris (stable)'), ['v2']);
    assert.deepEqual(kindsAfter('iris version 1 (removed)'), ['404']);
    assert.deepEqual(kindsAfter('titanic (added)'), ['ok']);
    for (const name of ['iris (stable)', 'iris version 1 (removed)', 'titanic (added)']) {
      assert.equal(new Set(outcomes(name).flat().map((o) => o.kind)).size, 2, `${name} was seen both before and after the reload`);
    }

    const md = await call(`${gw.url}/v2/models/iris`);
    assert.deepEqual((JSON.parse(md.body) as { versions: string[] }).versions, ['2']);
    assert.doesNotMatch(gw.output(), /closing retired model versions failed/);
  });

  test('a model file replaced in place is served after SIGHUP; a garbage replacement is refused, logged, and the old model keeps answering', { timeout: 60_000 }, async () => {
    const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');
    const modelFile = await writeTempFile('model.onnx', '');
    await copyFile(TITANIC_ONNX, modelFile);
    const { gw } = await start(configText({ titanic: { versions: { '1': onnx(modelFile) } } }));
    const titanic = () => call(`${gw.url}/v2/models/titanic/infer`, 'POST', TITANIC_BODY);
    const irisAtTitanic = () => call(`${gw.url}/v2/models/titanic/infer`, 'POST', IRIS_BODY);
    assert.equal(titanicProblem(await titanic()), undefined);

    // In place, as `cp other.onnx model.onnx` does: same path, same inode, same configuration.
    const iris = readFileSync(IRIS_ONNX);
    await writeFile(modelFile, iris);
    let from = gw.output().length;
    assert.match(String((await sighup(gw)).msg), /reload applied/);
    const changed = logLines(gw.output().slice(from)).find((l) => l.msg === 'model file changed; loading it anew');
    assert.ok(changed, gw.output().slice(from));
    assert.deepEqual([changed.model, changed.version, changed.previousSha256, changed.sha256], ['titanic', '1', sha256(readFileSync(TITANIC_ONNX)), sha256(iris)]);
    assert.equal(irisProblem(await irisAtTitanic(), ['1'], 'titanic'), undefined, 'the new file answers');
    assert.equal((await titanic()).status, 400, 'the old model\'s inputs are no longer accepted');

    await writeFile(modelFile, 'this is not an ONNX model\n');
    from = gw.output().length;
    const rejected = await sighup(gw);
    assert.match(String(rejected.msg), /reload rejected/);
    assert.ok(String(rejected.problem).includes(`model titanic version 1 failed to load from ${modelFile}`), JSON.stringify(rejected));
    assert.match(String(rejected.problem), /not a valid ONNX model/);
    for (let i = 0; i < 3; i++) assert.equal(irisProblem(await irisAtTitanic(), ['1'], 'titanic'), undefined, 'the model loaded before keeps answering');
    const ready = await call(`${gw.url}/v2/health/ready`);
    assert.deepEqual([ready.status, ready.body], [200, '{"ready":true}']);
  });

  test('with server.watchConfig, editing the file reloads without a signal', { timeout: 30_000 }, async () => {
    const { gw, file } = await start(irisTwoVersions('1', { watchConfig: true }));
    assert.equal(irisProblem(await inferIris(gw), ['1']), undefined);

    // Two in-place edits, each picked up on its own.
    for (const stable of ['2', '1']) {
      const from = gw.output().length;
      await writeFile(file, irisTwoVersions(stable, { watchConfig: true }));
      await waitForOutput(gw, /"trigger":"file change".*reload applied/, { from, timeoutMs: 5_000 });
      assert.equal(irisProblem(await inferIris(gw), [stable]), undefined, `after editing stable to ${stable}`);
    }
    // A broken edit is rejected like a broken SIGHUP.
    const from = gw.output().length;
    await writeFile(file, 'models: [\n');
    await waitForOutput(gw, /"trigger":"file change".*reload rejected/, { from, timeoutMs: 5_000 });
    assert.equal(irisProblem(await inferIris(gw), ['1']), undefined);
  });

  test('with server.watchConfig, editor-style saves (write a copy, rename it over the file) keep being picked up', { timeout: 30_000 }, async () => {
    const { gw, file } = await start(irisTwoVersions('1', { watchConfig: true }));
    assert.equal(irisProblem(await inferIris(gw), ['1']), undefined);
    // vim, VS Code's atomic save, and most config-management tools replace the file by rename.
    for (const stable of ['2', '1', '2']) {
      const from = gw.output().length;
      const tmp = `${file}.tmp`;
      await writeFile(tmp, irisTwoVersions(stable, { watchConfig: true }));
      await rename(tmp, file);
      await waitForOutput(gw, /"trigger":"file change".*reload applied/, { from, timeoutMs: 5_000 });
      assert.equal(irisProblem(await inferIris(gw), [stable]), undefined, `after saving stable ${stable}`);
    }
  });
});
