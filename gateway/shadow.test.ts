/**
 * The shadow mirror on its own: copies are bounded (dropped, never queued), have their own deadline,
 * wait for the primary's answer in `after` mode, skip opted-out callers and failed primaries, hold
 * the model table while they run, and never throw into the caller; answers are compared by name,
 * shape and values within tolerance.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Adapter, InferOptions, InferRequest, InferResponse, InferTensor, ModelMetadata } from '../adapters/adapter.js';
import { OipHttpAdapter } from '../adapters/oip-http.js';
import { numberToFp16Bits } from '../adapters/tensors.js';
import { OPT_OUT, type ShadowTarget } from '../policies/policy.js';
import { ROW_STATS_METADATA, rowStatsHandler, slow, startFakeOipBackend, type FakeOipBackend } from '../test/helpers/backends.js';
import { GatewayError } from './errors.js';
import { agrees } from './shadow-compare.js';
import { FIRST_COOLDOWN_MS, MAX_COOLDOWN_MS } from './shadow-breaker.js';
import { ShadowMirror, type MirrorCall, type ShadowTable, type ShadowVersion } from './shadow.js';
import type { ShadowOutcome } from './telemetry/metrics.js';

const MD: ModelMetadata = {
  platform: 'test',
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3] }],
  outputs: [{ name: 'sum', datatype: 'FP32', shape: [-1] }],
};
const REQUEST: InferRequest = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] };
const ANSWER: InferResponse = { outputs: [{ name: 'sum', datatype: 'FP32', shape: [1], data: [6] }] };

const tensor = (name: string, datatype: InferTensor['datatype'], shape: number[], data: InferTensor['data']): InferTensor => ({ name, datatype, shape, data });
const answer = (...outputs: InferTensor[]): InferResponse => ({ outputs });

/** An adapter double whose answers the test hands out; it records every call. */
class HeldAdapter implements Pick<Adapter, 'infer'> {
  readonly calls: InferOptions[] = [];
  readonly #waiting: { resolve: (r: InferResponse) => void; reject: (e: unknown) => void }[] = [];

  infer(_request: InferRequest, options: InferOptions): Promise<InferResponse> {
    this.calls.push(options);
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  answerAll(response: InferResponse = ANSWER): void {
    for (const w of this.#waiting.splice(0)) w.resolve(response);
  }
}

/** A table double holding model `m` with the given versions; counts acquisitions. */
class TestTable implements ShadowTable {
  held = 0;
  readonly models: ShadowTable['models'];

  constructor(versions: Record<string, ShadowVersion>) {
    this.models = new Map([['m', { versions: new Map(Object.entries(versions)) }]]);
  }

  acquire(): void {
    this.held++;
  }

  release(): void {
    this.held--;
  }
}

class RecordingMetrics {
  readonly outcomes: ShadowOutcome[] = [];
  recordShadow(model: string, version: string, outcome: ShadowOutcome): void {
    assert.equal(model, 'm');
    assert.equal(version, '2');
    this.outcomes.push(outcome);
  }
}

/** The configuration's default `suspendAfter`. */
const BREAK_AFTER = 5;

function target(over: Partial<ShadowTarget> = {}): ShadowTarget {
  return { version: '2', mode: 'parallel', timeoutMs: 2000, maxConcurrent: 16, suspendAfter: BREAK_AFTER, ...over };
}

function call(table: ShadowTable, over: Partial<MirrorCall> = {}): MirrorCall {
  return {
    model: 'm', version: '1', request: REQUEST, target: target(), optOuts: 0, table,
    primary: Promise.resolve(ANSWER), primaryStarted: performance.now(), requestId: 'r-1', ...over,
  };
}

/** The mirror's idle(), bounded so a test can never hang on it. */
async function settled(mirror: ShadowMirror, ms = 5000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`mirror not idle within ${ms} ms`)), ms)));
  try {
    await Promise.race([mirror.idle(), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `cond` every 5 ms, for at most `ms`. */
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const stopAt = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > stopAt) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const backends: FakeOipBackend[] = [];
after(() => Promise.all(backends.map((b) => b.close())));

test('copies past maxConcurrent are dropped at once, never queued', async () => {
  const adapter = new HeldAdapter();
  const table = new TestTable({ '2': { metadata: MD, adapter } });
  const metrics = new RecordingMetrics();
  const mirror = new ShadowMirror({ metrics });
  for (let i = 0; i < 5; i++) mirror.mirror(call(table, { target: target({ maxConcurrent: 2 }) }));
  assert.equal(adapter.calls.length, 2, 'only two copies reach the backend');
  assert.equal(mirror.figures('m')?.inFlight, 2);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(mirror.figures('m')?.dropped, 3);
  adapter.answerAll();
  await settled(mirror);
  assert.equal(adapter.calls.length, 2, 'the dropped copies were not sent later');
  // With room again, copies go out again.
  mirror.mirror(call(table, { target: target({ maxConcurrent: 2 }) }));
  assert.equal(adapter.calls.length, 3);
  adapter.answerAll();
  await settled(mirror);
  const f = mirror.figures('m');
  assert.deepEqual({ sent: f?.sent, agreed: f?.agreed, dropped: f?.dropped, inFlight: f?.inFlight }, { sent: 3, agreed: 3, dropped: 3, inFlight: 0 });
  assert.deepEqual([...metrics.outcomes].sort(), ['agree', 'agree', 'agree', 'dropped', 'dropped', 'dropped']);
  assert.equal(table.held, 0);
});

test('a copy gets its own deadline: a backend that never answers is a timeout at timeoutMs', async () => {
  const backend = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler, { infer: slow() });
  backends.push(backend);
  const adapter = new OipHttpAdapter({
    kind: 'oip-http', url: backend.url, model: ROW_STATS_METADATA.name, connectTimeoutMs: 1000, timeoutMs: 30_000,
    connections: 4, keepAliveTimeoutMs: 1000, healthIntervalMs: 1000,
  });
  await adapter.load();
  try {
    const table = new TestTable({ '2': { metadata: adapter.metadata(), adapter } });
    const mirror = new ShadowMirror();
    const t0 = performance.now();
    mirror.mirror(call(table, { target: target({ timeoutMs: 150 }) }));
    await settled(mirror);
    const ms = performance.now() - t0;
    const f = mirror.figures('m');
    assert.deepEqual({ sent: f?.sent, timeouts: f?.timeouts, errors: f?.errors }, { sent: 1, timeouts: 1, errors: 0 });
    assert.ok(ms >= 140 && ms < 2000, `ended after ${Math.round(ms)} ms`);
    // The deadline reached the backend like the primary's does.
    assert.ok(Number(backend.inferCalls()[0]?.headers['x-request-timeout-ms']) <= 150);
    assert.equal(backend.inferCalls()[0]?.headers['x-request-id'], 'r-1-shadow');
  } finally {
    await adapter.close();
  }
});

test('an answer that arrives past the deadline (an adapter that cannot be interrupted) is a timeout', async () => {
  const late: Pick<Adapter, 'infer'> = {
    infer: (_r, o) => new Promise((resolve) => setTimeout(() => resolve(ANSWER), Math.max(0, o.deadline - Date.now()) + 10)),
  };
  const mirror = new ShadowMirror();
  mirror.mirror(call(new TestTable({ '2': { metadata: MD, adapter: late } }), { target: target({ timeoutMs: 20 }) }));
  await settled(mirror);
  assert.equal(mirror.figures('m')?.timeouts, 1);
  assert.equal(mirror.figures('m')?.agreed, 0);
});

test('answers agree when every primary output has the same name, shape and values', () => {
  const base = answer(tensor('scores', 'FP32', [2, 2], [0.1, 0.2, 0.3, 0.4]), tensor('label', 'BYTES', [2], ['cat', 'dog']));
  assert.ok(agrees(base, base), 'the same answer');
  assert.ok(agrees(base, answer(tensor('label', 'BYTES', [2], ['cat', 'dog']), tensor('scores', 'FP32', [2, 2], [0.1, 0.2, 0.3, 0.4]))), 'order of outputs does not matter');
  assert.ok(agrees(base, answer(...base.outputs, tensor('extra', 'FP32', [1], [9]))), 'extra shadow outputs are not compared');
  assert.ok(agrees(answer(tensor('s', 'FP32', [3], Float32Array.from([0.1, 0.2, 0.3]))), answer(tensor('s', 'FP32', [3], [0.1, 0.2, 0.3]))), 'typed and plain arrays');
});

test('numbers agree within 1e-6 absolute or relative, and not beyond', () => {
  const one = (v: unknown) => answer(tensor('y', 'FP64', [1], [v]));
  assert.ok(agrees(one(0.5), one(0.5 + 9e-7)), 'within 1e-6 absolute');
  assert.ok(agrees(one(1e9), one(1e9 + 900)), 'within 1e-6 relative');
  assert.ok(!agrees(one(0.5), one(0.5 + 2e-6)), 'beyond 1e-6 absolute');
  assert.ok(!agrees(one(1e9), one(1e9 + 2000)), 'beyond 1e-6 relative');
  assert.ok(agrees(one(NaN), one('NaN')) && agrees(one(Infinity), one('Infinity')), 'non-finite values in either spelling');
  assert.ok(!agrees(one(Infinity), one(1e308)) && !agrees(one(NaN), one(0)), 'non-finite against finite');
  const big = 2n ** 60n;
  const i64 = (data: InferTensor['data']) => answer(tensor('n', 'INT64', [1], data));
  assert.ok(agrees(i64(BigInt64Array.from([big])), i64([big.toString()])), '64-bit integers in either form');
  assert.ok(!agrees(i64(BigInt64Array.from([big])), i64([(big + 1n).toString()])), '64-bit integers exactly');
  const h = (data: InferTensor['data']) => answer(tensor('h', 'FP16', [2], data));
  assert.ok(agrees(h(Uint16Array.from([numberToFp16Bits(0.5), numberToFp16Bits(-2)])), h([0.5, -2])), 'FP16 bits against values');
  const b = (data: InferTensor['data']) => answer(tensor('b', 'BOOL', [2], data));
  assert.ok(agrees(b(Uint8Array.from([1, 0])), b([true, false])), 'BOOL bytes against booleans');
});

test('answers disagree on a value, a shape, a missing output or a different string', () => {
  const base = answer(tensor('scores', 'FP32', [2, 2], [0.1, 0.2, 0.3, 0.4]));
  assert.ok(!agrees(base, answer(tensor('scores', 'FP32', [2, 2], [0.1, 0.2, 0.3, 0.41]))), 'a different value');
  assert.ok(!agrees(base, answer(tensor('scores', 'FP32', [4], [0.1, 0.2, 0.3, 0.4]))), 'a different shape, same data');
  assert.ok(!agrees(base, answer(tensor('scores', 'FP32', [2, 2], [0.1, 0.2, 0.3]))), 'a different length');
  assert.ok(!agrees(base, answer(tensor('other', 'FP32', [2, 2], [0.1, 0.2, 0.3, 0.4]))), 'the output missing');
  const s = (v: string) => answer(tensor('label', 'BYTES', [1], [v]));
  assert.ok(!agrees(s('cat'), s('cat ')), 'BYTES compare exactly');
  assert.ok(!agrees(s('1'), s('1.0000001')), 'BYTES are not numbers');
});

test('the mirror counts agreement and disagreement, and the latency of both sides', async () => {
  const adapter = new HeldAdapter();
  const mirror = new ShadowMirror();
  const table = new TestTable({ '2': { metadata: MD, adapter } });
  mirror.mirror(call(table));
  adapter.answerAll(ANSWER);
  mirror.mirror(call(table));
  adapter.answerAll(answer(tensor('sum', 'FP32', [1], [7])));
  await settled(mirror);
  const f = mirror.figures('m');
  assert.deepEqual({ sent: f?.sent, agreed: f?.agreed, disagreed: f?.disagreed }, { sent: 2, agreed: 1, disagreed: 1 });
  assert.ok(typeof f?.latencyMs.shadowMean === 'number' && typeof f.latencyMs.primaryMean === 'number');
});

test('answers are compared as clients receive them: outputs a backend adds are neither compared nor passed on, and the shadow\'s are counted', async () => {
  const adapter = new HeldAdapter();
  const dropped: [string, string, number][] = [];
  const metrics = { recordShadow: () => undefined, recordOutputsDropped: (m: string, v: string, n: number) => void dropped.push([m, v, n]) };
  const mirror = new ShadowMirror({ metrics });
  const table = new TestTable({ '1': { metadata: MD, adapter: new HeldAdapter() }, '2': { metadata: MD, adapter } });
  const embedding = tensor('embedding', 'FP32', [1, 2], [0.5, 0.25]);
  // The primary's backend adds an output; the shadow's does not: they agree on what a client gets.
  mirror.mirror(call(table, { primary: Promise.resolve(answer(ANSWER.outputs[0], embedding)) }));
  adapter.answerAll(ANSWER);
  // The shadow's backend adds two: still in agreement, and counted against the shadow version.
  mirror.mirror(call(table));
  adapter.answerAll(answer(tensor('logits', 'FP32', [1], [3]), ANSWER.outputs[0], embedding));
  await settled(mirror);
  const f = mirror.figures('m');
  assert.deepEqual({ agreed: f?.agreed, disagreed: f?.disagreed }, { agreed: 2, disagreed: 0 });
  assert.deepEqual(dropped, [['m', '2', 2]]);
});

test('an empty batch is mirrored only to a model that allows it', async () => {
  const adapter = new HeldAdapter();
  const mirror = new ShadowMirror();
  const table = new TestTable({ '2': { metadata: MD, adapter } });
  const request: InferRequest = { inputs: [{ name: 'x', datatype: 'FP32', shape: [0, 3], data: [] }] };
  mirror.mirror(call(table, { request }));
  assert.equal(adapter.calls.length, 0, 'refused like the primary would have been');
  mirror.mirror(call(table, { request, allowEmptyBatch: true }));
  assert.equal(adapter.calls.length, 1);
  adapter.answerAll(answer(tensor('sum', 'FP32', [0], [])));
  await settled(mirror);
  assert.equal(mirror.figures('m')?.errors, 1);
});

test('after mode sends the copy only once the answer has been sent; parallel sends it with the primary', async () => {
  const adapter = new HeldAdapter();
  const table = new TestTable({ '2': { metadata: MD, adapter } });
  const mirror = new ShadowMirror();
  let answerPrimary!: (r: InferResponse) => void;
  let responded: (() => void) | undefined;
  mirror.mirror(call(table, {
    target: target({ mode: 'after' }),
    primary: new Promise((resolve) => (answerPrimary = resolve)),
    onResponded: (done) => (responded = done),
  }));
  assert.equal(adapter.calls.length, 0, 'nothing before the primary answers');
  answerPrimary(ANSWER);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(adapter.calls.length, 0, 'nothing before the answer is sent');
  assert.ok(responded !== undefined);
  responded();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(adapter.calls.length, 1, 'sent once the answer is out');
  adapter.answerAll();

  let pending!: (r: InferResponse) => void;
  mirror.mirror(call(table, { target: target({ mode: 'parallel' }), primary: new Promise((resolve) => (pending = resolve)) }));
  assert.equal(adapter.calls.length, 2, 'parallel: sent at once, while the primary is in flight');
  adapter.answerAll();
  pending(ANSWER);
  await settled(mirror);
  assert.equal(mirror.figures('m')?.agreed, 1, 'the figures started again when the mode changed');
});

test('after mode does not wait for ever for a client slow to read its answer', async () => {
  const adapter = new HeldAdapter();
  const mirror = new ShadowMirror();
  const table = new TestTable({ '2': { metadata: MD, adapter } });
  mirror.mirror(call(table, { target: target({ mode: 'after', timeoutMs: 30 }), onResponded: () => undefined }));
  await until(() => adapter.calls.length === 1);
  adapter.answerAll();
  await settled(mirror);
  assert.equal(mirror.figures('m')?.agreed, 1);
  assert.equal(table.held, 0);
});

test('callers who opted out of experiments or tracking are never mirrored', async () => {
  const adapter = new HeldAdapter();
  const metrics = new RecordingMetrics();
  const mirror = new ShadowMirror({ metrics });
  const table = new TestTable({ '2': { metadata: MD, adapter } });
  mirror.mirror(call(table, { optOuts: OPT_OUT.experiments }));
  mirror.mirror(call(table, { optOuts: OPT_OUT.tracking | OPT_OUT.automatedDecision }));
  assert.equal(adapter.calls.length, 0);
  assert.equal(mirror.figures('m')?.skipped.optedOut, 2);
  mirror.mirror(call(table, { optOuts: OPT_OUT.automatedDecision }));
  assert.equal(adapter.calls.length, 1, 'an automated-decision opt-out alone does not prevent a copy');
  adapter.answerAll();
  await settled(mirror);
  assert.deepEqual(metrics.outcomes, ['skipped', 'skipped', 'agree']);
  assert.equal(table.held, 0, 'skipped copies never held the table');
});

test('a failed primary is not compared (after: nothing is sent)', async () => {
  const adapter = new HeldAdapter();
  const mirror = new ShadowMirror();
  const table = new TestTable({ '2': { metadata: MD, adapter } });
  const failed = Promise.reject(new GatewayError('BACKEND_ERROR'));
  failed.catch(() => undefined); // the handler awaits it in real life
  mirror.mirror(call(table, { target: target({ mode: 'after' }), primary: failed }));
  mirror.mirror(call(table, { target: target({ mode: 'after' }), primary: failed }));
  await settled(mirror);
  assert.equal(adapter.calls.length, 0);
  assert.equal(mirror.figures('m')?.skipped.primaryFailed, 2);
});

test('the model table is held until the copy ends', async () => {
  const adapter = new HeldAdapter();
  const mirror = new ShadowMirror();
  const table = new TestTable({ '2': { metadata: MD, adapter } });
  mirror.mirror(call(table));
  assert.equal(table.held, 1);
  adapter.answerAll();
  await settled(mirror);
  assert.equal(table.held, 0);
});

test('mirror never throws: broken adapters, missing or unready versions, bad requests, broken telemetry', async () => {
  const throwsNow: Pick<Adapter, 'infer'> = {
    infer: () => {
      throw new TypeError('synchronous bug');
    },
  };
  const rejects: Pick<Adapter, 'infer'> = { infer: () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:1')) };
  const badMetrics = { recordShadow: () => { throw new Error('exporter down'); } };
  const held = new HeldAdapter();
  const cases: [string, ShadowTable, Partial<MirrorCall>][] = [
    ['adapter throws', new TestTable({ '2': { metadata: MD, adapter: throwsNow } }), {}],
    ['adapter rejects', new TestTable({ '2': { metadata: MD, adapter: rejects } }), {}],
    ['version not served', new TestTable({}), {}],
    ['version not ready', new TestTable({ '2': { metadata: undefined, adapter: held } }), {}],
    ['request not valid for the shadow', new TestTable({ '2': { metadata: { ...MD, inputs: [{ name: 'z', datatype: 'FP32', shape: [-1, 3] }] }, adapter: held } }), {}],
    ['onResponded throws', new TestTable({ '2': { metadata: MD, adapter: held } }), { target: target({ mode: 'after' }), onResponded: () => { throw new Error('no reply'); } }],
  ];
  for (const [what, table, over] of cases) {
    const mirror = new ShadowMirror({ metrics: badMetrics });
    assert.doesNotThrow(() => mirror.mirror(call(table, over)), what);
    await settled(mirror);
    assert.equal(mirror.figures('m')?.errors, 1, `${what}: counted as an error`);
    assert.equal((table as TestTable).held, 0, `${what}: table released`);
  }
  assert.equal(held.calls.length, 0, 'nothing unchecked reached a backend');
});

/** An adapter double that fails every call at once, or answers, as the test says. */
class SwitchAdapter implements Pick<Adapter, 'infer'> {
  calls = 0;
  failing = true;

  infer(): Promise<InferResponse> {
    this.calls++;
    return this.failing ? Promise.reject(new GatewayError('BACKEND_UNAVAILABLE')) : Promise.resolve(ANSWER);
  }
}

test('a shadow that keeps failing is suspended for a cool-down that doubles, then probed, and resumes once it answers', async () => {
  const adapter = new SwitchAdapter();
  const table = new TestTable({ '2': { metadata: MD, adapter } });
  let now = 1_000_000;
  const mirror = new ShadowMirror({ now: () => now });
  const copies = async (n: number) => {
    for (let i = 0; i < n; i++) {
      mirror.mirror(call(table));
      await settled(mirror);
    }
  };

  await copies(BREAK_AFTER);
  assert.equal(adapter.calls, BREAK_AFTER, 'the failures that open the breaker were sent');
  await copies(100);
  assert.equal(adapter.calls, BREAK_AFTER, 'nothing is sent while suspended');
  let f = mirror.figures('m');
  assert.deepEqual({ errors: f?.errors, dropped: f?.dropped, suspended: f?.suspended, now: f?.suspendedNow }, { errors: BREAK_AFTER, dropped: 100, suspended: 100, now: true });

  // After the first cool-down one probe goes out; its failure re-opens at once, for twice as long.
  now += FIRST_COOLDOWN_MS;
  await copies(10);
  assert.equal(adapter.calls, BREAK_AFTER + 1);
  now += FIRST_COOLDOWN_MS;
  await copies(10);
  assert.equal(adapter.calls, BREAK_AFTER + 1, 'the second cool-down is twice the first');
  now += FIRST_COOLDOWN_MS;
  // The shadow is back: the probe is answered, the breaker closes, every copy is sent again.
  adapter.failing = false;
  await copies(10);
  assert.equal(adapter.calls, BREAK_AFTER + 1 + 10);
  f = mirror.figures('m');
  assert.equal(f?.suspendedNow, false);
  assert.equal(f?.agreed, 10);
  assert.equal(table.held, 0);
});

test('the cool-down never exceeds its cap', async () => {
  const adapter = new SwitchAdapter();
  const table = new TestTable({ '2': { metadata: MD, adapter } });
  let now = 0;
  const mirror = new ShadowMirror({ now: () => now });
  const one = async () => {
    mirror.mirror(call(table));
    await settled(mirror);
  };
  for (let i = 0; i < BREAK_AFTER; i++) await one();
  // Probe and fail, again and again: 1, 2, 4, 8, 16, 30, 30 s.
  for (let i = 0; i < 6; i++) {
    now += MAX_COOLDOWN_MS;
    await one();
  }
  const sent = adapter.calls;
  now += MAX_COOLDOWN_MS - 1;
  await one();
  assert.equal(adapter.calls, sent, 'still suspended just before the cap');
  now += 1;
  await one();
  assert.equal(adapter.calls, sent + 1, 'probed again at the cap');
});

test('suspendAfter 0 never suspends: every copy is sent, however many fail', async () => {
  const adapter = new SwitchAdapter();
  const table = new TestTable({ '2': { metadata: MD, adapter } });
  const mirror = new ShadowMirror();
  for (let i = 0; i < 50; i++) {
    mirror.mirror(call(table, { target: target({ suspendAfter: 0 }) }));
    await settled(mirror);
  }
  assert.equal(adapter.calls, 50);
  assert.deepEqual({ errors: mirror.figures('m')?.errors, suspended: mirror.figures('m')?.suspended }, { errors: 50, suspended: 0 });
});
