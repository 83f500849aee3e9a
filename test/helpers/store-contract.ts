/**
 * The one contract every StateStore passes (MemoryStore and RedisStore alike), so the single-process
 * store and the shared one cannot drift apart. Each test gets a fresh store from `make`, with fresh
 * scope and channel names, and closes it afterwards. The sections live beside this file:
 * counters and leases, records (revisions, compare-and-set, TTL), the append-only log, bucket
 * counters; publish/subscribe is here.
 *
 * Time: a store with a fake clock passes `advance` and `now`; otherwise the suite waits in real
 * time, with short windows and TTLs (a few hundred ms at most).
 *
 * Two clients: a subject may pass `peer`, a second client of the same shared state (another
 * RedisStore on the same Redis), for the tests of concurrent writers; without one, the concurrent
 * calls all go to `store`.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StateStore } from '../../gateway/state/store.js';
import { bucketContract } from './store-contract-buckets.js';
import { counterContract } from './store-contract-counters.js';
import { logContract } from './store-contract-log.js';
import { recordContract } from './store-contract-records.js';

export interface StoreSubject {
  readonly store: StateStore;
  /** A second client of the same state; closed with `store`. */
  readonly peer?: StateStore;
  /** Moves the store's clock forward; absent for stores on a real clock. */
  readonly advance?: (ms: number) => void;
  /** The store's clock, when it is not Date.now. */
  readonly now?: () => number;
  readonly cleanup?: () => Promise<void>;
}

export interface Ctx {
  readonly store: StateStore;
  /** The second client (`store` itself when the subject has none). */
  readonly peer: StateStore;
  /** A scope no other test uses. */
  readonly scope: string;
  /** Window and lease TTL suited to the store's clock. */
  readonly windowMs: number;
  readonly ttlMs: number;
  /** Lets `ms` pass on the store's clock. */
  pass(ms: number): Promise<void>;
  /** The store's clock. */
  now(): number;
  /** Slack for comparing a real clock's remaining ms (0 on a fake clock). */
  readonly slackMs: number;
}

export type ContractTest = (title: string, body: (ctx: Ctx) => Promise<void>) => void;

async function withStore(make: () => Promise<StoreSubject>, body: (ctx: Ctx) => Promise<void>): Promise<void> {
  const s = await make();
  const { store, advance } = s;
  const ctx: Ctx = {
    store,
    peer: s.peer ?? store,
    scope: `scope-${randomUUID()}`,
    windowMs: advance ? 60_000 : 200,
    ttlMs: advance ? 30_000 : 100,
    slackMs: advance ? 0 : 5,
    pass: async (ms) => {
      if (advance) advance(ms);
      else await sleep(ms);
    },
    now: s.now ?? Date.now,
  };
  try {
    await body(ctx);
  } finally {
    await store.close();
    await s.peer?.close();
    await s.cleanup?.();
  }
}

/** Collects messages; `until(n)` waits (at most 2 s) for the n-th. */
function inbox(): { readonly messages: string[]; readonly handler: (m: string) => void; until(n: number): Promise<void> } {
  const messages: string[] = [];
  return {
    messages,
    handler: (m) => void messages.push(m),
    async until(n) {
      const deadline = Date.now() + 2_000;
      while (messages.length < n) {
        if (Date.now() > deadline) assert.fail(`expected ${n} message(s) within 2 s, got ${JSON.stringify(messages)}`);
        await sleep(2);
      }
    },
  };
}

export function storeContract(name: string, make: () => Promise<StoreSubject>): void {
  const test: ContractTest = (title, body) => it(title, () => withStore(make, body));

  describe(`state store contract: ${name}`, () => {
    counterContract(test);
    recordContract(test);
    logContract(test);
    bucketContract(test);

    describe('publish/subscribe', () => {
      test('a publish reaches every subscriber of its channel (this store included) and no other channel', async ({ store }) => {
        const channel = `ch-${randomUUID()}`;
        const a = inbox();
        const b = inbox();
        const elsewhere = inbox();
        await store.subscribe(channel, a.handler);
        await store.subscribe(channel, b.handler);
        await store.subscribe(`${channel}-other`, elsewhere.handler);
        await store.publish(channel, 'kill-switch:titanic');
        await store.publish(channel, 'second');
        await a.until(2);
        await b.until(2);
        assert.deepEqual(a.messages, ['kill-switch:titanic', 'second'], 'in order');
        assert.deepEqual(b.messages, ['kill-switch:titanic', 'second']);
        // A barrier: the other channel's own message arrives after anything misrouted would have.
        await store.publish(`${channel}-other`, 'barrier');
        await elsewhere.until(1);
        assert.deepEqual(elsewhere.messages, ['barrier']);
      });

      test('unsubscribe stops delivery to that subscriber only; publishing to nobody is harmless', async ({ store }) => {
        const channel = `ch-${randomUUID()}`;
        const barrier = `${channel}-barrier`;
        const a = inbox();
        const b = inbox();
        const done = inbox();
        const stopA = await store.subscribe(channel, a.handler);
        const stopB = await store.subscribe(channel, b.handler);
        await store.subscribe(barrier, done.handler);
        await store.publish(channel, 'one');
        await a.until(1);
        await b.until(1);
        await stopA();
        await store.publish(channel, 'two');
        await b.until(2);
        await stopB();
        await stopB();
        await store.publish(channel, 'three');
        await store.publish(barrier, 'end');
        await done.until(1);
        assert.deepEqual(a.messages, ['one']);
        assert.deepEqual(b.messages, ['one', 'two']);
      });

      test('a subscriber that throws does not stop delivery to the others', async ({ store }) => {
        const channel = `ch-${randomUUID()}`;
        const ok = inbox();
        await store.subscribe(channel, () => {
          throw new Error('subscriber bug');
        });
        await store.subscribe(channel, ok.handler);
        await store.publish(channel, 'm');
        await ok.until(1);
        assert.deepEqual(ok.messages, ['m']);
      });
    });

    test('is healthy while it answers', async ({ store }) => {
      assert.equal(store.healthy(), true);
      assert.equal(typeof store.kind, 'string');
    });
  });
}
