/**
 * The store contract, part two: records, their revisions and compare-and-set, and records with a
 * TTL. See store-contract.ts.
 */
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { counter, counts } from './store-contract-counters.js';
import type { ContractTest } from './store-contract.js';

export function recordContract(test: ContractTest): void {
  describe('records', () => {
    test('round-trip JSON values', async ({ store, scope }) => {
      const values: unknown[] = [{ routes: [{ version: '2', weight: 0.25 }], paused: false, note: null }, 'text', 42, true, [1, 'two', { three: 3 }], null];
      for (const [i, v] of values.entries()) await store.set(scope, `r${i}`, v);
      for (const [i, v] of values.entries()) assert.deepEqual(await store.get(scope, `r${i}`), v);
      await store.set(scope, 'r0', { replaced: true });
      assert.deepEqual(await store.get(scope, 'r0'), { replaced: true });
    });

    test('stores what JSON keeps: a copy, without undefined fields, dates as strings', async ({ store, scope }) => {
      const original = { list: [1, 2], gone: undefined, at: new Date(0) };
      await store.set(scope, 'r', original);
      original.list.push(3);
      const got = await store.get(scope, 'r');
      assert.deepEqual(got, { list: [1, 2], at: '1970-01-01T00:00:00.000Z' });
      (got as { list: number[] }).list.push(4);
      assert.deepEqual(await store.get(scope, 'r'), { list: [1, 2], at: '1970-01-01T00:00:00.000Z' });
    });

    test('missing is undefined; delete removes; deleting a missing record is harmless', async ({ store, scope }) => {
      assert.equal(await store.get(scope, 'missing'), undefined);
      await store.set(scope, 'r', { a: 1 });
      await store.delete(scope, 'r');
      assert.equal(await store.get(scope, 'r'), undefined);
      await store.delete(scope, 'r');
      await store.set(scope, 'r', 'back');
      assert.equal(await store.get(scope, 'r'), 'back');
      assert.equal(await store.get(`${scope}-other`, 'r'), undefined, 'records are per scope');
    });

    test('a value JSON cannot represent is refused with TypeError', async ({ store, scope }) => {
      await assert.rejects(store.set(scope, 'r', undefined), TypeError);
      await assert.rejects(store.set(scope, 'r', () => 1), TypeError);
      await assert.rejects(store.set(scope, 'r', 1n), TypeError);
      assert.equal(await store.get(scope, 'r'), undefined);
    });

    test('records(scope) returns every record of the scope and nothing of another scope', async ({ store, scope }) => {
      assert.deepEqual(await store.records(scope), new Map(), 'an unused scope has no records');
      await store.set(scope, 'alice', { kinds: ['tracking'] });
      await store.set(scope, 'bob', ['experiments']);
      await store.set(scope, 'odd key: *?[x]\\{y}', 7);
      await store.set(`${scope}-other`, 'carol', 'elsewhere');
      await store.set(`${scope}*`, 'dave', 'a scope that is a glob of this one');
      await store.set(scope, 'gone', 1);
      await store.delete(scope, 'gone');
      assert.deepEqual(
        await store.records(scope),
        new Map<string, unknown>([['alice', { kinds: ['tracking'] }], ['bob', ['experiments']], ['odd key: *?[x]\\{y}', 7]]),
      );
      const got = await store.records(scope);
      (got.get('alice') as { kinds: string[] }).kinds.push('changed');
      assert.deepEqual(await store.get(scope, 'alice'), { kinds: ['tracking'] }, 'a copy, like get');
      assert.deepEqual(await store.records(`${scope}*`), new Map([['dave', 'a scope that is a glob of this one']]), 'glob characters in a scope are literal');
    });

    test('records(scope) returns all of 1,234 records (more than one batch)', async ({ store, scope }) => {
      const n = 1234;
      // 100 writes in flight at a time: a burst of 1,234 could outlast a short command timeout on a loaded machine.
      for (let from = 0; from < n; from += 100) {
        await Promise.all(Array.from({ length: Math.min(100, n - from) }, (_, k) => store.set(scope, `subject-${from + k}`, { i: from + k })));
      }
      const got = await store.records(scope);
      assert.equal(got.size, n);
      for (let i = 0; i < n; i++) assert.deepEqual(got.get(`subject-${i}`), { i });
    });

    test('a counter, a lease set, bucket counters and a record may share a name', async ({ store, scope, windowMs, ttlMs }) => {
      await store.set(scope, 'same', { record: true });
      assert.equal((await store.charge(scope, [counter('same', 5, windowMs)], 2)).allowed, true);
      assert.equal((await store.acquire(scope, 'same', 'id', 1, ttlMs)).granted, true);
      await store.add(scope, 'same', { n: 1 }, ttlMs);
      assert.deepEqual(await store.get(scope, 'same'), { record: true });
      assert.deepEqual(counts(await store.charge(scope, [counter('same', 5, windowMs)], 1)), [3]);
      assert.deepEqual(await store.sum(scope, ['same']), { n: 1 });
      assert.deepEqual(await store.records(scope), new Map([['same', { record: true }]]));
    });
  });

  describe('revisions and compare-and-set', () => {
    test('read gives a record with its revision; an absent one is undefined; get still gives the value alone', async ({ store, scope }) => {
      assert.equal(await store.read(scope, 'routes'), undefined);
      await store.set(scope, 'routes', { v: 1 });
      assert.deepEqual(await store.read(scope, 'routes'), { value: { v: 1 }, revision: 1 });
      assert.deepEqual(await store.get(scope, 'routes'), { v: 1 });
      const got = await store.read(scope, 'routes');
      (got?.value as { v: number }).v = 2;
      assert.deepEqual(await store.get(scope, 'routes'), { v: 1 }, 'a copy');
    });

    test('every write takes the next revision of the scope: across keys, and across delete and re-create (no ABA)', async ({ store, scope }) => {
      const revision = async (key: string) => (await store.read(scope, key))?.revision;
      await store.set(scope, 'a', 'a1');
      await store.set(scope, 'b', 'b1');
      await store.set(scope, 'a', 'a2');
      assert.deepEqual([await revision('a'), await revision('b')], [3, 2]);
      assert.deepEqual(await store.compareAndSet(scope, 'a', 3, 'a3'), { ok: true, revision: 4 });
      await store.delete(scope, 'a');
      assert.equal(await revision('a'), undefined);
      await store.delete(scope, 'a');
      await store.set(scope, 'a', 'a4');
      assert.equal(await revision('a'), 6, 'the delete took revision 5; deleting the absent record took none');
      assert.deepEqual(await store.compareAndSet(scope, 'a', 4, 'stale'), { ok: false, revision: 6 }, 'a revision read before the delete never matches again');
      await store.set(`${scope}-other`, 'a', 'x');
      assert.equal((await store.read(`${scope}-other`, 'a'))?.revision, 1, 'each scope has its own sequence');
    });

    test('compareAndSet with expected revision 0 creates only if absent', async ({ store, scope }) => {
      assert.deepEqual(await store.compareAndSet(scope, 'k', 0, 'first'), { ok: true, revision: 1 });
      assert.deepEqual(await store.compareAndSet(scope, 'k', 0, 'second'), { ok: false, revision: 1 });
      assert.equal(await store.get(scope, 'k'), 'first');
    });

    test('compareAndSet at a revision that moved fails, reports the current one and changes nothing', async ({ store, scope }) => {
      await store.set(scope, 'k', 'v1');
      await store.set(scope, 'k', 'v2');
      assert.deepEqual(await store.compareAndSet(scope, 'k', 1, 'lost update'), { ok: false, revision: 2 });
      assert.deepEqual(await store.compareAndSet(scope, 'k', 3, 'from the future'), { ok: false, revision: 2 });
      assert.deepEqual(await store.read(scope, 'k'), { value: 'v2', revision: 2 });
    });

    test('10 concurrent compareAndSets at one revision from two clients: exactly one succeeds, the others see its revision', async ({ store, peer, scope }) => {
      await store.set(scope, 'routes', { v: 'start' });
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? store : peer).compareAndSet(scope, 'routes', 1, { v: i })));
      const won = results.flatMap((r, i) => (r.ok ? [i] : []));
      assert.equal(won.length, 1, JSON.stringify(results));
      const { revision } = results[won[0]];
      assert.ok(results.every((r) => r.revision === revision), 'every loser was told the winner\'s revision');
      assert.deepEqual(await peer.read(scope, 'routes'), { value: { v: won[0] }, revision });
      const creates = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? peer : store).compareAndSet(scope, 'new', 0, i)));
      assert.equal(creates.filter((r) => r.ok).length, 1, 'one create-if-absent wins');
    });

    test('compareAndSet with undefined deletes at the expected revision only, and answers revision 0', async ({ store, scope }) => {
      await store.set(scope, 'k', 'v');
      assert.deepEqual(await store.compareAndSet(scope, 'k', 5, undefined), { ok: false, revision: 1 });
      assert.equal(await store.get(scope, 'k'), 'v');
      assert.deepEqual(await store.compareAndSet(scope, 'k', 1, undefined), { ok: true, revision: 0 });
      assert.equal(await store.get(scope, 'k'), undefined);
      assert.equal(await store.read(scope, 'k'), undefined);
      assert.deepEqual(await store.records(scope), new Map());
      assert.deepEqual(await store.compareAndSet(scope, 'k', 1, undefined), { ok: false, revision: 0 }, 'already gone');
      assert.deepEqual(await store.compareAndSet(scope, 'k', 0, undefined), { ok: true, revision: 0 }, 'absent, as expected');
      assert.deepEqual(await store.compareAndSet(scope, 'k', 0, 'back'), { ok: true, revision: 3 });
    });

    test('a record written with ttlMs is gone after it from get, read, records and compareAndSet; a write without ttlMs keeps it', async ({ store, scope, ttlMs, pass }) => {
      const ttl = 2 * ttlMs;
      await store.set(scope, 'short', { a: 1 }, { ttlMs: ttl });
      assert.deepEqual(await store.compareAndSet(scope, 'created', 0, 'c', { ttlMs: ttl }), { ok: true, revision: 2 });
      await store.set(scope, 'kept', 'k1', { ttlMs: ttl });
      await store.set(scope, 'kept', 'k2');
      await store.set(scope, 'forever', 'f');
      await pass(ttl / 2);
      assert.deepEqual(await store.read(scope, 'short'), { value: { a: 1 }, revision: 1 }, 'still there half-way');
      await pass(ttl / 2 + 30);
      assert.equal(await store.get(scope, 'short'), undefined);
      assert.equal(await store.read(scope, 'short'), undefined);
      assert.equal(await store.read(scope, 'created'), undefined);
      assert.deepEqual(await store.records(scope), new Map([['kept', 'k2'], ['forever', 'f']]));
      assert.deepEqual(await store.compareAndSet(scope, 'created', 0, 'again'), { ok: true, revision: 6 }, 'an expired record is absent');
    });

    test('refuses a bad expected revision or ttlMs (RangeError) and a value JSON cannot represent (TypeError), writing nothing', async ({ store, scope }) => {
      for (const expected of [-1, 1.5, Number.NaN, Infinity]) await assert.rejects(store.compareAndSet(scope, 'k', expected, 'v'), RangeError, `expected ${expected}`);
      for (const ttlMs of [0, -5, 2.5, Number.NaN]) {
        await assert.rejects(store.set(scope, 'k', 'v', { ttlMs }), { name: 'RangeError', message: `ttlMs must be a positive integer, got ${ttlMs}` });
        await assert.rejects(store.compareAndSet(scope, 'k', 0, 'v', { ttlMs }), RangeError);
      }
      await assert.rejects(store.compareAndSet(scope, 'k', 0, () => 1), TypeError);
      await assert.rejects(store.read('', 'k'), RangeError);
      await assert.rejects(store.compareAndSet('', 'k', 0, 'v'), RangeError);
      assert.equal(await store.read(scope, 'k'), undefined);
      assert.deepEqual(await store.compareAndSet(scope, 'k', 0, 'v'), { ok: true, revision: 1 }, 'the refused calls took no revision');
    });
  });
}
