/**
 * Rate limits in rows and the tenant concurrency cap, charged to the shared store before the
 * backend is called. Keys come from the verified principal only, never from request headers.
 *
 * - One `charge` per request covers every rule that applies to the model (all or nothing: a batch
 *   of 1,000 rows costs 1,000 and is refused whole if any rule has no room for it).
 * - Everything a request touches lives in one store scope, the tenant's, so on a Redis Cluster the
 *   subject and tenant counters share a slot and the charge stays one atomic script.
 * - The concurrency lease is taken before the charge: a request refused for concurrency costs no
 *   quota. A lease taken for a request that is then refused is given back at once.
 * - Response headers follow draft-ietf-httpapi-ratelimit-headers (structured fields): every rule
 *   that applied is listed, in `RateLimit-Policy` (`"name";q=<limit>;w=<window s>`) and in
 *   `RateLimit` (`"name";r=<remaining>;t=<s to reset>`), so a client sees its tightest limit and
 *   which one it is. `qu` is left out: the quota unit is rows, which the draft's registry lacks.
 * - When the store throws StoreUnavailableError (or reports itself unhealthy) `failMode` decides:
 *   `local` limits per replica with the fallback MemoryStore, `closed` refuses (503), `open` lets
 *   the request through. Each such request is counted; the warning is logged at most every 30 s.
 * - Waiting: every store call is bounded by the store's own command timeout; this policy adds no
 *   timer and no retry, skips a store that reports itself unhealthy, and never calls the shared
 *   store again in a request once it failed there. With tenantConcurrency a request makes two
 *   calls (acquire, then charge), so a store that is slow but answers can cost two round trips.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { RateLimitConfig, RateLimitRule } from '../gateway/config.js';
import { GatewayError } from '../gateway/errors.js';
import { StoreUnavailableError, type CounterCharge, type LeaseResult, type StateStore } from '../gateway/state/store.js';
import { CONTINUE, type Decision, type Policy, type PolicyContext } from './policy.js';
import type { Principal } from './principal.js';
import { ruleSuffix, subjectPrefix, subjectScope, tenantCounterKey, tenantScope } from './rate-limit-keys.js';
import { createStoreFailMode, type StoreFailMode } from './store-fail-mode.js';

export { FAIL_MODE_ATTR, STORE_FAILURES_METRIC, WARN_EVERY_MS } from './store-fail-mode.js';
export const CONCURRENCY_KEY = 'concurrency';
/** Plans are cached per model name; the payload phase only sees configured models, this is a backstop. */
const MAX_CACHED_PLANS = 1024;

export interface RateLimitDeps {
  readonly store: StateStore;
  readonly log: Logger;
  /** Per-replica limits while `store` is unavailable in failMode `local` (a MemoryStore). */
  readonly fallback: StateStore;
  /** Shared with the request limits (one warning per outage); made here when not given. */
  readonly failures?: StoreFailMode;
}

/** What applies to one model, computed once: counters in charge order, subject rules first. */
interface Plan {
  readonly rules: readonly RateLimitRule[];
  readonly subjectRules: number;
  /** `:<model>:<rule>` for each subject rule; the key is `sub:<subject>` + this. */
  readonly subjectSuffixes: readonly string[];
  /** The tenant counters, the same objects on every request. */
  readonly tenantCharges: readonly CounterCharge[];
  readonly policyHeader: string;
}

/** Where a principal's counters live. */
interface Identity {
  readonly scope: string;
  readonly subjectKey: string;
}

const seconds = (ms: number): number => Math.ceil(ms / 1000);

function buildPlan(rules: readonly RateLimitRule[], model: string): Plan {
  const applies = (r: RateLimitRule): boolean => r.models.includes('*') || r.models.includes(model);
  const subject = rules.filter((r) => r.by === 'subject' && applies(r));
  const tenant = rules.filter((r) => r.by === 'tenant' && applies(r));
  const all = [...subject, ...tenant];
  return {
    rules: all,
    subjectRules: subject.length,
    subjectSuffixes: subject.map((r) => ruleSuffix(model, r.name)),
    tenantCharges: tenant.map((r) => Object.freeze({ key: tenantCounterKey(model, r.name), limit: r.limit, windowMs: r.windowMs })),
    // The draft's `w` is whole seconds; a sub-second window is announced as 1 s.
    policyHeader: all.map((r) => `"${r.name}";q=${r.limit};w=${Math.max(1, seconds(r.windowMs))}`).join(', '),
  };
}

/**
 * A tenant's principals share the tenant's scope. A principal without a tenant (tenant '-') is a
 * tenant of its own: its tenant rules and concurrency cap count per subject, in the subject's scope
 * (one shared '-' bucket would let any tenantless caller starve all the others). Scopes are
 * prefixed so a tenantless subject named like a tenant never shares that tenant's counters.
 * Without authentication there is no principal: every caller shares one anonymous bucket.
 */
const ANONYMOUS: Identity = Object.freeze({ scope: 'anon', subjectKey: 'sub:-' });

function identityOf(p: Principal | undefined): Identity {
  if (p === undefined) return ANONYMOUS;
  return { scope: p.tenant === undefined ? subjectScope(p.subject) : tenantScope(p.tenant), subjectKey: subjectPrefix(p.subject) };
}

export function createRateLimitPolicy(cfg: RateLimitConfig, deps: RateLimitDeps): Policy {
  const names = new Set<string>();
  for (const r of cfg.rules) {
    // Counter keys are named after rules; two rules of one name would share (and corrupt) a counter.
    if (names.has(r.name)) throw new Error(`rateLimits.rules: the rule name "${r.name}" is used twice; names must be unique`);
    names.add(r.name);
  }
  const { store, log } = deps;
  const fallback = (): StateStore => deps.fallback;
  const concurrency = cfg.tenantConcurrency;
  const failMode = deps.failures ?? createStoreFailMode(cfg.failMode, store, deps.fallback, log);

  const plans = new Map<string, Plan>();
  const identities = new WeakMap<Principal, Identity>();
  // Lease ids are ours, not ctx.requestId: that one may come from the client's x-request-id, and a
  // client reusing one id would hold many requests under one lease (or release another's).
  const leasePrefix = randomBytes(6).toString('base64url');
  let leaseSeq = 0;

  function planFor(model: string): Plan {
    let plan = plans.get(model);
    if (plan === undefined) {
      plan = buildPlan(cfg.rules, model);
      if (plans.size < MAX_CACHED_PLANS) plans.set(model, plan);
    }
    return plan;
  }

  function identityFor(p: Principal | undefined): Identity {
    if (p === undefined) return identityOf(p);
    let id = identities.get(p);
    if (id === undefined) identities.set(p, (id = identityOf(p)));
    return id;
  }

  const storeDown = (err: unknown): 'fallback' | Decision => failMode.down(err);
  const storeAnswered = (): void => failMode.answered();

  /** Gives a lease back without making anyone wait or fail: errors are logged, leases expire anyway. */
  function releaser(via: StateStore, scope: string, id: string): () => void {
    let done = false;
    return function releaseConcurrencyLease() {
      if (done) return;
      done = true;
      try {
        via.release(scope, CONCURRENCY_KEY, id).catch((err: unknown) => log.warn({ err, store: via.kind }, 'rate limits: lease release failed (it will expire)'));
      } catch (err) {
        log.warn({ err, store: via.kind }, 'rate limits: lease release failed (it will expire)');
      }
    };
  }

  function rateLimitHeader(plan: Plan, counters: readonly { readonly count: number; readonly resetMs: number }[]): string {
    let s = '';
    for (let i = 0; i < plan.rules.length; i++) {
      const r = plan.rules[i];
      const c = counters[i];
      s += `${i === 0 ? '' : ', '}"${r.name}";r=${Math.max(0, r.limit - c.count)};t=${seconds(c.resetMs)}`;
    }
    return s;
  }

  function refusal(plan: Plan, counters: readonly { readonly count: number; readonly resetMs: number }[], cost: number, headers: Record<string, string>): Decision {
    // Retry when every counter that has no room has reset; a rule whose limit is below the batch never fits.
    let waitMs = 0;
    let tightest: RateLimitRule | undefined;
    for (let i = 0; i < plan.rules.length; i++) {
      const r = plan.rules[i];
      if (counters[i].count + cost <= r.limit) continue;
      waitMs = Math.max(waitMs, counters[i].resetMs);
      if (tightest === undefined || r.limit < cost) tightest = r;
    }
    headers['retry-after'] = String(Math.max(1, seconds(waitMs)));
    const detail =
      tightest === undefined ? undefined
      : tightest.limit < cost ? `a batch of ${cost} rows is over rule "${tightest.name}" (${tightest.limit} rows per window)`
      : `rule "${tightest.name}" allows ${tightest.limit} rows per ${seconds(tightest.windowMs)} s`;
    return { kind: 'deny', error: new GatewayError('RATE_LIMITED', detail), headers };
  }

  async function limit(ctx: PolicyContext, plan: Plan): Promise<Decision> {
    const { scope, subjectKey } = identityFor(ctx.principal);
    let via = store;
    if (!store.healthy()) {
      // Known down (e.g. disconnected): do not make the request wait for a timeout to learn it.
      const d = storeDown(undefined);
      if (d !== 'fallback') return d;
      via = fallback();
    }

    let release: (() => void) | undefined;
    if (concurrency !== undefined) {
      const id = `${leasePrefix}.${(leaseSeq = (leaseSeq + 1) % Number.MAX_SAFE_INTEGER)}`;
      let lease: LeaseResult;
      try {
        lease = await via.acquire(scope, CONCURRENCY_KEY, id, concurrency.limit, concurrency.leaseTtlMs);
        if (via === store) storeAnswered();
      } catch (err) {
        if (!(err instanceof StoreUnavailableError) || via !== store) throw err;
        // A timed-out acquire may still run once the store answers again: release it there too, or
        // the slot would stay taken for the whole lease TTL (harmless if it never ran).
        store.release(scope, CONCURRENCY_KEY, id).catch(() => undefined);
        const d = storeDown(err);
        if (d !== 'fallback') return d;
        via = fallback();
        lease = await via.acquire(scope, CONCURRENCY_KEY, id, concurrency.limit, concurrency.leaseTtlMs);
      }
      if (!lease.granted) {
        return { kind: 'deny', error: new GatewayError('CONCURRENCY_LIMITED'), headers: { 'retry-after': '1' } };
      }
      release = releaser(via, scope, id);
    }
    if (plan.rules.length === 0) return release === undefined ? CONTINUE : { kind: 'continue', release };

    const counters: CounterCharge[] = new Array<CounterCharge>(plan.rules.length);
    for (let i = 0; i < plan.subjectRules; i++) {
      const r = plan.rules[i];
      counters[i] = { key: subjectKey + plan.subjectSuffixes[i], limit: r.limit, windowMs: r.windowMs };
    }
    for (let i = 0; i < plan.tenantCharges.length; i++) counters[plan.subjectRules + i] = plan.tenantCharges[i];
    // An empty batch still calls the backend: it costs a row, so it cannot be sent for free.
    const cost = ctx.rows > 0 ? ctx.rows : 1;

    let result;
    try {
      try {
        result = await via.charge(scope, counters, cost);
        if (via === store) storeAnswered();
      } catch (err) {
        if (!(err instanceof StoreUnavailableError) || via !== store) throw err;
        const d = storeDown(err);
        if (d !== 'fallback') {
          if (d.kind === 'deny') release?.();
          return d.kind === 'continue' && release !== undefined ? { kind: 'continue', release } : d;
        }
        via = fallback();
        result = await via.charge(scope, counters, cost);
      }
    } catch (err) {
      release?.();
      throw err;
    }

    const headers: Record<string, string> = { 'ratelimit-policy': plan.policyHeader, ratelimit: rateLimitHeader(plan, result.counters) };
    if (!result.allowed) {
      release?.();
      return refusal(plan, result.counters, cost, headers);
    }
    return release === undefined ? { kind: 'continue', headers } : { kind: 'continue', headers, release };
  }

  return {
    name: 'rate-limit',
    phase: 'payload',
    evaluate: function rateLimit(ctx: PolicyContext): Decision | Promise<Decision> {
      const plan = planFor(ctx.model);
      // Nothing to charge and no cap: answer synchronously, no store call, no promise.
      if (plan.rules.length === 0 && concurrency === undefined) return CONTINUE;
      return limit(ctx, plan);
    },
  };
}
