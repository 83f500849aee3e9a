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
import { CONTINUE, type Decision, type Policy, type PolicyContext, type ShadowTarget } from './policy.js';

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

/** A route decision and the same decision with the model's shadow attached (when it has one). */
interface Pair {
  readonly plain: Decision;
  readonly shadowed: Decision;
}

interface SplitTable {
  readonly rules: readonly { readonly matches: Matcher; readonly pair: Pair }[];
  /** Exclusive upper bucket of each arm, ascending; the last is BUCKETS. */
  readonly bounds: Uint16Array;
  readonly arms: readonly Pair[];
  /** Shadow sampling: a request is mirrored when a random bucket falls below this (0: never). */
  readonly shadowBuckets: number;
  /** The Unleash flag driving the split, and a decision pair per version a variant may name. */
  readonly flag: string | undefined;
  readonly byVersion: ReadonlyMap<string, Pair>;
  /** Every version other than the stable one that this table can send a request to. */
  readonly experimental: ReadonlySet<string>;
}

/** What the policy needs of a model: its versions, its stable one, and its live traffic (if split). */
export interface ModelTraffic {
  readonly versions: readonly string[];
  readonly stable: string;
  readonly traffic: TrafficConfig | undefined;
}

/**
 * Where a model's split comes from when it is driven by an Unleash flag (policies/unleash.ts):
 * the version the flag's variant names for this caller, or undefined (flag off, unknown, or no
 * answer from Unleash yet) to fall back to the model's own routes. Must answer from memory.
 */
export interface VariantSource {
  variant(flag: string, principal: Principal | undefined): string | undefined;
}

function route(version: string, reason: string, shadow?: ShadowTarget): Decision {
  return Object.freeze(shadow === undefined ? { kind: 'route', version, reason } : { kind: 'route', version, reason, shadow });
}

function pair(version: string, reason: string, shadow: ShadowTarget | undefined): Pair {
  const plain = route(version, reason);
  // A version never shadows itself.
  const shadowed = shadow === undefined || shadow.version === version ? plain : route(version, reason, shadow);
  return Object.freeze({ plain, shadowed });
}

function buildTable(m: ModelTraffic, traffic: TrafficConfig): SplitTable {
  const { stable, versions } = m;
  const sh = traffic.shadow;
  const shadow: ShadowTarget | undefined =
    sh === undefined || sh.percent === 0 ? undefined : Object.freeze({ version: sh.version, mode: sh.mode, timeoutMs: sh.timeoutMs, maxConcurrent: sh.maxConcurrent, suspendAfter: sh.suspendAfter });
  const rules = traffic.rules.map((r) => Object.freeze({ matches: matcher(r), pair: pair(r.version, `rule:${r.name}`, shadow) }));
  const bounds = new Uint16Array(traffic.routes.length);
  let upper = 0;
  const arms = traffic.routes.map((r, i) => {
    upper += r.weight * (BUCKETS / 100);
    bounds[i] = upper;
    return pair(r.version, r.name ?? (r.version === stable ? 'stable' : `arm:${r.version}`), shadow);
  });
  const flag = traffic.unleash?.flag;
  const byVersion = new Map<string, Pair>();
  if (flag !== undefined) for (const v of versions) byVersion.set(v, pair(v, `unleash:${v}`, shadow));
  const experimental = new Set<string>([
    ...traffic.routes.filter((r) => r.weight > 0).map((r) => r.version),
    ...traffic.rules.map((r) => r.version),
    ...(shadow === undefined ? [] : [shadow.version]),
    ...(flag === undefined ? [] : versions),
  ]);
  experimental.delete(stable);
  return Object.freeze({
    rules: Object.freeze(rules),
    bounds,
    arms: Object.freeze(arms),
    shadowBuckets: shadow === undefined ? 0 : Math.round(((sh?.percent ?? 0) * BUCKETS) / 100),
    flag,
    byVersion,
    experimental,
  });
}

/** Builds every split model's table once; the policy answers from them. */
function buildTables(models: ReadonlyMap<string, ModelTraffic>): Map<string, SplitTable> {
  const tables = new Map<string, SplitTable>();
  for (const [name, m] of models) if (m.traffic !== undefined) tables.set(name, buildTable(m, m.traffic));
  return tables;
}

/** The configuration's own traffic for every model, with `overrides` (set at run time) in its place. */
export function effectiveTraffic(config: GatewayConfig, overrides: ReadonlyMap<string, TrafficConfig> = new Map()): Map<string, ModelTraffic> {
  const out = new Map<string, ModelTraffic>();
  for (const [name, model] of Object.entries(config.models)) {
    out.set(name, { versions: Object.keys(model.versions), stable: model.stable, traffic: overrides.get(name) ?? model.traffic });
  }
  return out;
}

const NONE: ReadonlySet<string> = new Set();

/** The split policy; `update` swaps in new tables (whole, atomically): a reload or a routes change. */
export interface TrafficPolicy extends Policy {
  update(models: ReadonlyMap<string, ModelTraffic>): void;
  /** Versions of `model` other than its stable one that a split, rule, flag or shadow can reach. */
  experimentalVersions(model: string): ReadonlySet<string>;
}

export interface TrafficOptions {
  readonly random?: () => number;
  readonly variants?: VariantSource;
}

export function createTrafficPolicy(models: ReadonlyMap<string, ModelTraffic>, opts: TrafficOptions = {}): TrafficPolicy {
  const random = opts.random ?? Math.random;
  const variants = opts.variants;
  let tables = buildTables(models);
  return Object.freeze({
    update(next: ReadonlyMap<string, ModelTraffic>): void {
      tables = buildTables(next);
    },
    experimentalVersions(model: string): ReadonlySet<string> {
      return tables.get(model)?.experimental ?? NONE;
    },
    name: 'traffic',
    phase: 'request',
    evaluate: function traffic(ctx: PolicyContext): Decision {
      // A pinned version is the client's explicit choice; an unknown model is answered later (404).
      if (ctx.pinnedVersion !== undefined || ctx.served === undefined) return CONTINUE;
      const t = tables.get(ctx.model);
      if (t === undefined) return CONTINUE;
      const mirror = t.shadowBuckets > 0 && random() * BUCKETS < t.shadowBuckets;
      for (const r of t.rules) if (r.matches(ctx)) return mirror ? r.pair.shadowed : r.pair.plain;
      const p = ctx.principal;
      if (t.flag !== undefined && variants !== undefined) {
        const v = variants.variant(t.flag, p === ANONYMOUS ? undefined : p);
        const chosen = v === undefined ? undefined : t.byVersion.get(v);
        if (chosen !== undefined) return mirror ? chosen.shadowed : chosen.plain;
      }
      const bucket =
        p === undefined || p === ANONYMOUS ? Math.floor(random() * BUCKETS) : bucketOf(ctx.model, p.subject);
      const { bounds, arms } = t;
      // Zero-weight arms have an empty range (bound equal to the previous one) and are skipped.
      let arm = arms[arms.length - 1];
      for (let i = 0; i < bounds.length; i++) {
        if (bucket < bounds[i]) {
          arm = arms[i];
          break;
        }
      }
      return mirror ? arm.shadowed : arm.plain;
    },
  });
}
