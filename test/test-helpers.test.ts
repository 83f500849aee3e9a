/**
 * The test helpers themselves, as a newcomer meets them: without the shared assets a test file
 * fails at once saying which folder is missing and what to do; a test process that used a Redis
 * leaves no redis-server behind.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT } from './helpers/gateway.js';
import { ping } from './helpers/redis.js';

interface Run { code: number | null; stdout: string; stderr: string }

function node(args: readonly string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<Run> {
  // Without the test runner's own marker, a nested `node --test` reports in plain text.
  const { NODE_TEST_CONTEXT: _runner, ...env } = { ...process.env, ...extraEnv };
  return new Promise((resolve) => {
    execFile(process.execPath, [...args], { cwd: REPO_ROOT, env, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
    });
  });
}

test('without the shared assets a test file fails at once, naming the missing folder and what to do', async () => {
  const empty = await mkdtemp(join(tmpdir(), 'bw-no-assets-'));
  try {
    const r = await node(['--test', join(REPO_ROOT, 'dist/adapters/registry.test.js')], { BREAKWATER_TEST_ASSETS: empty });
    const out = r.stdout + r.stderr;
    assert.notEqual(r.code, 0);
    assert.ok(out.includes(`the test assets are missing from ${empty}`), out);
    assert.match(out, /models\/iris_mlp_dynamic\.onnx/);
    assert.match(out, /\.\.\/shared\/assets/);
    assert.match(out, /BREAKWATER_TEST_ASSETS/);
    assert.doesNotMatch(out, /model file not found/);
  } finally {
    await rm(empty, { recursive: true, force: true });
  }
});

test('a test process that used sharedTestRedis leaves no redis-server behind', { timeout: 30_000 }, async () => {
  const helper = pathToFileURL(join(REPO_ROOT, 'dist/test/helpers/redis.js')).href;
  // The child neither stops the server nor waits for anything: its exit alone must end it.
  const r = await node(['--input-type=module', '-e', `const { sharedTestRedis } = await import(${JSON.stringify(helper)}); console.log(await sharedTestRedis());`]);
  assert.equal(r.code, 0, r.stderr);
  const port = Number(new URL(r.stdout.trim()).port);
  assert.ok(port > 0 && port !== 6379, `a private port, not the machine's Redis: ${r.stdout}`);
  let answering = true;
  for (let i = 0; i < 50 && answering; i++) {
    answering = await ping(port);
    if (answering) await sleep(100);
  }
  assert.equal(answering, false, `the redis-server on ${port} is gone once its test process has exited`);
});
