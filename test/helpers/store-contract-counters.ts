/**
 * The store contract, part one: windowed counters (charge, forget) and leases. See store-contract.ts.
 */
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import type { ChargeResult, CounterCharge } from '../../gateway/state/store.js';
import type { ContractTest } from './store-contract.js';

export const counter = (key: string, limit: number, windowMs: number): CounterCharge => ({ key, limit, windowMs });
export const counts = (r: ChargeResult): number[] => r.counters.map((c) => c.count);

export function counterContract(test: ContractTest): void {
  describe('charge', () => {
    test('allows exactly the limit under concurrency: 10 concurrent charges of 1 against a limit of 7 allow 7', async ({ store, scope, windowMs }) => {
      const c = [counter('requests', 7, windowMs)];
      const results = await Promise.all(Array.from({ length: 10 }, () => store.charge(scope, c, 1)));
      const allowed = results.filter((r) => r.allowed);
      const refused = results.filter((r) => !r.allowed);
      assert.equal(allowed.length, 7);
      assert.deepEqual(allowed.map((r) => r.counters[0].count).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7], 'each allowed charge saw its own count');
      assert.deepEqual(refused.map((r) => r.counters[0].count), [7, 7, 7], 'a refusal reports the full count');
      const after = await store.charge(scope, c, 1);
      assert.equal(after.allowed, false);
      assert.equal(after.counters[0].count, 7, 'refusals charged nothing');
    });

    test('a refused charge of cost > 1 charges nothing: 5 rows against 3 remaining is refused, then 3 fit', async ({ store, scope, windowMs }) => {
      const c = [counter('rows', 10, windowMs)];
      assert.deepEqual(counts(await store.charge(scope, c, 7)), [7]);
      const refused = await store.charge(scope, c, 5);
      assert.equal(refused.allowed, false);
      assert.deepEqual(counts(refused), [7]);
      const fits = await store.charge(scope, c, 3);
      assert.equal(fits.allowed, true);
      assert.deepEqual(counts(fits), [10]);
      assert.equal((await store.charge(scope, c, 1)).allowed, false);
    });

    test('a cost above the whole limit is refused on a fresh counter and starts nothing', async ({ store, scope, windowMs }) => {
      const c = [counter('rows', 10, windowMs)];
      const r = await store.charge(scope, c, 11);
      assert.equal(r.allowed, false);
      assert.equal(r.counters[0].count, 0);
      assert.ok(r.counters[0].resetMs > 0 && r.counters[0].resetMs <= windowMs, `resetMs ${r.counters[0].resetMs}`);
      assert.deepEqual(counts(await store.charge(scope, c, 10)), [10]);
    });

    test('is all or nothing across counters: with one counter full, neither is charged', async ({ store, scope, windowMs }) => {
      const tight = counter('subject', 1, windowMs);
      const loose = counter('tenant', 5, windowMs);
      const first = await store.charge(scope, [tight, loose], 1);
      assert.equal(first.allowed, true);
      assert.deepEqual(counts(first), [1, 1], 'counts are reported in the order given');
      for (const order of [[tight, loose], [loose, tight]]) {
        const r = await store.charge(scope, order, 1);
        assert.equal(r.allowed, false, 'the full counter refuses the whole charge');
        assert.deepEqual(counts(r), [1, 1]);
      }
      const alone = await store.charge(scope, [loose], 1);
      assert.equal(alone.allowed, true);
      assert.deepEqual(counts(alone), [2], 'the refused charges did not charge the counter with room');
    });

    test('resetMs is positive, at most windowMs, and counts down: windows are fixed from the first charge', async ({ store, scope, windowMs, pass, slackMs }) => {
      const short = counter('short', 100, windowMs);
      const long = counter('long', 100, windowMs * 2);
      const r1 = await store.charge(scope, [short, long], 1);
      for (const [i, w] of [[0, windowMs], [1, windowMs * 2]]) {
        const { resetMs } = r1.counters[i];
        assert.ok(resetMs > 0 && resetMs <= w, `counter ${i}: resetMs ${resetMs} not in (0, ${w}]`);
        assert.ok(resetMs >= w - 50 - slackMs, `counter ${i}: a fresh window has nearly all of it left, got ${resetMs} of ${w}`);
      }
      const elapsed = Math.floor(windowMs / 4);
      await pass(elapsed);
      const r2 = await store.charge(scope, [short, long], 1);
      assert.deepEqual(counts(r2), [2, 2]);
      const reset1 = r1.counters[0].resetMs;
      const reset2 = r2.counters[0].resetMs;
      assert.ok(reset2 > 0 && reset2 <= reset1 - elapsed + slackMs, `a later charge does not extend the window: ${reset1} then ${reset2} after ${elapsed} ms`);
    });

    test('a window resets after windowMs: the counter starts again from zero', async ({ store, scope, windowMs, pass }) => {
      const c = [counter('requests', 2, windowMs)];
      await store.charge(scope, c, 2);
      assert.equal((await store.charge(scope, c, 1)).allowed, false);
      await pass(windowMs + 20);
      const r = await store.charge(scope, c, 1);
      assert.equal(r.allowed, true);
      assert.equal(r.counters[0].count, 1);
      assert.ok(r.counters[0].resetMs > windowMs - 50, `a new window, got resetMs ${r.counters[0].resetMs}`);
    });

    test('scopes and keys are independent', async ({ store, scope, windowMs }) => {
      const c = [counter('requests', 1, windowMs)];
      assert.equal((await store.charge(scope, c, 1)).allowed, true);
      assert.equal((await store.charge(scope, c, 1)).allowed, false);
      assert.equal((await store.charge(`${scope}-other`, c, 1)).allowed, true, 'another scope, same key');
      assert.equal((await store.charge(scope, [counter('other', 1, windowMs)], 1)).allowed, true, 'same scope, another key');
    });

    test('no counters: allowed, nothing reported', async ({ store, scope }) => {
      assert.deepEqual(await store.charge(scope, [], 1), { allowed: true, counters: [] });
    });

    test('rejects what it cannot count with RangeError: bad cost, window or limit, empty scope', async ({ store, scope, windowMs }) => {
      const c = [counter('requests', 10, windowMs)];
      await assert.rejects(store.charge(scope, c, -1), RangeError);
      await assert.rejects(store.charge(scope, c, 1.5), RangeError);
      await assert.rejects(store.charge(scope, [counter('requests', 10, 0)], 1), RangeError);
      await assert.rejects(store.charge(scope, [counter('requests', Infinity, windowMs)], 1), RangeError);
      await assert.rejects(store.charge(scope, [counter('requests', Number.NaN, windowMs)], 1), RangeError);
      await assert.rejects(store.charge('', c, 1), RangeError);
      assert.deepEqual(counts(await store.charge(scope, c, 1)), [1], 'nothing was charged by the rejected calls');
    });
  });

  describe('forget', () => {
    test('deletes the named counters only: they start again from zero; others, leases and records stay', async ({ store, scope, windowMs, ttlMs }) => {
      const mine = counter('sub:alice:m:per-minute', 10, windowMs);
      const theirs = counter('sub:bob:m:per-minute', 10, windowMs);
      await store.charge(scope, [mine, theirs], 4);
      await store.charge(`${scope}-other`, [mine], 2);
      await store.set(scope, mine.key, { record: true });
      await store.acquire(scope, mine.key, 'lease', 1, ttlMs);
      assert.equal(await store.forget(scope, [mine.key, 'sub:alice:never-charged']), 1, 'one of the two existed');
      assert.deepEqual(counts(await store.charge(scope, [mine, theirs], 1)), [1, 5]);
      assert.deepEqual(counts(await store.charge(`${scope}-other`, [mine], 1)), [3], 'the same key in another scope is untouched');
      assert.deepEqual(await store.get(scope, mine.key), { record: true });
      assert.equal((await store.acquire(scope, mine.key, 'another', 1, ttlMs)).granted, false, 'the lease is still held');
      assert.equal(await store.forget(scope, []), 0);
      assert.equal(await store.forget(`${scope}-unused`, ['nothing']), 0);
    });
  });

  describe('leases', () => {
    test('grants at most the limit under concurrency: 8 concurrent acquires against 3 grant 3', async ({ store, scope, ttlMs }) => {
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => store.acquire(scope, 'concurrency', `req-${i}`, 3, ttlMs)));
      const granted = results.filter((r) => r.granted);
      assert.equal(granted.length, 3);
      assert.deepEqual(granted.map((r) => r.held).sort(), [1, 2, 3]);
      assert.deepEqual(results.filter((r) => !r.granted).map((r) => r.held), [3, 3, 3, 3, 3]);
    });

    test('release frees a slot', async ({ store, scope, ttlMs }) => {
      await store.acquire(scope, 'c', 'a', 2, ttlMs);
      await store.acquire(scope, 'c', 'b', 2, ttlMs);
      assert.deepEqual(await store.acquire(scope, 'c', 'x', 2, ttlMs), { granted: false, held: 2 });
      await store.release(scope, 'c', 'a');
      assert.deepEqual(await store.acquire(scope, 'c', 'x', 2, ttlMs), { granted: true, held: 2 });
      assert.deepEqual(await store.acquire(scope, 'c', 'y', 2, ttlMs), { granted: false, held: 2 });
    });

    test('an expired lease frees its slot (a replica died holding it)', async ({ store, scope, ttlMs, pass }) => {
      await store.acquire(scope, 'c', 'dead-1', 2, ttlMs);
      await store.acquire(scope, 'c', 'dead-2', 2, ttlMs);
      assert.equal((await store.acquire(scope, 'c', 'x', 2, ttlMs)).granted, false);
      await pass(ttlMs + 30);
      assert.deepEqual(await store.acquire(scope, 'c', 'x', 2, ttlMs), { granted: true, held: 1 }, 'both expired leases were dropped');
    });

    test('acquiring a held id again renews it: still one slot, granted even when full', async ({ store, scope, ttlMs, pass }) => {
      assert.deepEqual(await store.acquire(scope, 'c', 'a', 2, ttlMs), { granted: true, held: 1 });
      assert.deepEqual(await store.acquire(scope, 'c', 'b', 2, ttlMs), { granted: true, held: 2 });
      await pass(Math.floor(ttlMs / 2));
      assert.deepEqual(await store.acquire(scope, 'c', 'a', 2, ttlMs), { granted: true, held: 2 });
      await pass(Math.floor(ttlMs / 2) + 20);
      // b (never renewed) has expired; a (renewed half-way) has not.
      assert.deepEqual(await store.acquire(scope, 'c', 'x', 3, ttlMs), { granted: true, held: 2 });
    });

    test('rejects a limit or TTL it cannot honour with RangeError', async ({ store, scope, ttlMs }) => {
      await assert.rejects(store.acquire(scope, 'c', 'a', Infinity, ttlMs), RangeError);
      await assert.rejects(store.acquire(scope, 'c', 'a', 1, 0), RangeError);
      await assert.rejects(store.acquire(scope, 'c', 'a', 1, 2.5), RangeError);
      await assert.rejects(store.acquire('', 'c', 'a', 1, ttlMs), RangeError);
      assert.deepEqual(await store.acquire(scope, 'c', 'a', 1, ttlMs), { granted: true, held: 1 });
    });

    test('a limit of 0 grants nothing', async ({ store, scope, ttlMs, windowMs }) => {
      assert.deepEqual(await store.acquire(scope, 'c', 'a', 0, ttlMs), { granted: false, held: 0 });
      const r = await store.charge(scope, [counter('requests', 0, windowMs)], 1);
      assert.deepEqual({ ...r, counters: r.counters.map((c) => ({ count: c.count })) }, { allowed: false, counters: [{ count: 0 }] });
      // The window starts at this charge; a store that reads its clock twice (a reserving store) may
      // answer a millisecond or two short of the whole window, never more than it.
      const reset = r.counters[0]!.resetMs;
      assert.ok(reset <= windowMs && reset >= windowMs - 20, `resetMs ${reset} of a ${windowMs} ms window`);
    });

    test('releasing an unknown id or key is harmless', async ({ store, scope, ttlMs }) => {
      await store.acquire(scope, 'c', 'a', 1, ttlMs);
      await store.release(scope, 'c', 'nobody');
      await store.release(scope, 'never-used', 'nobody');
      await store.release(scope, 'c', 'a');
      await store.release(scope, 'c', 'a');
      assert.deepEqual(await store.acquire(scope, 'c', 'b', 1, ttlMs), { granted: true, held: 1 });
    });

    test('lease keys and scopes are independent', async ({ store, scope, ttlMs }) => {
      assert.equal((await store.acquire(scope, 'c', 'a', 1, ttlMs)).granted, true);
      assert.equal((await store.acquire(scope, 'other', 'b', 1, ttlMs)).granted, true);
      assert.equal((await store.acquire(`${scope}-other`, 'c', 'b', 1, ttlMs)).granted, true);
      assert.equal((await store.acquire(scope, 'c', 'b', 1, ttlMs)).granted, false);
    });
  });
}
