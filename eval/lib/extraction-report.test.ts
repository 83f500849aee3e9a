import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SubjectOutcome } from './extraction-replay.js';
import { extractionTable, extractionTargets, medianQueriesToFlag } from './extraction-report.js';

const subject = (role: SubjectOutcome['role'], kind: string, flaggedAfter: number | undefined, extra: Partial<SubjectOutcome> = {}): SubjectOutcome =>
  ({ subject: `${kind}-${flaggedAfter}`, role, kind, rows: 1000, flaggedAfter, signals: flaggedAfter === undefined ? [] : ['lattice'], peak: { lattice: flaggedAfter === undefined ? 0.4 : 1 }, ...extra });
const benign = (n: number): SubjectOutcome[] => Array.from({ length: n }, (_, i) => subject('benign', 'interactive', undefined, { subject: `b${i}`, peak: { 'off-manifold': i / 100 } }));

describe('extraction report', () => {
  it('the median of queries to flag over attackers, a never-flagged one counting as infinitely many', () => {
    assert.equal(medianQueriesToFlag([subject('attacker', 'a', 20), subject('attacker', 'b', 300), subject('attacker', 'c', 40)]), 40);
    assert.equal(medianQueriesToFlag([subject('attacker', 'a', 20), subject('attacker', 'b', 30)]), 25);
    assert.equal(medianQueriesToFlag([subject('attacker', 'a', 20), subject('attacker', 'b', undefined), subject('attacker', 'c', undefined)]), Infinity);
    assert.ok(Number.isNaN(medianQueriesToFlag(benign(3))));
  });

  it('meets the targets when every attacker is flagged, the median within 200 queries, and no benign caller is', () => {
    const attackers = [subject('attacker', 'uniform', 20), subject('attacker', 'jacobian', 180), subject('attacker', 'mimic', 450)];
    const [flagged, quiet] = extractionTargets('titanic', [...attackers, ...benign(50)]);
    assert.equal(flagged.met, true, flagged.value);
    assert.equal(flagged.value, '3 of 3 flagged, median 180 (uniform 20, jacobian 180, mimic 450)');
    assert.deepEqual([quiet.met, quiet.value], [true, '0 of 50 flagged']);
  });

  it('misses them for an attacker never flagged, a median beyond 200, or one benign caller flagged', () => {
    const never = extractionTargets('t', [subject('attacker', 'uniform', 20), subject('attacker', 'mimic', undefined), subject('attacker', 'grid', 30), ...benign(2)]);
    assert.equal(never[0].met, false, 'every attacker must be flagged, whatever the median');
    const slow = extractionTargets('t', [subject('attacker', 'a', 201), subject('attacker', 'b', 201), subject('attacker', 'c', 20)]);
    assert.equal(slow[0].met, false);
    const probe = subject('benign', 'probe', 20, { subject: 'caller-07' });
    const fp = extractionTargets('t', [subject('attacker', 'a', 20), ...benign(49), probe]);
    assert.deepEqual([fp[1].met, fp[1].value], [false, '1 of 50 flagged (probe caller-07)']);
  });

  it('the table: per attacker its rows and queries to flag (or its closest signal), the benign callers flagged and the closest', () => {
    const table = extractionTable('mnist', [subject('attacker', 'uniform', 20, { subject: 'caller-03' }), subject('attacker', 'mimic', undefined, { subject: 'caller-09', peak: { 'tiny-steps': 0.7 } }),
      ...benign(3), subject('benign', 'probe', 20, { subject: 'caller-11', signals: ['off-manifold'] })], 'replayed with a simulated clock');
    assert.match(table, /^mnist extraction: replayed with a simulated clock/);
    assert.match(table, /uniform\s+caller-03\s+1000\s+20\s+lattice/);
    assert.match(table, /mimic\s+caller-09\s+1000\s+never\s+tiny-steps 0\.70/);
    assert.match(table, /benign callers: 4 \(4000 rows\), 1 flagged/);
    assert.match(table, /flagged: probe caller-11 after 20 of 1000 rows \(off-manifold\)/);
    assert.match(table, /closest unflagged: interactive b2 \(1000 rows\), off-manifold score 0\.02 of 1/);
  });
});
