import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Row } from './models.js';
import { Rng } from './random.js';
import { simba } from './simba.js';

/** A two-class logistic model over the sum of the features: class 1 when the sum exceeds 1. */
function model(row: Row): Promise<number[]> {
  const s = (row as number[]).reduce((a, b) => a + b, 0);
  const p = 1 / (1 + Math.exp(-8 * (s - 1)));
  return Promise.resolve([1 - p, p]);
}

const opts = (eps: number, n: number, maxQueries = 1000) => ({
  eps: Array<number>(n).fill(eps),
  bounds: Array.from({ length: n }, () => [0, 1] as const),
  maxQueries,
  decimals: 3,
  // Its own seed: the test must not change when the sets' build seed does.
  rng: new Rng('simba-test', 'simba-unit-test'),
});

describe('SimBA', () => {
  it('flips the answer within the L∞ budget and the bounds, counting every query', async () => {
    // The sum is never exactly 1 on the ±0.2 grid around this row: no tie between the classes.
    const x = [0.3, 0.3, 0.3, 0.32];
    let calls = 0;
    const r = await simba(x, (row) => { calls++; return model(row); }, opts(0.2, 4));
    assert.equal(r.flipped, true);
    assert.equal(r.from, 1);
    assert.equal(r.to, 0);
    assert.equal(r.queries, calls);
    for (let i = 0; i < 4; i++) assert.ok(Math.abs((r.row[i] as number) - x[i]) <= 0.2 + 1e-9 && (r.row[i] as number) >= 0);
    assert.ok((await model(r.row))[0] > 0.5, 'the returned row is the flipped one');
  });

  it('does not flip what the budget cannot reach, and stops', async () => {
    const r = await simba([0.5, 0.5, 0.5, 0.5], model, opts(0.05, 4));
    assert.equal(r.flipped, false);
    assert.ok(r.queries <= 1 + 2 * 4 * 4, `${r.queries} queries`);
  });

  it('spends no more than its query budget', async () => {
    const r = await simba(Array<number>(50).fill(0.05), model, opts(0.001, 50, 10));
    assert.equal(r.flipped, false);
    assert.equal(r.queries, 10);
  });

  it('leaves features with ε = 0 and missing values unchanged', async () => {
    const o = { ...opts(0.3, 3), eps: [0.3, 0, 0.3] };
    const r = await simba([0.9, 0.3, null], async (row) => model(row.map((v) => v ?? 0)), o);
    assert.equal(r.row[1], 0.3);
    assert.equal(r.row[2], null);
    assert.equal(r.flipped, true);
  });
});
