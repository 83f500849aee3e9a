import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GatewayConfig } from '../config.js';
import { compileKillTable, EMPTY_KILL_STATE, keyOf, parseKillState, withKill, withoutKill, type KillEntry, type KillState } from './kill-state.js';

const config = {
  models: {
    m: { versions: { '1': {}, '2': {}, '3': {} }, stable: '2' },
    n: { versions: { a: {}, b: {} }, stable: 'b' },
  },
} as unknown as GatewayConfig;

const base = { by: 'omar', at: '2026-12-05T00:00:00.000Z', reason: 'r' };

function state(...entries: Omit<KillEntry, 'revision' | 'by' | 'at' | 'reason'>[]): KillState {
  let s: KillState = EMPTY_KILL_STATE;
  for (const e of entries) s = withKill(s, { ...base, ...e }).state;
  return s;
}

test('nothing killed compiles to an empty table', () => {
  assert.equal(compileKillTable(EMPTY_KILL_STATE, config).size, 0);
});

test('a version kill redirects that version only; a model kill every other version; deny refuses', () => {
  const t = compileKillTable(state({ scope: 'version', model: 'm', version: '3', mode: 'rollback', target: '1' }), config);
  assert.deepEqual([...(t.get('m')?.redirect ?? [])], [['3', '1']]);
  assert.equal(t.get('n'), undefined);
  const mk = compileKillTable(state({ scope: 'model', model: 'm', mode: 'rollback', target: '1' }), config);
  assert.deepEqual([...(mk.get('m')?.redirect ?? [])].sort(), [['2', '1'], ['3', '1']]);
  const deny = compileKillTable(state({ scope: 'model', model: 'n', mode: 'deny' }), config);
  assert.equal(deny.get('n')?.deny, true);
});

test('redirects are followed to a live version; a loop or dead end is refused', () => {
  const chained = compileKillTable(state(
    { scope: 'version', model: 'm', version: '3', mode: 'rollback', target: '2' },
    { scope: 'version', model: 'm', version: '2', mode: 'rollback', target: '1' },
  ), config);
  assert.equal(chained.get('m')?.redirect.get('3'), '1');
  const loop = compileKillTable(state(
    { scope: 'version', model: 'm', version: '3', mode: 'rollback', target: '2' },
    { scope: 'version', model: 'm', version: '2', mode: 'rollback', target: '3' },
  ), config);
  assert.equal(loop.get('m')?.redirect.get('3'), undefined);
  assert.equal(loop.get('m')?.redirect.get('2'), undefined);
  assert.equal(loop.get('m')?.redirect.has('2'), true, 'still killed: refused, not served');
});

test('a fleet-wide kill covers every model; rollback uses each model\'s target, a model without one is denied', () => {
  const t = compileKillTable(state({ scope: 'all', mode: 'rollback', targets: { m: '1' } }), config);
  assert.equal(t.get('m')?.redirect.get('2'), '1');
  assert.equal(t.get('n')?.deny, true, 'a model added since (no target) is denied');
  const d = compileKillTable(state({ scope: 'all', mode: 'deny' }), config);
  assert.equal(d.get('m')?.deny && d.get('n')?.deny, true);
});

test('kills naming what the configuration no longer has are ignored; stale denies everything', () => {
  const t = compileKillTable(state({ scope: 'version', model: 'gone', version: '1', mode: 'rollback', target: '2' }, { scope: 'version', model: 'm', version: '9', mode: 'rollback', target: '1' }), config);
  assert.equal(t.size, 0);
  const stale = compileKillTable(EMPTY_KILL_STATE, config, true);
  assert.equal(stale.get('m')?.deny && stale.get('n')?.deny, true);
});

test('revisions grow with every change; a key holds one kill; restore removes it', () => {
  const s1 = withKill(EMPTY_KILL_STATE, { ...base, scope: 'model', model: 'm', mode: 'deny' });
  assert.equal(s1.entry.revision, 1);
  const s2 = withKill(s1.state, { ...base, scope: 'model', model: 'm', mode: 'rollback', target: '1' });
  assert.equal(s2.state.revision, 2);
  assert.equal(s2.state.kills.length, 1, 'the same key is replaced');
  assert.equal(keyOf(s2.entry), 'model:m');
  const r = withoutKill(s2.state, 'model:m');
  assert.equal(r?.state.revision, 3);
  assert.equal(r?.state.kills.length, 0);
  assert.equal(withoutKill(r?.state ?? EMPTY_KILL_STATE, 'model:m'), undefined);
});

test('stored values that are not kill states are refused', () => {
  for (const bad of [null, 1, {}, { revision: 1 }, { revision: 1, kills: [{ scope: 'model', mode: 'deny' }] }, { revision: 1, kills: [{ scope: 'x', model: 'm', mode: 'deny' }] }]) {
    assert.throws(() => parseKillState(bad));
  }
  assert.deepEqual(parseKillState({ revision: 0, kills: [] }), { revision: 0, kills: [] });
});
