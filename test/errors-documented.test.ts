/** Every code in the error catalogue is documented in docs/errors.md with its status, and vice versa. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ERRORS, faultOf, type ErrorCode } from '../gateway/errors.js';
import { REPO_ROOT } from './helpers/gateway.js';

const DOC = 'docs/errors.md';
const page = readFileSync(join(REPO_ROOT, DOC), 'utf8');
/** Rows of the catalogue table: | `CODE` | status | meaning | */
const documented = new Map([...page.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]));

test('every catalogued error code is in docs/errors.md with its status', () => {
  const wrong = Object.entries(ERRORS)
    .filter(([code, spec]) => documented.get(code) !== spec.status)
    .map(([code, spec]) => `${code} ${spec.status} (${DOC} has ${documented.get(code) ?? 'no row'})`);
  assert.deepEqual(wrong, [], `add or fix these rows of ${DOC}'s table, as | \`CODE\` | status | meaning |`);
});

test('docs/errors.md documents no code that the catalogue lacks', () => {
  const unknown = [...documented.keys()].filter((code) => !(code in ERRORS));
  assert.deepEqual(unknown, [], `in ${DOC} but not in gateway/errors.ts`);
});

test('no client mistake is answered with a 5xx', () => {
  const clientCodes = Object.entries(ERRORS).filter(([code]) => !/^(BACKEND_|OVERLOADED|MODEL_NOT_READY|MODEL_LOAD_FAILED|MODEL_KILLED|SHUTTING_DOWN|QUOTA_STORE_UNAVAILABLE|STATE_STORE_UNAVAILABLE|GATEWAY_NOT_READY|GUARD_UNAVAILABLE|AUDIT_UNAVAILABLE|INTERNAL)/.test(code));
  for (const [code, spec] of clientCodes) assert.ok(spec.status >= 400 && spec.status < 500, `${code} is ${spec.status}`);
});

test('whose fault each code is: 4xx the client\'s, a backend\'s failures the version\'s, the rest the gateway\'s', () => {
  for (const [code, spec] of Object.entries(ERRORS) as [ErrorCode, { status: number }][]) {
    const expected = spec.status < 500 ? 'client' : /^(BACKEND_|OVERLOADED|MODEL_NOT_READY|MODEL_LOAD_FAILED)/.test(code) ? 'backend' : 'gateway';
    assert.equal(faultOf(code), expected, code);
  }
});
