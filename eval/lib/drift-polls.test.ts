import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pollOf, summarisePolls, type DriftStatus, type Poll } from './drift-polls.js';

/** A poll every 200 requests with these statuses. */
const log = (...statuses: DriftStatus[]): Poll[] => statuses.map((status, i) => ({ at: (i + 1) * 200, status }));

describe('drift poll accounting', () => {
  it('a quiet control: no false alarm, no detection, the final status', () => {
    const s = summarisePolls(log('insufficient', 'insufficient', 'ok', 'ok', 'ok'), 1000, []);
    assert.deepEqual([s.unshifted, s.falseAlarms, s.falseWarnings, s.delay, s.changeAt, s.polls, s.finalStatus], [1000, 0, 0, undefined, undefined, 5, 'ok']);
  });

  it('counts transitions into drift, not drift polls, as false alarms (a long alarm is one)', () => {
    const s = summarisePolls(log('ok', 'drift', 'drift', 'drift', 'ok', 'warning', 'drift'), 1400, []);
    assert.equal(s.falseAlarms, 2);
    // ok → drift (into alarming), drift → ok, ok → warning (into alarming), warning → drift (already alarming).
    assert.equal(s.falseWarnings, 2);
  });

  it('a first poll already in drift counts (the reset leaves the status insufficient)', () => {
    assert.equal(summarisePolls(log('drift'), 200, []).falseAlarms, 1);
  });

  it('a poll at the change point still judges unshifted requests only; the first drift after it is the detection', () => {
    // change at 600: polls at 200, 400, 600 are unshifted; 800 onwards see the shift.
    const s = summarisePolls(log('ok', 'ok', 'drift', 'drift', 'warning', 'drift'), 1200, [600]);
    assert.equal(s.falseAlarms, 1, 'drift at the poll of request 600 is a false alarm');
    assert.equal(s.unshifted, 600);
    assert.equal(s.detected?.at, 800);
    assert.equal(s.delay, 200);
    assert.equal(s.warningDelay, 200);
  });

  it('reports warnings and drift after the change point separately, and never when neither comes', () => {
    const s = summarisePolls(log('ok', 'ok', 'warning', 'warning', 'drift'), 1000, [300, 700]);
    assert.deepEqual([s.falseAlarms, s.falseWarnings, s.warningDelay, s.delay], [0, 0, 300, 700], 'delays count from the first change point');
    const never = summarisePolls(log('ok', 'ok', 'ok'), 600, [100]);
    assert.deepEqual([never.delay, never.warningDelay, never.detected], [undefined, undefined, undefined]);
  });

  it('reads the endpoint answer: status, window samples and the largest PSI of features and outputs', () => {
    const p = pollOf(400, {
      status: 'warning',
      window: { samples: 400 },
      features: [{ name: 'age', status: 'ok', psi: 0.05 }, { name: 'fare', status: 'warning', psi: 0.15 }, { name: 'bad', psi: 'x' }],
      outputs: [{ name: 'probabilities:class', status: 'ok', psi: 0.12 }],
    });
    assert.deepEqual(p, { at: 400, status: 'warning', samples: 400, worst: { name: 'fare', psi: 0.15, status: 'warning' } });
    assert.deepEqual(pollOf(1, { status: 'insufficient' }), { at: 1, status: 'insufficient' });
    assert.throws(() => pollOf(1, { status: 'alarm' }), /without a status of insufficient\/ok\/warning\/drift/);
    assert.throws(() => pollOf(1, null), /without a status/);
  });
});
