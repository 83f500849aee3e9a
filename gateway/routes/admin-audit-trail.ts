/**
 * Walking back through the audit trail (scope admin:audit; docs/audit.md):
 *   GET /admin/audit/requests/{id}            the decision record of one prediction and the state that
 *                                             produced it: configuration, version artefacts, routes,
 *                                             rollout step, kills in force, the changes that led there
 *   GET /admin/audit/subjects/{s}?tenant&from&to   which versions decided for a subject, when and why
 * Read from the trail files under `audit.dir` (every replica's, when the folder is shared or the
 * files are shipped there). A caller whose token carries a tenant is a tenant's auditor: it sees only
 * that tenant's predictions (another tenant's request is 404, as if it did not exist), and subjects
 * of its own tenant only.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ADMIN_SCOPES } from '../../policies/principal.js';
import type { DecisionRecord } from '../audit/decisions.js';
import { traceRequest } from '../audit/trace.js';
import type { TrailEntry } from '../audit/trail-format.js';
import { clip, GatewayError } from '../errors.js';
import type { CallerGuard, ServerFeature } from './admin.js';
import { callerOf } from './admin-request.js';

export interface AuditTrailDeps {
  /** Every replica's chain, read from the trail's folder. */
  readonly chains: () => Promise<Map<string, TrailEntry[]>>;
  /** The subject's pseudonym under its current key (undefined: erased, or never seen). */
  readonly pseudonym: (tenant: string | undefined, subject: string) => Promise<string | undefined>;
}

function time(q: Record<string, unknown>, name: string): number | undefined {
  const v = q[name];
  if (v === undefined) return undefined;
  const t = typeof v === 'string' ? Date.parse(v) : Number.NaN;
  if (!Number.isFinite(t)) throw new GatewayError('BAD_REQUEST', `${name} must be an ISO 8601 time`);
  return t;
}

export function auditTrailFeature(deps: AuditTrailDeps): ServerFeature {
  const tenantOf = (request: FastifyRequest): string | undefined => callerOf(request).tenant;
  return {
    admin(admin: FastifyInstance, guard: CallerGuard) {
      const allowed = { preHandler: guard.require(ADMIN_SCOPES.audit) };

      admin.get<{ Params: { id: string } }>('/audit/requests/:id', allowed, async function traceOne(request) {
        const id = request.params.id;
        const trace = traceRequest(await deps.chains(), id);
        const tenant = tenantOf(request);
        if (trace === undefined || (tenant !== undefined && trace.decision.body.tenant !== tenant)) throw new GatewayError('NOT_FOUND', `no decision record of request ${clip(id)}`);
        return trace;
      });

      admin.get<{ Params: { subject: string } }>('/audit/subjects/:subject', allowed, async function subjectDecisions(request) {
        const q = (request.query ?? {}) as Record<string, unknown>;
        for (const k of Object.keys(q)) if (!['tenant', 'from', 'to'].includes(k)) throw new GatewayError('BAD_REQUEST', `unknown parameter "${clip(k)}"; the parameters are tenant, from, to`);
        const own = tenantOf(request);
        const asked = typeof q.tenant === 'string' ? q.tenant : undefined;
        if (own !== undefined && asked !== undefined && asked !== own) throw new GatewayError('FORBIDDEN', 'a tenant\'s auditor sees its own tenant only');
        const tenant = own ?? asked;
        const from = time(q, 'from') ?? 0;
        const to = time(q, 'to') ?? Number.POSITIVE_INFINITY;
        const pseudonym = await deps.pseudonym(tenant, request.params.subject);
        const decisions = pseudonym === undefined ? [] : [...(await deps.chains()).values()].flat()
          .filter((e) => e.kind === 'prediction')
          .filter((e) => {
            const d = e.body as DecisionRecord;
            const at = Date.parse(d.at);
            return d.subject === pseudonym && (tenant === undefined || d.tenant === tenant) && at >= from && at <= to;
          })
          .map((e) => {
            const d = e.body as DecisionRecord;
            return { at: d.at, requestId: d.requestId, model: d.model, version: d.version, reason: d.reason, status: d.status, replica: e.replica, seq: e.seq };
          })
          .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
        return { subject: request.params.subject, tenant: tenant ?? null, pseudonymKnown: pseudonym !== undefined, decisions };
      });
    },
  };
}
