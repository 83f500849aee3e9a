/**
 * Hostile-input suite, overload and failing backends (issue 8 rule 5; docs/security.md,
 * docs/operations.md "Overload and circuit breakers"). Generated bursts against backends with small
 * random `connections` and `queue`, whose calls wait at a gate the test opens once the burst has
 * settled: every answer is 200 or 503 OVERLOADED with an integer Retry-After, exactly
 * min(burst, connections + queue) are served when the queue's wait outlasts a call (min(burst,
 * connections) when it does not), the backend never holds more than `connections`, and it receives
 * exactly the requests served. Generated sequences of backend faults, backend 4xx, successes and
 * client faults against a scripted backend: the breaker opens after exactly `breakerFailures`
 * backend faults in a row, answers 503 BACKEND_UNAVAILABLE with Retry-After without calling the
 * backend while open, probes once after the cool-down, and client faults never count.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { BackendGuardFigures } from '../adapters/backend-guard.js';
import type { RunningGateway } from '../gateway/main.js';
import { errorStatus, garbage, resetMidway, startFakeOipBackend, type FakeOipBackend, type Misbehaviour } from './helpers/backends.js';
import { startGatedBackend, type GatedBackend } from './helpers/gated-backend.js';
import { startInProcess } from './helpers/gateway.js';
import { META, MODEL, render, requestFor, type RequestSpec } from './helpers/hostile-requests.js';
import {
  backendAnswer, backendRequest, check, clientRequest, exchange, outcome, show, toRawRequest, type Exchange, type Rig,
} from './helpers/hostile-rig.js';
import { Outcomes, runProperty, SEED } from './helpers/property-run.js';
import { rawRequest, type RawRequest } from './helpers/raw-send.js';
import { strictEqual } from './helpers/strict-json.js';

/** Generated backend limits: small, so that every burst overflows some of them. */
const MAX_CONNECTIONS = 3;
const MAX_QUEUE = 3;
const MAX_BURST = 12;
/** The queue's wait when it is meant to run out while the gate is shut: long enough that a burst of MAX_BURST arrives within it on a busy machine (else late arrivals find room freed by timed-out ones). */
const SHORT_WAIT_MS = 100;
/** The queue's wait when it is meant to outlast the calls ahead (the gate opens within ms). */
const LONG_WAIT_MS = 5_000;
const MAX_FAILURES = 4;
const COOLDOWN_MS = 100;
const MAX_COOLDOWN_MS = 2 * COOLDOWN_MS;
/** How long a burst may take to settle, or a refusal to come: far beyond need, short of a hang. */
const SETTLE_MS = 3_000;

type Wait = 'outlasts' | 'runs-out';
const burstModel = (c: number, q: number, wait: Wait) => `burst-c${c}-q${q}-${wait}`;
const flakyModel = (f: number) => `flaky-f${f}`;

let gw: RunningGateway;
let port: number;
let gated: GatedBackend;
let scripted: FakeOipBackend;
/** What the scripted backend does with the next infer call (undefined: answers normally). */
let next: Misbehaviour | undefined;

before(async () => {
  gated = await startGatedBackend();
  scripted = await startFakeOipBackend(META, (req) => backendAnswer(req as never, false), { infer: () => next });
  const models: Record<string, unknown> = {};
  for (let c = 1; c <= MAX_CONNECTIONS; c++) {
    for (let q = 0; q <= MAX_QUEUE; q++) {
      for (const wait of ['outlasts', 'runs-out'] as const) {
        models[burstModel(c, q, wait)] = { versions: { '1': { backend: {
          kind: 'oip-http', url: gated.backend.url, model: MODEL,
          connections: c, queue: q, queueTimeoutMs: wait === 'outlasts' ? LONG_WAIT_MS : SHORT_WAIT_MS,
        } } } };
      }
    }
  }
  for (let f = 1; f <= MAX_FAILURES; f++) {
    models[flakyModel(f)] = { versions: { '1': { backend: {
      kind: 'oip-http', url: scripted.url, model: MODEL,
      breakerFailures: f, breakerCooldownMs: COOLDOWN_MS, breakerMaxCooldownMs: MAX_COOLDOWN_MS,
    } } } };
  }
  // No identity here: the request limits (rule 6) have their own file, and do not run without it.
  gw = await startInProcess({ auth: { insecureNoAuth: true }, models });
  port = Number(new URL(gw.url).port);
});

after(async () => {
  await gw.close();
  await Promise.all([gated.close(), scripted.close()]);
});

/** This replica's figures of a model's backend (version 1), from the per-version view. */
async function figures(model: string): Promise<BackendGuardFigures> {
  const res = await rawRequest(port, { method: 'GET', path: `/admin/models/${model}` });
  assert.equal(res.status, 200, res.body.toString('utf8'));
  const f = (JSON.parse(res.body.toString('utf8')) as { figures?: { backends?: Record<string, BackendGuardFigures> } }).figures?.backends?.['1'];
  assert.ok(f !== undefined, `no backend figures for ${model}`);
  return f;
}

async function until(what: string, cond: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = performance.now() + SETTLE_MS;
  while (!(await cond())) {
    if (performance.now() > deadline) assert.fail(`not within ${SETTLE_MS} ms: ${what}`);
    await sleep(2);
  }
}

const code = (x: Exchange): string | undefined => (JSON.parse(x.response.body.toString('utf8')) as { code?: string }).code;

/** A refusal that asks the client to come back: the code, and Retry-After as whole seconds (1 to `maxS`). */
function assertRefused(x: Exchange, expected: string, what: string, maxS = Infinity): void {
  assert.equal(x.response.status, 503, `${what}: ${show(x)}`);
  assert.equal(code(x), expected, `${what}: ${show(x)}`);
  const retry = x.response.headers['retry-after'];
  assert.match(retry ?? '', /^[1-9]\d*$/, `${what}: Retry-After ${String(retry)}`);
  assert.ok(Number(retry) <= maxS, `${what}: Retry-After ${String(retry)} beyond the longest cool-down`);
}

const plainValid = fc.integer({ min: 1, max: 2 }).chain((b) => requestFor(b, { binary: 'never' }));

describe(`hostile load: overload and failing backends (seed ${SEED})`, () => {
  test('rule 5: a burst past connections + queue: 200 or 503 OVERLOADED with Retry-After, exactly as many served as slots and queue allow, never more at the backend than its connections', async (t) => {
    const outcomes = new Outcomes();
    const bursts = fc.record({
      connections: fc.integer({ min: 1, max: MAX_CONNECTIONS }),
      queue: fc.integer({ min: 0, max: MAX_QUEUE }),
      wait: fc.constantFrom<Wait>('outlasts', 'runs-out'),
      requests: fc.array(plainValid, { minLength: 1, maxLength: MAX_BURST }),
    });
    await runProperty(t, bursts, async ({ connections: c, queue: q, wait, requests }) => {
      const model = burstModel(c, q, wait);
      const n = requests.length;
      const what = `${n} at once to connections ${c}, queue ${q}, a wait that ${wait}`;
      const atBackend = Math.min(n, c);
      const queued = wait === 'outlasts' ? Math.min(q, n - atBackend) : 0;
      const full = Math.max(0, n - c - q);
      const served = atBackend + queued;
      const before = await figures(model);
      const calls = gated.backend.calls();
      gated.shut();
      const sent: RawRequest[] = requests.map((spec: RequestSpec) => ({ ...toRawRequest(spec, render(spec), 'application/json'), path: `/v2/models/${model}/infer` }));
      const answered: Exchange[] = [];
      const all = Promise.all(sent.map(async (request) => {
        const x: Exchange = { request, response: await rawRequest(port, request), backendCalls: [] };
        answered.push(x);
        return x;
      }));
      try {
        // Settled: every request answered, at the backend, or queued (and none on its way between).
        let now = before;
        await until(`${what}: the burst settles`, async () => {
          now = await figures(model);
          // (A wait that runs out has run out: nothing is left in the queue.)
          return answered.length + now.inFlight + now.queued === n && gated.held() === now.inFlight && (wait === 'outlasts' || now.queued === 0);
        });
        assert.equal(gated.held(), atBackend, `${what}: calls at the backend while the gate is shut`);
        assert.equal(now.queued, queued, `${what}: calls queued while the gate is shut`);
        assert.equal(answered.length, n - atBackend - queued, `${what}: answered at once`);
        for (const x of answered) assertRefused(x, 'OVERLOADED', what);
      } finally {
        gated.open();
      }
      const exchanges = await all;
      for (const x of exchanges) {
        outcomes.add(outcome(x));
        check(x, gated, { backendFaults: ['OVERLOADED'] });
        if (x.response.status !== 200) assertRefused(x, 'OVERLOADED', what);
      }
      const ok = exchanges.filter((x) => x.response.status === 200);
      assert.equal(ok.length, served, `${what}: served`);
      assert.ok(gated.maxHeld() <= c, `${what}: the backend held ${gated.maxHeld()} calls at once`);
      assert.equal(gated.maxHeld(), atBackend, `${what}: every slot was used`);
      // The backend received exactly the requests served (as a strict parser reads them), no other.
      const received = gated.backend.inferCalls().slice(calls).map(backendRequest);
      assert.equal(received.length, served, `${what}: calls the backend received`);
      for (const x of ok) {
        const sentAs = clientRequest(x.request);
        const i = received.findIndex((r) => strictEqual(r, sentAs));
        assert.ok(i >= 0, `${what}: a served request the backend did not receive as sent: ${JSON.stringify(sentAs).slice(0, 300)}`);
        received.splice(i, 1);
      }
      const after = await figures(model);
      assert.equal(after.inFlight, 0);
      assert.equal(after.queued, 0);
      assert.equal(after.shed.queueFull - before.shed.queueFull, full, `${what}: refused for a full queue`);
      assert.equal(after.shed.queueTimeout - before.shed.queueTimeout, n - served - full, `${what}: refused when the wait ran out`);
      assert.equal(after.breaker.state, 'closed', `${what}: shedding is not a backend failure`);
    }, { numRuns: 120 }, outcomes);
  });

  /** What a step of a failure sequence does: the backend's answer, or a request the gateway refuses itself. */
  type Step =
    | { readonly kind: 'ok' }
    | { readonly kind: 'fault'; readonly how: string }
    | { readonly kind: 'backend-4xx'; readonly status: number }
    | { readonly kind: 'client-fault'; readonly how: string };

  // A backend's error text with what must never reach a client: a stack line and its address.
  const TRACE = 'Traceback: at handler (/srv/model.py:12) on 127.0.0.1';
  const FAULTS: Record<string, Misbehaviour> = {
    500: errorStatus(500, TRACE), 502: errorStatus(502, TRACE), 503: errorStatus(503, TRACE),
    429: errorStatus(429, 'slow down'), 404: errorStatus(404, 'no such model'), reset: resetMidway, 'not JSON': garbage(),
  };
  const CLIENT_FAULTS: Record<string, (r: RawRequest) => RawRequest> = {
    'bad JSON': (r) => ({ ...r, body: '{"inputs": [' }),
    'no inputs': (r) => ({ ...r, body: '{"inputs": []}' }),
    'text/plain': (r) => ({ ...r, headers: [['Content-Type', 'text/plain']] }),
    'wrong shape': (r) => ({ ...r, body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] }) }),
    'unknown version': (r) => ({ ...r, path: r.path.replace('/infer', '/versions/9/infer') }),
  };
  const step: fc.Arbitrary<Step> = fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...Object.keys(FAULTS)).map((how): Step => ({ kind: 'fault', how })) },
    { weight: 2, arbitrary: fc.constant<Step>({ kind: 'ok' }) },
    { weight: 2, arbitrary: fc.constantFrom(400, 409, 422).map((status): Step => ({ kind: 'backend-4xx', status })) },
    { weight: 2, arbitrary: fc.constantFrom(...Object.keys(CLIENT_FAULTS)).map((how): Step => ({ kind: 'client-fault', how })) },
  );
  const BACKEND_FAULT_CODES = ['BACKEND_ERROR', 'BACKEND_UNAVAILABLE', 'BACKEND_BAD_RESPONSE'];

  test('rule 5: the breaker opens after exactly breakerFailures backend faults in a row, then answers 503 BACKEND_UNAVAILABLE without calling the backend until its probe; client faults never count', async (t) => {
    const outcomes = new Outcomes();
    const rig: Rig = { gw, backend: scripted, port, close: async () => undefined };
    const sequences = fc.record({
      failures: fc.integer({ min: 1, max: MAX_FAILURES }),
      steps: fc.array(step, { minLength: 1, maxLength: 14 }),
      probe: step.filter((s) => s.kind !== 'client-fault'),
      spec: plainValid,
    });
    await runProperty(t, sequences, async ({ failures, steps, probe, spec }) => {
      const model = flakyModel(failures);
      const base: RawRequest = { ...toRawRequest(spec, render(spec), 'application/json'), path: `/v2/models/${model}/infer` };
      const opensBefore = (await figures(model)).breaker.opens;
      let opens = 0;
      let streak = 0;
      /** While open: when the request that opened it was sent and answered, and the cool-down. */
      let open: { sentAt: number; answeredAt: number; cooldownMs: number } | undefined;
      const log: string[] = [];

      const send = async (s: Step): Promise<void> => {
        next = s.kind === 'fault' ? FAULTS[s.how] : s.kind === 'backend-4xx' ? errorStatus(s.status, TRACE) : undefined;
        const request = s.kind === 'client-fault' ? CLIENT_FAULTS[s.how](base) : base;
        const sentAt = Date.now();
        const x = await exchange(rig, request);
        const answeredAt = Date.now();
        next = undefined;
        outcomes.add(`${s.kind} ${outcome(x)}`);
        log.push(`${s.kind === 'fault' ? s.how : s.kind === 'backend-4xx' ? s.status : s.kind === 'client-fault' ? s.how : 'ok'} → ${outcome(x)}`);
        const what = `breakerFailures ${failures}, steps ${log.join(', ')}`;
        check(x, rig, { backendFaults: BACKEND_FAULT_CODES });
        const called = x.backendCalls.length;
        assert.ok(called <= 1, `${what}: one request, ${called} backend calls`);
        if (s.kind === 'client-fault') {
          // Refused by the gateway before any backend: answered in full, open or not, and not counted.
          assert.ok(x.response.status >= 400 && x.response.status < 500, `${what}: ${show(x)}`);
          assert.equal(called, 0, `${what}: a client fault reached the backend`);
          return;
        }
        let probe = false;
        if (open !== undefined) {
          if (called === 0) {
            assertRefused(x, 'BACKEND_UNAVAILABLE', `${what}: open`, Math.ceil(MAX_COOLDOWN_MS / 1000));
            // Sent after the cool-down had surely ended, it had to be the probe.
            assert.ok(sentAt <= open.answeredAt + open.cooldownMs + 1, `${what}: no probe after the cool-down`);
            return;
          }
          // The one probe, and only once the cool-down may have ended.
          assert.ok(answeredAt >= open.sentAt + open.cooldownMs - 1, `${what}: the backend was called while the breaker was open`);
          probe = true;
        }
        assert.equal(called, 1, `${what}: a closed breaker let the call through: ${show(x)}`);
        if (s.kind === 'ok') assert.equal(x.response.status, 200, `${what}: ${show(x)}`);
        else assert.ok(x.response.status === 502 || x.response.status === 503, `${what}: ${show(x)}`);
        if (s.kind !== 'fault') {
          // It served (a 4xx judges the request): the breaker closes, the count starts again.
          open = undefined;
          streak = 0;
        } else if (probe) {
          opens++;
          open = { sentAt, answeredAt, cooldownMs: Math.min(MAX_COOLDOWN_MS, open!.cooldownMs * 2) };
        } else if (++streak === failures) {
          opens++;
          streak = 0;
          open = { sentAt, answeredAt, cooldownMs: COOLDOWN_MS };
        }
      };

      for (const s of steps) await send(s);
      // Past the cool-down: the generated probe, then (if it failed) past the longer cool-down, a good one.
      for (const s of [probe, { kind: 'ok' } as Step]) {
        if (open === undefined) break;
        await sleep(Math.max(0, open.answeredAt + open.cooldownMs + 5 - Date.now()));
        await send(s);
        if (open !== undefined) await send({ kind: 'ok' }); // refused at once: the cool-down restarted
      }
      // Closed; a success resets a streak left over, so that the next run starts afresh.
      if (streak > 0) await send({ kind: 'ok' });
      const f = await figures(model);
      assert.equal(f.breaker.state, 'closed', `breakerFailures ${failures}, steps ${log.join(', ')}`);
      assert.equal(f.breaker.opens - opensBefore, opens, `breakerFailures ${failures}, steps ${log.join(', ')}: times it opened`);
    }, { numRuns: 40, timeLimitMs: 30_000 }, outcomes);
  });
});
