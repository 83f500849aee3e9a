import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryStore } from '../../gateway/state/memory-store.js';
import type { StateStore } from '../../gateway/state/store.js';
import { StoreUnavailableError } from '../../gateway/state/store.js';
import { irisRows, irisSetting, seeded, uniformAttack } from '../../test/helpers/iris-extraction.js';
import { sharedRedisStores } from '../../test/helpers/shared-redis-store.js';
import { ExtractionSignals, QueryTrace } from './extraction-signals.js';
import { ExtractionMonitor, type ExtractionMonitorOptions } from './extraction-monitor.js';

const iris = irisSetting();
const signals = new ExtractionSignals(iris.settings, iris.scorer);
const WINDOW_MS = 60_000;
const WINDOWS = 3;
const HOUR = 3_600_000;
const SCOPE = 'extraction:iris:1';

/** A clock tests move by hand. */
function fakeClock(start = 10 * WINDOW_MS): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

type Row = readonly number[];

/** A monitor whose background timers never fire within a test: the test flushes and syncs by hand. */
function monitor(store: StateStore, now?: () => number, extra: Partial<ExtractionMonitorOptions<Row>> = {}): Promise<ExtractionMonitor<Row>> {
  const errors: unknown[] = [];
  return ExtractionMonitor.start<Row>({
    store, scope: SCOPE, signals, windowMs: WINDOW_MS, windows: WINDOWS, flushMs: HOUR, syncMs: HOUR, reconcileMs: 0,
    onError: (e) => errors.push(e), ...(now === undefined ? {} : { now }), ...extra,
  });
}

/** Sends rows one request of `batch` at a time; the rows sent when observe first said flagged. */
function send(m: ExtractionMonitor<Row>, subject: string, rows: readonly Row[], batch = 1): number | undefined {
  let first: number | undefined;
  for (let i = 0; i < rows.length; i += batch) if (m.observe(subject, rows.slice(i, i + batch)) && first === undefined) first = i + batch;
  return first;
}

const all = irisRows();
/** The coverage-cell bucket of a row counted `n` times. */
const cellOf = (row: Row, n: number): Record<string, number> => ({ [`c${signals.cell(iris.scorer(row).encoded)}`]: n });
const benign = (n: number, seed: number): Row[] => {
  const r = seeded(seed);
  return Array.from({ length: n }, () => all[Math.floor(r() * all.length)]);
};

describe('extraction monitor on a MemoryStore (one process, fake clock)', () => {
  it('flags an attacker from memory as its rows arrive, stores counters per subject and window, lists it after a sync', async () => {
    const clock = fakeClock();
    const store = new MemoryStore({ now: clock.now, pruneIntervalMs: 0 });
    const told: [string, readonly string[]][] = [];
    const m = await monitor(store, clock.now, { onFlagged: (subject: string, v: { signals: readonly string[] }) => told.push([subject, v.signals]) });
    const flaggedAt = send(m, 'mallory', uniformAttack(iris, 60, seeded(1)), 4);
    assert.deepEqual(told, [['mallory', ['off-manifold']]], 'the flag is told once, with its evidence, as it happens');
    assert.ok(flaggedAt !== undefined && flaggedAt <= 40, `flagged after ${flaggedAt} rows`);
    assert.equal(send(m, 'alice', benign(3_000, 2), 8), undefined);
    assert.equal(m.status('mallory').flagged, true);
    await m.flush();
    const w = Math.floor(clock.now() / WINDOW_MS);
    const stored = await store.sum(SCOPE, [`w${w}|mallory`]);
    assert.equal(stored.rows, 60);
    assert.ok(stored.off > 30 && stored.steps === 59, JSON.stringify(stored));
    assert.ok(Object.keys(stored).some((k) => /^c\d+$/.test(k)), 'coverage cells are buckets');
    await m.sync();
    assert.equal(told.length, 1, 'a sync that finds it still flagged tells nothing new');
    const listed = m.flagged();
    assert.deepEqual(listed.map((f) => [f.subject, f.flagged, f.signals]), [['mallory', true, ['off-manifold']]]);
    assert.equal(listed[0].rows, 60);
    assert.equal(listed[0].score, 1);
    assert.equal(m.status('alice').flagged, false);
    assert.equal(((await store.get(`${SCOPE}:flags`, 'mallory')) as { rows: number }).rows, 60);
    await m.close();
  });

  it('flags decay as windows expire: unflagged once the windows holding the rows are past', async () => {
    const clock = fakeClock();
    const store = new MemoryStore({ now: clock.now, pruneIntervalMs: 0 });
    const m = await monitor(store, clock.now);
    send(m, 'mallory', uniformAttack(iris, 40, seeded(3)));
    await m.sync();
    assert.equal(m.status('mallory').flagged, true);
    clock.advance((WINDOWS - 1) * WINDOW_MS);
    await m.sync();
    assert.equal(m.status('mallory').flagged, true, 'the window is still live');
    clock.advance(WINDOW_MS);
    await m.sync();
    assert.equal(m.status('mallory').flagged, false);
    assert.deepEqual(m.flagged(), []);
    assert.equal(await store.get(`${SCOPE}:flags`, 'mallory'), undefined, 'the flag record is removed');
    await m.close();
  });

  it('clear: unflagged at once; earlier counters stop counting; rows after the clear count again', async () => {
    const clock = fakeClock();
    const store = new MemoryStore({ now: clock.now, pruneIntervalMs: 0 });
    const m = await monitor(store, clock.now);
    const attack = uniformAttack(iris, 200, seeded(4));
    send(m, 'mallory', attack.slice(0, 60));
    await m.sync();
    assert.equal(m.status('mallory').flagged, true);
    clock.advance(1_000);
    await m.clear('mallory');
    assert.equal(m.status('mallory').flagged, false);
    await m.sync();
    assert.equal(m.status('mallory').flagged, false, 'the 60 rows before the clear are not counted again');
    assert.equal(m.status('mallory').rows, 0);
    clock.advance(1_000);
    assert.equal(send(m, 'mallory', attack.slice(60, 70)), undefined, '10 rows after the clear are too few');
    await m.sync();
    assert.equal(m.status('mallory').rows, 10);
    assert.ok(send(m, 'mallory', attack.slice(70, 120)) !== undefined, 'and then enough rows after the clear flag it again');
    await m.close();
  });

  it('a caller opted out of tracking: only row counts reach the store', async () => {
    const clock = fakeClock();
    const store = new MemoryStore({ now: clock.now, pruneIntervalMs: 0 });
    const m = await monitor(store, clock.now);
    for (let i = 0; i < 50; i++) assert.equal(m.observeCounts('quiet', 8), false);
    await m.flush();
    assert.deepEqual(await store.sum(SCOPE, [`w${Math.floor(clock.now() / WINDOW_MS)}|quiet`]), { rows: 400, untracked: 400 });
    await m.sync();
    assert.deepEqual([m.status('quiet').flagged, m.status('quiet').rows], [false, 400]);
    // A caller who opts out after tracked requests: the queries kept from those are dropped.
    m.observe('sam', [all[0]]);
    m.observeCounts('sam', 1);
    m.observe('sam', [all[0]]);
    await m.flush();
    assert.deepEqual(await store.sum(SCOPE, [`w${Math.floor(clock.now() / WINDOW_MS)}|sam`]), { rows: 3, untracked: 1, ...cellOf(all[0], 2) });
    await m.close();
  });

  it('counters of a window are flushed as that window ends, under its own key', async () => {
    const clock = fakeClock();
    const store = new MemoryStore({ now: clock.now, pruneIntervalMs: 0 });
    const m = await monitor(store, clock.now);
    const w = Math.floor(clock.now() / WINDOW_MS);
    m.observe('bob', benign(5, 5));
    clock.advance(WINDOW_MS);
    m.observe('bob', benign(3, 6));
    await m.flush();
    assert.equal((await store.sum(SCOPE, [`w${w}|bob`])).rows, 5);
    assert.equal((await store.sum(SCOPE, [`w${w + 1}|bob`])).rows, 3);
    await m.close();
  });

  it('keeps recent queries within its memory budget, dropping the least recently seen subject\'s', async () => {
    const clock = fakeClock();
    const store = new MemoryStore({ now: clock.now, pruneIntervalMs: 0 });
    const traceBytes = new QueryTrace(4).bytes;
    const m = await monitor(store, clock.now, { traceBudgetBytes: 2 * traceBytes });
    const x = all[0];
    m.observe('a', [x]);
    m.observe('b', [x]);
    m.observe('a', [x]); // a is now more recent than b
    m.observe('c', [x]); // over budget: b's queries go
    m.observe('a', [x]);
    m.observe('b', [x]);
    await m.flush();
    const w = Math.floor(clock.now() / WINDOW_MS);
    assert.equal((await store.sum(SCOPE, [`w${w}|a`])).repeat, 2, 'a kept its queries');
    assert.equal((await store.sum(SCOPE, [`w${w}|b`])).repeat, undefined, 'b lost its queries: its second row had nothing to repeat');
    await m.close();
  });

  it('a store that fails: observe is unaffected, one error per flush goes to onError', async () => {
    const store = new MemoryStore({ pruneIntervalMs: 0 });
    store.add = async () => {
      throw new StoreUnavailableError('redis command timed out after 100 ms');
    };
    const errors: [unknown, string][] = [];
    const m = await monitor(store, undefined, { onError: (e, during) => errors.push([e, during]) });
    assert.ok(send(m, 'mallory', uniformAttack(iris, 40, seeded(8))) !== undefined, 'flagged from memory');
    for (let i = 0; i < 5; i++) m.observe(`s${i}`, [all[i]]);
    await m.flush();
    assert.equal(errors.length, 1);
    assert.ok(errors[0][0] instanceof StoreUnavailableError);
    assert.equal(errors[0][1], 'flush');
    await m.close();
  });
});

describe('extraction monitors of two replicas sharing a real Redis', () => {
  const { replica } = sharedRedisStores(1_000);
  const stores: StateStore[] = [];
  const monitors: ExtractionMonitor<Row>[] = [];
  after(async () => {
    for (const m of monitors) await m.close();
    for (const s of stores) await s.close();
  });
  async function redisMonitor(): Promise<ExtractionMonitor<Row>> {
    const store = await replica();
    stores.push(store);
    const m = await monitor(store);
    monitors.push(m);
    return m;
  }

  async function until(what: string, done: () => boolean): Promise<void> {
    const deadline = Date.now() + 3_000;
    while (!done()) {
      if (Date.now() > deadline) assert.fail(`not within 3 s: ${what}`);
      await sleep(5);
    }
  }

  it('a subject is flagged through its rows on replica A and B combined (neither has 20), listed on a third, cleared everywhere', async () => {
    const [a, b, c] = [await redisMonitor(), await redisMonitor(), await redisMonitor()];
    const attack = uniformAttack(iris, 24, seeded(11));
    // 12 rows each: fewer than the rule's 20 on either replica alone.
    assert.equal(send(a, 'mallory', attack.slice(0, 12), 3), undefined);
    assert.equal(send(b, 'mallory', attack.slice(12), 3), undefined);
    assert.equal(send(a, 'alice', benign(500, 12), 10), undefined);
    assert.equal(send(b, 'alice', benign(500, 13), 10), undefined);
    await Promise.all([a.flush(), b.flush()]);
    await a.sync();
    await b.sync();
    for (const m of [a, b]) {
      const v = m.status('mallory');
      assert.deepEqual([v.flagged, v.rows, v.signals], [true, 24, ['off-manifold']]);
      assert.equal(m.status('alice').flagged, false);
      assert.equal(m.status('alice').rows, 1_000);
    }
    // C never saw mallory: it learns the flag from the flag records.
    await c.sync();
    assert.deepEqual(c.flagged().map((f) => f.subject), ['mallory']);
    assert.equal(c.observe('mallory', [all[0]]), true, 'a flagged subject arriving at C is flagged there at once');

    await b.clear('mallory');
    await until('A and C hear of the clear', () => !a.status('mallory').flagged && !c.status('mallory').flagged);
    for (const m of [a, b, c]) await m.sync();
    for (const m of [a, b, c]) {
      assert.equal(m.status('mallory').flagged, false);
      assert.deepEqual(m.flagged(), []);
    }
  });
});
