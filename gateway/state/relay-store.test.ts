import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { channelPair, type ChannelPair } from '../../test/helpers/relay-pair.js';
import { storeContract } from '../../test/helpers/store-contract.js';
import { MemoryStore } from './memory-store.js';
import { RelayHost } from './relay-host.js';
import { RelayStore } from './relay-store.js';
import { StoreUnavailableError, type StateStore } from './store.js';

const log = pino({ level: 'silent' });

/** A primary holding `store`, serving as many workers as asked, each over its own in-process channel. */
function primary(store: StateStore = new MemoryStore()) {
  const host = new RelayHost(store, log);
  return {
    host,
    store,
    worker(timeoutMs = 1_000): { relay: RelayStore; channel: ChannelPair } {
      const channel = channelPair();
      host.serve(channel.primary);
      return { relay: new RelayStore(channel.worker, { timeoutMs, log }), channel };
    },
  };
}

storeContract('RelayStore (in-process channel to the primary\'s MemoryStore)', async () => {
  const p = primary();
  const { relay, channel } = p.worker();
  return {
    store: relay,
    cleanup: async () => {
      channel.close();
      await p.store.close();
    },
  };
});

async function until(what: string, done: () => boolean): Promise<void> {
  const deadline = Date.now() + 2_000;
  while (!done()) {
    if (Date.now() > deadline) assert.fail(`not within 2 s: ${what}`);
    await sleep(2);
  }
}

/** How a rejection looks to a caller: its class and message. */
async function failure(p: Promise<unknown>): Promise<{ class: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return { class: (e as Error).constructor.name, message: (e as Error).message };
  }
  return assert.fail('expected a rejection');
}

describe('state relay between workers and the primary', () => {
  it('a publish from one worker reaches every subscriber in every worker, the publisher included; unsubscribe stops one only', async () => {
    const p = primary();
    const a = p.worker();
    const b = p.worker();
    const channel = `ch-${randomUUID()}`;
    const gotA: string[] = [];
    const gotB: string[] = [];
    await a.relay.subscribe(channel, (m) => void gotA.push(m));
    const stopB = await b.relay.subscribe(channel, (m) => void gotB.push(m));
    await a.relay.publish(channel, 'one');
    await b.relay.publish(channel, 'two');
    await until('both workers got both messages', () => gotA.length === 2 && gotB.length === 2);
    assert.deepEqual(gotA, ['one', 'two']);
    assert.deepEqual(gotB, ['one', 'two']);
    await stopB();
    await b.relay.publish(channel, 'three');
    await until('the publisher still gets its own', () => gotA.length === 3);
    // A barrier: a message misrouted to b would have come before this one.
    const barrier: string[] = [];
    await b.relay.subscribe(`${channel}-barrier`, (m) => void barrier.push(m));
    await a.relay.publish(`${channel}-barrier`, 'end');
    await until('the barrier', () => barrier.length === 1);
    assert.deepEqual(gotB, ['one', 'two']);
    a.channel.close();
    b.channel.close();
  });

  it('a worker whose channel closes (it died) loses its subscriptions on the primary; one that closes its store too', async () => {
    const memory = new MemoryStore();
    const p = primary(memory);
    const dying = p.worker();
    const closing = p.worker();
    const living = p.worker();
    await dying.relay.subscribe('routes', () => undefined);
    await dying.relay.subscribe('opt-outs', () => undefined);
    await closing.relay.subscribe('routes', () => undefined);
    await living.relay.subscribe('kill', () => undefined);
    assert.equal(memory.stats().channels, 3);
    assert.equal(p.host.workers, 3);
    dying.channel.close();
    await closing.relay.close();
    await until('only the living worker\'s subscription is left', () => memory.stats().channels === 1);
    await until('the dead worker is no longer served', () => p.host.workers === 2);
    const got: string[] = [];
    await living.relay.subscribe('routes', (m) => void got.push(m));
    await living.relay.publish('routes', 'still delivered');
    await until('delivery to the living worker', () => got.length === 1);
    closing.channel.close();
    living.channel.close();
  });

  it('what the primary\'s store throws comes back with the same class and message', async () => {
    const direct = new MemoryStore();
    const { relay, channel } = primary().worker();
    const windowed = (limit: number, windowMs: number) => [{ key: 'k', limit, windowMs }];
    const calls: ((s: StateStore) => Promise<unknown>)[] = [
      (s) => s.charge('t', windowed(10, 1000), -1),
      (s) => s.charge('t', windowed(10, 1000), 1.5),
      (s) => s.charge('t', windowed(10, 0), 1),
      (s) => s.charge('', windowed(10, 1000), 1),
      (s) => s.acquire('t', 'c', 'a', 1, 2.5),
      (s) => s.set('t', 'r', undefined),
      (s) => s.set('t', 'r', { big: 1n }),
      (s) => s.records(''),
    ];
    for (const call of calls) {
      const expected = await failure(call(direct));
      assert.deepEqual(await failure(call(relay)), expected, String(call));
    }
    channel.close();
  });

  it('a StoreUnavailableError on the primary is one in the worker too', async () => {
    // The primary's store is itself a relay whose primary is gone: it throws StoreUnavailableError.
    const gone = primary().worker();
    gone.channel.close();
    await until('the inner channel closed', () => !gone.relay.healthy());
    const { relay, channel } = primary(gone.relay).worker();
    await assert.rejects(relay.get('t', 'k'), (e: unknown) => e instanceof StoreUnavailableError && /channel to the primary is closed/.test(e.message));
    channel.close();
  });

  it('when the primary dies, calls in flight and calls after fail at once with StoreUnavailableError, and the store is unhealthy', async () => {
    const { relay, channel } = primary().worker(60_000);
    assert.equal(relay.kind, 'relay');
    assert.equal(relay.healthy(), true);
    channel.hold();
    const started = Date.now();
    const inFlight = relay.charge('t', [{ key: 'k', limit: 1, windowMs: 1000 }], 1);
    const subscribing = relay.subscribe('ch', () => undefined);
    channel.close();
    await assert.rejects(inFlight, StoreUnavailableError);
    await assert.rejects(subscribing, StoreUnavailableError);
    assert.equal(relay.healthy(), false);
    await assert.rejects(relay.set('t', 'k', 1), (e: unknown) => e instanceof StoreUnavailableError && /channel to the primary is closed/.test(e.message));
    await assert.rejects(relay.publish('ch', 'm'), StoreUnavailableError);
    assert.ok(Date.now() - started < 1_000, `failed fast, not after the 60 s timeout (${Date.now() - started} ms)`);
  });

  it('a primary that does not answer: the call fails with StoreUnavailableError after commandTimeoutMs', async () => {
    const { relay, channel } = primary().worker(50);
    assert.equal(await relay.get('t', 'k'), undefined, 'answers while the primary reads');
    channel.hold();
    const started = Date.now();
    await assert.rejects(relay.get('t', 'k'), (e: unknown) => e instanceof StoreUnavailableError && /timed out after 50 ms/.test(e.message));
    const took = Date.now() - started;
    assert.ok(took >= 50 && took < 1_000, `took ${took} ms`);
    channel.close();
  });

  it('refuses a function argument with TypeError: it cannot cross to the primary', async () => {
    const { relay, channel } = primary().worker();
    await assert.rejects(relay.set('t', 'r', () => 1), TypeError);
    assert.equal(await relay.get('t', 'r'), undefined, 'nothing was stored');
    channel.close();
  });

  it('leaves other messages on the channel alone, and runs only the relayed methods on the primary\'s store', async () => {
    const { relay, channel } = primary().worker();
    const delivered: string[] = [];
    await relay.subscribe('ch', (m) => void delivered.push(m));
    const seen: unknown[] = [];
    channel.worker.listen((m) => void seen.push(m), () => undefined);
    channel.worker.send({ hello: 'primary' } as never);
    // A request for a method that is not relayed: closing the primary's store (which would drop
    // every subscription) must not be possible.
    channel.worker.send({ bw: 'store', op: 'call', id: 999_999, method: 'close', args: [] } as never);
    channel.primary.send({ hello: 'worker' } as never);
    await until('the untagged message arrived', () => seen.some((m) => (m as { hello?: string }).hello === 'worker'));
    await relay.publish('ch', 'the primary\'s store is open');
    await until('delivery', () => delivered.length === 1);
    assert.equal(seen.filter((m) => (m as { id?: number }).id === 999_999).length, 0, 'no answer to an unlisted method');
    channel.close();
  });
});
