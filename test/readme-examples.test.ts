/**
 * The README's examples, run as a newcomer runs them. `npm start`'s command serves the demo; the
 * reader pastes the `export TOKEN=…` line it printed into a second terminal, then runs the README's
 * shell blocks in order. Each block the README marks with `<!-- test: NAME -->` is run here as
 * written, in one shell session (exported variables carry from block to block), with
 * `set -euo pipefail`, and PORT set to where the demo serves. Every block must exit 0, and what it
 * says it does must have happened: the gateway is asked independently, with its own requests.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { mintToken } from '../gateway/cli/dev-keys.js';
import { bucketOf, BUCKETS } from '../policies/traffic-split.js';
import { REPO_ROOT, spawnShellGateway, stopWithin, type ChildGateway } from './helpers/gateway.js';

const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
const START = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start;
/** The blocks this test runs, in the README's order; each has its checks below. */
const BLOCKS = ['first-request', 'guard', 'admin', 'undo', 'kill'] as const;
const BLOCK_TIMEOUT_MS = 60_000;

/** `<!-- test: NAME -->` directly before a ```sh fence: NAME → the block's text. */
function markedBlocks(markdown: string): Map<string, string> {
  const blocks = new Map<string, string>();
  for (const m of markdown.matchAll(/^<!-- test: ([a-z-]+) -->\n```sh\n([\s\S]*?)^```$/gm)) {
    const name = m[1] ?? '';
    assert.ok(!blocks.has(name), `README.md marks two blocks "${name}"`);
    blocks.set(name, m[2] ?? '');
  }
  return blocks;
}

const blocks = markedBlocks(README);
function block(name: (typeof BLOCKS)[number]): string {
  const text = blocks.get(name);
  assert.ok(text !== undefined, `README.md has a block marked <!-- test: ${name} -->`);
  return text;
}

const agent = new Agent({ connections: 4 });
let gw: ChildGateway | undefined;
let session: string | undefined;

/** The shell variables of the reader's second terminal, kept between blocks (`export -p`). */
const stateFile = (): string => join(session ?? '', 'exports.sh');

/** The reader's environment: theirs, minus what the README tells them to set. */
function readerEnv(port: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: port, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` };
  for (const name of ['TOKEN', 'BREAKWATER_URL', 'BREAKWATER_TOKEN']) delete env[name];
  return env;
}

/** Runs one marked block as written, in the session; its exit code and output. */
function run(name: (typeof BLOCKS)[number]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  assert.ok(gw, 'the demo is running');
  const script = `set -euo pipefail\nsource ${stateFile()}\n${block(name)}\nexport -p > ${stateFile()}\n`;
  const port = new URL(gw.url).port;
  return new Promise((resolve) => {
    execFile('bash', ['-c', script], { cwd: REPO_ROOT, env: readerEnv(port), timeout: BLOCK_TIMEOUT_MS }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
    });
  });
}

async function call(method: 'GET' | 'POST', path: string, token: string, body?: unknown) {
  assert.ok(gw, 'the demo is running');
  const res = await request(`${gw.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    dispatcher: agent, headersTimeout: 10_000, bodyTimeout: 10_000,
  });
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, `${method} ${path}: ${text}`);
  return { json: JSON.parse(text) as Record<string, unknown>, version: res.headers['x-model-version'], reason: res.headers['x-route-reason'] };
}

/** The token `npm start` printed (the reader copies its `export TOKEN=…` line). */
function printedExportLine(): string {
  assert.ok(gw, 'the demo is running');
  const m = /^\s*(export TOKEN=\S+)$/m.exec(gw.output());
  assert.ok(m?.[1], `the demo printed an export TOKEN line:\n${gw.output()}`);
  return m[1];
}
const demoToken = (): string => printedExportLine().slice('export TOKEN='.length);
const adminToken = (): string => mintToken({ subject: 'readme-test', scopes: ['admin:traffic', 'admin:opt-outs'], ttlSeconds: 600 });

const TITANIC_ROWS = {
  inputs: [
    { name: 'pclass', datatype: 'INT64', shape: [1, 1], data: [3] },
    { name: 'sex', datatype: 'BYTES', shape: [1, 1], data: ['male'] },
    { name: 'age', datatype: 'FP32', shape: [1, 1], data: [30] },
    { name: 'fare', datatype: 'FP32', shape: [1, 1], data: [8.05] },
    { name: 'embarked', datatype: 'BYTES', shape: [1, 1], data: ['S'] },
  ],
};

/** `--weights 2=90,1=10` of the admin block, as routes in order. */
function weightsOf(text: string): { version: string; weight: number }[] {
  const m = /--weights (\S+)/.exec(text);
  assert.ok(m?.[1], 'the admin block sets weights');
  return m[1].split(',').map((p) => ({ version: p.split('=')[0] ?? '', weight: Number(p.split('=')[1]) }));
}

/** The version a subject's bucket falls in, given routes in order (policies/traffic-split.ts). */
function armOf(routes: readonly { version: string; weight: number }[], subject: string): string {
  const b = bucketOf('titanic', subject);
  let upper = 0;
  for (const r of routes) {
    upper += r.weight * (BUCKETS / 100);
    if (b < upper) return r.version;
  }
  throw new Error(`bucket ${b} is in no route`);
}

describe('the README, run against `npm start` as written', { timeout: 180_000 }, () => {
  before(async () => {
    session = await mkdtemp(join(tmpdir(), 'bw-readme-'));
    gw = await spawnShellGateway(START, { env: { PORT: '0', HOST: '127.0.0.1' }, timeoutMs: 20_000 });
    await writeFile(stateFile(), `${printedExportLine()}\n`);
  });

  after(async () => {
    if (gw !== undefined) await stopWithin(gw);
    await agent.close();
    if (session !== undefined) await rm(session, { recursive: true, force: true });
  });

  test('the README marks exactly the blocks this test runs, in order', () => {
    assert.deepEqual([...blocks.keys()], [...BLOCKS]);
  });

  test('the first request answers what the README shows', async () => {
    const r = await run('first-request');
    assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    const shown = /^# (\{.*)\.\.\.$/m.exec(block('first-request'));
    assert.ok(shown?.[1], 'the block shows the start of its answer');
    assert.ok(r.stdout.startsWith(shown[1]), `the answer starts as the README shows:\n${r.stdout}`);
    const answer = JSON.parse(r.stdout) as { outputs: { name: string; shape: number[] }[] };
    assert.deepEqual(answer.outputs.map((o) => [o.name, o.shape]), [['label', [3]], ['probabilities', [3, 2]]]);
  });

  test('the guard block is refused by the demo\'s contract guard, as the README shows', async () => {
    const r = await run('guard');
    assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    const shown = /^# (\{.*\})$/m.exec(block('guard'));
    assert.ok(shown?.[1], 'the block shows its answer');
    assert.deepEqual(JSON.parse(r.stdout), JSON.parse(shown[1]));
  });

  test('the admin block mints an admin token, splits titanic and opts demo-user out of experiments', async () => {
    const text = block('admin');
    const r = await run('admin');
    assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    const routes = weightsOf(text);
    const shown = (await call('GET', '/admin/models/titanic', adminToken())).json as {
      traffic: { source: string; traffic: { routes: unknown[] }; updatedBy: string };
      history: { action: string; reason: string }[];
    };
    assert.equal(shown.traffic.source, 'admin');
    assert.deepEqual(shown.traffic.traffic.routes, routes);
    assert.equal(shown.traffic.updatedBy, /--sub (\S+)/.exec(text)?.[1], 'the change is audited as the minted subject');
    assert.equal(shown.history[0]?.reason, /--reason "([^"]+)"/.exec(text)?.[1]);
    const optOuts = await call('GET', '/admin/opt-outs/demo-user', adminToken());
    assert.deepEqual(optOuts.json.kinds, ['experiments']);

    // On the request path: demo-user gets the stable version; everyone else sticks to their arm.
    const me = await call('POST', '/v2/models/titanic/infer', demoToken(), TITANIC_ROWS);
    assert.deepEqual([me.version, me.reason], ['2', 'opt-out:experiments']);
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const subject = `reader-${i}`;
      const token = mintToken({ subject, scopes: ['predict:titanic'], ttlSeconds: 600 });
      const expected = armOf(routes, subject);
      for (let n = 0; n < 2; n++) {
        const res = await call('POST', '/v2/models/titanic/infer', token, TITANIC_ROWS);
        assert.equal(res.version, expected, `${subject} is served by the version its bucket falls in`);
      }
      seen.add(expected);
    }
    assert.deepEqual([...seen].sort(), routes.map((x) => x.version).sort(), 'both arms serve someone');
  });

  test('the undo block restores the file\'s routes and removes the opt-out', async () => {
    const r = await run('undo');
    assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    const shown = (await call('GET', '/admin/models/titanic', adminToken())).json as { traffic: { source: string }; history: { action: string }[] };
    assert.equal(shown.traffic.source, 'none');
    assert.equal(shown.history[0]?.action, 'reset');
    assert.deepEqual((await call('GET', '/admin/opt-outs/demo-user', adminToken())).json.kinds, []);
    const me = await call('POST', '/v2/models/titanic/infer', demoToken(), TITANIC_ROWS);
    assert.deepEqual([me.version, me.reason], ['2', 'stable']);
  });

  test('the kill block stops version 2 on the replica (every one applied it: exit 0) and lifts it; both are in the model\'s history', async () => {
    const text = block('kill');
    const r = await run('kill');
    assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /applied/i, r.stdout);
    const shown = (await call('GET', '/admin/models/titanic', adminToken())).json as { kills: unknown[]; history: { action: string; by: string; reason: string }[] };
    assert.deepEqual(shown.kills, [], 'lifted');
    assert.deepEqual(shown.history.slice(0, 2).map((h) => h.action), ['kill.restore-version', 'kill.version']);
    assert.equal(shown.history[1]?.reason, /kill titanic --version 2 --reason "([^"]+)"/.exec(text)?.[1]);
    assert.equal(shown.history[1]?.by, /--sub (\S+)/.exec(text)?.[1]);
    const me = await call('POST', '/v2/models/titanic/infer', demoToken(), TITANIC_ROWS);
    assert.deepEqual([me.version, me.reason], ['2', 'stable']);
  });
});
