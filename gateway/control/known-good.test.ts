import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import type { GatewayConfig } from '../config.js';
import { MemoryStore } from '../state/memory-store.js';
import { KnownGood } from './known-good.js';

const log = pino({ level: 'silent' });
const configWith = (stable: string) => ({ models: { m: { versions: { '1': {}, '2': {}, '3': {} }, stable } } }) as unknown as GatewayConfig;

test('a stable version becomes known-good after knownGoodAfterMs unkilled; a new stable keeps the old one until it passes; a kill restarts its time', async () => {
  const store = new MemoryStore();
  let now = 1_000_000;
  let config = configWith('2');
  let killed = new Set<string>();
  const a = new KnownGood(store, log, { afterMs: 60_000, config: () => config, isKilled: (_m, v) => killed.has(v), now: () => now });
  // A second replica sharing the store agrees.
  const b = new KnownGood(store, log, { afterMs: 60_000, config: () => config, isKilled: (_m, v) => killed.has(v), now: () => now });
  await a.tick();
  assert.equal(await a.of('m'), undefined, 'nothing has passed yet');
  now += 59_000;
  await b.tick();
  assert.equal(await b.of('m'), undefined);
  now += 2_000;
  await b.tick();
  assert.equal(await a.of('m'), '2', 'served 61 s unkilled');

  config = configWith('3');
  await a.tick();
  now += 30_000;
  await a.tick();
  assert.equal(await a.of('m'), '2', 'version 3 has not passed yet: 2 is still the known-good one');
  killed = new Set(['3']);
  now += 40_000;
  await a.tick();
  killed = new Set();
  now += 30_000;
  await a.tick();
  assert.equal(await a.of('m'), '2', 'the kill restarted 3\'s time');
  now += 31_000;
  await b.tick();
  assert.equal(await a.of('m'), '3');
  await Promise.all([a.close(), b.close(), store.close()]);
});

test('a version a rollout promoted is watched in place of the configuration\'s stable one, and becomes known-good after its time', async () => {
  const store = new MemoryStore();
  let now = 1_000_000;
  let promoted: string | undefined;
  const k = new KnownGood(store, log, { afterMs: 60_000, config: () => configWith('1'), isKilled: () => false, stableOf: () => promoted, now: () => now });
  await k.tick();
  now += 61_000;
  await k.tick();
  assert.equal(await k.of('m'), '1');
  promoted = '2';
  await k.tick();
  now += 30_000;
  await k.tick();
  assert.equal(await k.of('m'), '1', 'the promoted version has not served long enough yet');
  now += 31_000;
  await k.tick();
  assert.equal(await k.of('m'), '2', 'known-good after knownGoodAfterMs as the serving stable version');
  await Promise.all([k.close(), store.close()]);
});
