/** Every code in the error catalogue is documented in README.md with its status, and vice versa. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ERRORS } from '../gateway/errors.js';
import { REPO_ROOT } from './helpers/gateway.js';

const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
const documented = new Map([...readme.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]));

test('every catalogued error code is in the README with its status', () => {
  for (const [code, spec] of Object.entries(ERRORS)) {
    assert.equal(documented.get(code), spec.status, `README.md documents ${code} as ${spec.status}`);
  }
});

test('the README documents no code that the catalogue lacks', () => {
  for (const code of documented.keys()) assert.ok(code in ERRORS, `${code} is in README.md but not in gateway/errors.ts`);
});

test('no client mistake is answered with a 5xx', () => {
  const clientCodes = Object.entries(ERRORS).filter(([code]) => !/^(BACKEND_|MODEL_NOT_READY|MODEL_LOAD_FAILED|SHUTTING_DOWN|QUOTA_STORE_UNAVAILABLE|STATE_STORE_UNAVAILABLE|INTERNAL)/.test(code));
  for (const [code, spec] of clientCodes) assert.ok(spec.status >= 400 && spec.status < 500, `${code} is ${spec.status}`);
});
