/**
 * Reading the audit log (scope admin:audit):
 *   GET /admin/audit?target=model:titanic&action=traffic.&limit=50&before=1234
 * Newest first; `target` is `<kind>:<id>` (model, subject, gateway), `action` a prefix, `before` a
 * sequence number to page back from. Each record comes with its place in the log (seq, hash), so a
 * reader can check it against the chain. The signed, walk-back trail builds on this (next issues).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ADMIN_SCOPES } from '../../policies/principal.js';
import type { AuditLog, AuditQuery } from '../audit/audit-log.js';
import type { AuditTargetKind } from '../audit/audit-record.js';
import { clip, GatewayError } from '../errors.js';
import type { CallerGuard, ServerFeature } from './admin.js';

const MAX_LIMIT = 200;
const KINDS: readonly AuditTargetKind[] = ['model', 'subject', 'gateway'];

function one(q: Record<string, unknown>, name: string): string | undefined {
  const v = q[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length > 256) throw new GatewayError('BAD_REQUEST', `${name} must be given once, at most 256 characters`);
  return v;
}

function integer(q: Record<string, unknown>, name: string, min: number, max: number): number | undefined {
  const v = one(q, name);
  if (v === undefined) return undefined;
  if (!/^\d{1,15}$/.test(v) || Number(v) < min || Number(v) > max) throw new GatewayError('BAD_REQUEST', `${name} must be an integer from ${min} to ${max}`);
  return Number(v);
}

export function parseAuditQuery(request: FastifyRequest): AuditQuery {
  const q = (request.query ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(q)) if (!['target', 'action', 'limit', 'before'].includes(k)) throw new GatewayError('BAD_REQUEST', `unknown parameter "${clip(k)}"; the parameters are target, action, limit, before`);
  const target = one(q, 'target');
  let targetKind: AuditTargetKind | undefined;
  let targetId: string | undefined;
  if (target !== undefined) {
    const at = target.indexOf(':');
    const kind = at < 0 ? target : target.slice(0, at);
    if (!KINDS.includes(kind as AuditTargetKind)) throw new GatewayError('BAD_REQUEST', `target must be <kind>:<id> with kind one of ${KINDS.join(', ')}`);
    targetKind = kind as AuditTargetKind;
    targetId = at < 0 ? undefined : target.slice(at + 1);
  }
  return { targetKind, targetId, actionPrefix: one(q, 'action'), limit: integer(q, 'limit', 1, MAX_LIMIT) ?? 50, beforeSeq: integer(q, 'before', 1, Number.MAX_SAFE_INTEGER) };
}

export function auditFeature(audit: AuditLog): ServerFeature {
  return {
    admin(admin: FastifyInstance, guard: CallerGuard) {
      admin.get('/audit', { preHandler: guard.require(ADMIN_SCOPES.audit) }, async function readAudit(request) {
        return { records: await audit.query(parseAuditQuery(request)), pending: audit.pending };
      });
    },
  };
}
