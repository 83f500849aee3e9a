/**
 * The kill switch's own control over a store that times out: a kill or restore whose store command
 * does not answer in time is tried again (compare-and-set on the state read again), and a restore
 * whose first try landed without an answer is recognised, not answered NOT_KILLED. A store that
 * never answers still ends in STATE_STORE_UNAVAILABLE, with nothing applied.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { createKillSwitchPolicy } from '../../policies/kill-switch.js';
import type { GatewayConfig } from '../config.js';
import type { Serving } from '../serving.js';
import { MemoryStore } from '../state/memory-store.js';
import { StoreUnavailableError, type CompareAndSetResult, type RecordOptions } from '../state/store.js';
import { KillSwitch } from './kill-switch.js';
import { KnownGood } from './known-good.js';

const log = pino({ level: 'silent' });

const config = {
  models: { m: { versions: { '1': {}, '2': {} }, stable: '2', killSwitch: { rollbackTo: '1' } } },
  killSwitch: { enabled: true, reconcileMs: 60_000, staleAfterMs: 600_000, onStoreLoss: 'keep', knownGoodAfterMs: 600_000 },
} as unknown as GatewayConfig;

/** Both versions loaded and ready, as the model table would show them. */
const serving = {
  table: { models: new Map([['m', { versions: new Map(['1', '2'].map((v) => [v, { metadata: {}, adapter: { ready: async () => true } }])) }]]) },
} as unknown as Serving;

/** A memory store whose next `failures` compare-and-sets time out: before writing, or after (`landed`). */
class FlakyStore extends MemoryStore {
  failures = 0;
  landed = false;
  override async compareAndSet(scope: string, key: string, expected: number, value: unknown, opts?: RecordOptions): Promise<CompareAndSetResult> {
    if (scope === 'kill' && this.failures > 0) {
      this.failures--;
      if (this.landed) await super.compareAndSet(scope, key, expected, value, opts);
      throw new StoreUnavailableError('command timed out');
    }
    return super.compareAndSet(scope, key, expected, value, opts);
  }
}

async function start(store: MemoryStore) {
  const policy = createKillSwitchPolicy();
  const knownGood = new KnownGood(store, log, { afterMs: 600_000, config: () => config, isKilled: policy.isKilled });
  const ks = await KillSwitch.start({ store, log, config, policy, serving, knownGood, start: 'open', snapshotDir: '/nonexistent', shared: false, onApplied: () => undefined });
  return { ks, policy };
}

test('a kill whose store command timed out is tried again and lands once', async () => {
  const store = new FlakyStore();
  const { ks, policy } = await start(store);
  store.failures = 2;
  const k = await ks.kill({ scope: 'version', model: 'm', version: '2', mode: 'rollback' }, 'omar', 'bad');
  assert.equal(k.kill.target, '1');
  assert.equal(ks.state.kills.length, 1);
  assert.deepEqual(policy.recheck('m', '2'), { target: '1' });
  await ks.close();
});

test('a restore whose first try landed without an answer is recognised: restored, not NOT_KILLED', async () => {
  const store = new FlakyStore();
  const { ks, policy } = await start(store);
  await ks.kill({ scope: 'version', model: 'm', version: '2', mode: 'rollback' }, 'omar', 'bad');
  store.failures = 1;
  store.landed = true;
  const r = await ks.restore('version', 'm', '2', 'omar', 'fixed');
  assert.equal(r.action, 'restore');
  assert.equal(r.kill.version, '2');
  assert.deepEqual(ks.state.kills, []);
  assert.equal(policy.recheck('m', '2'), undefined);
  await ks.close();
});

test('a store that never answers: STATE_STORE_UNAVAILABLE after the tries, nothing applied', async () => {
  const store = new FlakyStore();
  const { ks, policy } = await start(store);
  store.failures = 100;
  await assert.rejects(ks.kill({ scope: 'model', model: 'm', mode: 'deny' }, 'omar', 'stop'), (e: Error & { code?: string }) => e.code === 'STATE_STORE_UNAVAILABLE');
  assert.equal(store.failures, 96, 'four tries');
  assert.deepEqual(ks.state.kills, []);
  assert.equal(policy.isDenied('m'), false);
  await ks.close();
});

test('without rollbackTo, a kill rolls back to the known-good version the store holds, over the highest ready version below stable', async () => {
  const store = new MemoryStore();
  const three = {
    models: { m: { versions: { '1': {}, '2': {}, '3': {} }, stable: '3' } },
    killSwitch: config.killSwitch,
  } as unknown as GatewayConfig;
  const ready = {
    table: { models: new Map([['m', { versions: new Map(['1', '2', '3'].map((v) => [v, { metadata: {}, adapter: { ready: async () => true } }])) }]]) },
  } as unknown as Serving;
  const policy = createKillSwitchPolicy();
  const knownGood = new KnownGood(store, log, { afterMs: 600_000, config: () => three, isKilled: policy.isKilled });
  const ks = await KillSwitch.start({ store, log, config: three, policy, serving: ready, knownGood, start: 'open', snapshotDir: '/nonexistent', shared: false, onApplied: () => undefined });
  const first = await ks.kill({ scope: 'version', model: 'm', version: '3', mode: 'rollback' }, 'omar', 'no known-good yet');
  assert.equal(first.kill.target, '2', 'the highest ready version below stable');
  await ks.restore('version', 'm', '3', 'omar', 'undo');
  // Version 1 served as stable long enough, as another replica recorded it.
  await store.set('known-good', 'm', { stable: '3', since: Date.now(), knownGood: '1', knownGoodAt: Date.now() });
  const second = await ks.kill({ scope: 'version', model: 'm', version: '3', mode: 'rollback' }, 'omar', 'roll back to known-good');
  assert.equal(second.kill.target, '1');
  assert.deepEqual(policy.recheck('m', '3'), { target: '1' });
  await ks.close();
});
