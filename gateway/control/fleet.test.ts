import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import pino from 'pino';
import { MemoryStore } from '../state/memory-store.js';
import { Fleet } from './fleet.js';

const log = pino({ level: 'silent' });
const opts = (id: string) => ({ id, gatewayVersion: '1.0.0', configHash: 'a'.repeat(64), heartbeatMs: 100, expireAfterMs: 300 });

test('replicas list each other with the kill revision they applied; a stopped one drops out, a closed one at once', async () => {
  const store = new MemoryStore();
  const a = new Fleet(store, log, opts('host-a:1'));
  const b = new Fleet(store, log, opts('host-b:2'));
  await Promise.all([a.start(), b.start()]);
  let list = await a.list();
  assert.deepEqual(list.map((r) => [r.id, r.host, r.kill.revision]), [['host-a:1', 'host-a', 0], ['host-b:2', 'host-b', 0]]);
  b.applied(7, Date.parse('2026-12-05T00:00:00.000Z'));
  await b.beat();
  list = await a.list();
  assert.deepEqual(list[1].kill, { revision: 7, appliedAt: '2026-12-05T00:00:00.000Z' });
  await a.close();
  assert.deepEqual((await b.list()).map((r) => r.id), ['host-b:2'], 'a closed replica leaves the list at once');
  // A replica that stops heartbeating (a hung process) drops out after expireAfterMs.
  const c = new Fleet(store, log, opts('host-c:3'));
  await c.beat();
  assert.equal((await b.list()).length, 2);
  await sleep(450);
  assert.deepEqual((await b.list()).map((r) => r.id), ['host-b:2']);
  await b.close();
  await store.close();
});
