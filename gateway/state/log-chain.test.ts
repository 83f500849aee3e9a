import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { chainHash, checkLogRead, GENESIS, logEntryJson, MAX_LOG_READ, verifyLog } from './log-chain.js';
import type { LogEntry } from './store.js';

/** A chain built by hand, as a store would, from `at` = 1000, 1001, … */
function chain(values: readonly unknown[]): LogEntry[] {
  const out: LogEntry[] = [];
  let prev = GENESIS;
  for (const [i, entry] of values.entries()) {
    const seq = i + 1;
    const at = 1000 + i;
    const hash = chainHash(prev, seq, at, JSON.stringify(entry));
    out.push({ seq, at, prev, hash, entry });
    prev = hash;
  }
  return out;
}

test('the hash is lowercase hex SHA-256 of prev, seq, at and the JSON text, joined by newlines', () => {
  const expected = createHash('sha256').update(`${GENESIS}\n1\n1700000000123\n{"a":"é"}`).digest('hex');
  assert.equal(chainHash(GENESIS, 1, 1_700_000_000_123, '{"a":"é"}'), expected);
  assert.match(expected, /^[0-9a-f]{64}$/);
  assert.equal(GENESIS, '0'.repeat(64));
});

test('verifyLog accepts an intact chain, an empty run, and a run from the middle given its predecessor', () => {
  const log = chain([{ a: 1 }, 'b', [3], null]);
  assert.equal(verifyLog(log), undefined);
  assert.equal(verifyLog([]), undefined);
  assert.equal(verifyLog(log.slice(2), log[1].hash), undefined);
});

test('verifyLog reports a chain that does not start at GENESIS, a duplicate seq, a malformed time or an entry that is not JSON', () => {
  const log = chain(['a', 'b', 'c']);
  assert.equal(verifyLog([{ ...log[0], prev: log[2].hash }]), 1);
  assert.equal(verifyLog([log[0], log[1], log[1], log[2]]), 2);
  assert.equal(verifyLog([log[0], { ...log[1], at: 1000.5 }]), 2);
  assert.equal(verifyLog([log[0], { ...log[1], entry: 1n }]), 2);
});

test('an entry is JSON of at most 8 KiB; a read is capped at 1000 entries', () => {
  assert.equal(logEntryJson({ a: [1] }), '{"a":[1]}');
  assert.throws(() => logEntryJson('x'.repeat(8191)), /at most 8192 bytes of JSON, got 8193/);
  assert.throws(() => logEntryJson(undefined), TypeError);
  assert.equal(checkLogRead(1, 10), 10);
  assert.equal(checkLogRead(1, 10_000), MAX_LOG_READ);
  assert.throws(() => checkLogRead(-1, 1), /fromSeq must be a non-negative integer, got -1/);
});
