import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { verifyLog } from '../state/log-chain.js';
import { MemoryStore } from '../state/memory-store.js';
import { StoreUnavailableError } from '../state/store.js';
import { GatewayError } from '../errors.js';
import { AUDIT_SCOPE, AuditLog } from './audit-log.js';
import type { AuditInput } from './audit-record.js';

const log = pino({ level: 'silent' });

const change = (i: number, model = 'm'): AuditInput => ({ actor: 'po', via: 'admin:traffic', action: 'traffic.set', target: { kind: 'model', id: model }, revision: i, reason: `change ${i}` });

/** A memory store whose appends fail while `down` is true (what a store blinking looks like). */
function blinking(): { store: MemoryStore; down: { value: boolean } } {
  const store = new MemoryStore({ pruneIntervalMs: 0 });
  const down = { value: false };
  const append = store.append.bind(store);
  store.append = async (scope, entry) => {
    if (down.value) throw new StoreUnavailableError('store down');
    return append(scope, entry);
  };
  return { store, down };
}

test('a record the store cannot take is kept, retried until it lands, and the log keeps the order things happened in', async () => {
  const { store, down } = blinking();
  const audit = new AuditLog(store, log, 'test:1');
  try {
    assert.deepEqual(await audit.record(change(1)), { seq: 1 });
    down.value = true;
    assert.deepEqual(await audit.record(change(2)), { pending: true });
    down.value = false;
    // Behind a waiting record, a new one waits too: appending it now would put it before change 2.
    assert.deepEqual(await audit.record(change(3)), { pending: true });
    assert.equal(audit.pending, 2);
    for (let i = 0; i < 100 && audit.pending > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(audit.pending, 0, 'the waiting records landed once the store answered');
    const entries = await store.readLog(AUDIT_SCOPE, 1, 10);
    assert.deepEqual(entries.map((e) => (e.entry as { reason: string }).reason), ['change 1', 'change 2', 'change 3']);
    assert.equal(verifyLog(entries), undefined);
  } finally {
    await audit.close();
    await store.close();
  }
});

test('close tries once more to append what waits', async () => {
  const { store, down } = blinking();
  const audit = new AuditLog(store, log, 'test:1');
  down.value = true;
  await audit.record(change(1));
  down.value = false;
  await audit.close(1000);
  assert.equal((await store.logHead(AUDIT_SCOPE)).seq, 1);
  await store.close();
});

test('a query filters by target and action, newest first, pages back with beforeSeq, and maps a store failure to STATE_STORE_UNAVAILABLE', async () => {
  const store = new MemoryStore({ pruneIntervalMs: 0 });
  const audit = new AuditLog(store, log, 'test:1');
  for (let i = 1; i <= 6; i++) await audit.record(change(i, i % 2 === 0 ? 'even' : 'odd'));
  await audit.record({ actor: 'alice', via: 'self', action: 'opt-outs.set', target: { kind: 'subject', id: 'alice' }, revision: 1 });
  const even = await audit.query({ targetKind: 'model', targetId: 'even', limit: 10 });
  assert.deepEqual(even.map((r) => r.record.revision), [6, 4, 2]);
  const page = await audit.query({ targetKind: 'model', targetId: 'even', limit: 10, beforeSeq: even[0].seq });
  assert.deepEqual(page.map((r) => r.record.revision), [4, 2]);
  assert.deepEqual((await audit.query({ actionPrefix: 'opt-outs.', limit: 10 })).map((r) => r.record.actor), ['alice']);
  assert.equal((await audit.query({ limit: 3 })).length, 3);
  store.logHead = async () => {
    throw new StoreUnavailableError('store down');
  };
  await assert.rejects(audit.query({ limit: 1 }), (e: unknown) => e instanceof GatewayError && e.code === 'STATE_STORE_UNAVAILABLE');
  await audit.close();
  await store.close();
});
