/**
 * The kill switch on the request path: the last policy of the request phase, after the split and
 * the opt-outs, so that it sees the version the request would go to and overrides it. A killed
 * version never computes an answer for anyone: split arms, rules, Unleash variants, opt-out
 * fallbacks and pinned requests (`/versions/{v}/infer`) all land here before the body is read.
 *
 * What is killed arrives as a `KillTable` compiled off the request path (gateway/control/kill-switch.ts,
 * from the mirrored kill state) and swapped whole. With nothing killed the policy costs one size
 * check; a killed model costs a Map lookup and hands out decisions built when the table was.
 *
 *   model denied (mode deny, or a replica that cannot confirm the state with onStoreLoss deny):
 *     503 MODEL_KILLED with Retry-After, for inferences; metadata stays readable.
 *   routed version killed: the version that answers in its place (reason `kill-switch`, no shadow
 *     copy); a killed version with nowhere to go is denied like a killed model.
 *   a shadow copy aimed at a killed version: the same route without the copy.
 *   a subject who opted out of automated decisions, whose fallback is killed: never handed to a
 *     model instead; HUMAN_DECISION_REQUIRED.
 */
import { GatewayError } from '../gateway/errors.js';
import { CONTINUE, type Decision, type Policy, type PolicyContext, type Routed } from './policy.js';

/** The route reason of a request moved by the kill switch (x-route-reason). */
export const REASON_KILL_SWITCH = 'kill-switch';
/** The opt-out policy's reason for the fallback version (policies/opt-out.ts REASON_FALLBACK). */
const REASON_FALLBACK = 'fallback';
/** Seconds a client is told to wait before trying a stopped model again. */
export const KILLED_RETRY_AFTER_S = 30;

/** What is killed of one model on this replica. */
export interface ModelKill {
  /** Every inference of the model is refused (MODEL_KILLED). */
  readonly deny: boolean;
  /** Why, for the refusal's detail (no secrets: the operator's reason is not shown to clients). */
  readonly detail: string;
  /** Killed version → the version that answers instead; undefined: none left (refused). */
  readonly redirect: ReadonlyMap<string, string | undefined>;
}

export type KillTable = ReadonlyMap<string, ModelKill>;

/** A model's kill, compiled into the decisions the policy hands out. */
interface Compiled {
  readonly deny: Decision | undefined;
  readonly routes: ReadonlyMap<string, Decision>;
}

export function killedError(detail: string): GatewayError {
  return new GatewayError('MODEL_KILLED', detail, { headers: { 'retry-after': String(KILLED_RETRY_AFTER_S) } });
}

function compile(k: ModelKill): Compiled {
  const denied: Decision = Object.freeze({ kind: 'deny', error: killedError(k.detail) });
  if (k.deny) return Object.freeze({ deny: denied, routes: new Map() });
  const routes = new Map<string, Decision>();
  for (const [version, target] of k.redirect) {
    routes.set(version, target === undefined ? denied : Object.freeze({ kind: 'route', version: target, reason: REASON_KILL_SWITCH }));
  }
  return Object.freeze({ deny: undefined, routes });
}

export interface KillSwitchPolicy extends Policy {
  /** Always synchronous: memory only. */
  evaluate(ctx: PolicyContext, routed?: Routed): Decision;
  /** Swaps in a new table (whole): an applied kill, a restore, a reload, a stale store. */
  update(table: KillTable): void;
  /**
   * For an answer computed while the kill arrived: undefined when `version` of `model` may still
   * answer, else where the request goes now (`{ target }`) or that it is refused (`{ error }`).
   */
  recheck(model: string, version: string): { readonly target: string } | { readonly error: GatewayError } | undefined;
  /** True when `version` of `model` must not compute anything (a shadow copy, a readiness probe). */
  isKilled(model: string, version: string): boolean;
  /** True when every inference of `model` is refused. */
  isDenied(model: string): boolean;
}

export function createKillSwitchPolicy(initial: KillTable = new Map()): KillSwitchPolicy {
  let table = new Map<string, Compiled>();
  const load = (t: KillTable): void => {
    const next = new Map<string, Compiled>();
    for (const [model, k] of t) next.set(model, compile(k));
    table = next;
  };
  load(initial);

  return Object.freeze({
    name: 'kill-switch',
    phase: 'request',
    update: load,
    recheck(model: string, version: string) {
      if (table.size === 0) return undefined;
      const c = table.get(model);
      if (c === undefined) return undefined;
      const d = c.deny ?? c.routes.get(version);
      if (d === undefined) return undefined;
      return d.kind === 'route' ? { target: d.version } : d.kind === 'deny' ? { error: d.error } : undefined;
    },
    isKilled(model: string, version: string): boolean {
      if (table.size === 0) return false;
      const c = table.get(model);
      return c !== undefined && (c.deny !== undefined || c.routes.has(version));
    },
    isDenied(model: string): boolean {
      return table.size !== 0 && table.get(model)?.deny !== undefined;
    },
    evaluate: function killSwitch(ctx: PolicyContext, routed?: Routed): Decision {
      if (table.size === 0 || ctx.action !== 'infer') return CONTINUE;
      const c = table.get(ctx.model);
      if (c === undefined) return CONTINUE;
      if (c.deny !== undefined) return c.deny;
      const version = routed?.version ?? ctx.pinnedVersion ?? ctx.served?.stable.version;
      if (version === undefined) return CONTINUE;
      const moved = c.routes.get(version);
      if (moved !== undefined) {
        if (routed?.reason === REASON_FALLBACK) {
          return { kind: 'deny', error: new GatewayError('HUMAN_DECISION_REQUIRED', 'the fallback version of this model is stopped by its operators; ask the operator of this service for a decision made by a person') };
        }
        return moved;
      }
      const shadow = routed?.shadow;
      if (shadow !== undefined && c.routes.has(shadow.version)) return { kind: 'route', version, reason: routed?.reason ?? 'stable' };
      return CONTINUE;
    },
  });
}
