import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { metrics } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { pino, type Logger } from 'pino';
import type { RateLimitConfig, RateLimitRule } from '../gateway/config.js';
import { GatewayError } from '../gateway/errors.js';
import { MemoryStore } from '../gateway/state/memory-store.js';
import { StoreUnavailableError, type ChargeResult, type CounterCharge, type LeaseResult, type StateStore } from '../gateway/state/store.js';
import type { Decision, PolicyContext } from './policy.js';
import { testContext } from './test-context.js';
import type { Principal } from './principal.js';
import { createRateLimitPolicy, STORE_FAILURES_METRIC, type RateLimitDeps } from './rate-limit.js';

const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
const provider = new MeterProvider({ readers: [reader] });
metrics.setGlobalMeterProvider(provider);
after(() => provider.shutdown());

async function failureCount(failMode: string): Promise<number> {
  await reader.forceFlush();
  const found = exporter.getMetrics().flatMap((rm) => rm.scopeMetrics).flatMap((sm) => sm.metrics).filter((m) => m.descriptor.name === STORE_FAILURES_METRIC);
  const point = found.at(-1)?.dataPoints.find((p) => p.attributes.fail_mode === failMode);
  return (point?.value as number | undefined) ?? 0;
}

/** A clock tests move by hand. */
function fakeClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

interface Captured { readonly logger: Logger; readonly lines: { level: string; msg: string }[] }
function captureLog(): Captured {
  const lines: { level: string; msg: string }[] = [];
  const logger = pino({ level: 'debug', formatters: { level: (label) => ({ level: label }) } }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { logger, lines };
}

/** A store whose server is gone: every call throws what a Redis store throws past its timeout. */
class DownStore implements StateStore {
  readonly kind = 'redis';
  calls = 0;
  constructor(private readonly isHealthy = true) {}
  #fail(): never {
    this.calls++;
    throw new StoreUnavailableError('redis command timed out after 100 ms');
  }
  async charge(): Promise<ChargeResult> { return this.#fail(); }
  async acquire(): Promise<LeaseResult> { return this.#fail(); }
  async release(): Promise<void> { return this.#fail(); }
  async get(): Promise<unknown> { return this.#fail(); }
  async set(): Promise<void> { return this.#fail(); }
  async delete(): Promise<void> { return this.#fail(); }
  async records(): Promise<Map<string, unknown>> { return this.#fail(); }
  async forget(): Promise<number> { return this.#fail(); }
  async publish(): Promise<void> { return this.#fail(); }
  async subscribe(): Promise<() => Promise<void>> { return this.#fail(); }
  async read(): Promise<never> { return this.#fail(); }
  async compareAndSet(): Promise<never> { return this.#fail(); }
  async append(): Promise<never> { return this.#fail(); }
  async readLog(): Promise<never> { return this.#fail(); }
  async logHead(): Promise<never> { return this.#fail(); }
  async add(): Promise<never> { return this.#fail(); }
  async sum(): Promise<never> { return this.#fail(); }
  healthy(): boolean { return this.isHealthy; }
  async close(): Promise<void> {}
}

/** Wraps a store to count (and optionally break) some calls. */
function spy(inner: StateStore, overrides: Partial<Pick<StateStore, 'charge' | 'release'>> = {}): StateStore & { charges: CounterCharge[][]; leases: () => number } {
  const charges: CounterCharge[][] = [];
  let held = 0;
  return {
    kind: inner.kind,
    charges,
    leases: () => held,
    charge: (scope, counters, cost) => {
      charges.push([...counters]);
      return (overrides.charge ?? inner.charge.bind(inner))(scope, counters, cost);
    },
    acquire: async (scope, key, id, limit, ttl) => {
      const r = await inner.acquire(scope, key, id, limit, ttl);
      held = r.held;
      return r;
    },
    release: async (scope, key, id) => {
      await (overrides.release ?? inner.release.bind(inner))(scope, key, id);
      held--;
    },
    get: (s, k) => inner.get(s, k),
    set: (s, k, v, o) => inner.set(s, k, v, o),
    read: (s, k) => inner.read(s, k),
    compareAndSet: (s, k, r, v, o) => inner.compareAndSet(s, k, r, v, o),
    append: (s, e) => inner.append(s, e),
    readLog: (s, f, n) => inner.readLog(s, f, n),
    logHead: (s) => inner.logHead(s),
    add: (s, k, b, t) => inner.add(s, k, b, t),
    sum: (s, k) => inner.sum(s, k),
    delete: (s, k) => inner.delete(s, k),
    records: (s) => inner.records(s),
    forget: (s, k) => inner.forget(s, k),
    publish: (c, m) => inner.publish(c, m),
    subscribe: (c, f) => inner.subscribe(c, f),
    healthy: () => inner.healthy(),
    close: () => inner.close(),
  };
}

function principal(subject: string, tenant: string | undefined): Principal {
  return { subject, tenant, scopes: new Set(['predict:*']), expiresAt: Number.MAX_SAFE_INTEGER };
}
const alice = principal('alice', 'acme');
const bob = principal('bob', 'acme');
const carol = principal('carol', 'globex');

let nextId = 0;
function ctx(p: Principal | undefined, model = 'titanic', rows = 1, requestId = `req-${++nextId}`): PolicyContext {
  return testContext(model, { requestId, principal: p, rows });
}

function rule(name: string, by: 'subject' | 'tenant', limit: number, windowMs = 60_000, models: string[] = ['*']): RateLimitRule {
  return { name, by, limit, windowMs, models };
}

function setup(rules: RateLimitRule[], opts: Partial<Omit<RateLimitConfig, 'rules'>> & Partial<RateLimitDeps> = {}) {
  const clock = fakeClock();
  const log = captureLog();
  const store = opts.store ?? new MemoryStore({ now: clock.now, pruneIntervalMs: 0 });
  const cfg: RateLimitConfig = { failMode: opts.failMode ?? 'local', rules, requests: { perSubject: { limit: 0, windowMs: 60_000 }, failedAuthPerAddress: { limit: 0, windowMs: 60_000 } }, ...(opts.tenantConcurrency ? { tenantConcurrency: opts.tenantConcurrency } : {}) };
  const policy = createRateLimitPolicy(cfg, { store, log: log.logger, fallback: opts.fallback ?? new MemoryStore({ now: clock.now, pruneIntervalMs: 0 }) });
  return { policy, clock, log, store, run: (c: PolicyContext) => Promise.resolve(policy.evaluate(c)) };
}

function denied(d: Decision): GatewayError & { headers: Readonly<Record<string, string>> } {
  assert.equal(d.kind, 'deny', `expected a deny, got ${d.kind}`);
  if (d.kind !== 'deny') throw new Error('unreachable');
  return d.error.withHeaders(d.headers ?? {}) as GatewayError & { headers: Readonly<Record<string, string>> };
}

function headersOf(d: Decision): Readonly<Record<string, string>> {
  assert.equal(d.kind, 'continue', `expected continue, got ${d.kind === 'deny' ? d.error.code : d.kind}`);
  return (d.kind === 'continue' && d.headers) || {};
}

test('exactly `limit` rows pass, then 429 with Retry-After and RateLimit headers', async () => {
  const { run } = setup([rule('per-user', 'subject', 5)]);
  for (let i = 0; i < 5; i++) {
    const h = headersOf(await run(ctx(alice)));
    assert.equal(h['ratelimit-policy'], '"per-user";q=5;w=60');
    assert.equal(h.ratelimit, `"per-user";r=${4 - i};t=60`);
  }
  const e = denied(await run(ctx(alice)));
  assert.equal(e.code, 'RATE_LIMITED');
  assert.equal(e.status, 429);
  assert.equal(e.headers['retry-after'], '60');
  assert.equal(e.headers.ratelimit, '"per-user";r=0;t=60');
  assert.equal(e.headers['ratelimit-policy'], '"per-user";q=5;w=60');
  assert.doesNotMatch(e.message, /alice|acme/, 'the refusal names no subject or tenant');
});

test('a batch costs its rows and is refused whole when it does not fit', async () => {
  const { run } = setup([rule('rows', 'subject', 1000)]);
  assert.equal(headersOf(await run(ctx(alice, 'titanic', 600))).ratelimit, '"rows";r=400;t=60');
  const e = denied(await run(ctx(alice, 'titanic', 500)));
  assert.equal(e.headers.ratelimit, '"rows";r=400;t=60', 'nothing of the refused batch was charged');
  assert.equal(headersOf(await run(ctx(alice, 'titanic', 400))).ratelimit, '"rows";r=0;t=60');
});

test('a batch larger than a rule is refused even with a fresh window, and says why', async () => {
  const { run } = setup([rule('rows', 'subject', 1000)]);
  const e = denied(await run(ctx(alice, 'titanic', 1001)));
  assert.match(e.message, /batch of 1001 rows is over rule "rows"/);
  assert.equal(headersOf(await run(ctx(alice, 'titanic', 1000))).ratelimit, '"rows";r=0;t=60');
});

test('subject rules count per subject, tenant rules per tenant, each per model', async () => {
  const { run } = setup([rule('per-user', 'subject', 10), rule('per-tenant', 'tenant', 15)]);
  assert.equal(headersOf(await run(ctx(alice, 'titanic', 10))).ratelimit, '"per-user";r=0;t=60, "per-tenant";r=5;t=60');
  denied(await run(ctx(alice)));
  // bob has his own subject counter but shares acme's tenant counter.
  assert.equal(headersOf(await run(ctx(bob, 'titanic', 5))).ratelimit, '"per-user";r=5;t=60, "per-tenant";r=0;t=60');
  const e = denied(await run(ctx(bob)));
  assert.match(e.message, /per-tenant/);
  // Another tenant, and another model, start from full counters.
  assert.equal(headersOf(await run(ctx(carol, 'titanic', 10))).ratelimit, '"per-user";r=0;t=60, "per-tenant";r=5;t=60');
  assert.equal(headersOf(await run(ctx(alice, 'iris', 10))).ratelimit, '"per-user";r=0;t=60, "per-tenant";r=5;t=60');
});

test("rules for named models apply to those models only; '*' applies to all", async () => {
  const { run, policy } = setup([rule('titanic-only', 'subject', 1, 60_000, ['titanic', 'other']), rule('all', 'subject', 100)]);
  assert.equal(headersOf(await run(ctx(alice, 'titanic'))).ratelimit, '"titanic-only";r=0;t=60, "all";r=99;t=60');
  denied(await run(ctx(alice, 'titanic')));
  const iris = headersOf(await run(ctx(alice, 'iris')));
  assert.equal(iris['ratelimit-policy'], '"all";q=100;w=60');
  assert.equal(iris.ratelimit, '"all";r=99;t=60');
  const only = setup([rule('titanic-only', 'subject', 1, 60_000, ['titanic'])]).policy;
  assert.deepEqual(only.evaluate(ctx(alice, 'iris')), { kind: 'continue' }, 'no rule, no cap: answered synchronously');
  assert.equal(policy.name, 'rate-limit');
  assert.equal(policy.phase, 'payload');
});

test('the window resets after windowMs', async () => {
  const { run, clock } = setup([rule('per-user', 'subject', 2, 10_000)]);
  await run(ctx(alice, 'titanic', 2));
  clock.advance(4_000);
  assert.equal(denied(await run(ctx(alice))).headers['retry-after'], '6');
  clock.advance(6_000);
  assert.equal(headersOf(await run(ctx(alice))).ratelimit, '"per-user";r=1;t=10');
});

test("a ':' in a subject or model cannot make two principals share a counter", async () => {
  const { run } = setup([rule('r', 'subject', 1)]);
  headersOf(await run(ctx(principal('x:m', 'acme'), 'y')));
  headersOf(await run(ctx(principal('x', 'acme'), 'm:y')));
});

test("a principal without a tenant never counts against a tenant of the same name", async () => {
  const { run } = setup([rule('per-tenant', 'tenant', 1)]);
  headersOf(await run(ctx(principal('acme', undefined))));
  headersOf(await run(ctx(principal('someone', 'acme'))));
  // Tenantless principals are each a tenant of their own.
  headersOf(await run(ctx(principal('other', undefined))));
  denied(await run(ctx(principal('acme', undefined))));
});

test('the concurrency cap holds under parallel calls, and release frees a slot', async () => {
  const { run } = setup([], { tenantConcurrency: { limit: 2, leaseTtlMs: 60_000 } });
  const decisions = await Promise.all(Array.from({ length: 10 }, () => run(ctx(alice))));
  const granted = decisions.filter((d) => d.kind === 'continue');
  assert.equal(granted.length, 2);
  for (const d of decisions.filter((x) => x.kind === 'deny')) {
    const e = denied(d);
    assert.equal(e.code, 'CONCURRENCY_LIMITED');
    assert.equal(e.status, 429);
    assert.equal(e.headers['retry-after'], '1');
  }
  // Another tenant has its own cap.
  assert.equal((await run(ctx(carol))).kind, 'continue');
  denied(await run(ctx(bob)));
  const first = granted[0];
  assert.ok(first.kind === 'continue' && first.release);
  first.release();
  first.release(); // a second call is harmless
  await new Promise((r) => setImmediate(r));
  assert.equal((await run(ctx(bob))).kind, 'continue');
  denied(await run(ctx(bob)));
});

test('lease ids are not the client-supplied request id', async () => {
  const { run } = setup([], { tenantConcurrency: { limit: 1, leaseTtlMs: 60_000 } });
  assert.equal((await run(ctx(alice, 'titanic', 1, 'same-id'))).kind, 'continue');
  assert.equal(denied(await run(ctx(bob, 'titanic', 1, 'same-id'))).code, 'CONCURRENCY_LIMITED');
});

test('a request refused for concurrency is not charged', async () => {
  const clock = fakeClock();
  const store = spy(new MemoryStore({ now: clock.now, pruneIntervalMs: 0 }));
  const { run } = setup([rule('per-user', 'subject', 2)], { store, tenantConcurrency: { limit: 1, leaseTtlMs: 60_000 } });
  const held = await run(ctx(alice));
  assert.equal(denied(await run(ctx(alice))).code, 'CONCURRENCY_LIMITED');
  assert.equal(store.charges.length, 1, 'only the admitted request was charged');
  assert.ok(held.kind === 'continue' && held.release);
  held.release();
  await new Promise((r) => setImmediate(r));
  assert.equal(headersOf(await run(ctx(alice))).ratelimit, '"per-user";r=0;t=60');
});

test('a request refused for its rate gives its concurrency lease back at once', async () => {
  const clock = fakeClock();
  const store = spy(new MemoryStore({ now: clock.now, pruneIntervalMs: 0 }));
  const { run } = setup([rule('per-user', 'subject', 1)], { store, tenantConcurrency: { limit: 1, leaseTtlMs: 60_000 } });
  const ok = await run(ctx(alice));
  assert.ok(ok.kind === 'continue' && ok.release);
  ok.release();
  await new Promise((r) => setImmediate(r));
  assert.equal(denied(await run(ctx(alice))).code, 'RATE_LIMITED');
  await new Promise((r) => setImmediate(r));
  assert.equal(store.leases(), 0);
  // bob (same tenant, own subject counter) gets the slot.
  assert.equal((await run(ctx(bob))).kind, 'continue');
});

test('a failing release is logged, never thrown', async () => {
  const clock = fakeClock();
  const store = spy(new MemoryStore({ now: clock.now, pruneIntervalMs: 0 }), { release: () => Promise.reject(new StoreUnavailableError('gone')) });
  const { run, log } = setup([], { store, tenantConcurrency: { limit: 1, leaseTtlMs: 60_000 } });
  const d = await run(ctx(alice));
  assert.ok(d.kind === 'continue' && d.release);
  assert.doesNotThrow(() => d.release?.());
  await new Promise((r) => setImmediate(r));
  assert.ok(log.lines.some((l) => l.level === 'warn' && /release failed/.test(l.msg)));
});

test("failMode 'local' limits per replica with the fallback, warns once and counts", async () => {
  const down = new DownStore();
  const before = await failureCount('local');
  const replicaA = setup([rule('per-user', 'subject', 2)], { store: down, failMode: 'local' });
  const replicaB = setup([rule('per-user', 'subject', 2)], { store: down, failMode: 'local' });
  for (const r of [replicaA, replicaB]) {
    assert.equal(headersOf(await r.run(ctx(alice))).ratelimit, '"per-user";r=1;t=60');
    assert.equal(headersOf(await r.run(ctx(alice))).ratelimit, '"per-user";r=0;t=60');
    assert.equal(denied(await r.run(ctx(alice))).code, 'RATE_LIMITED');
  }
  assert.equal(down.calls, 6, 'one store call per request, no retry');
  assert.equal(replicaA.log.lines.filter((l) => l.level === 'warn').length, 1, 'warned once, not per request');
  assert.equal((await failureCount('local')) - before, 6);
});

test("failMode 'local' also caps concurrency per replica", async () => {
  const down = new DownStore();
  const { run } = setup([rule('per-user', 'subject', 5)], { store: down, failMode: 'local', tenantConcurrency: { limit: 1, leaseTtlMs: 60_000 } });
  const held = await run(ctx(alice));
  assert.equal(held.kind, 'continue');
  // The failed acquire, then a best-effort release of it (it may still run once the store is
  // back); the charge goes straight to the fallback.
  assert.equal(down.calls, 2, 'acquire and its release only; no charge sent to the down store');
  assert.equal(denied(await run(ctx(bob))).code, 'CONCURRENCY_LIMITED');
});

test("failMode 'closed' refuses with 503 QUOTA_STORE_UNAVAILABLE", async () => {
  const before = await failureCount('closed');
  const { run } = setup([rule('per-user', 'subject', 2)], { store: new DownStore(), failMode: 'closed' });
  const e = denied(await run(ctx(alice)));
  assert.equal(e.code, 'QUOTA_STORE_UNAVAILABLE');
  assert.equal(e.status, 503);
  assert.doesNotMatch(e.message, /redis|timed out/, 'the store error stays in the log');
  assert.equal((await failureCount('closed')) - before, 1);
});

test("failMode 'closed' gives back a lease taken before the charge failed", async () => {
  const clock = fakeClock();
  const store = spy(new MemoryStore({ now: clock.now, pruneIntervalMs: 0 }), { charge: () => Promise.reject(new StoreUnavailableError('timeout')) });
  const { run } = setup([rule('per-user', 'subject', 2)], { store, failMode: 'closed', tenantConcurrency: { limit: 1, leaseTtlMs: 60_000 } });
  assert.equal(denied(await run(ctx(alice))).code, 'QUOTA_STORE_UNAVAILABLE');
  await new Promise((r) => setImmediate(r));
  assert.equal(store.leases(), 0);
});

test("failMode 'open' lets requests through unlimited, and counts them", async () => {
  const before = await failureCount('open');
  const { run } = setup([rule('per-user', 'subject', 1)], { store: new DownStore(), failMode: 'open', tenantConcurrency: { limit: 1, leaseTtlMs: 60_000 } });
  for (let i = 0; i < 5; i++) assert.deepEqual(await run(ctx(alice)), { kind: 'continue' });
  assert.equal((await failureCount('open')) - before, 5);
});

test('a store that reports itself unhealthy is not called (no timeout to wait for)', async () => {
  const down = new DownStore(false);
  const { run } = setup([rule('per-user', 'subject', 1)], { store: down, failMode: 'local' });
  headersOf(await run(ctx(alice)));
  denied(await run(ctx(alice)));
  assert.equal(down.calls, 0);
});

test('the store answering again is logged once', async () => {
  let failing = true;
  const clock = fakeClock();
  const mem = new MemoryStore({ now: clock.now, pruneIntervalMs: 0 });
  const store = spy(mem, { charge: (s, c, n) => (failing ? Promise.reject(new StoreUnavailableError('x')) : mem.charge(s, c, n)) });
  const { run, log } = setup([rule('per-user', 'subject', 10)], { store });
  await run(ctx(alice));
  failing = false;
  await run(ctx(alice));
  await run(ctx(alice));
  assert.deepEqual(log.lines.map((l) => l.level), ['warn', 'info']);
});

test('errors other than StoreUnavailableError are not taken for an outage', async () => {
  const clock = fakeClock();
  const store = spy(new MemoryStore({ now: clock.now, pruneIntervalMs: 0 }), { charge: () => Promise.reject(new TypeError('bug')) });
  const { run } = setup([rule('per-user', 'subject', 1)], { store, failMode: 'open' });
  await assert.rejects(run(ctx(alice)), TypeError);
});

test('without a principal every caller shares one anonymous bucket', async () => {
  const { run } = setup([rule('per-user', 'subject', 1)]);
  headersOf(await run(ctx(undefined)));
  denied(await run(ctx(undefined)));
});

test('two rules of one name are refused when the policy is built', () => {
  assert.throws(() => setup([rule('a', 'subject', 1), rule('a', 'tenant', 1)]), /"a" is used twice/);
});
