/**
 * The store contract, part four: bucket counters that several replicas add to and that expire as a
 * whole (drift windows, canary figures). See store-contract.ts.
 */
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import type { ContractTest } from './store-contract.js';

export function bucketContract(test: ContractTest): void {
  describe('bucket counters', () => {
    test('add increments each bucket; sum adds them bucket by bucket over keys; a missing key adds nothing', async ({ store, scope, windowMs }) => {
      await store.add(scope, 'w1', { ok: 3, error: 1 }, windowMs);
      await store.add(scope, 'w1', { ok: 2, slow: 4 }, windowMs);
      // Parsed, not written as a literal: a literal __proto__ would set the prototype, not a bucket.
      await store.add(scope, 'w2', JSON.parse('{"ok": 10, "__proto__": 2, "a b:{c}": 1}') as Record<string, number>, windowMs);
      await store.add(scope, 'w3', { ok: -2, zero: 0 }, windowMs);
      await store.add(`${scope}-other`, 'w1', { ok: 100 }, windowMs);
      assert.deepEqual(await store.sum(scope, ['w1']), { ok: 5, error: 1, slow: 4 });
      assert.deepEqual(await store.sum(scope, ['w1', 'w2', 'missing']), JSON.parse('{"ok": 15, "error": 1, "slow": 4, "__proto__": 2, "a b:{c}": 1}'));
      assert.deepEqual(await store.sum(scope, ['w3']), { ok: -2, zero: 0 }, 'negative and zero amounts are amounts');
      assert.deepEqual(await store.sum(scope, ['missing']), {});
      assert.deepEqual(await store.sum(scope, []), {});
      assert.deepEqual(await store.sum(`${scope}-other`, ['w1']), { ok: 100 }, 'keys are per scope');
    });

    test('add resolves to the totals of the buckets it added to: an exact counter shared by clients', async ({ store, peer, scope, windowMs }) => {
      assert.deepEqual(await store.add(scope, 'ix', { n: 5 }, windowMs), { n: 5 });
      assert.deepEqual(await peer.add(scope, 'ix', { n: 3, other: 1 }, windowMs), { n: 8, other: 1 });
      assert.deepEqual(await store.add(scope, 'ix', { n: 0 }, windowMs), { n: 8 }, 'adding 0 reads the total');
      // 50 adds at once from two clients: every total from 9 to 58 handed out exactly once.
      const totals = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? store : peer).add(scope, 'ix', { n: 1 }, windowMs)));
      assert.deepEqual(totals.map((t) => t.n).sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => 9 + i));
      assert.deepEqual(await store.add(scope, 'ix', {}, windowMs), {}, 'no bucket, no totals');
    });

    test('two clients adding at once: the sums are exact', async ({ store, peer, scope, windowMs }) => {
      await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? store : peer).add(scope, `w${i % 3}`, { requests: 1, errors: i % 10 === 0 ? 1 : 0 }, windowMs)));
      assert.deepEqual(await peer.sum(scope, ['w0', 'w1', 'w2']), { requests: 100, errors: 10 });
      assert.deepEqual(await store.sum(scope, ['w0']), { requests: 34, errors: 4 });
    });

    test('a key expires ttlMs after its last add, all its buckets together; then it starts again from zero', async ({ store, scope, ttlMs, pass }) => {
      const ttl = 2 * ttlMs;
      await store.add(scope, 'renewed', { a: 1 }, ttl);
      await store.add(scope, 'once', { a: 10 }, ttl);
      await pass(ttl / 2);
      await store.add(scope, 'renewed', { b: 1 }, ttl);
      await pass(ttl / 2 + 30);
      assert.deepEqual(await store.sum(scope, ['renewed', 'once']), { a: 1, b: 1 }, 'once expired; renewed kept every bucket');
      await pass(ttl / 2);
      assert.deepEqual(await store.sum(scope, ['renewed']), {});
      await store.add(scope, 'renewed', { a: 1 }, ttl);
      assert.deepEqual(await store.sum(scope, ['renewed']), { a: 1 });
    });

    test('refuses amounts that are not integers and a ttlMs that is not a positive integer, with the same RangeError on every store', async ({ store, scope, windowMs }) => {
      for (const n of [1.5, Number.NaN, Infinity, 2 ** 53]) {
        await assert.rejects(store.add(scope, 'w', { ok: 1, bad: n }, windowMs), { name: 'RangeError', message: `bucket bad of w must be an integer, got ${n}` });
      }
      await assert.rejects(store.add(scope, 'w', { ok: 1 }, 0), { name: 'RangeError', message: 'ttlMs must be a positive integer, got 0' });
      await assert.rejects(store.add(scope, 'w', { ok: 1 }, 1.5), RangeError);
      await assert.rejects(store.add('', 'w', { ok: 1 }, windowMs), RangeError);
      await assert.rejects(store.sum('', ['w']), RangeError);
      assert.deepEqual(await store.sum(scope, ['w']), {}, 'nothing was added by the refused calls');
    });
  });
}
