import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import pino from 'pino';
import { MemoryStore } from '../state/memory-store.js';
import { AuditTrail, CHECKPOINT_SCOPE, type TrailSink } from './trail.js';
import { checkpointSigned, countersignatureValid, entryHash, GENESIS, keyIdOf, type Checkpoint, type Countersign, type TrailEntry } from './trail-format.js';

const log = pino({ level: 'silent' });

class MemorySink implements TrailSink {
  readonly written: { entries: TrailEntry[]; durable: boolean }[] = [];
  failNext = false;
  async append(entries: readonly TrailEntry[], durable: boolean): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk full');
    }
    this.written.push({ entries: [...entries], durable });
  }
  get entries(): TrailEntry[] {
    return this.written.flatMap((w) => w.entries);
  }
  async close(): Promise<void> {}
}

function chainOk(entries: readonly TrailEntry[]): void {
  let prev = GENESIS;
  entries.forEach((e, i) => {
    assert.equal(e.seq, i + 1, 'no gap');
    assert.equal(e.prev, prev, `entry ${e.seq} links to the one before`);
    assert.equal(e.hash, entryHash(e), `entry ${e.seq}'s hash recomputes`);
    prev = e.hash;
  });
}

function trail(sink: TrailSink, replica: string, opts: { store?: MemoryStore; maxLossMs?: number; keys?: ReturnType<typeof generateKeyPairSync>[] } = {}) {
  const { privateKey } = generateKeyPairSync('ed25519');
  const publicKeys = new Map((opts.keys ?? []).map((k) => [keyIdOf(k.publicKey), k.publicKey]));
  return { key: privateKey, t: new AuditTrail({ replica, sink, key: privateKey, publicKeys, checkpointMs: 3_600_000, maxLossMs: opts.maxLossMs ?? 3_600_000, maxPending: 3, store: opts.store, log }) };
}

test('durable records are written and synced before they resolve, with the predictions queued before them, in chain order', async () => {
  const sink = new MemorySink();
  const { t } = trail(sink, 'a:1');
  t.prediction({ n: 1 });
  t.prediction({ n: 2 });
  assert.equal(sink.entries.length, 0, 'predictions wait for the next write');
  const e = await t.durable('admin', { action: 'traffic.set' });
  assert.equal(e.seq, 3);
  assert.deepEqual(sink.written.map((w) => [w.entries.map((x) => x.kind), w.durable]), [[['prediction', 'prediction', 'admin'], true]]);
  chainOk(sink.entries);
  // A full queue drops new predictions (a chain cannot lose an entry it made) and counts them.
  t.prediction({ n: 3 });
  t.prediction({ n: 4 });
  t.prediction({ n: 5 });
  t.prediction({ n: 6 });
  assert.equal(t.dropped, 1);
  await t.close();
  chainOk(sink.entries);
});

test('a failed write fails its waiter and is retried with the next: the chain keeps no gap', async () => {
  const sink = new MemorySink();
  const { t } = trail(sink, 'a:1');
  sink.failNext = true;
  await assert.rejects(t.durable('admin', { action: 'one' }), /disk full/);
  await t.durable('admin', { action: 'two' });
  assert.deepEqual(sink.entries.map((e) => (e.body as { action: string }).action), ['one', 'two']);
  chainOk(sink.entries);
  await t.close();
});

test('checkpoints sign the chain head; other replicas countersign them; a checkpoint under an unknown key is not countersigned', async () => {
  const store = new MemoryStore();
  const aSink = new MemorySink();
  const bSink = new MemorySink();
  const aKeys = generateKeyPairSync('ed25519');
  const a = new AuditTrail({ replica: 'a:1', sink: aSink, key: aKeys.privateKey, publicKeys: new Map(), checkpointMs: 3_600_000, maxLossMs: 3_600_000, maxPending: 100, store, log });
  const { t: b, key: bKey } = trail(bSink, 'b:2', { store, keys: [aKeys] });
  const stranger = trail(new MemorySink(), 'c:3', { store });
  await Promise.all([a.start(), b.start(), stranger.t.start()]);
  await a.durable('admin', { action: 'kill.version' });
  const cp = (await a.checkpoint()) as Checkpoint;
  assert.equal(cp.seq, 1, 'the claim is the head before the checkpoint entry');
  assert.equal(cp.hash, aSink.entries[0]!.hash);
  assert.ok(checkpointSigned(cp, aKeys.publicKey));
  assert.deepEqual(await store.get(CHECKPOINT_SCOPE, 'a:1'), cp, 'published to the shared store');
  await stranger.t.durable('admin', { action: 'x' });
  await stranger.t.checkpoint();
  await new Promise((r) => setImmediate(r));
  await b.durable('admin', { action: 'mine' });
  const counter = bSink.entries.filter((e) => e.kind === 'countersign');
  assert.equal(counter.length, 1, 'a\'s checkpoint countersigned; the stranger\'s (key not listed) not');
  const c = counter[0]!.body as Countersign;
  assert.deepEqual(c.checkpoint, cp);
  assert.ok(countersignatureValid(c, bKey));
  chainOk(bSink.entries);
  await Promise.all([a.close(), b.close(), stranger.t.close()]);
  assert.equal(aSink.entries.at(-1)!.kind, 'checkpoint', 'close checkpoints what was written');
  chainOk(aSink.entries);
  await store.close();
});
