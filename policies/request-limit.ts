/**
 * Request limits: no free probing. The row rules (rate-limit.ts) are charged only once a request
 * has been validated, so a request that fails before (an unknown model, a 403, a 400, a bad token)
 * cost nothing, and model names and error behaviour could be probed at line rate. These limits
 * count requests, not rows, and count every one of them:
 *
 * - **per subject**: every request an authenticated subject makes to the prediction routes
 *   (/v2/models/*: inference, metadata, readiness), however it is answered afterwards (404, 403,
 *   400, 429…). One counter per subject, in the same store scope as its rule counters (its
 *   tenant's, or its own). Admin and self-service calls are not counted per subject (LimitedAuth).
 * - **per client address, failed authentications**: every 401 (no, malformed, expired or forged
 *   token) counts against the client's address (IPv4, or an IPv6 address's /64: one host can
 *   rotate through 2^64 addresses). Past the limit the 401 becomes a 429, and until the window ends
 *   this replica refuses the address's requests before their token is looked at (no signature
 *   check for a guesser), except a token it has already verified (a map lookup): callers behind
 *   the same NAT or proxy keep working with the tokens they have.
 *
 * It wraps the authentication policy, because only there are both outcomes known: a deny ends the
 * chain, so no later policy would ever see a 401. The prediction routes, the admin caller guard and
 * GET /v2 all authenticate through it.
 *
 * Shared across replicas through the StateStore's `charge` (Redis: reserved in blocks by the
 * ReservingStore, so most requests count in memory; workers without Redis: the primary's store
 * over the relay), with the row rules' `failMode` (store-fail-mode.ts, one instance for both). A
 * refusal is 429 RATE_LIMITED with Retry-After, RateLimit-Policy and RateLimit like the rules',
 * naming the limit ("requests" or "auth-failures"); an admitted request gets no headers (what the
 * hot path does not have to build, it does not).
 *
 * Why not @fastify/rate-limit: see docs/identity-and-limits.md (its hook runs after our guard has
 * already answered 401/403, its stores bypass our StateStore, and it cannot count failures only).
 */
import { GatewayError } from '../gateway/errors.js';
import type { RateLimitConfig } from '../gateway/config.js';
import { REQUEST_LIMIT_NAMES } from '../gateway/config-schema.js';
import { StoreUnavailableError, type ChargeResult, type CounterCharge } from '../gateway/state/store.js';
import { ANONYMOUS, type AuthPolicy } from './authenticate.js';
import type { Decision, PolicyContext } from './policy.js';
import type { Principal } from './principal.js';
import { addressScope, FAILED_AUTH_KEY, requestCounterKey, subjectScope, tenantScope } from './rate-limit-keys.js';
import type { StoreFailMode } from './store-fail-mode.js';

/** Names of the limits in RateLimit headers; rateLimits.rules may not use them (config.ts). */
const REQUESTS_RULE = REQUEST_LIMIT_NAMES.perSubject;
const AUTH_FAILURES_RULE = REQUEST_LIMIT_NAMES.failedAuthPerAddress;
/** Addresses this replica refuses without looking at the token; beyond it, each failure asks the store. */
const MAX_BLOCKED = 100_000;

export type RequestLimitConfig = RateLimitConfig['requests'];

export interface RequestLimitDeps {
  /** The store, its fallback and the fail mode, shared with the row rules. */
  readonly failures: StoreFailMode;
  /** For tests. */
  readonly now?: () => number;
}

interface SubjectCounter {
  readonly scope: string;
  readonly counters: readonly CounterCharge[];
}

const seconds = (ms: number): number => Math.max(1, Math.ceil(ms / 1000));

/**
 * The key a client address counts under: IPv4 as it is, an IPv4-mapped IPv6 address as its IPv4,
 * any other IPv6 address as its /64 (`2001:db8:1:2::/64`).
 */
export function addressKey(ip: string | undefined): string {
  if (ip === undefined || ip.length === 0) return 'unknown';
  if (!ip.includes(':')) return ip;
  let s = ip.toLowerCase();
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (s.startsWith('::ffff:') && s.includes('.')) return s.slice(7);
  let groups: string[];
  const gap = s.indexOf('::');
  if (gap >= 0) {
    const head = gap === 0 ? [] : s.slice(0, gap).split(':');
    const tail = gap + 2 >= s.length ? [] : s.slice(gap + 2).split(':');
    // An embedded IPv4 tail (a.b.c.d) stands for two groups.
    const tailGroups = tail.length + (tail.length > 0 && tail[tail.length - 1].includes('.') ? 1 : 0);
    groups = [...head, ...new Array<string>(Math.max(0, 8 - head.length - tailGroups)).fill('0'), ...tail];
  } else {
    groups = s.split(':');
  }
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

function isResult(r: ChargeResult | Decision): r is ChargeResult {
  return (r as ChargeResult).counters !== undefined;
}

function isPromise(x: Decision | Promise<Decision>): x is Promise<Decision> {
  return typeof (x as Promise<Decision>).then === 'function';
}

/** Authentication within the request limits, one for each kind of route. */
export interface LimitedAuth {
  /** The prediction routes (/v2/models/*): every request counted per subject, 401s per address. */
  readonly predictions: AuthPolicy;
  /**
   * Admin, self-service and GET /v2: 401s per address only. Their callers are operators (every
   * change audited) or a subject reading its own data, and a subject's erasure must not leave a
   * counter named after it that the erasing request itself just made.
   */
  readonly callers: AuthPolicy;
}

/**
 * `auth` with the request limits around it (`auth` itself for what is off: limit 0). Never used
 * with auth.insecureNoAuth: the anonymous principal is everyone, not a subject.
 */
export function withRequestLimits(auth: AuthPolicy, cfg: RequestLimitConfig, deps: RequestLimitDeps): LimitedAuth {
  const perSubject = cfg.perSubject.limit > 0 ? cfg.perSubject : undefined;
  const perAddress = cfg.failedAuthPerAddress.limit > 0 ? cfg.failedAuthPerAddress : undefined;
  if (perSubject === undefined && perAddress === undefined) return { predictions: auth, callers: auth };
  const { failures } = deps;
  const now = deps.now ?? Date.now;

  const subjectCounters = new WeakMap<Principal, SubjectCounter>();
  const addressCounters: readonly CounterCharge[] | undefined =
    perAddress === undefined ? undefined : Object.freeze([Object.freeze({ key: FAILED_AUTH_KEY, limit: perAddress.limit, windowMs: perAddress.windowMs })]);
  /** Address → when its window ends (ms): refused here without a look at the token until then. */
  const blocked = new Map<string, number>();

  function refusal(rule: string, limit: { readonly limit: number; readonly windowMs: number }, resetMs: number, detail: string): Decision {
    const t = String(seconds(resetMs));
    return {
      kind: 'deny',
      error: new GatewayError('RATE_LIMITED', detail),
      headers: { 'ratelimit-policy': `"${rule}";q=${limit.limit};w=${seconds(limit.windowMs)}`, ratelimit: `"${rule}";r=0;t=${t}`, 'retry-after': t },
    };
  }

  const subjectRefusal = (resetMs: number): Decision =>
    refusal(REQUESTS_RULE, perSubject!, resetMs, `at most ${perSubject!.limit} requests per ${seconds(perSubject!.windowMs)} s, refused and failed ones included`);
  const addressRefusal = (resetMs: number): Decision =>
    refusal(AUTH_FAILURES_RULE, perAddress!, resetMs, `too many failed authentications from this address (at most ${perAddress!.limit} per ${seconds(perAddress!.windowMs)} s)`);

  /** One charge of 1, with the fail mode: the result, or the fail mode's decision. */
  async function charge(scope: string, counters: readonly CounterCharge[]): Promise<ChargeResult | Decision> {
    const { store } = failures;
    if (!store.healthy()) {
      // Known down: do not make the request wait for a timeout to learn it.
      const d = failures.down(undefined);
      return d === 'fallback' ? failures.fallback.charge(scope, counters, 1) : d;
    }
    try {
      const r = await store.charge(scope, counters, 1);
      failures.answered();
      return r;
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err;
      const d = failures.down(err);
      return d === 'fallback' ? failures.fallback.charge(scope, counters, 1) : d;
    }
  }

  function counterOf(p: Principal): SubjectCounter {
    let c = subjectCounters.get(p);
    if (c === undefined) {
      const counter = Object.freeze({ key: requestCounterKey(p.subject), limit: perSubject!.limit, windowMs: perSubject!.windowMs });
      c = { scope: p.tenant === undefined ? subjectScope(p.subject) : tenantScope(p.tenant), counters: Object.freeze([counter]) };
      subjectCounters.set(p, c);
    }
    return c;
  }

  async function countSubject(p: Principal, accepted: Decision): Promise<Decision> {
    const c = counterOf(p);
    const r = await charge(c.scope, c.counters);
    // failMode closed: 503; open: the request goes on, with its principal.
    if (!isResult(r)) return r.kind === 'deny' ? r : accepted;
    return r.allowed ? accepted : subjectRefusal(r.counters[0].resetMs);
  }

  function block(address: string, resetMs: number): void {
    if (blocked.size >= MAX_BLOCKED) {
      const t = now();
      for (const [a, until] of blocked) if (until <= t) blocked.delete(a);
      // Still full: this address is refused by the store's answer on each failure instead.
      if (blocked.size >= MAX_BLOCKED) return;
    }
    blocked.set(address, now() + resetMs);
  }

  async function countFailure(address: string, refused: Decision): Promise<Decision> {
    const r = await charge(addressScope(address), addressCounters!);
    // Whatever the fail mode says, a failed authentication stays what it was (401).
    if (!isResult(r) || r.allowed) return refused;
    block(address, r.counters[0].resetMs);
    return addressRefusal(r.counters[0].resetMs);
  }

  function decided(ctx: PolicyContext, d: Decision, countSubjects: boolean): Decision | Promise<Decision> {
    if (d.kind === 'deny') {
      return perAddress === undefined || ctx.peer === undefined ? d : countFailure(addressKey(ctx.peer.ip), d);
    }
    const p = d.kind === 'continue' ? d.principal : undefined;
    if (!countSubjects || perSubject === undefined || p === undefined || p === ANONYMOUS) return d;
    return countSubject(p, d);
  }

  function limited(countSubjects: boolean): AuthPolicy {
    if (!countSubjects && perAddress === undefined) return auth;
    return {
      name: auth.name,
      phase: auth.phase,
      stats: auth.stats,
      knows: (headers) => auth.knows(headers),
      close: () => auth.close(),
      evaluate: function authenticateWithinLimits(ctx: PolicyContext): Decision | Promise<Decision> {
        // Only while some address is over its limit does a request pay for reading its address.
        if (blocked.size > 0 && ctx.peer !== undefined) {
          const address = addressKey(ctx.peer.ip);
          const until = blocked.get(address);
          if (until !== undefined) {
            const left = until - now();
            if (left <= 0) blocked.delete(address);
            else if (!auth.knows(ctx.headers)) return addressRefusal(left);
          }
        }
        const d = auth.evaluate(ctx);
        return isPromise(d) ? d.then((x) => decided(ctx, x, countSubjects)) : decided(ctx, d, countSubjects);
      },
    };
  }

  return { predictions: limited(true), callers: limited(false) };
}
