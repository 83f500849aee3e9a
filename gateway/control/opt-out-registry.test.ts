import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino, type Logger } from 'pino';
import { GatewayError } from '../errors.js';
import { MemoryStore } from '../state/memory-store.js';
import { RedisStore } from '../state/redis-store.js';
import { StoreUnavailableError, type StateStore } from '../state/store.js';
import { RedisServer } from '../../test/helpers/redis.js';
import { OPT_OUT } from '../../policies/policy.js';
import { OPT_OUTS_SCOPE, OptOutRegistry } from './opt-out-registry.js';

const { experiments: E, tracking: T, automatedDecision: A } = OPT_OUT;

function capturingLog(): { log: Logger; lines: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { log, lines };
}

const silent = pino({ level: 'silent' });
const closing: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closing.reverse()) await c();
});

async function registry(store: StateStore, log: Logger = silent, reconcileMs = 60_000): Promise<OptOutRegistry> {
  const r = new OptOutRegistry(store, { log, reconcileMs });
  await r.start();
  closing.push(() => r.close());
  return r;
}

async function until(what: string, cond: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await sleep(5);
  }
}

/** A real store that can be made to fail like an unreachable Redis (a test double of the real interface). */
class Breakable implements StateStore {
  readonly kind = 'redis';
  down = false;
  constructor(readonly inner: StateStore) {}
  #check(): void {
    if (this.down) throw new StoreUnavailableError('redis get failed: connection is reconnecting');
  }
  async charge(...a: Parameters<StateStore['charge']>) { this.#check(); return this.inner.charge(...a); }
  async acquire(...a: Parameters<StateStore['acquire']>) { this.#check(); return this.inner.acquire(...a); }
  async release(...a: Parameters<StateStore['release']>) { this.#check(); return this.inner.release(...a); }
  async get(...a: Parameters<StateStore['get']>) { this.#check(); return this.inner.get(...a); }
  async set(...a: Parameters<StateStore['set']>) { this.#check(); return this.inner.set(...a); }
  async delete(...a: Parameters<StateStore['delete']>) { this.#check(); return this.inner.delete(...a); }
  async records(...a: Parameters<StateStore['records']>) { this.#check(); return this.inner.records(...a); }
  async forget(...a: Parameters<StateStore['forget']>) { this.#check(); return this.inner.forget(...a); }
  async publish(...a: Parameters<StateStore['publish']>) { this.#check(); return this.inner.publish(...a); }
  async read(...a: Parameters<StateStore['read']>) { this.#check(); return this.inner.read(...a); }
  async compareAndSet(...a: Parameters<StateStore['compareAndSet']>) { this.#check(); return this.inner.compareAndSet(...a); }
  async append(...a: Parameters<StateStore['append']>) { this.#check(); return this.inner.append(...a); }
  async readLog(...a: Parameters<StateStore['readLog']>) { this.#check(); return this.inner.readLog(...a); }
  async logHead(...a: Parameters<StateStore['logHead']>) { this.#check(); return this.inner.logHead(...a); }
  async add(...a: Parameters<StateStore['add']>) { this.#check(); return this.inner.add(...a); }
  async sum(...a: Parameters<StateStore['sum']>) { this.#check(); return this.inner.sum(...a); }
  subscribe(...a: Parameters<StateStore['subscribe']>) { return this.inner.subscribe(...a); }
  healthy() { return !this.down; }
  close() { return this.inner.close(); }
}

test('set and clear change the local copy at once and the stored record; bits() of others stay 0', async () => {
  const store = new MemoryStore();
  const r = await registry(store);
  assert.equal(r.bits('alice'), 0);
  const change = await r.set('alice', ['tracking', 'experiments'], 'alice');
  assert.equal(r.bits('alice'), E | T, 'applied before the call returns');
  assert.equal(change.before, undefined);
  assert.deepEqual(change.after?.kinds, ['experiments', 'tracking'], 'canonical order');
  const stored = (await store.get(OPT_OUTS_SCOPE, 'alice')) as { kinds: string[]; updatedAt: string; updatedBy: string };
  assert.deepEqual(stored.kinds, ['experiments', 'tracking']);
  assert.equal(stored.updatedBy, 'alice');
  assert.ok(!Number.isNaN(Date.parse(stored.updatedAt)));
  const replaced = await r.set('alice', ['automated-decision'], 'admin-1');
  assert.deepEqual([replaced.before?.kinds, replaced.after?.kinds], [['experiments', 'tracking'], ['automated-decision']]);
  assert.equal(r.bits('alice'), A, 'a set replaces, it does not add');
  assert.equal(r.bits('bob'), 0);
  const cleared = await r.clear('alice');
  assert.deepEqual(cleared.before?.kinds, ['automated-decision']);
  assert.equal(r.bits('alice'), 0);
  assert.equal(await store.get(OPT_OUTS_SCOPE, 'alice'), undefined);
  assert.equal((await r.clear('alice')).before, undefined, 'clearing nothing is harmless');
});

test('a change on one replica reaches another by notification; start() loads what is already stored', async () => {
  const store = new MemoryStore();
  await store.set(OPT_OUTS_SCOPE, 'early', { kinds: ['tracking'], updatedAt: '', updatedBy: 'x' });
  const a = await registry(store);
  const b = await registry(store);
  assert.equal(b.bits('early'), T, 'loaded at start');
  await a.set('carol', ['experiments'], 'carol');
  await until('b sees carol', () => b.bits('carol') === E);
  await a.clear('early');
  await until('b drops early', () => b.bits('early') === 0);
});

test('a lost notification is made good by the periodic reconcile', async () => {
  const store = new MemoryStore();
  const r = await registry(store, silent, 100);
  // Written by another replica whose notification never arrived.
  await store.set(OPT_OUTS_SCOPE, 'dave', { kinds: ['experiments', 'automated-decision'], updatedAt: '', updatedBy: 'x' });
  assert.equal(r.bits('dave'), 0);
  await until('reconciled', () => r.bits('dave') === (E | A));
  await store.delete(OPT_OUTS_SCOPE, 'dave');
  await until('reconciled away', () => r.bits('dave') === 0);
});

test('store down on a write: STATE_STORE_UNAVAILABLE and nothing changed, here or in the store', async () => {
  const inner = new MemoryStore();
  const store = new Breakable(inner);
  const r = await registry(store);
  await r.set('erin', ['tracking'], 'erin');
  store.down = true;
  for (const attempt of [() => r.set('erin', ['experiments'], 'erin'), () => r.clear('erin'), () => r.set('frank', ['experiments'], 'frank')]) {
    await assert.rejects(attempt(), (e: unknown) => e instanceof GatewayError && e.code === 'STATE_STORE_UNAVAILABLE' && e.status === 503);
  }
  assert.equal(r.bits('erin'), T);
  assert.equal(r.bits('frank'), 0);
  assert.deepEqual(((await inner.get(OPT_OUTS_SCOPE, 'erin')) as { kinds: string[] }).kinds, ['tracking']);
  assert.equal(await inner.get(OPT_OUTS_SCOPE, 'frank'), undefined);
});

test('store down on reconcile: the last known copy is kept and the outage is warned about once; back, it reloads', async () => {
  const inner = new MemoryStore();
  const store = new Breakable(inner);
  const { log, lines } = capturingLog();
  const r = await registry(store, log);
  await r.set('gina', ['experiments'], 'gina');
  store.down = true;
  for (let i = 0; i < 5; i++) assert.equal(await r.reconcile(), false);
  assert.equal(r.bits('gina'), E, 'still enforced');
  const warnings = lines.filter((l) => l.level === 40 && /keeping the last known copy/.test(l.msg));
  assert.equal(warnings.length, 1, JSON.stringify(lines));
  await inner.set(OPT_OUTS_SCOPE, 'hal', { kinds: ['tracking'], updatedAt: '', updatedBy: 'x' });
  store.down = false;
  assert.equal(await r.reconcile(), true);
  assert.equal(r.bits('hal'), T);
  assert.ok(lines.some((l) => l.level === 30 && /answers again/.test(l.msg)));
});

test('a change made while a reconcile reads is not undone by its older snapshot', async () => {
  const inner = new MemoryStore();
  let release: (() => void) | undefined;
  const slowRecords = new Breakable(inner);
  slowRecords.records = async (scope: string) => {
    const snapshot = await inner.records(scope);
    await new Promise<void>((res) => (release = res));
    return snapshot;
  };
  const r = new OptOutRegistry(slowRecords, { log: silent, reconcileMs: 60_000 });
  // start() would wait for the first reconcile; drive it by hand instead.
  const reconciling = r.reconcile();
  await until('snapshot taken', () => release !== undefined);
  await r.set('ivan', ['tracking'], 'ivan');
  release?.();
  assert.equal(await reconciling, true);
  assert.equal(r.bits('ivan'), T);
  await r.close();
});

test('records that are not opt-out records are ignored; kinds this version does not know are left out', async () => {
  const store = new MemoryStore();
  await store.set(OPT_OUTS_SCOPE, 'junk', 'not a record');
  await store.set(OPT_OUTS_SCOPE, 'newer', { kinds: ['tracking', 'profiling'], updatedAt: '', updatedBy: 'x' });
  const { log, lines } = capturingLog();
  const r = await registry(store, log);
  assert.equal(r.bits('junk'), 0);
  assert.equal(r.bits('newer'), T);
  assert.equal(lines.filter((l) => l.level === 40).length, 1);
});

test('on a real Redis: killed, writes fail fast with STATE_STORE_UNAVAILABLE and the copy is kept; restarted, a reconcile reloads', async () => {
  const redis = await RedisServer.start();
  closing.push(() => redis.stop());
  const cfg = { redisUrl: redis.url, keyPrefix: `oo-${randomUUID().slice(0, 8)}:`, commandTimeoutMs: 100, connectTimeoutMs: 1000, quotaBlocks: false, reconcileMs: 5000 };
  const store = await RedisStore.connect(cfg, silent);
  closing.push(() => store.close());
  const r = await registry(store);
  await r.set('judy', ['experiments', 'tracking'], 'judy');
  await redis.kill();
  const t0 = Date.now();
  await assert.rejects(r.set('judy', ['tracking'], 'judy'), (e: unknown) => e instanceof GatewayError && e.code === 'STATE_STORE_UNAVAILABLE');
  assert.ok(Date.now() - t0 < 600, 'fails fast');
  assert.equal(await r.reconcile(), false);
  assert.equal(r.bits('judy'), E | T, 'the last known copy stands');
  await redis.start();
  // The restarted server is empty (no persistence): the reconcile brings the copy in line with it.
  await until('reconnected', () => store.healthy(), 5_000);
  assert.equal(await r.reconcile(), true);
  assert.equal(r.bits('judy'), 0);
  await r.set('judy', ['automated-decision'], 'judy');
  assert.equal(r.bits('judy'), A);
});
