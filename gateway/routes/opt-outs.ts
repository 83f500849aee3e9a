/**
 * The opt-out API: admins (scope admin:opt-outs) under /admin, subjects themselves under /me with a
 * token of their own (the subject is the token's `sub`, never a parameter).
 *
 *   GET|PUT|DELETE /admin/opt-outs/:subject     GET|PUT|DELETE /me/opt-outs
 *   DELETE /admin/subjects/:subject[?tenant=]   DELETE /me                      (erasure)
 *
 * PUT takes `{"kinds": [...], "reason"?: "..."}` and replaces the subject's opt-outs. Every change
 * logs one audit line (who, whose, kinds before and after, reason); never anything of a payload.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ADMIN_SCOPES } from '../../policies/principal.js';
import type { Eraser } from '../control/erasure.js';
import { isKindName, KIND_NAMES, type Change, type OptOutKindName, type OptOutRecord, type OptOutRegistry } from '../control/opt-out-registry.js';
import { clip, GatewayError } from '../errors.js';
import type { CallerGuard, ServerFeature } from './admin.js';
import { callerOf, jsonBody, onlyFields, optionalJsonBody, reasonOf } from './admin-request.js';

const KNOWN = KIND_NAMES.map((k) => `"${k}"`).join(', ');

export interface OptOutAnswer {
  readonly subject: string;
  readonly kinds: readonly OptOutKindName[];
  readonly updatedAt?: string;
  readonly updatedBy?: string;
}

function answer(subject: string, r: OptOutRecord | undefined): OptOutAnswer {
  return r === undefined ? { subject, kinds: [] } : { subject, kinds: r.kinds, updatedAt: r.updatedAt, updatedBy: r.updatedBy };
}

/** The body of a PUT: known kinds, each once, at least one; nothing but kinds and reason. */
export function parseChange(body: Record<string, unknown>): { kinds: OptOutKindName[]; reason: string | undefined } {
  onlyFields(body, ['kinds', 'reason']);
  const kinds = body.kinds;
  if (!Array.isArray(kinds) || kinds.length === 0) {
    throw new GatewayError('BAD_REQUEST', `kinds must be a non-empty array of ${KNOWN} (DELETE removes every opt-out)`);
  }
  const seen = new Set<OptOutKindName>();
  for (const k of kinds) {
    if (!isKindName(k)) throw new GatewayError('BAD_REQUEST', `unknown kind ${typeof k === 'string' ? `"${clip(k)}"` : `of type ${k === null ? 'null' : typeof k}`}; the kinds are ${KNOWN}`);
    if (seen.has(k)) throw new GatewayError('BAD_REQUEST', `kind "${k}" is listed twice`);
    seen.add(k);
  }
  return { kinds: [...seen], reason: reasonOf(body, false) };
}

/** An optional JSON body: a DELETE may say why. */
function optionalReason(request: FastifyRequest): string | undefined {
  const body = optionalJsonBody(request);
  onlyFields(body, ['reason']);
  return reasonOf(body, false);
}

function subjectParam(request: FastifyRequest): string {
  const s = (request.params as { subject?: unknown }).subject;
  if (typeof s !== 'string' || s.length === 0) throw new GatewayError('BAD_REQUEST', 'a subject is required');
  return s;
}

function tenantQuery(request: FastifyRequest): string[] {
  const t = (request.query as { tenant?: unknown } | undefined)?.tenant;
  if (t === undefined) return [];
  if (typeof t !== 'string' || t.length === 0 || t.length > 256) throw new GatewayError('BAD_REQUEST', 'tenant must be one non-empty string of at most 256 characters');
  return [t];
}

/** Answers about one subject's data are personal: no cache may keep them. */
function personal(reply: FastifyReply): FastifyReply {
  return reply.header('cache-control', 'no-store');
}

export interface OptOutsFeatureDeps {
  readonly registry: OptOutRegistry;
  readonly eraser: Eraser;
}

export function optOutsFeature({ registry, eraser }: OptOutsFeatureDeps): ServerFeature {
  function audit(request: FastifyRequest, action: string, subject: string, change: Change, reason: string | undefined, extra: Record<string, unknown> = {}): void {
    request.log.info(
      { audit: 'opt-outs', action, by: callerOf(request).subject, subject, before: change.before?.kinds ?? [], after: change.after?.kinds ?? [], reason, ...extra },
      'opt-outs changed',
    );
  }

  async function read(subject: string): Promise<OptOutAnswer> {
    return answer(subject, await registry.get(subject));
  }

  async function put(request: FastifyRequest, subject: string): Promise<OptOutAnswer> {
    const { kinds, reason } = parseChange(jsonBody(request));
    const change = await registry.set(subject, kinds, callerOf(request).subject);
    audit(request, 'set', subject, change, reason);
    return answer(subject, change.after);
  }

  async function remove(request: FastifyRequest, subject: string): Promise<OptOutAnswer & { removed: boolean }> {
    const reason = optionalReason(request);
    const change = await registry.clear(subject);
    audit(request, 'clear', subject, change, reason);
    return { subject, kinds: [], removed: change.before !== undefined };
  }

  async function erase(request: FastifyRequest, subject: string, tenants: readonly string[]) {
    const reason = optionalReason(request);
    const summary = await eraser.erase(subject, tenants);
    const before = summary.optOuts.removed ? { kinds: summary.optOuts.kinds, updatedAt: '', updatedBy: '' } : undefined;
    audit(request, 'erase', subject, { before, after: undefined }, reason, { counters: summary.counters.removed });
    return summary;
  }

  return {
    admin(admin: FastifyInstance, guard: CallerGuard) {
      const preHandler = guard.require(ADMIN_SCOPES.optOuts);
      admin.get('/opt-outs/:subject', { preHandler }, async function getOptOuts(request, reply) {
        personal(reply);
        return read(subjectParam(request));
      });
      admin.put('/opt-outs/:subject', { preHandler }, async function putOptOuts(request, reply) {
        personal(reply);
        return put(request, subjectParam(request));
      });
      admin.delete('/opt-outs/:subject', { preHandler }, async function deleteOptOuts(request, reply) {
        personal(reply);
        return remove(request, subjectParam(request));
      });
      admin.delete('/subjects/:subject', { preHandler }, async function eraseSubject(request, reply) {
        personal(reply);
        return erase(request, subjectParam(request), tenantQuery(request));
      });
    },
    routes(app: FastifyInstance, guard: CallerGuard) {
      const preHandler = guard.authenticated();
      app.get('/me/opt-outs', { preHandler }, async function getMyOptOuts(request, reply) {
        personal(reply);
        return read(callerOf(request).subject);
      });
      app.put('/me/opt-outs', { preHandler }, async function putMyOptOuts(request, reply) {
        personal(reply);
        return put(request, callerOf(request).subject);
      });
      app.delete('/me/opt-outs', { preHandler }, async function deleteMyOptOuts(request, reply) {
        personal(reply);
        return remove(request, callerOf(request).subject);
      });
      app.delete('/me', { preHandler }, async function eraseMe(request, reply) {
        personal(reply);
        const me = callerOf(request);
        return erase(request, me.subject, me.tenant === undefined ? [] : [me.tenant]);
      });
    },
  };
}
