/**
 * The drift monitor's admin routes (scope admin:drift), docs/drift.md:
 *   GET  /admin/models/{m}/drift[?version=v][&against=w]   the version's (default: stable) live window
 *        judged against its reference, or against version w's live window (canary vs stable)
 *   POST /admin/models/{m}/drift/reset   {reason, version?}  starts a new window on every replica
 *        (after a planned change); one record of the audit log
 * A report is judged afresh on each call: this replica's pending counts are flushed and the window
 * merged from the store.
 */
import type { FastifyInstance } from 'fastify';
import { ADMIN_SCOPES } from '../../policies/principal.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { DriftMonitors } from '../drift/monitor.js';
import { clip, GatewayError } from '../errors.js';
import type { Serving } from '../serving.js';
import { storeUnavailable } from '../state/mirrored-scope.js';
import type { CallerGuard, ServerFeature } from './admin.js';
import { callerOf, jsonBody, onlyFields, reasonOf } from './admin-request.js';

interface ModelParams { name: string }
interface DriftQuery { version?: string; against?: string }

const VERSION = /^[A-Za-z0-9_.-]{1,64}$/;

export function driftFeature(deps: { readonly serving: Serving; readonly drift: DriftMonitors; readonly audit: AuditLog }): ServerFeature {
  const { serving, drift, audit } = deps;

  /** The model and the version asked for (default: its stable one), or the catalogue's error. */
  function target(name: string, version: unknown): { model: string; version: string } {
    const m = serving.table.models.get(name);
    if (m === undefined) throw new GatewayError('MODEL_NOT_FOUND', clip(name));
    if (!drift.monitors(m.name)) throw new GatewayError('DRIFT_NOT_MONITORED', `model ${clip(name)} has no drift section that is on (models.${clip(name)}.drift)`);
    if (version !== undefined && (typeof version !== 'string' || !VERSION.test(version))) throw new GatewayError('BAD_REQUEST', 'version must be 1 to 64 letters, digits, "_", "." or "-"');
    const v = (version as string | undefined) ?? m.stable.version;
    if (!m.versions.has(v)) throw new GatewayError('VERSION_NOT_FOUND', `model ${clip(name)} has no version ${clip(v)}`);
    return { model: m.name, version: v };
  }

  return {
    admin(admin: FastifyInstance, guard: CallerGuard) {
      const allowed = { preHandler: guard.require(ADMIN_SCOPES.drift) };

      admin.get<{ Params: ModelParams; Querystring: DriftQuery }>('/models/:name/drift', allowed, async function driftReport(request) {
        const { model, version } = target(request.params.name, request.query.version);
        const against = request.query.against;
        if (against !== undefined) target(request.params.name, against);
        let report: Awaited<ReturnType<DriftMonitors['report']>>;
        try {
          report = await drift.report(model, version, against);
        } catch (e) {
          throw storeUnavailable(e);
        }
        if (report === 'unknown-version') throw new GatewayError('DRIFT_NOT_MONITORED', `version ${clip(against ?? version)} of ${clip(model)} has no drift reference (no profile with drift bins, no baseline)`);
        if (report === 'not-comparable') throw new GatewayError('DRIFT_NOT_COMPARABLE', `versions ${clip(version)} and ${clip(against ?? '')} of ${clip(model)}`);
        return report;
      });

      admin.post<{ Params: ModelParams }>('/models/:name/drift/reset', allowed, async function resetDrift(request) {
        const body = jsonBody(request);
        onlyFields(body, ['reason', 'version']);
        const reason = reasonOf(body, true);
        const { model, version } = target(request.params.name, body.version);
        let point: Awaited<ReturnType<DriftMonitors['reset']>>;
        try {
          point = await drift.reset(model, version);
        } catch (e) {
          throw storeUnavailable(e);
        }
        if (point === undefined) throw new GatewayError('DRIFT_NOT_MONITORED', `version ${clip(version)} of ${clip(model)} has no drift reference`);
        const receipt = await audit.record({
          actor: callerOf(request).subject,
          via: ADMIN_SCOPES.drift,
          action: 'drift.reset',
          target: { kind: 'model', id: model },
          reason,
          details: { version, epoch: point.epoch },
        });
        return { model, version, epoch: point.epoch, audit: receipt };
      });
    },
  };
}
