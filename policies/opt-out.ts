/**
 * Per-subject opt-outs (GDPR articles 21 and 22), applied in the request phase right after the
 * traffic split, so they override it. The caller's bits come from the registry's local copy
 * (gateway/control/opt-out-registry.ts): a Map lookup. A caller without opt-outs, an unauthenticated
 * request and the anonymous principal of auth.insecureNoAuth (everyone, so no one's choice) get the
 * shared frozen CONTINUE: the common path allocates nothing.
 *
 * For a subject with opt-outs, in this order:
 * - `automated-decision` (inferences only; reading metadata decides nothing): the model's
 *   `fallback.version` serves them (reason `fallback`, even over a pinned version); without one
 *   the request is refused, 403 HUMAN_DECISION_REQUIRED, with `fallback.humanDecision` as detail.
 * - `experiments`: the stable version (reason `opt-out:experiments`, no shadow) whenever the model
 *   has experimental versions (policies/traffic-split.ts experimentalVersions) or the client pinned
 *   one of them; a pinned version that is not experimental is honoured.
 * - `tracking`: served as routed; the bits make the chain drop any shadow copy, and the rest of the
 *   gateway keep nothing derived from the payload (gateway/retention.ts).
 * Every decision carries the subject's bits into `out.optOuts`.
 */
import { GatewayError } from '../gateway/errors.js';
import { ANONYMOUS } from './authenticate.js';
import { CONTINUE, OPT_OUT, type Decision, type ModelView, type Policy, type PolicyContext } from './policy.js';

export const REASON_FALLBACK = 'fallback';
export const REASON_EXPERIMENTS = 'opt-out:experiments';
/** The detail of HUMAN_DECISION_REQUIRED when the model names no procedure of its own. */
export const GENERIC_HUMAN_DECISION = 'this model has no fallback; ask the operator of this service for a decision made by a person';

/** Where the caller's bits come from: memory only (the registry's local copy). */
export interface OptOutSource {
  bits(subject: string): number;
}

/** Which versions of a model count as experiments (the traffic policy's live tables). */
export interface ExperimentSource {
  experimentalVersions(model: string): ReadonlySet<string>;
}

/** All 8 combinations of bits, so a decision is picked, never built, per request. */
const BIT_VALUES = 8;
const ALL_BITS = BIT_VALUES - 1;

/** The decisions for one served model, by the subject's bits. */
interface OptOutRoutes {
  readonly toStable: readonly Decision[];
  readonly toFallback: readonly Decision[] | undefined;
  readonly humanDecision: string;
}

const continueWith: readonly Decision[] = Object.freeze(
  Array.from({ length: BIT_VALUES }, (_, bits) => (bits === 0 ? CONTINUE : Object.freeze({ kind: 'continue', optOuts: bits }) as Decision)),
);

function routes(version: string, reason: string): readonly Decision[] {
  return Object.freeze(Array.from({ length: BIT_VALUES }, (_, optOuts) => Object.freeze({ kind: 'route', version, reason, optOuts }) as Decision));
}

/**
 * Built from the served model itself (its stable version, its configured fallback), once per model
 * table: a reload builds new served models, so the decisions follow it without a copy to update.
 */
function routesOf(m: ModelView): OptOutRoutes {
  const fb = m.config.fallback;
  return Object.freeze({
    toStable: routes(m.stable.version, REASON_EXPERIMENTS),
    toFallback: fb?.version === undefined ? undefined : routes(fb.version, REASON_FALLBACK),
    humanDecision: fb?.humanDecision ?? GENERIC_HUMAN_DECISION,
  });
}

export function createOptOutPolicy(deps: { readonly optOuts: OptOutSource; readonly experiments: ExperimentSource }): Policy {
  const { optOuts, experiments } = deps;
  const built = new WeakMap<ModelView, OptOutRoutes>();

  function decide(ctx: PolicyContext, bits: number): Decision {
    const m = ctx.served;
    // An unknown model is answered later (404); there is nothing to route.
    if (m === undefined) return continueWith[bits];
    let t = built.get(m);
    if (t === undefined) built.set(m, (t = routesOf(m)));
    if ((bits & OPT_OUT.automatedDecision) !== 0 && ctx.action === 'infer') {
      if (t.toFallback !== undefined) return t.toFallback[bits];
      return { kind: 'deny', error: new GatewayError('HUMAN_DECISION_REQUIRED', t.humanDecision) };
    }
    if ((bits & OPT_OUT.experiments) !== 0) {
      const pinned = ctx.pinnedVersion;
      const experimental = experiments.experimentalVersions(ctx.model);
      if (pinned === undefined ? experimental.size > 0 : experimental.has(pinned)) return t.toStable[bits];
    }
    return continueWith[bits];
  }

  return Object.freeze({
    name: 'opt-out',
    phase: 'request',
    evaluate: function optOut(ctx: PolicyContext): Decision {
      const p = ctx.principal;
      if (p === undefined || p === ANONYMOUS) return CONTINUE;
      const bits = optOuts.bits(p.subject) & ALL_BITS;
      return bits === 0 ? CONTINUE : decide(ctx, bits);
    },
  });
}
