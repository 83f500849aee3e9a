/**
 * `server.workers`: a primary and N worker processes sharing one port. Every worker serves, SIGHUP
 * reloads them all, a crashed worker is replaced, SIGTERM drains them all, and a worker that cannot
 * start stops the whole gateway instead of crash-looping.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { ASSETS } from './helpers/assets.js';
import { logLines, spawnGateway, stopWithin, waitForOutput, writeTempFile, type ChildGateway } from './helpers/gateway.js';

const IRIS = join(ASSETS, 'models/iris_mlp_dynamic.onnx');
const BODY = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] });

function config(stable: string, port = 0): string {
  return [
    'auth: { insecureNoAuth: true }',
    `server: { host: 127.0.0.1, port: ${port}, workers: 2, shutdownGraceMs: 2000 }`,
    'models:',
    '  iris:',
    `    stable: "${stable}"`,
    '    versions:',
    `      "1": { backend: { kind: onnx, path: ${IRIS} } }`,
    `      "2": { backend: { kind: onnx, path: ${IRIS} } }`,
  ].join('\n');
}

/** Worker pids: the primary's child processes, read from /proc. */
function workerPids(primary: number): number[] {
  const pids: number[] = [];
  for (const tid of readdirSync(`/proc/${primary}/task`)) {
    const kids = readFileSync(`/proc/${primary}/task/${tid}/children`, 'utf8').trim();
    if (kids !== '') pids.push(...kids.split(' ').map(Number));
  }
  return pids.sort();
}

function servingPids(gw: ChildGateway, from = 0): Set<unknown> {
  return new Set(logLines(gw.output().slice(from)).filter((l) => l.msg === 'breakwater is serving').map((l) => l.pid));
}

/** `n` requests, each on a fresh connection so the primary spreads them over the workers. */
async function versions(url: string, n: number): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < n; i++) {
    const agent = new Agent({ pipelining: 0 });
    try {
      const res = await request(`${url}/v2/models/iris/infer`, { method: 'POST', body: BODY, dispatcher: agent });
      assert.equal(res.statusCode, 200, await res.body.text());
      seen.push(String(res.headers['x-model-version']));
    } finally {
      await agent.close();
    }
  }
  return seen;
}

describe('a gateway with two workers', () => {
  let file: string;
  let gw: ChildGateway;

  before(async () => {
    file = await writeTempFile('workers.yaml', config('1'));
    gw = await spawnGateway(['serve', '--config', file]);
    await waitForOutput(gw, (t) => servingPids(gw).size === 2, { timeoutMs: 15_000 });
  });

  after(async () => {
    if (gw.process.exitCode === null) await stopWithin(gw);
  });

  test('runs two worker processes that both serve the same port', async () => {
    assert.equal(workerPids(gw.process.pid ?? 0).length, 2);
    const urls = new Set(logLines(gw.output()).filter((l) => l.msg === 'breakwater is serving').map((l) => l.url));
    assert.deepEqual([...urls], [gw.url]);
    assert.deepEqual(new Set(await versions(gw.url, 6)), new Set(['1']));
  });

  test('SIGHUP reloads every worker', async () => {
    const from = gw.output().length;
    await writeFile(file, config('2'));
    gw.process.kill('SIGHUP');
    await waitForOutput(gw, (t) => (t.match(/reload applied/g) ?? []).length >= 2, { from, timeoutMs: 10_000 });
    assert.deepEqual(new Set(await versions(gw.url, 8)), new Set(['2']));
  });

  test('a worker that dies is replaced and the gateway keeps serving', async () => {
    const [victim] = workerPids(gw.process.pid ?? 0);
    assert.ok(victim !== undefined);
    const from = gw.output().length;
    process.kill(victim, 'SIGKILL');
    await waitForOutput(gw, /worker exited unexpectedly; replacing it/, { from, timeoutMs: 5_000 });
    await waitForOutput(gw, /breakwater is serving/, { from, timeoutMs: 15_000 });
    const now = workerPids(gw.process.pid ?? 0);
    assert.equal(now.length, 2);
    assert.ok(!now.includes(victim));
    assert.equal((await versions(gw.url, 6)).length, 6);
  });

  test('SIGTERM drains every worker and the primary exits 0', async () => {
    const workers = workerPids(gw.process.pid ?? 0);
    const code = await stopWithin(gw, 10_000);
    assert.equal(code, 0, gw.output());
    for (const pid of workers) assert.throws(() => process.kill(pid, 0), 'worker is gone');
    assert.match(gw.output(), /all workers stopped/);
  });
});

test('a worker that cannot start stops the gateway with a non-zero exit', async () => {
  const blocker = createServer();
  await new Promise<void>((res) => blocker.listen(0, '127.0.0.1', res));
  const port = (blocker.address() as { port: number }).port;
  try {
    const file = await writeTempFile('taken.yaml', config('1', port));
    await assert.rejects(spawnGateway(['serve', '--config', file], { timeoutMs: 15_000 }), /exited with 1[\s\S]*failed to start/);
  } finally {
    blocker.close();
  }
});
