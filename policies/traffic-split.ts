/**
 * Traffic splits (`models.<m>.traffic`): per model, rules that pin a version by verified claim or by
 * header, then weighted routes over versions (a canary, or A/B with any number of arms). Every table
 * is built once from the frozen configuration; a request reads memory and allocates nothing (the
 * decisions are built here, frozen, and handed out as they are).
 *
 * Stickiness: an authenticated subject lands in bucket fnv1a(model + '\0' + subject) mod 10,000 and
 * the arms own contiguous bucket ranges, laid out cumulatively from bucket 0 in the order of the
 * routes list. While the weights stand a subject always gets the same arm, on every replica. When
 * weight moves between two arms that are adjacent in the list, only the boundary between them moves,
 * so subjects only ever move from the arm that shrank to the one that grew, never back and forth:
 * `[{stable 90}, {canary 10}]` → `[{stable 80}, {canary 20}]` moves buckets 8,000–8,999 from stable to
 * canary and nothing else. With two arms that always holds; with more, list a canary next to the arm
 * it takes its traffic from (moving weight between arms that are not adjacent shifts the arms between
 * them too).
 *
 * Anonymous callers (no principal, or the anonymous principal of auth.insecureNoAuth) share one
 * subject, so hashing it would send all of them to one arm: they get a random bucket per request.
 */
import type { GatewayConfig, TrafficConfig, TrafficRule } from '../gateway/config.js';
import type { Principal } from './principal.js';
import { ANONYMOUS } from './authenticate.js';
import { CONTINUE, type Decision, type Policy, type PolicyContext } from './policy.js';

/** Resolution of a split: 0.01 % steps, finer than the 1 % weights, so every arm is exact. */
export const BUCKETS = 10_000;


/**
 * FNV-1a (32-bit) over the string's UTF-16 code units, then murmur3's fmix32 finaliser. FNV-1a
 * alone mixes its last input into the low bits poorly (subjects that differ only in their last
 * characters, `user-1`, `user-2`, …, would land close together after `mod 10,000`); fmix32 makes
 * every input bit flip each output bit with probability close to 1/2, so the buckets of any set of
 * distinct subjects are as good as uniform (the tests measure each arm within 1 point of its weight
 * over 100,000 sequential subject ids). `mod 10,000` of a 32-bit value is biased by under 3·10⁻⁶.
 * Not cryptographic, and it need not be: the subject is verified identity, not a secret, and a
 * client choosing its arm would have to choose its `sub`. No crypto on the request path.
 */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The bucket (0 ≤ b < 10,000) of a subject for a model: the same on every replica, for ever. */
export function bucketOf(model: string, subject: string): number {
  return hash32(`${model}\0${subject}`) % BUCKETS;
}

type Matcher = (ctx: PolicyContext) => boolean;

function matcher(rule: TrafficRule): Matcher {
  const { claim, header } = rule;
  if (header !== undefined) {
    const { name, equals } = header;
    return function headerRule(ctx) {
      const v = ctx.headers[name];
      return v === equals || (Array.isArray(v) && v.includes(equals));
    };
  }
  // Validation guarantees exactly one of claim and header.
  const { name, equals } = claim as NonNullable<TrafficRule['claim']>;
  const read: (p: Principal) => boolean =
    name === 'sub' ? (p) => p.subject === equals : name === 'tenant' ? (p) => p.tenant === equals : (p) => p.scopes.has(equals);
  return function claimRule(ctx) {
    return ctx.principal !== undefined && read(ctx.principal);
  };
}

interface ModelTable {
  readonly rules: readonly { readonly matches: Matcher; readonly decision: Decision }[];
  /** Exclusive upper bucket of each arm, ascending; the last is BUCKETS. */
  readonly bounds: Uint16Array;
  readonly arms: readonly Decision[];
}

function route(version: string, reason: string): Decision {
  return Object.freeze({ kind: 'route', version, reason });
}

function buildTable(traffic: TrafficConfig, stable: string): ModelTable {
  const rules = traffic.rules.map((r) => Object.freeze({ matches: matcher(r), decision: route(r.version, `rule:${r.name}`) }));
  const bounds = new Uint16Array(traffic.routes.length);
  let upper = 0;
  const arms = traffic.routes.map((r, i) => {
    upper += r.weight * (BUCKETS / 100);
    bounds[i] = upper;
    return route(r.version, r.name ?? (r.version === stable ? 'stable' : `arm:${r.version}`));
  });
  return Object.freeze({ rules: Object.freeze(rules), bounds, arms: Object.freeze(arms) });
}

/** Builds every model's table once; `createTrafficPolicy` answers from them. */
function buildTables(config: GatewayConfig): Map<string, ModelTable> {
  const tables = new Map<string, ModelTable>();
  for (const [name, model] of Object.entries(config.models)) {
    if (model.traffic !== undefined) tables.set(name, buildTable(model.traffic, model.stable));
  }
  return tables;
}

/** The split policy; `update` swaps in the tables of a reloaded configuration (whole, atomically). */
export interface TrafficPolicy extends Policy {
  update(config: GatewayConfig): void;
}

export function createTrafficPolicy(config: GatewayConfig, random: () => number = Math.random): TrafficPolicy {
  let tables = buildTables(config);
  return Object.freeze({
    update(next: GatewayConfig): void {
      tables = buildTables(next);
    },
    name: 'traffic',
    phase: 'request',
    evaluate: function traffic(ctx: PolicyContext): Decision {
      // A pinned version is the client's explicit choice; an unknown model is answered later (404).
      if (ctx.pinnedVersion !== undefined || ctx.stableVersion === '') return CONTINUE;
      const t = tables.get(ctx.model);
      if (t === undefined) return CONTINUE;
      for (const r of t.rules) if (r.matches(ctx)) return r.decision;
      const p = ctx.principal;
      const bucket =
        p === undefined || p === ANONYMOUS ? Math.floor(random() * BUCKETS) : bucketOf(ctx.model, p.subject);
      const { bounds, arms } = t;
      // Zero-weight arms have an empty range (bound equal to the previous one) and are skipped.
      for (let i = 0; i < bounds.length; i++) if (bucket < bounds[i]) return arms[i];
      return arms[arms.length - 1];
    },
  });
}
