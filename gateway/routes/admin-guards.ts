/**
 * The extraction guard's admin routes (scope admin:guards), docs/guards.md:
 *   GET    /admin/guards/extraction             flagged subjects, per model, with their scores and signals
 *   DELETE /admin/guards/extraction/{subject}   {reason}: clears a subject's evidence on every replica
 * A clear is one record of the audit log.
 */
import type { FastifyInstance } from 'fastify';
import { ADMIN_SCOPES } from '../../policies/principal.js';
import type { AuditLog } from '../audit/audit-log.js';
import { GatewayError } from '../errors.js';
import { storeUnavailable } from '../state/mirrored-scope.js';
import type { CallerGuard, ServerFeature } from './admin.js';
import { callerOf, jsonBody, onlyFields, reasonOf } from './admin-request.js';

/** What the routes need of the extraction monitor (policies/guards/extraction-monitor.ts). */
export interface ExtractionAdmin {
  /** Flagged subjects, as this replica's merged view holds them. */
  flagged(): readonly unknown[];
  /** Forgets a subject's evidence in the shared store (every model); resolves once stored. */
  clear(subject: string): Promise<{ readonly cleared: number }>;
}

/** A subject as tokens carry it (`sub`): printable, bounded. */
const SUBJECT = /^[\x21-\x7e]{1,256}$/;

export function guardsFeature(deps: { readonly extraction: ExtractionAdmin; readonly audit: AuditLog }): ServerFeature {
  const { extraction, audit } = deps;
  return {
    admin(admin: FastifyInstance, guard: CallerGuard) {
      const allowed = { preHandler: guard.require(ADMIN_SCOPES.guards) };

      admin.get('/guards/extraction', allowed, async function flaggedSubjects() {
        return { subjects: extraction.flagged() };
      });

      admin.delete<{ Params: { subject: string } }>('/guards/extraction/:subject', allowed, async function clearSubject(request) {
        const subject = request.params.subject;
        if (!SUBJECT.test(subject)) throw new GatewayError('BAD_REQUEST', 'the subject must be 1 to 256 printable characters');
        const body = jsonBody(request);
        onlyFields(body, ['reason']);
        const reason = reasonOf(body, true);
        let cleared: number;
        try {
          ({ cleared } = await extraction.clear(subject));
        } catch (e) {
          throw storeUnavailable(e);
        }
        const receipt = await audit.record({
          actor: callerOf(request).subject,
          via: ADMIN_SCOPES.guards,
          action: 'guards.extraction-clear',
          target: { kind: 'subject', id: subject },
          reason,
          details: { cleared },
        });
        return { subject, cleared, audit: receipt };
      });
    },
  };
}
