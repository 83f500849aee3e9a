/**
 * Runs policies in order. A deny ends the chain; a route decision is kept (a later policy may route
 * again, e.g. an opt-out overriding a canary) and the chain goes on. Without any route decision the
 * pinned version, else the stable one, is served.
 */
import type { Decision, Policy, PolicyContext } from './policy.js';

export interface ChainResult {
  readonly version: string;
  /** Why this version: `pinned`, `stable`, or the reason of the last route decision. */
  readonly reason: string;
}

export class PolicyChain {
  readonly #policies: readonly Policy[];

  constructor(policies: readonly Policy[]) {
    this.#policies = Object.freeze([...policies]);
  }

  get size(): number {
    return this.#policies.length;
  }

  /** Throws the deny decision's GatewayError. */
  run(ctx: PolicyContext): ChainResult {
    let version = ctx.pinnedVersion ?? ctx.stableVersion;
    let reason = ctx.pinnedVersion !== undefined ? 'pinned' : 'stable';
    for (const policy of this.#policies) {
      const d: Decision = policy.evaluate(ctx);
      if (d.kind === 'deny') throw d.error;
      if (d.kind === 'route') {
        version = d.version;
        reason = d.reason;
      }
    }
    return { version, reason };
  }
}
