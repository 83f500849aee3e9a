/**
 * Whether this replica may answer predictions yet. A part that must not serve before it holds its
 * state (a mirrored scope told to start `closed`, or `snapshot` without one) adds a check; until
 * every check passes, /v2/health/ready says 503 (load balancers keep traffic away) and the first
 * policy of the request phase refuses predictions with GATEWAY_NOT_READY and Retry-After, before
 * identity or routing looks at them. Once every check has passed the gate stays open: later
 * outages are handled by each part (the last known copy stays enforced).
 */
import { CONTINUE, type Decision, type Policy } from '../policies/policy.js';
import { GatewayError } from './errors.js';

interface Check {
  readonly name: string;
  readonly ready: () => boolean;
}

export class Readiness {
  readonly #checks: Check[] = [];
  #open = true;

  /** Adds a check; the gate closes until it (and every other) passes. */
  add(name: string, ready: () => boolean): void {
    this.#checks.push({ name, ready });
    this.#open = false;
  }

  /** True once every check has passed (memory only; a closed gate re-asks its checks). */
  get ready(): boolean {
    if (this.#open) return true;
    for (const c of this.#checks) if (!c.ready()) return false;
    this.#open = true;
    return true;
  }

  get hasChecks(): boolean {
    return this.#checks.length > 0;
  }
}

/** The gate as the first request-phase policy (composed only when some part added a check). */
export function readinessPolicy(readiness: Readiness): Policy {
  const refusal: Decision = Object.freeze({
    kind: 'deny',
    error: new GatewayError('GATEWAY_NOT_READY', undefined, { headers: { 'retry-after': '1' } }),
  });
  return Object.freeze({
    name: 'readiness',
    phase: 'request',
    evaluate: function readinessGate(): Decision {
      return readiness.ready ? CONTINUE : refusal;
    },
  });
}
