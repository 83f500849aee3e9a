/**
 * What RedisStore keeps in Redis, as Redis sees it: one `{scope}` hash tag per scope and one key
 * per kind, TTLs on the keys that expire, nothing left naming a deleted record, revisions for
 * records written before revisions existed, and a log whose entries cannot be edited unseen.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { verifyLog } from '../gateway/state/log-chain.js';
import type { RedisStore } from '../gateway/state/redis-store.js';
import { StoreUnavailableError } from '../gateway/state/store.js';
import { sharedTestRedis } from './helpers/redis.js';
import { sharedRedisStores } from './helpers/shared-redis-store.js';

const { prefix, replica } = sharedRedisStores(1000);

interface Ctx {
  readonly store: RedisStore;
  /** A plain client, to look at (and tamper with) the keys directly. */
  readonly raw: Redis;
  readonly scope: string;
  /** The Redis key of `key` of `kind` in this scope. */
  key(kind: string, key?: string): string;
}

async function withReplica(body: (ctx: Ctx) => Promise<void>): Promise<void> {
  const store = await replica();
  const raw = new Redis(await sharedTestRedis());
  const scope = `scope-${randomUUID().slice(0, 8)}`;
  try {
    await body({ store, raw, scope, key: (kind, key = '') => `${prefix}{${scope}}:${kind}:${key}` });
  } finally {
    await store.close();
    raw.disconnect();
  }
}

describe('RedisStore keys', () => {
  it('keeps all keys of one scope under its {scope} hash tag, one key per kind; channels carry the prefix', () =>
    withReplica(async ({ store, raw, scope, key }) => {
      await store.charge(scope, [{ key: 'sub:alice:rpm', limit: 5, windowMs: 60_000 }, { key: 'tenant:rpm', limit: 50, windowMs: 3_600_000 }], 1);
      await store.acquire(scope, 'concurrency', 'req-1', 2, 30_000);
      await store.set(scope, 'routes', { v: 2 });
      await store.set(scope, 'gone', 'erased');
      await store.delete(scope, 'gone');
      await store.append(scope, { action: 'test' });
      await store.add(scope, 'figures', { ok: 1 }, 60_000);
      const keys = (await raw.keys(`${prefix}{${scope}}*`)).sort();
      const expected = [['b', 'figures'], ['c', 'sub:alice:rpm'], ['c', 'tenant:rpm'], ['h'], ['j'], ['l', 'concurrency'], ['r', 'routes'], ['s'], ['v', 'routes']];
      assert.deepEqual(keys, expected.map(([kind, k]) => key(kind, k)), 'a deleted record leaves no key naming it');
      for (const k of keys) assert.equal(/^[^{]*\{([^}]*)\}/.exec(k)?.[1], scope, `${k}: the hash tag is the scope`);
      const rpmTtl = await raw.pttl(key('c', 'sub:alice:rpm'));
      assert.ok(rpmTtl > 59_000 && rpmTtl <= 60_000, `a counter expires with its window (${rpmTtl})`);
      assert.equal(await raw.get(key('c', 'tenant:rpm')), '1');
      const leaseTtl = await raw.pttl(key('l', 'concurrency'));
      assert.ok(leaseTtl > 29_000 && leaseTtl <= 30_000, `a lease set expires with its longest lease (${leaseTtl})`);
      assert.equal(await raw.pttl(key('r', 'routes')), -1, 'records do not expire');
      assert.equal(await raw.get(key('r', 'routes')), '{"v":2}');
      assert.equal(await raw.get(key('v', 'routes')), '1');
      assert.equal(await raw.get(key('s')), '3', 'the scope sequence counted the set, the set and the delete');
      assert.equal(await raw.pttl(key('s')), -1, 'the sequence never expires, so no revision is reused');
      const figuresTtl = await raw.pttl(key('b', 'figures'));
      assert.ok(figuresTtl > 59_000 && figuresTtl <= 60_000, `bucket counters expire with their ttlMs (${figuresTtl})`);

      const sub = new Redis(await sharedTestRedis());
      try {
        const got: string[] = [];
        sub.on('message', (channel: string, m: string) => void got.push(`${channel} ${m}`));
        await sub.subscribe(`${prefix}news`);
        await store.publish('news', 'hello');
        for (let i = 0; i < 200 && got.length === 0; i++) await sleep(10);
        assert.deepEqual(got, [`${prefix}news hello`]);
      } finally {
        sub.disconnect();
      }
    }));

  it('a record and its revision expire together, at the same instant; a write without ttlMs makes both permanent', () =>
    withReplica(async ({ store, raw, scope, key }) => {
      const expiry = async (k: string) => Number(await raw.call('PEXPIRETIME', k));
      await store.set(scope, 'session', { a: 1 }, { ttlMs: 30_000 });
      assert.ok((await expiry(key('r', 'session'))) > Date.now() + 29_000);
      assert.equal(await expiry(key('v', 'session')), await expiry(key('r', 'session')));
      await store.compareAndSet(scope, 'session', 1, { a: 2 });
      assert.deepEqual([await raw.pttl(key('r', 'session')), await raw.pttl(key('v', 'session'))], [-1, -1]);
    }));

  it('a record written before revisions existed gets one when first read or compared, so it is never taken for absent', () =>
    withReplica(async ({ store, raw, scope, key }) => {
      await raw.set(key('r', 'compared'), '{"v":"legacy"}');
      await raw.set(key('r', 'read'), '{"v":"legacy"}', 'PX', 60_000);
      assert.deepEqual(await store.compareAndSet(scope, 'compared', 0, { v: 'new' }), { ok: false, revision: 1 }, 'not absent');
      assert.deepEqual(await store.read(scope, 'read'), { value: { v: 'legacy' }, revision: 2 });
      assert.equal(await raw.call('PEXPIRETIME', key('v', 'read')), await raw.call('PEXPIRETIME', key('r', 'read')), 'its revision expires with it');
      assert.deepEqual(await store.compareAndSet(scope, 'compared', 1, { v: 'new' }), { ok: true, revision: 3 });
      assert.deepEqual(await store.read(scope, 'compared'), { value: { v: 'new' }, revision: 3 });
    }));

  it('a log entry edited or removed inside Redis is reported by verifyLog; an unreadable one is a store failure', () =>
    withReplica(async ({ store, raw, scope, key }) => {
      for (let i = 1; i <= 5; i++) await store.append(scope, { i, note: 'as written' });
      const entries = key('j');
      assert.equal(verifyLog(await store.readLog(scope, 1, 10)), undefined);
      const third = JSON.parse((await raw.hget(entries, '3')) ?? 'null') as { entry: { note: string } };
      third.entry.note = 'forged';
      await raw.hset(entries, '3', JSON.stringify(third));
      assert.equal(verifyLog(await store.readLog(scope, 1, 10)), 3);
      await raw.hdel(entries, '2');
      const left = await store.readLog(scope, 1, 10);
      assert.deepEqual(left.map((e) => e.seq), [1, 3, 4, 5], 'a removed entry is left out, not papered over');
      assert.equal(verifyLog(left), 3);
      await raw.hset(entries, '4', 'not json');
      await assert.rejects(store.readLog(scope, 1, 10), StoreUnavailableError);
    }));
});
