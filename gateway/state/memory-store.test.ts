import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { storeContract } from '../../test/helpers/store-contract.js';
import { MemoryStore } from './memory-store.js';

function fakeClock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

storeContract('MemoryStore (fake clock)', async () => {
  const clock = fakeClock();
  return { store: new MemoryStore({ now: clock.now, pruneIntervalMs: 0 }), advance: clock.advance, now: clock.now };
});

storeContract('MemoryStore (real clock)', async () => ({ store: new MemoryStore() }));

describe('MemoryStore', () => {
  it('prunes expired windows and leases, so memory stays bounded by live keys', async () => {
    const clock = fakeClock();
    const store = new MemoryStore({ now: clock.now, pruneIntervalMs: 0 });
    for (let i = 0; i < 1000; i++) {
      await store.charge(`tenant-${i}`, [{ key: 'rpm', limit: 10, windowMs: 60_000 }], 1);
      await store.acquire(`tenant-${i}`, 'concurrency', `req-${i}`, 5, 30_000);
    }
    assert.deepEqual(store.stats(), { windows: 1000, leaseKeys: 1000, records: 0, bucketKeys: 0, logEntries: 0, channels: 0 });
    clock.advance(30_000);
    store.prune();
    assert.deepEqual(store.stats(), { windows: 1000, leaseKeys: 0, records: 0, bucketKeys: 0, logEntries: 0, channels: 0 }, 'leases expired, windows not yet');
    await store.charge('tenant-late', [{ key: 'rpm', limit: 10, windowMs: 60_000 }], 1);
    clock.advance(30_000);
    store.prune();
    assert.deepEqual(store.stats(), { windows: 1, leaseKeys: 0, records: 0, bucketKeys: 0, logEntries: 0, channels: 0 }, 'only the window started later is still live');
    await store.close();
  });

  it('prunes records and bucket counters whose TTL passed; records without one and logs stay', async () => {
    const clock = fakeClock();
    const store = new MemoryStore({ now: clock.now, pruneIntervalMs: 0 });
    for (let i = 0; i < 100; i++) {
      await store.set(`tenant-${i}`, 'session', { i }, { ttlMs: 1_000 });
      await store.add(`tenant-${i}`, 'figures', { ok: 1 }, 1_000);
    }
    await store.set('routes', 'iris', { v: 1 });
    await store.append('audit', { action: 'set' });
    assert.deepEqual(store.stats(), { windows: 0, leaseKeys: 0, records: 101, bucketKeys: 100, logEntries: 1, channels: 0 });
    clock.advance(1_000);
    store.prune();
    assert.deepEqual(store.stats(), { windows: 0, leaseKeys: 0, records: 1, bucketKeys: 0, logEntries: 1, channels: 0 });
    await store.close();
  });

  it('replaces an expired window when touched, without waiting for a sweep', async () => {
    const clock = fakeClock();
    const store = new MemoryStore({ now: clock.now, pruneIntervalMs: 0 });
    const c = [{ key: 'rpm', limit: 1, windowMs: 1000 }];
    assert.equal((await store.charge('t', c, 1)).allowed, true);
    clock.advance(999);
    const last = await store.charge('t', c, 1);
    assert.equal(last.allowed, false);
    assert.equal(last.counters[0].resetMs, 1);
    clock.advance(1);
    assert.deepEqual(await store.charge('t', c, 1), { allowed: true, counters: [{ count: 1, resetMs: 1000 }] });
    assert.equal(store.stats().windows, 1);
    await store.close();
  });

  it('sweeps on its own timer', async () => {
    const clock = fakeClock();
    const store = new MemoryStore({ now: clock.now, pruneIntervalMs: 5 });
    await store.charge('t', [{ key: 'rpm', limit: 1, windowMs: 1000 }], 1);
    clock.advance(1000);
    const deadline = Date.now() + 1000;
    while (store.stats().windows > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal(store.stats().windows, 0);
    await store.close();
  });

  it('delivers messages asynchronously, never inside publish()', async () => {
    const store = new MemoryStore();
    const got: string[] = [];
    await store.subscribe('c', (m) => got.push(m));
    const published = store.publish('c', 'm');
    assert.deepEqual(got, [], 'not delivered synchronously');
    await published;
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(got, ['m']);
    await store.close();
  });

  it('delivers nothing to a subscriber that left between publish() and delivery', async () => {
    const store = new MemoryStore();
    const got: string[] = [];
    const stop = await store.subscribe('c', (m) => got.push(m));
    const published = store.publish('c', 'm');
    await stop();
    await published;
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(got, []);
    await store.close();
  });

  it('forgets a channel once its last subscriber leaves', async () => {
    const store = new MemoryStore();
    const stop = await store.subscribe('c', () => undefined);
    assert.equal(store.stats().channels, 1);
    await stop();
    assert.equal(store.stats().channels, 0);
    await store.close();
  });

  it('keeps one window per counter however often a hot key is charged', async () => {
    const store = new MemoryStore({ pruneIntervalMs: 0 });
    const c = [
      { key: 'sub:alice:rpm', limit: 1e9, windowMs: 60_000 },
      { key: 'tenant:acme:rpm', limit: 1e9, windowMs: 60_000 },
    ];
    for (let i = 0; i < 10_000; i++) await store.charge('acme', c, 1);
    assert.deepEqual(store.stats().windows, 2);
    assert.deepEqual((await store.charge('acme', c, 0)).counters.map((x) => x.count), [10_000, 10_000]);
    await store.close();
  });
});
