import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { irisRows, irisSetting, lineSweep, seeded, shuffled, uniformAttack, type IrisSetting } from '../../test/helpers/iris-extraction.js';
import { ExtractionDetector } from './extraction-detector.js';
import { ExtractionSignals } from './extraction-signals.js';

const WINDOWS = { windowMs: 600_000, windows: 6 };
const iris: IrisSetting = irisSetting();
const signals = new ExtractionSignals(iris.settings, iris.scorer);

/**
 * Replays `rows` for one subject in batches of `batch`, one request every `gapMs` of simulated
 * time; the number of rows sent when it was first flagged (undefined: never).
 */
function rowsToFlag(rows: readonly (readonly number[])[], batch = 1, gapMs = 1_000, detector = new ExtractionDetector(signals, WINDOWS)): number | undefined {
  for (let i = 0, t = 0; i < rows.length; i += batch, t += gapMs) {
    if (detector.observe('s', rows.slice(i, i + batch), t)) return Math.min(i + batch, rows.length);
  }
  return undefined;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/** Finite-difference probing (the gradient estimate of a Jacobian-based augmentation): a real row, then ±h on each feature. */
function finiteDifferences(n: number, h: number, random: () => number): number[][] {
  const out: number[][] = [];
  while (out.length < n) {
    const x = iris.heldOut[Math.floor(random() * iris.heldOut.length)];
    out.push(x);
    for (let j = 0; j < 4; j++) for (const sign of [1, -1]) out.push(x.map((v, k) => Math.fround(v + (k === j ? sign * h : 0))));
  }
  return out.slice(0, n);
}

/** A boundary search: bisection along lines between two real rows (the side taken at random). */
function bisection(n: number, random: () => number): number[][] {
  const out: number[][] = [];
  while (out.length < n) {
    const a = iris.heldOut[Math.floor(random() * iris.heldOut.length)];
    const b = iris.heldOut[Math.floor(random() * iris.heldOut.length)];
    let lo = 0;
    let hi = 1;
    for (let k = 0; k < 12; k++) {
      const m = (lo + hi) / 2;
      out.push(a.map((v, j) => Math.fround(v + (b[j] - v) * m)));
      if (random() < 0.5) lo = m;
      else hi = m;
    }
  }
  return out.slice(0, n);
}

describe('extraction detector on iris-like traffic (replayed with a simulated clock)', () => {
  const attackers = {
    'uniform random': (r: () => number) => uniformAttack(iris, 2_000, r),
    'line sweep (20 points per line)': (r: () => number) => lineSweep(iris, 2_000, 20, r),
    'bisection along lines': (r: () => number) => bisection(2_000, r),
    'finite differences (h = 0.01 cm)': (r: () => number) => finiteDifferences(2_000, 0.01, r),
  };
  for (const [kind, make] of Object.entries(attackers)) {
    it(`${kind}: every one of 10 attackers flagged within 200 rows`, () => {
      const needed = Array.from({ length: 10 }, (_, i) => rowsToFlag(make(seeded(100 + i)), 1 + (i % 4)));
      console.log(`${kind}: rows to flag ${needed.join(', ')} (median ${median(needed.map((n) => n ?? Infinity))})`);
      for (const n of needed) assert.ok(n !== undefined && n <= 200, `rows to flag: ${needed.join(', ')}`);
    });
  }

  it('benign callers replaying real iris rows at high volume are never flagged', () => {
    const all = irisRows();
    const callers: { name: string; rows: number[][]; batch: number; gapMs: number }[] = [];
    for (let i = 0; i < 6; i++) {
      const r = seeded(200 + i);
      // Sampled with replacement, batches of 1…32, one request every 50 ms…2 s: up to 20 000 rows an hour.
      callers.push({ name: `random-${i}`, rows: Array.from({ length: 20_000 }, () => all[Math.floor(r() * all.length)]), batch: [1, 8, 32][i % 3], gapMs: [50, 500, 2_000][i % 3] });
    }
    // Backfills: the file in its order (sorted by species), and shuffled passes, again and again.
    callers.push({ name: 'backfill-file-order', rows: Array.from({ length: 30_000 }, (_, i) => all[i % all.length]), batch: 64, gapMs: 100 });
    callers.push({ name: 'backfill-shuffled', rows: Array.from({ length: 100 }, (_, k) => shuffled(all, seeded(300 + k))).flat(), batch: 16, gapMs: 20 });
    callers.push({ name: 'held-out-only', rows: Array.from({ length: 20_000 }, (_, i) => iris.heldOut[i % iris.heldOut.length]), batch: 4, gapMs: 200 });
    let rows = 0;
    for (const c of callers) {
      const d = new ExtractionDetector(signals, WINDOWS);
      assert.equal(rowsToFlag(c.rows, c.batch, c.gapMs, d), undefined, `${c.name} was flagged: ${JSON.stringify(d.status('s', Infinity))}`);
      rows += c.rows.length;
    }
    console.log(`benign: ${callers.length} callers, ${rows} rows, 0 flagged`);
  });

  it('flags decay as windows expire, and a cleared subject starts from nothing', () => {
    const d = new ExtractionDetector(signals, WINDOWS);
    const attack = uniformAttack(iris, 100, seeded(7));
    assert.equal(d.observe('a', attack, 1_000), true);
    assert.equal(d.status('a', 1_000).flagged, true);
    assert.deepEqual(d.status('a', 1_000).signals, ['off-manifold']);
    // Still flagged in the last live window; gone once the window that held the rows has expired.
    assert.equal(d.status('a', 6 * 600_000 - 1).flagged, true);
    assert.equal(d.status('a', 6 * 600_000).flagged, false);
    assert.equal(d.status('a', 6 * 600_000).rows, 0);
    assert.equal(d.observe('b', attack, 1_000), true);
    d.clear('b');
    assert.equal(d.status('b', 1_000).flagged, false);
    assert.equal(d.observe('b', attack.slice(0, 5), 2_000), false, '5 rows after the clear are too few');
  });

  it('a caller opted out of tracking is counted, never judged on its payload', () => {
    const d = new ExtractionDetector(signals, WINDOWS);
    for (let t = 0; t < 100; t++) assert.equal(d.observeCounts('quiet', 100, t * 1_000), false);
    const v = d.status('quiet', 100_000);
    assert.deepEqual([v.rows, v.cells, v.flagged], [10_000, 0, false]);
  });
});
