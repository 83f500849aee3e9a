import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CELLS, ExtractionSignals, QueryTrace, RING_SIZE, SignalCounts, signalSettings, type ScoredRow, type SignalSettings } from './extraction-signals.js';
import type { Profile } from './profile.js';

const SETTINGS: SignalSettings = { columns: 3, oodThreshold: 3, offRate: 0.01, tinyStep: 0.1, tinyRate: 0.01, latticeRate: 0.02 };
/** Rows are given already encoded; the score is their norm (a stand-in for an OOD model with the identity encoder). */
const signals = new ExtractionSignals<readonly number[]>(SETTINGS, (row) => {
  const encoded = Float64Array.from(row);
  return { score: Math.hypot(...row), encoded };
});

function counted(rows: readonly (readonly number[])[], trace = new QueryTrace(3)): SignalCounts {
  const c = new SignalCounts();
  trace.recordRows(signals, rows, c, new Map());
  return c;
}

describe('signalSettings', () => {
  it('takes the OOD threshold and FPR from the calibration and the step figures as the profile measured them', () => {
    const profile = {
      quantileProbs: [0, 0.01, 0.05, 0.5, 1],
      ood: { method: 'mahalanobis', encoder: { columns: 7, features: [] }, mean: [], precision: [] },
      extraction: { stepQuantiles: [0.1, 0.2, 0.4, 1, 3], tinyStep: 0.2, tinyRate: 0.04, latticeRate: 0.03 },
      calibration: { targetFpr: 0.02, method: 'q', heldOutRows: 10, ood: 4.5 },
    } as unknown as Profile;
    assert.deepEqual(signalSettings(profile), { columns: 7, oodThreshold: 4.5, offRate: 0.02, tinyStep: 0.2, tinyRate: 0.04, latticeRate: 0.03 });
  });
});

describe('QueryTrace signals', () => {
  it('off-manifold: a score above the threshold (and a NaN score) counts', () => {
    const c = counted([[1, 0, 0], [4, 0, 0], [0, 0, 2.9]]);
    assert.equal(c.rows, 3);
    assert.equal(c.off, 1);
    const nan = new SignalCounts();
    new QueryTrace(3).record(signals, { score: Number.NaN, encoded: new Float64Array(3) }, nan);
    assert.equal(nan.off, 1);
  });

  it('steps: the first row has none; an exact repeat of any recent row is a repeat, a non-zero step under tinyStep is tiny', () => {
    // 2nd: 1 from the 1st. 3rd: repeats the 1st. 4th: 0.05 from the 2nd (tiny). 5th: 0.2 from the 4th (not tiny).
    const c = counted([[0, 0, 0], [1, 0, 0], [0, 0, 0], [1, 0.05, 0], [1, 0.25, 0]]);
    assert.equal(c.steps, 4);
    assert.equal(c.repeat, 1);
    assert.equal(c.tiny, 1);
  });

  it('an exact repeat counts as a row and a repeat only: never off-manifold, no step, no cell (a health probe)', () => {
    const c = new SignalCounts();
    const cells = new Map<number, number>();
    const probe = [5, 0, 0]; // off the manifold (score 5 > 3)
    new QueryTrace(3).recordRows(signals, Array.from({ length: 100 }, () => probe), c, cells);
    assert.deepEqual([c.rows, c.off, c.steps, c.repeat, c.tiny, c.lattice, c.pairs, c.line], [100, 1, 99, 99, 0, 0, 0, 0]);
    assert.deepEqual([...cells.values()], [1]);
  });

  it('the ring remembers the last 64 distinct rows only: a repeat is not remembered again', () => {
    const trace = new QueryTrace(3);
    // 64 distinct rows fill the ring; sending the first again (a repeat) does not push it, so the
    // next distinct row evicts it.
    counted(Array.from({ length: RING_SIZE }, (_, i) => [i * 10, 0, 0]), trace);
    assert.equal(counted([[0, 0, 0]], trace).repeat, 1);
    counted([[-10, 0, 0]], trace);
    assert.equal(counted([[0, 0, 0]], trace).repeat, 0);
  });

  it('the ring remembers the last 64 rows only', () => {
    const rows = Array.from({ length: RING_SIZE + 1 }, (_, i) => [i * 10, 0, 0]);
    const trace = new QueryTrace(3);
    counted(rows, trace);
    // The row RING_SIZE back (index 1) is still there; the first (index 0) is gone.
    assert.equal(counted([[10, 0, 0]], trace).repeat, 1);
    assert.equal(counted([[0, 0, 0]], trace).repeat, 0);
  });

  it('line: steps collinear with the step before (a sweep, a bisection going back and forth)', () => {
    // A sweep along (1, 2, 0): every step after the first pair is collinear.
    const sweep = counted(Array.from({ length: 6 }, (_, i) => [i, 2 * i, 0]));
    assert.equal(sweep.pairs, 4);
    assert.equal(sweep.line, 4);
    // Bisection on a line: forward, back by half, forward by a quarter…: collinear, lengths differ.
    const bisect = counted([[0, 0, 0], [8, 8, 8], [4, 4, 4], [6, 6, 6], [5, 5, 5]]);
    assert.equal(bisect.line, 3);
    // Rows of a table differing in one column by different amounts are not a line…
    assert.equal(counted([[0, 0, 0], [1, 0, 0], [3, 0, 0], [3.5, 0, 0]]).line, 0);
    // …a one-column sweep repeating its step is.
    assert.equal(counted([[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]]).line, 2);
    // Steps in other directions are not.
    assert.equal(counted([[0, 0, 0], [1, 0, 0], [1, 1, 0], [2, 1, 1], [0, 3, 2]]).line, 0);
  });

  it('float32 rounding of a sweep stays within the tolerance', () => {
    const rows = Array.from({ length: 12 }, (_, i) => [Math.fround(5.1 + 0.013 * i), Math.fround(3.3 - 0.007 * i), Math.fround(1.4 + 0.021 * i)]);
    const c = counted(rows);
    assert.equal(c.line, c.pairs);
    assert.equal(c.pairs, 10);
  });

  it('allocates nothing per row beyond the scorer\'s own', () => {
    const row: ScoredRow = { score: 1, encoded: new Float64Array([1, 2, 3]) };
    const trace = new QueryTrace(3);
    const c = new SignalCounts();
    for (let i = 0; i < 1000; i++) trace.record(signals, row, c);
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 200_000; i++) {
      row.encoded[0] = i;
      trace.record(signals, row, c);
    }
    const grown = process.memoryUsage().heapUsed - before;
    assert.ok(grown < 2_000_000, `heap grew ${grown} bytes over 200k rows`);
  });
});

describe('lattice steps', () => {
  /** Finite differences: each base, then the base moved by h along each axis (one request each). */
  const probes = (bases: number[][], h: number) => bases.flatMap((b) => [b, ...[0, 1, 2].map((j) => b.map((v, k) => (k === j ? v + h : v)))]);

  it('a step reused from point after point: finite-difference probes', () => {
    let s = 3;
    const random = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    const bases = Array.from({ length: 10 }, (_, i) => [i * 7.3 + random(), random() * 5, random() * 4]);
    const c = counted(probes(bases, 0.5));
    // 10 bases × 3 probes; the first base's probes have nothing to repeat yet.
    assert.equal(c.lattice, 27);
    assert.equal(c.steps - c.repeat, 39);
  });

  it('float32 inputs: the same step from different bases within the tolerance', () => {
    const bases = [[100, 20, 0], [113.37, 17.1, 0.61], [131.9, 22.4, 1.3], [140.2, 12.9, 0.2], [166.6, 19.7, 2.05]];
    const rows = probes(bases, 0.7583).map((r) => r.map(Math.fround));
    assert.equal(counted(rows).lattice, 12);
  });

  it('real rows do not repeat steps; re-sending them does not either (same pairs, other order, cycles)', () => {
    let s = 7;
    const random = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    const pool = Array.from({ length: 100 }, () => [random() * 4, random() * 4, random() * 4]);
    // 5 000 rows drawn from 100: rows come back after being evicted, reached by the same steps as before.
    assert.equal(counted(Array.from({ length: 5_000 }, () => pool[Math.floor(random() * pool.length)])).lattice, 0);
    // The same 70 rows in the same order, again and again: every row is reached by its earlier step.
    assert.equal(counted(Array.from({ length: 700 }, (_, i) => pool[i % 70])).lattice, 0);
  });

  it('remembers the last 16 steps: a step reused after more is not a lattice step', () => {
    /** The step [0.5, 0, 0], then `k` steps that differ, a jump, and the first step again. */
    const rows = (k: number) => [
      [0, 0, 0], [0.5, 0, 0],
      ...Array.from({ length: k }, (_, m) => [1000 + 3 * (m + 1) ** 2, 7 * (m + 1), 0]),
      [9000, 0, 0], [9000.5, 0, 0],
    ];
    assert.equal(counted(rows(14)).lattice, 1, 'the 16th step back');
    assert.equal(counted(rows(15)).lattice, 0, 'the 17th step back');
  });
});

describe('coverage cells', () => {
  it('are deterministic, in range, and spread over many cells for spread-out rows', () => {
    const x = new Float64Array([0.3, -1.2, 2]);
    const a = signals.cell(x);
    assert.equal(new ExtractionSignals(SETTINGS, () => ({ score: 0, encoded: x })).cell(x), a, 'the same projections on every replica');
    const seen = new Set<number>();
    let s = 1;
    for (let i = 0; i < 2000; i++) {
      const v = new Float64Array(3).map(() => {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        return (s / 2 ** 32) * 8 - 4;
      });
      const id = signals.cell(v);
      assert.ok(id >= 0 && id < CELLS);
      seen.add(id);
    }
    assert.ok(seen.size > 50, `${seen.size} cells`);
    assert.ok(signals.cell(new Float64Array([Number.NaN, 0, 0])) >= 0);
  });
});

describe('SignalCounts', () => {
  it('goes to store buckets and back, cells as distinct bucket names', () => {
    const c = new SignalCounts();
    c.rows = 5;
    c.off = 2;
    c.lattice = 3;
    c.line = 1;
    const buckets = c.toBuckets(new Map([[7, 3], [300, 2]]));
    assert.deepEqual(buckets, { rows: 5, off: 2, lattice: 3, line: 1, c7: 3, c300: 2 });
    const back = new SignalCounts();
    back.setFromBuckets({ ...buckets, unknown: 9 });
    assert.deepEqual({ ...back }, { rows: 5, untracked: 0, off: 2, steps: 0, repeat: 0, tiny: 0, lattice: 3, pairs: 0, line: 1, cells: 2 });
  });
});
