/**
 * The opt-out API: admins (scope admin:opt-outs) under /admin, subjects themselves under /me with a
 * token of their own (the subject is the token's `sub`, never a parameter).
 *
 *   GET|PUT|DELETE /admin/opt-outs/:subject     GET|PUT|DELETE /me/opt-outs
 *   DELETE /admin/subjects/:subject[?tenant=]   DELETE /me                      (erasure)
 *
 * PUT takes `{"kinds": [...], "reason"?: "...", "revision"?: n}` and replaces the subject's
 * opt-outs (compare-and-set: with If-Match or `revision`, 409 REVISION_CONFLICT if it moved). Every
 * change and erasure is one record of the audit log (who, through what, whose, kinds before and
 * after, why); never anything of a payload.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ADMIN_SCOPES } from '../../policies/principal.js';
import type { AuditLog, AuditReceipt } from '../audit/audit-log.js';
import type { Eraser } from '../control/erasure.js';
import { isKindName, KIND_NAMES, type Change, type OptOutKindName, type OptOutRecord, type OptOutRegistry } from '../control/opt-out-registry.js';
import { clip, GatewayError } from '../errors.js';
import type { CallerGuard, ServerFeature } from './admin.js';
import { callerOf, etag, expectedRevision, jsonBody, onlyFields, optionalJsonBody, reasonOf } from './admin-request.js';

const KNOWN = KIND_NAMES.map((k) => `"${k}"`).join(', ');

export interface OptOutAnswer {
  readonly subject: string;
  readonly kinds: readonly OptOutKindName[];
  /** The record's revision (0: none); If-Match takes it. */
  readonly revision?: number;
  readonly updatedAt?: string;
  readonly updatedBy?: string;
}

function answer(subject: string, r: OptOutRecord | undefined): OptOutAnswer {
  return r === undefined ? { subject, kinds: [] } : { subject, kinds: r.kinds, updatedAt: r.updatedAt, updatedBy: r.updatedBy };
}

/** The body of a PUT: known kinds, each once, at least one; nothing but kinds and reason. */
export function parseChange(body: Record<string, unknown>): { kinds: OptOutKindName[]; reason: string | undefined } {
  onlyFields(body, ['kinds', 'reason', 'revision']);
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
  readonly audit: AuditLog;
}

/** What the audit log says let a subject change their own data: their own token. */
const SELF = 'self';

export function optOutsFeature({ registry, eraser, audit }: OptOutsFeatureDeps): ServerFeature {
  /** One audit record per change: who, through what (an admin scope or their own token), whose, before, after, why. */
  async function record(request: FastifyRequest, via: string, action: string, subject: string, change: Change, reason: string | undefined, details?: Record<string, unknown>): Promise<AuditReceipt> {
    return audit.record({
      actor: callerOf(request).subject,
      via,
      action: `${action}`,
      target: { kind: 'subject', id: subject },
      revision: change.revision,
      before: change.before?.kinds ?? [],
      after: change.after?.kinds ?? [],
      reason,
      ...(details === undefined ? {} : { details }),
    });
  }

  async function read(reply: FastifyReply, subject: string): Promise<OptOutAnswer> {
    const { record: r, revision } = await registry.get(subject);
    reply.header('etag', etag(revision));
    return { ...answer(subject, r), revision };
  }

  async function put(request: FastifyRequest, reply: FastifyReply, subject: string, via: string): Promise<OptOutAnswer> {
    const body = jsonBody(request);
    const { kinds, reason } = parseChange(body);
    const change = await registry.set(subject, kinds, callerOf(request).subject, expectedRevision(request, body));
    await record(request, via, 'opt-outs.set', subject, change, reason);
    reply.header('etag', etag(change.revision));
    return { ...answer(subject, change.after), revision: change.revision };
  }

  async function remove(request: FastifyRequest, subject: string, via: string): Promise<OptOutAnswer & { removed: boolean }> {
    const body = optionalJsonBody(request);
    onlyFields(body, ['reason', 'revision']);
    const reason = reasonOf(body, false);
    const change = await registry.clear(subject, expectedRevision(request, body));
    await record(request, via, 'opt-outs.clear', subject, change, reason);
    return { subject, kinds: [], revision: 0, removed: change.before !== undefined };
  }

  async function erase(request: FastifyRequest, subject: string, tenants: readonly string[], via: string) {
    const body = optionalJsonBody(request);
    onlyFields(body, ['reason']);
    const reason = reasonOf(body, false);
    const summary = await eraser.erase(subject, tenants);
    const before = summary.optOuts.removed ? { kinds: summary.optOuts.kinds, updatedAt: '', updatedBy: '' } : undefined;
    await record(request, via, 'subject.erase', subject, { before, after: undefined, revision: 0 }, reason, { counters: summary.counters.removed, scopes: summary.counters.scopes });
    return summary;
  }

  return {
    admin(admin: FastifyInstance, guard: CallerGuard) {
      const preHandler = guard.require(ADMIN_SCOPES.optOuts);
      const via = ADMIN_SCOPES.optOuts;
      admin.get('/opt-outs/:subject', { preHandler }, async function getOptOuts(request, reply) {
        personal(reply);
        return read(reply, subjectParam(request));
      });
      admin.put('/opt-outs/:subject', { preHandler }, async function putOptOuts(request, reply) {
        personal(reply);
        return put(request, reply, subjectParam(request), via);
      });
      admin.delete('/opt-outs/:subject', { preHandler }, async function deleteOptOuts(request, reply) {
        personal(reply);
        return remove(request, subjectParam(request), via);
      });
      admin.delete('/subjects/:subject', { preHandler }, async function eraseSubject(request, reply) {
        personal(reply);
        return erase(request, subjectParam(request), tenantQuery(request), via);
      });
    },
    routes(app: FastifyInstance, guard: CallerGuard) {
      const preHandler = guard.authenticated();
      app.get('/me/opt-outs', { preHandler }, async function getMyOptOuts(request, reply) {
        personal(reply);
        return read(reply, callerOf(request).subject);
      });
      app.put('/me/opt-outs', { preHandler }, async function putMyOptOuts(request, reply) {
        personal(reply);
        return put(request, reply, callerOf(request).subject, SELF);
      });
      app.delete('/me/opt-outs', { preHandler }, async function deleteMyOptOuts(request, reply) {
        personal(reply);
        return remove(request, callerOf(request).subject, SELF);
      });
      app.delete('/me', { preHandler }, async function eraseMe(request, reply) {
        personal(reply);
        const me = callerOf(request);
        return erase(request, me.subject, me.tenant === undefined ? [] : [me.tenant], SELF);
      });
    },
  };
}
