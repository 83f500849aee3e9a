/**
 * RedisStore against real Redis: the shared contract on 127.0.0.1:6379 (with two clients), and
 * failures on private redis-server children (crash, stall, down at start). What it keeps in Redis:
 * redis-store-keys.test.ts.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino, type Logger } from 'pino';
import { createStore } from '../gateway/state/create-store.js';
import { RedisStore } from '../gateway/state/redis-store.js';
import { ReservingStore } from '../gateway/state/reserving-store.js';
import { StoreUnavailableError, type StateStore } from '../gateway/state/store.js';
import { sharedTestRedis, RedisServer } from './helpers/redis.js';
import { sharedRedisStores, silent } from './helpers/shared-redis-store.js';
import { storeContract } from './helpers/store-contract.js';

const COMMAND_TIMEOUT_MS = 100;
/** The bound the brief sets for a failing call with a 100 ms command timeout. */
const FAIL_WITHIN_MS = 600;

const { prefix: PREFIX, config, replica } = sharedRedisStores(COMMAND_TIMEOUT_MS);

/** A logger that keeps its lines, to check what an operator would see. */
function capturingLogger(): { log: Logger; lines: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { log, lines };
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<number> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await sleep(10);
  }
  return Date.now() - start;
}

/** Every data method, each with fresh arguments. subscribe is not here: it never fails for want of Redis. */
function everyCall(store: StateStore): Record<string, () => Promise<unknown>> {
  const c = [{ key: 'rpm', limit: 10, windowMs: 60_000 }];
  return {
    charge: () => store.charge('acme', c, 1),
    acquire: () => store.acquire('acme', 'conc', randomUUID(), 5, 10_000),
    release: () => store.release('acme', 'conc', 'x'),
    get: () => store.get('acme', 'routes'),
    set: () => store.set('acme', 'routes', { v: 1 }),
    delete: () => store.delete('acme', 'routes'),
    read: () => store.read('acme', 'routes'),
    compareAndSet: () => store.compareAndSet('acme', 'routes', 0, { v: 1 }),
    append: () => store.append('audit', { action: 'test' }),
    readLog: () => store.readLog('audit', 1, 10),
    logHead: () => store.logHead('audit'),
    add: () => store.add('acme', 'figures', { ok: 1 }, 60_000),
    sum: () => store.sum('acme', ['figures']),
    publish: () => store.publish('news', 'm'),
  };
}

/** Calls every method at once; each must reject with StoreUnavailableError. Returns ms per method. */
async function assertAllUnavailable(t: TestContext, store: StateStore, label: string): Promise<Record<string, number>> {
  const timings: Record<string, number> = {};
  await Promise.all(
    Object.entries(everyCall(store)).map(async ([name, call]) => {
      const start = performance.now();
      await assert.rejects(call(), StoreUnavailableError, `${label}: ${name}`);
      timings[name] = Math.round(performance.now() - start);
    }),
  );
  t.diagnostic(`${label}: ms to StoreUnavailableError per method ${JSON.stringify(timings)}`);
  for (const [name, ms] of Object.entries(timings)) assert.ok(ms < FAIL_WITHIN_MS, `${label}: ${name} took ${ms} ms`);
  return timings;
}

function inbox(): { messages: string[]; handler: (m: string) => void; until: (n: number) => Promise<number> } {
  const messages: string[] = [];
  return { messages, handler: (m) => void messages.push(m), until: (n) => until(`${n} message(s)`, () => messages.length >= n, 2_000) };
}

// Two clients: the concurrent-writer tests run across two connections, as across two replicas.
storeContract('RedisStore (127.0.0.1:6379)', async () => ({ store: await replica(), peer: await replica() }));
// The same contract with quota reserved in blocks and handed out locally (the default with Redis).
storeContract('ReservingStore over Redis (127.0.0.1:6379)', async () => ({
  store: new ReservingStore(await replica()),
  peer: new ReservingStore(await replica()),
}));

describe('RedisStore', () => {
  it('refuses a key prefix with braces (it would move the hash tag)', async () => {
    await assert.rejects(RedisStore.connect(config('redis://127.0.0.1:6379', { keyPrefix: 'bw{x}:' }), silent), /keyPrefix/);
  });

  it('after a crash (SIGKILL) every call fails fast with StoreUnavailableError; it recovers by itself when Redis is back', async (t) => {
    const server = await RedisServer.start();
    const { log, lines } = capturingLogger();
    const store = await RedisStore.connect(config(server.url), log);
    try {
      const before = inbox();
      await store.subscribe('kill-switch', before.handler);
      assert.equal((await store.charge('acme', [{ key: 'rpm', limit: 10, windowMs: 60_000 }], 1)).allowed, true);
      assert.equal(store.healthy(), true);

      await server.kill();
      await assertAllUnavailable(t, store, 'just after SIGKILL');
      // The socket's end can be seen (writes refused) an instant before ioredis handles its close.
      const noticedMs = await until('unhealthy', () => !store.healthy(), COMMAND_TIMEOUT_MS);
      t.diagnostic(`healthy() false ${noticedMs} ms after the failed calls`);
      await assertAllUnavailable(t, store, 'while down');
      const during = inbox();
      const subscribeStart = performance.now();
      await store.subscribe('kill-switch', during.handler);
      assert.ok(performance.now() - subscribeStart < FAIL_WITHIN_MS, 'subscribe does not wait for Redis');
      assert.ok(lines.some((l) => l.level === 40 && /lost|failed/.test(l.msg)), 'the outage is logged as a warning');

      await sleep(300);
      await server.start();
      const recoveredMs = await until('healthy again', () => store.healthy());
      t.diagnostic(`recovered ${recoveredMs} ms after redis-server answered again`);
      const r = await store.charge('acme', [{ key: 'rpm', limit: 10, windowMs: 60_000 }], 1);
      assert.deepEqual(r.counters.map((c) => c.count), [1], 'a fresh (empty) server: the script is loaded again and counts from zero');
      await store.publish('kill-switch', 'on');
      await before.until(1);
      await during.until(1);
      assert.ok(lines.some((l) => l.level === 30 && l.msg === 'redis is back'), 'the recovery is logged');
    } finally {
      await store.close();
      await server.stop();
    }
  });

  it('when Redis stalls (SIGSTOP) calls time out at commandTimeoutMs, healthy() turns false, and true again once it answers', async (t) => {
    const server = await RedisServer.start();
    const store = await RedisStore.connect(config(server.url), silent);
    try {
      assert.equal(store.healthy(), true);
      server.pause();
      // Many at once: commands queued behind a running auto-pipeline are bounded too.
      const c = [{ key: 'rpm', limit: 1000, windowMs: 60_000 }];
      const start = performance.now();
      const results = await Promise.allSettled(Array.from({ length: 50 }, () => store.charge('acme', c, 1)));
      const elapsed = Math.round(performance.now() - start);
      t.diagnostic(`50 concurrent charges against a stalled Redis all failed after ${elapsed} ms`);
      for (const r of results) assert.ok(r.status === 'rejected' && r.reason instanceof StoreUnavailableError);
      assert.ok(elapsed >= COMMAND_TIMEOUT_MS - 5 && elapsed < FAIL_WITHIN_MS, `${elapsed} ms`);
      // Regression: with ioredis's commandTimeout alone, a command issued while an auto-pipeline is
      // in flight waits for that pipeline's timeout and then its own (measured: 152 ms for 100).
      const first = store.charge('acme', c, 1).catch(() => undefined);
      await sleep(50);
      const queuedStart = performance.now();
      await assert.rejects(store.get('acme', 'routes'), StoreUnavailableError);
      const queuedMs = Math.round(performance.now() - queuedStart);
      await first;
      t.diagnostic(`a call queued behind a stalled pipeline failed after ${queuedMs} ms`);
      assert.ok(queuedMs < COMMAND_TIMEOUT_MS + 30, `bounded by its own deadline, not the pipeline's (${queuedMs} ms)`);
      const timings = await assertAllUnavailable(t, store, 'stalled');
      for (const [name, ms] of Object.entries(timings)) assert.ok(ms >= COMMAND_TIMEOUT_MS - 5, `${name} waited for the timeout (${ms} ms)`);
      assert.equal(store.healthy(), false, 'a store whose server does not answer is not healthy');

      server.resume();
      const recoveredMs = await until('healthy again', () => store.healthy(), 2_000);
      t.diagnostic(`healthy ${recoveredMs} ms after SIGCONT`);
      // The timed-out commands were still in Redis's socket buffer and ran on SIGCONT: a call that
      // failed with StoreUnavailableError may yet take effect (callers must not assume it did not).
      await store.set('acme', 'routes', { v: 2 });
      assert.deepEqual(await store.get('acme', 'routes'), { v: 2 });
    } finally {
      await store.close();
      await server.stop();
    }
  });

  it('starts without Redis: no throw, a warning, unhealthy, failing fast; recovers when Redis starts', async (t) => {
    const server = await RedisServer.stopped();
    const { log, lines } = capturingLogger();
    const start = performance.now();
    const store = await RedisStore.connect(config(server.url), log);
    const connectMs = Math.round(performance.now() - start);
    t.diagnostic(`connect() returned after ${connectMs} ms with nothing listening`);
    try {
      assert.ok(connectMs < 1000 + 200, `connect() is bounded by connectTimeoutMs (${connectMs} ms)`);
      assert.equal(store.healthy(), false);
      assert.ok(lines.some((l) => l.level === 40 && /not answering/.test(l.msg)), 'a warning says Redis is not answering');
      await assertAllUnavailable(t, store, 'down at start');
      const early = inbox();
      await store.subscribe('kill-switch', early.handler);

      await server.start();
      const recoveredMs = await until('healthy', () => store.healthy());
      t.diagnostic(`healthy ${recoveredMs} ms after redis-server started`);
      assert.equal((await store.charge('acme', [{ key: 'rpm', limit: 1, windowMs: 60_000 }], 1)).allowed, true);
      assert.equal((await store.charge('acme', [{ key: 'rpm', limit: 1, windowMs: 60_000 }], 1)).allowed, false);
      await store.publish('kill-switch', 'on');
      await early.until(1);
      assert.deepEqual(early.messages, ['on'], 'a subscription made while Redis was down takes effect when it is up');
    } finally {
      await store.close();
      await server.stop();
    }
  });

  it('close() is bounded even without Redis, and calls after it fail with StoreUnavailableError', async () => {
    const server = await RedisServer.stopped();
    const store = await RedisStore.connect(config(server.url, { connectTimeoutMs: 200 }), silent);
    const start = performance.now();
    await store.close();
    assert.ok(performance.now() - start < FAIL_WITHIN_MS);
    await assert.rejects(store.charge('acme', [{ key: 'rpm', limit: 1, windowMs: 1000 }], 1), StoreUnavailableError);
    assert.equal(store.healthy(), false);
    await server.start();
    await sleep(300);
    assert.equal(store.healthy(), false, 'a closed store does not reconnect');
    await server.stop();
  });
});

describe('createStore', () => {
  it('is a RedisStore when state.redisUrl is set, a MemoryStore otherwise', async () => {
    const shared = await createStore(config(await sharedTestRedis()), silent);
    const local = await createStore({ keyPrefix: PREFIX, commandTimeoutMs: COMMAND_TIMEOUT_MS, connectTimeoutMs: 1000, quotaBlocks: true, reconcileMs: 5000 }, silent);
    try {
      assert.equal(shared.kind, 'redis');
      assert.equal(shared.healthy(), true);
      assert.equal(local.kind, 'memory');
    } finally {
      await shared.close();
      await local.close();
    }
  });
});
