/**
 * What the gateway may keep of a request. A subject who opted out of tracking
 * (OPT_OUT.tracking, policies/opt-out.ts) is served, but nothing derived from the payload is kept
 * anywhere: not in logs (error details and causes can quote client values or a backend's echo of
 * them), shadow copies, drift samples or stored records. Counting the request (metrics, quotas) is
 * not keeping its payload.
 *
 * The contract for every part of the gateway that writes something down: call `retainsPayload`
 * and, when it is false, write only what does not come from the payload (codes, model, version,
 * timings, counts).
 */
import type { FastifyRequest } from 'fastify';
import type { ChainOutcome } from '../policies/chain.js';
import { OPT_OUT } from '../policies/policy.js';
import type {} from './routes/guard.js';

/** The rule itself, from a caller's OPT_OUT bits: false when they opted out of tracking. */
export function optOutsRetainPayload(optOuts: number): boolean {
  return (optOuts & OPT_OUT.tracking) === 0;
}

/** False when the caller opted out of tracking; true otherwise (and on routes without a payload policy). */
export function retainsPayload(request: FastifyRequest): boolean {
  return outcomeRetainsPayload(request.guarded?.out);
}

/** The same, from a policy chain outcome (for code that has the outcome but not the request). */
export function outcomeRetainsPayload(out: ChainOutcome | null | undefined): boolean {
  return out === null || out === undefined || optOutsRetainPayload(out.optOuts);
}
