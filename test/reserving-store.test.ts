/**
 * Quota reserved in blocks: most charges are served from the replica's block, yet replicas sharing
 * one Redis never admit more than a limit between them, and as a limit nears, blocks shrink to
 * exact per-request reservations.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { RedisStore } from '../gateway/state/redis-store.js';
import { ReservingStore } from '../gateway/state/reserving-store.js';
import { RedisServer } from './helpers/redis.js';

const log = pino({ level: 'silent' });
let redis: RedisServer | undefined;
const stores: ReservingStore[] = [];

after(async () => {
  await Promise.allSettled(stores.map((s) => s.close()));
  await redis?.stop();
});

async function replica(): Promise<{ store: ReservingStore; reserves: () => number }> {
  redis ??= await RedisServer.start();
  const inner = await RedisStore.connect({ redisUrl: redis.url, keyPrefix: 'rs:', commandTimeoutMs: 1000, connectTimeoutMs: 1000, quotaBlocks: true, reconcileMs: 5000 }, log);
  let calls = 0;
  const reserve = inner.reserve.bind(inner);
  inner.reserve = (...args) => {
    calls++;
    return reserve(...args);
  };
  const store = new ReservingStore(inner);
  stores.push(store);
  return { store, reserves: () => calls };
}

test('far from the limit, most charges never go to Redis', async () => {
  const { store, reserves } = await replica();
  const counter = [{ key: 'far', limit: 1_000_000_000, windowMs: 60_000 }];
  for (let i = 0; i < 1000; i++) assert.equal((await store.charge('t1', counter, 1)).allowed, true);
  assert.ok(reserves() <= Math.ceil(1000 / 64) + 1, `${reserves()} reservations for 1000 charges`);
});

test('two replicas under 2,000 concurrent charges admit exactly the limit of 500', async () => {
  const a = await replica();
  const b = await replica();
  const counter = [{ key: 'exact', limit: 500, windowMs: 60_000 }];
  const results = await Promise.all(Array.from({ length: 2000 }, (_, i) => (i % 2 === 0 ? a : b).store.charge('t2', counter, 1)));
  assert.equal(results.filter((r) => r.allowed).length, 500);
});

test('near the limit reservations are exact: a batch that fits the room left is admitted', async () => {
  const a = await replica();
  const b = await replica();
  const counter = [{ key: 'rows', limit: 25, windowMs: 60_000 }];
  assert.equal((await a.store.charge('t3', counter, 10)).allowed, true);
  assert.equal((await b.store.charge('t3', counter, 10)).allowed, true);
  assert.equal((await a.store.charge('t3', counter, 10)).allowed, false, '30 rows would pass 25');
  assert.equal((await b.store.charge('t3', counter, 5)).allowed, true, 'the last 5 rows are still there');
  assert.equal((await a.store.charge('t3', counter, 1)).allowed, false);
});

test('a block does not outlive its window', async () => {
  const { store } = await replica();
  const counter = [{ key: 'short', limit: 1000, windowMs: 300 }];
  assert.equal((await store.charge('t4', counter, 1)).allowed, true);
  await new Promise((r) => setTimeout(r, 400));
  const r = await store.charge('t4', counter, 1);
  assert.equal(r.allowed, true);
  assert.ok(r.counters[0].resetMs > 200, 'a fresh window, not the old block');
});

test('when Redis stalls, requests waiting on a reservation fail with it instead of queueing', async () => {
  const server = await RedisServer.start();
  const inner = await RedisStore.connect({ redisUrl: server.url, keyPrefix: 'rs:', commandTimeoutMs: 100, connectTimeoutMs: 1000, quotaBlocks: true, reconcileMs: 5000 }, log);
  const store = new ReservingStore(inner);
  try {
    const counter = [{ key: 'stall', limit: 1000, windowMs: 60_000 }];
    server.pause();
    const started = performance.now();
    const outcomes = await Promise.allSettled(Array.from({ length: 20 }, () => store.charge('t5', counter, 1)));
    const ms = performance.now() - started;
    server.resume();
    assert.ok(outcomes.every((o) => o.status === 'rejected'), 'every charge reports the store as unavailable');
    assert.ok(ms < 600, `20 waiting charges answered within one timeout, not twenty (${Math.round(ms)} ms)`);
  } finally {
    server.resume();
    await store.close();
    await server.stop();
  }
});
