import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStore } from '../state/memory-store.js';
import { BLOCKS, SharedWindow } from './shared-window.js';

const BINS = 3;
const counts = (...v: number[]) => Float64Array.from(v);

test('sample windows: two replicas adding to one store read what one replica adding everything reads', async () => {
  const one = new MemoryStore({ pruneIntervalMs: 0 });
  const two = new MemoryStore({ pruneIntervalMs: 0 });
  const spec = { kind: 'samples', size: 200, mode: 'sliding' } as const;
  const solo = new SharedWindow(one, 'drift:m', '1', BINS, spec);
  const a = new SharedWindow(two, 'drift:m', '1', BINS, spec);
  const b = new SharedWindow(two, 'drift:m', '1', BINS, spec);
  // 30 flushes of 10 samples: alternately from replica a and b; the solo replica takes them all.
  for (let i = 0; i < 30; i++) {
    const c = counts(i % 3 === 0 ? 10 : 0, i % 3 === 1 ? 10 : 0, i % 3 === 2 ? 10 : 0);
    await (i % 2 === 0 ? a : b).flush(c, 10, 0);
    await solo.flush(c, 10, 0);
  }
  const merged = await a.read(0);
  assert.deepEqual(await b.read(0), merged, 'both replicas read the same window');
  assert.deepEqual(await solo.read(0), merged, 'the same as one replica that saw everything');
  assert.equal(merged.to, 300);
  assert.equal(merged.from, 100, 'the last 200 samples');
  assert.equal(merged.samples, 200, 'blocks of 10 line up with flushes of 10');
  assert.equal([...merged.counts].reduce((x, y) => x + y, 0), 200);
  await Promise.all([one.close(), two.close()]);
});

test('sample windows: tumbling reads the last complete run; a reset starts the window afresh', async () => {
  const store = new MemoryStore({ pruneIntervalMs: 0 });
  const w = new SharedWindow(store, 'drift:m', '1', BINS, { kind: 'samples', size: 100, mode: 'tumbling' });
  for (let i = 0; i < 25; i++) await w.flush(counts(i < 10 ? 10 : 0, i < 10 ? 0 : 10, 0), 10, 0);
  const r = await w.read(0);
  assert.deepEqual([r.from, r.to], [100, 200], '250 samples: the complete run [100, 200)');
  assert.deepEqual([...r.counts], [0, 100, 0]);
  assert.equal(await w.position(0), 250);
  const sliding = new SharedWindow(store, 'drift:m', '1', BINS, { kind: 'samples', size: 100, mode: 'sliding' });
  const reset = { at: 230 };
  const after = await sliding.read(0, reset);
  assert.deepEqual([after.from, after.to, after.samples], [230, 250, 20], 'after a reset at 230 only what came since');
  assert.deepEqual([...(await sliding.readRange(0, 100)).counts], [100, 0, 0], 'a range of samples (a baseline)');
  await store.close();
});

test('time windows: blocks of the window over 20; the last `seconds` slide with the clock', async () => {
  const store = new MemoryStore({ pruneIntervalMs: 0 });
  const w = new SharedWindow(store, 'drift:m', '2', BINS, { kind: 'seconds', size: 60, mode: 'sliding' });
  const block = (60 * 1000) / BLOCKS;
  for (let t = 0; t < 120; t++) await w.flush(counts(t < 60 ? 1 : 0, t < 60 ? 0 : 1, 0), 1, t * 1000);
  const now = 120 * 1000 - 1;
  const r = await w.read(now);
  assert.equal(r.to, now);
  assert.ok(r.samples >= 60 && r.samples <= 60 + block / 1000, `the last minute: ${r.samples}`);
  assert.ok(r.counts[1] >= 60 && r.counts[0] <= block / 1000, `mostly the second minute: ${[...r.counts]}`);
  await store.close();
});

test('a flush of nothing does nothing; counts are integers in buckets per bin', async () => {
  const store = new MemoryStore({ pruneIntervalMs: 0 });
  const w = new SharedWindow(store, 'drift:m', '3', BINS, { kind: 'samples', size: 2000, mode: 'sliding' });
  await w.flush(counts(0, 0, 0), 0, 0);
  assert.equal(await w.position(0), 0);
  await w.flush(counts(3, 0, 2), 5, 0);
  assert.deepEqual(await store.sum('drift:m', ['drift:3:e0:b:0']), { n: 5, 0: 3, 2: 2 });
  w.epoch = 1;
  assert.equal(await w.position(0), 0, 'a new epoch counts from 0');
  assert.equal((await w.read(0)).samples, 0, 'and reads none of the old epoch');
  assert.equal((await w.readRange(0, 5, 0)).samples, 5, 'an old epoch can still be read by name (a baseline)');
  await store.close();
});
