import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PollSummary } from './drift-polls.js';
import { driftTable, driftTargets, targetLines, totals, type StreamOutcome } from './drift-report.js';

const summary = (s: Partial<PollSummary>): PollSummary => ({ requests: 10_000, changeAt: 3000, unshifted: 3000, falseAlarms: 0, falseWarnings: 0, polls: 50, finalStatus: 'drift', ...s });
const control = (requests: number, falseAlarms = 0): StreamOutcome =>
  ({ name: `control-${requests}`, model: 'iris', kind: 'control', summary: summary({ requests, changeAt: undefined, unshifted: requests, falseAlarms, finalStatus: 'ok' }), truePsi: { name: 'input[0]', psi: 0.0004, samples: requests } });
const shift = (name: string, kind: 'sudden' | 'gradual', psi: number | undefined, delay: number | undefined): StreamOutcome => ({
  name, model: 'titanic', kind,
  summary: summary(delay === undefined ? { finalStatus: 'ok' } : { delay, warningDelay: delay, detected: { at: 3000 + delay, status: 'drift', worst: { name: 'fare', psi: 1.5 } } }),
  ...(psi === undefined ? {} : { truePsi: { name: 'fare', psi, samples: 7000 } }),
});

describe('drift report', () => {
  it('meets every target: no false alarm over a million unshifted requests, sudden shifts within 2,000, gradual ones detected', () => {
    const targets = driftTargets([control(1_000_000), shift('fare-cents', 'sudden', 3.2, 400), shift('ramp', 'gradual', 2.5, 3800)]);
    assert.deepEqual(targets.map((t) => t.met), [true, true, true]);
    assert.equal(targets[0].value, '0 false alarms over 1006000 unshifted requests', 'the requests before each change point count too');
    assert.match(targets[1].value, /drift after 400 requests \(true PSI 3\.200 on fare\)/);
    assert.match(targets[2].value, /drift after 3800 requests from the ramp's start/);
    assert.equal(targetLines(targets).split('\n').at(-1), 'targets met: 3 of 3');
  });

  it('misses the false-alarm target for one false alarm, or for fewer than a million unshifted requests', () => {
    assert.equal(driftTargets([control(1_000_000, 1)])[0].met, false);
    assert.equal(driftTargets([control(999_999)])[0].met, false);
    const quick = driftTargets([control(100_000)], 100_000)[0];
    assert.equal(quick.met, true);
    assert.match(quick.name, /--quick: 100000 needed; the full run needs 1000000/);
  });

  it('misses a sudden shift detected late or never, and a gradual one never detected', () => {
    const t = driftTargets([control(1_000_000), shift('late', 'sudden', 0.9, 2200), shift('never', 'sudden', 0.9, undefined), shift('ramp', 'gradual', 0.5, undefined), shift('ok', 'sudden', 0.9, 2000)]);
    assert.deepEqual(t.map((x) => x.met), [true, false, false, false, true]);
    assert.match(t[2].value, /never detected/);
    assert.match(targetLines(t), /MISSED {2}late: sudden shift detected within 2000 requests/);
  });

  it('does not judge a shift whose true PSI is below 0.2, and misses one whose PSI is unknown', () => {
    const t = driftTargets([control(1_000_000), shift('mild', 'sudden', 0.08, undefined), shift('mild-ramp', 'gradual', 0.1, undefined), shift('unknown', 'sudden', undefined, 100)]);
    assert.deepEqual(t.map((x) => x.name.split(':')[0]), ['0 false alarms over ≥ 1000000 unshifted requests', 'unknown']);
    assert.equal(t[1].met, false);
    assert.match(t[1].value, /true PSI unknown/);
  });

  it('the table: a line per stream and the totals per million unshifted requests', () => {
    const outcomes = [control(1_000_000, 2), shift('titanic-sudden-fare-cents', 'sudden', 3.2, 400), shift('titanic-sudden-mild', 'sudden', 0.08, undefined)];
    const text = driftTable(outcomes);
    const lines = text.split('\n');
    assert.match(lines[0], /^stream\s+kind\s+requests\s+change at\s+true PSI\s+on\s+drift after\s+warning after\s+unshifted\s+false alarms/);
    assert.match(lines[1], /^control-1000000\s+control\s+1000000\s+—\s+0\.000\s+input\[0\]\s+—\s+—\s+1000000\s+2\s/);
    assert.match(lines[2], /^titanic-sudden-fare-cents\s+sudden\s+10000\s+3000\s+3\.200\s+fare\s+400\s+400\s+3000\s+0\s+0\s+fare 1\.500\s+drift$/);
    assert.match(lines[3], /titanic-sudden-mild\s+sudden\s+10000\s+3000\s+0\.080\s+fare\s+never\s+never/);
    assert.equal(lines[4], 'unshifted requests: 1006000; false alarms: 2 (2.0 per million); false warnings: 0 (0.0 per million)');
    assert.deepEqual(totals(outcomes), { unshifted: 1_006_000, falseAlarms: 2, falseWarnings: 0 });
  });
});
