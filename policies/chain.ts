/**
 * Runs a phase's policies in order. A deny ends the chain (its error is thrown, carrying the
 * decision's headers); a route decision is kept (a later policy may route again, e.g. an opt-out
 * overriding a canary) and the chain goes on. Runs synchronously while every policy answers
 * synchronously, so a chain of in-memory policies costs no promise.
 */
import { NO_SHADOW, type Annotations, type Decision, type Policy, type PolicyContext, type PolicyPhase, type ShadowTarget } from './policy.js';

/** What the chain decided so far; one per request, filled across both phases. */
export interface ChainOutcome {
  /** The version to serve: the pinned one, else the stable one, unless a policy routed. */
  version: string;
  /** `pinned`, `stable`, or the reason of the last route decision. */
  reason: string;
  /** Response headers policies asked for (rate-limit headers, …). */
  headers: Record<string, string> | undefined;
  /** To run when the request ends, however it ends. */
  releases: (() => void)[] | undefined;
  /** Where to mirror the request, if anywhere (set by the last route decision; never with NO_SHADOW opt-outs). */
  shadow: ShadowTarget | undefined;
  /** The caller's OPT_OUT bits (0: none). */
  optOuts: number;
  /** Notes policies left for the observers (undefined: none). */
  annotations: Partial<Annotations> | undefined;
}

export function newOutcome(ctx: PolicyContext): ChainOutcome {
  const pinned = ctx.pinnedVersion;
  return {
    version: pinned ?? ctx.served?.stable.version ?? '',
    reason: pinned === undefined ? 'stable' : 'pinned',
    headers: undefined,
    releases: undefined,
    shadow: undefined,
    optOuts: 0,
    annotations: undefined,
  };
}

function apply(d: Decision, ctx: PolicyContext, out: ChainOutcome): void {
  switch (d.kind) {
    case 'continue':
      if (d.principal !== undefined) ctx.principal = d.principal;
      if (d.headers !== undefined) Object.assign((out.headers ??= {}), d.headers);
      if (d.release !== undefined) (out.releases ??= []).push(d.release);
      if (d.optOuts !== undefined) {
        out.optOuts |= d.optOuts;
        if ((out.optOuts & NO_SHADOW) !== 0) out.shadow = undefined;
      }
      if (d.annotations !== undefined) Object.assign((out.annotations ??= {}), d.annotations);
      return;
    case 'route':
      out.version = d.version;
      out.reason = d.reason;
      if (d.annotations !== undefined) Object.assign((out.annotations ??= {}), d.annotations);
      if (d.optOuts !== undefined) out.optOuts |= d.optOuts;
      // A subject who opted out of experiments or tracking is never mirrored, whichever policy routes later.
      out.shadow = (out.optOuts & NO_SHADOW) === 0 ? d.shadow : undefined;
      return;
    case 'deny':
      throw d.headers === undefined ? d.error : d.error.withHeaders({ ...out.headers, ...d.headers });
  }
}

function isPromise(x: Decision | Promise<Decision>): x is Promise<Decision> {
  return typeof (x as Promise<Decision>).then === 'function';
}

export class PolicyChain {
  readonly #phases: Readonly<Record<PolicyPhase, readonly Policy[]>>;

  constructor(policies: readonly Policy[]) {
    this.#phases = Object.freeze({
      request: Object.freeze(policies.filter((p) => p.phase === 'request')),
      payload: Object.freeze(policies.filter((p) => p.phase === 'payload')),
    });
  }

  has(phase: PolicyPhase): boolean {
    return this.#phases[phase].length > 0;
  }

  /** Throws (or rejects with) the GatewayError of the first deny. */
  run(phase: PolicyPhase, ctx: PolicyContext, out: ChainOutcome): void | Promise<void> {
    const list = this.#phases[phase];
    for (let i = 0; i < list.length; i++) {
      const d = list[i].evaluate(ctx, out);
      if (isPromise(d)) return this.#rest(list, i, d, ctx, out);
      apply(d, ctx, out);
    }
  }

  async #rest(list: readonly Policy[], at: number, pending: Promise<Decision>, ctx: PolicyContext, out: ChainOutcome): Promise<void> {
    apply(await pending, ctx, out);
    for (let i = at + 1; i < list.length; i++) apply(await list[i].evaluate(ctx, out), ctx, out);
  }
}

/** Runs every release of an outcome; a failing release never fails the request. */
export function releaseAll(out: ChainOutcome, onError: (e: unknown) => void): void {
  if (out.releases === undefined) return;
  for (const r of out.releases) {
    try {
      r();
    } catch (e) {
      onError(e);
    }
  }
}
