import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Logger } from 'pino';
import { MemoryStore } from '../state/memory-store.js';
import { BOUNDS } from '../telemetry/arm-figures.js';
import { FIGURES_SCOPE, latencyBucket, MAX_CLASSES, parseFigures, PendingFigures, readFigures, stepKey } from './figures.js';

/** A logger that keeps its warnings. */
function logger(): { log: Logger; warnings: unknown[][] } {
  const warnings: unknown[][] = [];
  const noop = () => undefined;
  const log = { warn: (...a: unknown[]) => warnings.push(a), info: noop, debug: noop, error: noop, trace: noop, fatal: noop } as unknown as Logger;
  return { log, warnings };
}

/** A memory store whose `add` throws while `down` is set (a store outage). */
class FlakyStore extends MemoryStore {
  down = false;
  adds = 0;
  override async add(scope: string, key: string, buckets: Readonly<Record<string, number>>, ttlMs: number): Promise<Record<string, number>> {
    this.adds++;
    if (this.down) throw new Error('store down');
    return super.add(scope, key, buckets, ttlMs);
  }
}

const KEY = stepKey('r1', 0);

test('stepKey names the rollout and the step', () => {
  assert.equal(stepKey('abc', 3), 'abc:3');
});

test('latencyBucket: the first bucket whose upper bound holds the latency', () => {
  assert.equal(latencyBucket(0), 0);
  assert.equal(latencyBucket(BOUNDS[0]), 0, 'an upper bound is in its own bucket');
  assert.equal(latencyBucket(BOUNDS[3]), 3);
  assert.equal(latencyBucket(BOUNDS[3] + 1e-9), 4);
  assert.equal(latencyBucket(1e12), BOUNDS.length - 1, 'beyond the last finite bound: the infinite bucket');
});

test('served and compared counts land in the store after a flush, under the documented bucket names', async () => {
  const store = new MemoryStore({ pruneIntervalMs: 0 });
  const f = new PendingFigures(store, logger().log);
  assert.equal(f.empty, true);
  f.served(KEY, 'c', true, false, false, 10);
  f.served(KEY, 'c', true, true, false, 100);
  f.served(KEY, 'c', true, false, true, 10);
  f.served(KEY, 's', false, false, true, 0); // guarded and rejected before the model: routed, not reached
  f.served(KEY, 's', true, false, false, 0.01);
  f.compared(KEY, ['cat', 'dog', 'cat'], ['cat', 'cat', 'bird']);
  f.compared(KEY, ['dog', 'dog'], ['dog']); // rows of both: the shorter answer's
  assert.equal(f.empty, false);
  assert.deepEqual(await store.sum(FIGURES_SCOPE, [KEY]), {}, 'nothing reaches the store before a flush');
  await f.flush();
  assert.equal(f.empty, true);
  const l10 = `c.l${latencyBucket(10)}`;
  assert.deepEqual(await store.sum(FIGURES_SCOPE, [KEY]), {
    'c.r': 3, 'c.n': 3, 'c.e': 1, 'c.g': 1, [l10]: 2, [`c.l${latencyBucket(100)}`]: 1,
    's.r': 2, 's.g': 1, 's.n': 1, 's.l0': 1,
    'd.n': 4, 'd.x': 2,
    'd.c:cat': 2, 'd.c:dog': 2, 'd.s:cat': 2, 'd.s:bird': 1, 'd.s:dog': 1,
    'd.u:dog': 1, 'd.v:cat': 1, 'd.u:cat': 1, 'd.v:bird': 1,
  });
  await f.flush();
  assert.equal((await store.sum(FIGURES_SCOPE, [KEY]))['c.r'], 3, 'a second flush of nothing adds nothing');
  await store.close();
});

test('parseFigures reads the merged buckets back: sides, latency histogram and class shares', async () => {
  const store = new MemoryStore({ pruneIntervalMs: 0 });
  const f = new PendingFigures(store, logger().log);
  for (let i = 0; i < 10; i++) f.served(KEY, 'c', true, i === 0, false, i < 9 ? 2 : 300);
  f.served(KEY, 's', true, false, false, 2);
  f.compared(KEY, ['cat', 'dog', 'cat'], ['cat', 'cat', 'bird']);
  await f.flush();
  const figs = await readFigures(store, [KEY]);
  assert.deepEqual({ ...figs.canary, latency: undefined }, { requests: 10, reached: 10, errors: 1, guarded: 0, latency: undefined });
  assert.equal(figs.canary.latency.length, BOUNDS.length);
  assert.equal(figs.canary.latency[latencyBucket(2)], 9);
  assert.equal(figs.canary.latency[latencyBucket(300)], 1);
  assert.equal(figs.canary.latency.reduce((a, b) => a + b, 0), 10);
  assert.equal(figs.stable.requests, 1);
  assert.equal(figs.stable.latency[latencyBucket(2)], 1);
  assert.deepEqual(figs.compared.rows, 3);
  assert.deepEqual(figs.compared.disagreed, 2);
  assert.deepEqual(Object.fromEntries(figs.compared.classes), {
    cat: { canary: 2, stable: 2, up: 1, down: 1 },
    dog: { canary: 1, stable: 0, up: 1, down: 0 },
    bird: { canary: 0, stable: 1, up: 0, down: 1 },
  });
  await store.close();
});

test('parseFigures of nothing is all zeros; class names may hold colons and dots', () => {
  const empty = parseFigures({});
  assert.deepEqual([empty.canary.requests, empty.stable.reached, empty.compared.rows, empty.compared.classes.size], [0, 0, 0, 0]);
  assert.equal(empty.canary.latency.reduce((a, b) => a + b, 0), 0);
  const odd = parseFigures({ 'd.c:a:b.c': 3, 'd.u:a:b.c': 1, 'd.q:x': 5, 'x.y': 2 });
  assert.deepEqual(Object.fromEntries(odd.compared.classes), { 'a:b.c': { canary: 3, stable: 0, up: 1, down: 0 } }, 'unknown buckets are ignored');
});

test('two replicas adding to one step sum exactly; steps are apart and a rollout reads them together', async () => {
  const store = new MemoryStore({ pruneIntervalMs: 0 });
  const a = new PendingFigures(store, logger().log);
  const b = new PendingFigures(store, logger().log);
  const next = stepKey('r1', 1);
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 7; i++) a.served(KEY, 'c', true, i % 3 === 0, false, 4);
    for (let i = 0; i < 11; i++) b.served(KEY, 'c', true, false, i === 0, 40);
    b.served(next, 's', true, true, false, 4);
    a.compared(KEY, ['x', 'y'], ['x', 'x']);
    b.compared(KEY, ['y'], ['x']);
    await Promise.all([a.flush(), b.flush()]);
  }
  const step = await readFigures(store, [KEY]);
  assert.equal(step.canary.requests, 5 * 18);
  assert.equal(step.canary.errors, 5 * 3);
  assert.equal(step.canary.guarded, 5);
  assert.equal(step.canary.latency[latencyBucket(4)], 35);
  assert.equal(step.canary.latency[latencyBucket(40)], 55);
  assert.equal(step.compared.rows, 15);
  assert.equal(step.compared.disagreed, 10);
  assert.deepEqual(step.compared.classes.get('y'), { canary: 10, stable: 0, up: 10, down: 0 });
  assert.deepEqual(step.compared.classes.get('x'), { canary: 5, stable: 15, up: 0, down: 10 });
  assert.equal(step.stable.requests, 0, 'the next step\'s figures are its own');
  const whole = await readFigures(store, [KEY, next]);
  assert.equal(whole.stable.errors, 5);
  assert.equal(whole.canary.requests, 90);
  await store.close();
});

test('a store outage keeps the counts pending (one warning) and adds them, exactly once, when it answers', async () => {
  const store = new FlakyStore({ pruneIntervalMs: 0 });
  const { log, warnings } = logger();
  const f = new PendingFigures(store, log);
  const other = stepKey('r2', 0);
  store.down = true;
  f.served(KEY, 'c', true, true, false, 1);
  f.served(other, 's', true, false, false, 1);
  await f.flush(); // never rejects
  assert.equal(store.adds, 2, 'one add per step key');
  assert.equal(f.empty, false);
  assert.equal(warnings.length, 1);
  assert.deepEqual(warnings[0][0], { keys: 2 });
  f.served(KEY, 'c', true, false, false, 1);
  f.compared(KEY, ['a'], ['b']);
  await f.flush();
  assert.equal(warnings.length, 1, 'one warning per outage, not per flush');
  assert.deepEqual(await store.sum(FIGURES_SCOPE, [KEY, other]), {});
  store.down = false;
  await f.flush();
  assert.equal(f.empty, true);
  assert.deepEqual(await store.sum(FIGURES_SCOPE, [KEY]), { 'c.r': 2, 'c.n': 2, 'c.e': 1, [`c.l${latencyBucket(1)}`]: 2, 'd.n': 1, 'd.x': 1, 'd.c:a': 1, 'd.s:b': 1, 'd.u:a': 1, 'd.v:b': 1 });
  assert.deepEqual(await store.sum(FIGURES_SCOPE, [other]), { 's.r': 1, 's.n': 1, [`s.l${latencyBucket(1)}`]: 1 });
  await f.flush();
  assert.equal((await store.sum(FIGURES_SCOPE, [KEY]))['c.r'], 2, 'not added twice');
  // A second outage warns again.
  store.down = true;
  f.served(KEY, 'c', true, false, false, 1);
  await f.flush();
  assert.equal(warnings.length, 2);
  await store.close();
});

test('a flush while one is under way shares it; counts arriving meanwhile wait for the next', async () => {
  const store = new MemoryStore({ pruneIntervalMs: 0 });
  const f = new PendingFigures(store, logger().log);
  f.served(KEY, 'c', true, false, false, 1);
  const first = f.flush();
  assert.equal(f.flush(), first, 'the same flush');
  f.served(KEY, 'c', true, false, false, 1);
  await first;
  assert.equal((await store.sum(FIGURES_SCOPE, [KEY]))['c.r'], 1);
  assert.equal(f.empty, false);
  await f.flush();
  assert.equal((await store.sum(FIGURES_SCOPE, [KEY]))['c.r'], 2);
  await store.close();
});

test(`more than ${MAX_CLASSES} class names per step fold into "other"`, async () => {
  const store = new MemoryStore({ pruneIntervalMs: 0 });
  const f = new PendingFigures(store, logger().log);
  const names = Array.from({ length: MAX_CLASSES + 8 }, (_, i) => `k${i}`);
  f.compared(KEY, names, names);
  // Two new names that differ: both "other", a disagreement but no shift of any class.
  f.compared(KEY, ['new-a'], ['new-b']);
  // A known name against a new one: the shift is counted against "other".
  f.compared(KEY, ['k0'], ['new-c']);
  await f.flush();
  const figs = await readFigures(store, [KEY]);
  assert.equal(figs.compared.classes.size, MAX_CLASSES + 1);
  assert.deepEqual(figs.compared.classes.get('other'), { canary: 9, stable: 10, up: 0, down: 1 });
  assert.deepEqual(figs.compared.classes.get('k0'), { canary: 2, stable: 1, up: 1, down: 0 });
  assert.equal(figs.compared.classes.get(`k${MAX_CLASSES - 1}`)?.canary, 1);
  assert.equal(figs.compared.classes.has(`k${MAX_CLASSES}`), false);
  assert.equal(figs.compared.rows, MAX_CLASSES + 10);
  assert.equal(figs.compared.disagreed, 2);
  // Another step has room for its own names.
  const next = stepKey('r1', 1);
  f.compared(next, [`k${MAX_CLASSES + 1}`], [`k${MAX_CLASSES + 1}`]);
  // A step no longer retained forgets its names: they are counted afresh (a step started again).
  f.retain(new Set([next]));
  f.compared(KEY, ['fresh'], ['fresh']);
  await f.flush();
  assert.equal((await readFigures(store, [next])).compared.classes.get(`k${MAX_CLASSES + 1}`)?.canary, 1);
  assert.equal((await readFigures(store, [KEY])).compared.classes.get('fresh')?.canary, 1);
  await store.close();
});

test('a step\'s counter lives a week after its last addition', async () => {
  let now = 1_000_000;
  const store = new MemoryStore({ pruneIntervalMs: 0, now: () => now });
  const f = new PendingFigures(store, logger().log);
  f.served(KEY, 'c', true, false, false, 1);
  await f.flush();
  now += 7 * 86_400_000 - 1;
  assert.equal((await readFigures(store, [KEY])).canary.requests, 1);
  now += 1;
  assert.equal((await readFigures(store, [KEY])).canary.requests, 0);
  await store.close();
});
