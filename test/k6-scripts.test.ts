/**
 * The k6 load scripts are type-checked against @types/k6 (k6 itself cannot be installed here), so
 * they stay runnable where k6 is: a script that misuses the k6 API fails this test.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from './helpers/gateway.js';

const TSC = join(REPO_ROOT, 'node_modules/typescript/bin/tsc');

function typecheck(project: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [TSC, '-p', project], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('the k6 scripts type-check against @types/k6', () => {
  const r = typecheck(join(REPO_ROOT, 'loadtests/k6/tsconfig.json'));
  assert.equal(r.status, 0, r.out);
});

test('the type-check rejects a script that misuses the k6 API (control)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bw-k6-'));
  writeFileSync(join(dir, 'bad.ts'), "import http from 'k6/http';\nexport default function () { http.post(42); }\n");
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'ES2020', module: 'ES2020', moduleResolution: 'bundler', strict: true, noEmit: true, skipLibCheck: true, types: ['k6'], typeRoots: [join(REPO_ROOT, 'node_modules/@types')] },
    include: ['*.ts'],
  }));
  const r = typecheck(join(dir, 'tsconfig.json'));
  assert.notEqual(r.status, 0, 'a wrong call must not type-check');
  assert.match(r.out, /bad\.ts/);
});
