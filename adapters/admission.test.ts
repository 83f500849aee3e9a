import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { GatewayError, isGatewayError } from '../gateway/errors.js';
import { Admission, type QueueShedReason } from './admission.js';

const FAR = Date.now() + 60_000;

function overloadedWith(detail: RegExp) {
  return (e: unknown) => isGatewayError(e) && e.code === 'OVERLOADED' && e.status === 503 && e.headers?.['retry-after'] === '1' && detail.test(e.message);
}

test('takes `limit` calls at once without waiting, then queues, then refuses at once', () => {
  const shed: QueueShedReason[] = [];
  const a = new Admission({ limit: 2, queue: 1, queueTimeoutMs: 1000, onShed: (r) => shed.push(r) });
  assert.equal(a.enter(FAR), true);
  assert.equal(a.enter(FAR), true);
  const queued = a.enter(FAR);
  assert.ok(queued instanceof Promise);
  assert.equal(a.queued, 1);
  assert.throws(() => a.enter(FAR), overloadedWith(/queue is full/));
  assert.deepEqual(shed, ['queue_full']);
  assert.equal(a.shedQueueFull, 1);
  assert.equal(a.inFlight, 2);
  a.close();
  return assert.rejects(queued as Promise<void>, (e: unknown) => e instanceof GatewayError && e.code === 'MODEL_NOT_READY');
});

test('a freed slot goes to the longest-waiting call (FIFO), and a newcomer never overtakes it', async () => {
  const a = new Admission({ limit: 1, queue: 3, queueTimeoutMs: 5000 });
  assert.equal(a.enter(FAR), true);
  const order: string[] = [];
  const first = (a.enter(FAR) as Promise<void>).then(() => order.push('first'));
  const second = (a.enter(FAR) as Promise<void>).then(() => order.push('second'));
  a.leave();
  await first;
  assert.deepEqual(order, ['first']);
  assert.equal(a.inFlight, 1);
  const newcomer = a.enter(FAR);
  assert.ok(newcomer instanceof Promise, 'a newcomer queues behind the second');
  a.leave();
  await second;
  assert.deepEqual(order, ['first', 'second']);
  assert.equal(a.queued, 1);
  a.close();
  await assert.rejects(newcomer);
});

test('a queued call is refused OVERLOADED when its wait runs out; one timer serves the queue', async () => {
  const shed: QueueShedReason[] = [];
  const a = new Admission({ limit: 1, queue: 10, queueTimeoutMs: 40, onShed: (r) => shed.push(r) });
  a.enter(FAR);
  const started = performance.now();
  const waits = [a.enter(FAR), a.enter(FAR), a.enter(FAR)] as Promise<void>[];
  const results = await Promise.allSettled(waits);
  const ms = performance.now() - started;
  assert.ok(results.every((r) => r.status === 'rejected' && overloadedWith(/in time/)(r.reason)), JSON.stringify(results));
  assert.ok(ms >= 35 && ms < 500, `refused after ${ms} ms`);
  assert.deepEqual(shed, ['queue_timeout', 'queue_timeout', 'queue_timeout']);
  assert.equal(a.queued, 0);
  assert.equal(a.inFlight, 1, 'refused waiters never held a slot');
});

test('a call\'s own deadline bounds its wait, even behind calls that may wait longer', async () => {
  const a = new Admission({ limit: 1, queue: 10, queueTimeoutMs: 5000 });
  a.enter(FAR);
  const long = a.enter(FAR) as Promise<void>;
  const started = performance.now();
  const short = a.enter(Date.now() + 30) as Promise<void>;
  await assert.rejects(short, overloadedWith(/in time/));
  assert.ok(performance.now() - started < 500);
  assert.equal(a.queued, 1, 'the longer wait is still queued');
  assert.throws(() => a.enter(Date.now() - 1), overloadedWith(/before the deadline/), 'no wait possible at all');
  a.leave();
  await long;
  a.close();
});

test('a slot freed after a waiter expired (timer not yet run) skips it', async () => {
  let now = 1000;
  const a = new Admission({ limit: 1, queue: 10, queueTimeoutMs: 10_000, now: () => now });
  a.enter(Infinity);
  const stale = a.enter(Infinity) as Promise<void>;
  const fresh = a.enter(Infinity) as Promise<void>;
  now += 10_000; // the first waiter's wait is over, the fake clock moved before any timer
  const staleDone = assert.rejects(stale, overloadedWith(/in time/));
  // `fresh` expires at the same time; both are refused, and the slot is free again.
  a.leave();
  await staleDone;
  await assert.rejects(fresh, overloadedWith(/in time/));
  assert.equal(a.inFlight, 0);
  assert.equal(a.enter(Infinity), true);
  a.close();
});

test('a caller whose signal aborts leaves the queue at once, and its place is not kept', async () => {
  const a = new Admission({ limit: 1, queue: 2, queueTimeoutMs: 5000 });
  a.enter(FAR);
  const ac = new AbortController();
  const gone = a.enter(FAR, ac.signal) as Promise<void>;
  const stays = a.enter(FAR) as Promise<void>;
  assert.equal(a.queued, 2);
  ac.abort();
  await assert.rejects(gone, (e: unknown) => isGatewayError(e) && e.code === 'BACKEND_TIMEOUT');
  assert.equal(a.queued, 1);
  a.leave();
  await stays;
  assert.equal(a.inFlight, 1);
  const aborted = new AbortController();
  aborted.abort();
  assert.throws(() => a.enter(FAR, aborted.signal), (e: unknown) => isGatewayError(e) && e.code === 'BACKEND_TIMEOUT');
  assert.equal(a.queued, 0);
  a.close();
});

test('queue 0 refuses as soon as every slot is taken; slots come back', async () => {
  const a = new Admission({ limit: 1, queue: 0, queueTimeoutMs: 1000 });
  assert.equal(a.enter(FAR), true);
  assert.throws(() => a.enter(FAR), overloadedWith(/queue is full/));
  a.leave();
  assert.equal(a.enter(FAR), true);
  await sleep(1);
  a.close();
});
