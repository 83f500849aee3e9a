import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { errorCode, GUARD_LOG_EVERY_MS, guardWarnings } from './guard-log.js';

test('a key\'s line is written at most once a minute; other keys are not held back', () => {
  const lines: string[] = [];
  const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
  let t = 1000;
  const warn = guardWarnings(log, () => t);
  warn('iris\0ood', { code: 'X' }, 'failed');
  warn('iris\0ood', { code: 'X' }, 'failed');
  warn('iris\0contract', { code: 'Y' }, 'failed');
  assert.equal(lines.length, 2);
  t += GUARD_LOG_EVERY_MS;
  warn('iris\0ood', { code: 'X' }, 'failed');
  assert.equal(lines.length, 3);
});

test('an error is named by its code, else its class: never its message', () => {
  assert.equal(errorCode(Object.assign(new Error('value 42 is bad'), { code: 'E_RANGE' })), 'E_RANGE');
  assert.equal(errorCode(new TypeError('value 42 is bad')), 'TypeError');
});
