import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DriftReference } from '../../gateway/drift/bins.js';
import { Rng } from './random.js';
import { maxPsi, psi, StreamBins } from './stream-psi.js';

/** A Titanic-like reference: pclass edges {1,2,3}, sex, age, and a 3-class logits output. */
const REF: DriftReference = {
  rows: 100,
  features: [
    { name: 'pclass', kind: 'numeric', edges: [1, 2, 3], counts: [0, 25, 25, 50, 0] },
    { name: 'sex', kind: 'categorical', categories: ['female', 'male'], counts: [40, 60, 0, 0] },
    { name: 'age', kind: 'numeric', edges: [20, 40], counts: [30, 40, 20, 10] },
  ],
  output: { name: 'out', logits: true, classes: 3 },
  outputs: [
    { name: 'out:class', kind: 'categorical', categories: ['0', '1', '2'], counts: [30, 30, 40, 0, 0] },
    { name: 'out:score', kind: 'numeric', edges: [0.5, 0.9], counts: [10, 50, 40, 0] },
  ],
};
const ORDER = ['pclass', 'sex', 'age', 'fare'];

describe('stream PSI', () => {
  it('matches a hand computation with a pseudo-count of 0.5 per bin', () => {
    // p = (10.5, 30.5, 60.5)/101.5, q = (30.5, 30.5, 40.5)/101.5: Σ (q − p) ln(q/p) = 0.289201 (0.3008 unsmoothed).
    assert.ok(Math.abs(psi([10, 30, 60], [30, 30, 40]) - 0.2892006) < 1e-6);
    assert.ok(psi([10, 30, 60], [20, 60, 120]) < 1e-4, 'the same shares at another size: only the smoothing differs');
    assert.equal(psi([10, 30, 60], [10, 30, 60]), 0);
    assert.equal(psi([10, 30, 0, 60, 0], [30, 30, 0, 40, 0]), psi([10, 30, 60], [30, 30, 40]), 'bins empty on both sides are left out');
    assert.ok(psi([0, 10, 30, 60], [0, 100_000, 300_000, 600_000]) < 1e-3, 'an empty missing bin adds nothing (smoothed, it would add about 0.03) to an unshifted stream, however long');
    assert.ok(Number.isFinite(psi([50, 50, 0], [0, 0, 100])), 'empty bins stay finite');
    assert.throws(() => psi([1, 2], [1, 2, 3]), /2 reference bins but 3 live bins/);
  });

  it('stays small for rows drawn from the reference distribution and large for a real shift', () => {
    const rng = new Rng('stream-psi-null', 'test');
    const shares = [0.3, 0.4, 0.2, 0.1];
    const draw = (): number => { let u = rng.next(); let k = 0; while (u >= shares[k] && k < 3) u -= shares[k++]; return k; };
    const live = [0, 0, 0, 0];
    for (let i = 0; i < 7000; i++) live[draw()]++;
    assert.ok(psi([300, 400, 200, 100], live) < 0.01, `null PSI ${psi([300, 400, 200, 100], live)}`);
    assert.ok(psi([300, 400, 200, 100], [0, 0, 2000, 5000]) > 1);
  });

  it('counts rows in the profile bins by feature name: numeric edges, categories, other and missing', () => {
    const bins = new StreamBins({ ...REF, outputs: [] }, ORDER);
    // pclass 1 → bin 1 ([1,2)), 3 → bin 3; sex 'child' → other; age null → missing, 70 → [40, ∞).
    for (const row of [[1, 'female', 10, 7], [3, 'child', null, 7], [3, 'male', 70, 7], [2, '', 30, 7]]) bins.addRow(row);
    assert.equal(bins.rows, 4);
    const got = new Map(bins.psi().map((p) => [p.name, p]));
    assert.deepEqual([...got.keys()], ['pclass', 'sex', 'age'], 'outputs without answers are left out');
    // The counts themselves: compare with psi() of the expected count vectors.
    assert.equal(got.get('pclass')?.psi, psi([0, 25, 25, 50, 0], [0, 1, 1, 2, 0]));
    assert.equal(got.get('sex')?.psi, psi([40, 60, 0, 0], [1, 1, 1, 1]));
    assert.equal(got.get('age')?.psi, psi([30, 40, 20, 10], [1, 1, 1, 1]));
    assert.equal(got.get('age')?.samples, 4);
  });

  it('bins answers: the predicted class and the top probability, softmax first for logits', () => {
    const bins = new StreamBins(REF, ORDER);
    bins.addScores([0, 0, 10]); // class 2, top ≈ 1 → score bin [0.9, ∞)
    bins.addScores([Math.log(3), Math.log(1), Math.log(1)]); // class 0, top 3/5 = 0.6 → [0.5, 0.9)
    assert.equal(bins.addResponse({ outputs: [{ name: 'other', data: [1, 2, 3] }, { name: 'out', data: [0, 5, 0, 0, 0, 0] }] }), true); // classes 1 and 0, top 0.98 and 1/3
    assert.equal(bins.addResponse({ outputs: [{ name: 'out', data: [1, 2] }] }), false, 'a length that is not a multiple of the classes');
    assert.equal(bins.addResponse({ error: 'x' }), false);
    const got = new Map(bins.psi().map((p) => [p.name, p]));
    assert.equal(got.get('out:class')?.psi, psi([30, 30, 40, 0, 0], [2, 1, 1, 0, 0]));
    assert.equal(got.get('out:score')?.psi, psi([10, 50, 40, 0], [1, 1, 2, 0]));
    assert.equal(got.get('out:class')?.samples, 4);
  });

  it('takes probabilities as they are when the output is not logits', () => {
    const bins = new StreamBins({ ...REF, output: { name: 'out', logits: false, classes: 3 } }, ORDER);
    bins.addScores([0.2, 0.45, 0.35]); // class 1, top 0.45 → below 0.5
    const got = new Map(bins.psi().map((p) => [p.name, p]));
    assert.equal(got.get('out:score')?.psi, psi([10, 50, 40, 0], [1, 0, 0, 0]));
  });

  it('refuses a reference whose features the rows do not have, and picks the largest PSI', () => {
    assert.throws(() => new StreamBins(REF, ['pclass', 'sex']), /feature age the model's rows do not/);
    assert.deepEqual(maxPsi([{ name: 'a', psi: 0.1, samples: 1 }, { name: 'b', psi: 0.7, samples: 1 }, { name: 'c', psi: 0.2, samples: 1 }])?.name, 'b');
    assert.equal(maxPsi([]), undefined);
  });
});
