import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GuardFigures, type GuardEvents } from './guard-events.js';

test('figures count each verdict by model, version, guard and outcome, and pass each event on', () => {
  const seen: string[] = [];
  const next: GuardEvents = { outcome: (m, v, g, o) => void seen.push(`${m}/${v}/${g}/${o}`) };
  const f = new GuardFigures(next);
  f.outcome('iris', '1', 'contract', 'pass');
  f.outcome('iris', '1', 'contract', 'pass');
  f.outcome('iris', '1', 'ood', 'flag');
  f.outcome('iris', '2', 'contract', 'reject');
  f.outcome('titanic', '1', 'squeeze', 'skipped');
  assert.deepEqual(f.of('iris'), { '1': { contract: { pass: 2 }, ood: { flag: 1 } }, '2': { contract: { reject: 1 } } });
  assert.equal(seen.length, 5);
  assert.deepEqual(f.of('unknown'), {});
  f.retain(['iris']);
  assert.deepEqual(f.of('titanic'), {});
  assert.deepEqual(Object.keys(f.of('iris')), ['1', '2']);
});
