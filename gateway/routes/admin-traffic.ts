/**
 * The product owners' controls (scope admin:traffic):
 *   GET    /admin/models                  every model: stable version and where its routes come from
 *   GET    /admin/models/{m}              versions, live routes (weights, rules, shadow, flag),
 *                                          this replica's per-version figures, recent changes
 *   PUT    /admin/models/{m}/traffic      replaces the routes: {routes, rules?, shadow?, unleash?, reason, revision?}
 *   DELETE /admin/models/{m}/traffic      back to the configuration file's routes: {reason, revision?}
 * Changes are validated like the configuration, stored in the shared store and reach every
 * replica (gateway/control/traffic-routes.ts). GET answers with the routes' revision as its ETag; a
 * change sent with it (If-Match, or `revision`) is refused with 409 REVISION_CONFLICT if another
 * change came first. Every change is one record of the audit log (gateway/audit/audit-log.ts),
 * which is also the model's history; the answer is the change and where its record went.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { BackendGuardFigures } from '../../adapters/backend-guard.js';
import type { ServedVersion } from '../../adapters/registry.js';
import { ADMIN_SCOPES } from '../../policies/principal.js';
import type { AuditLog, AuditReceipt, AuditedRecord } from '../audit/audit-log.js';
import type { TrafficChange, TrafficRoutes } from '../control/traffic-routes.js';
import { clip, GatewayError } from '../errors.js';
import { REPLICA } from '../replica.js';
import type { Serving } from '../serving.js';
import type { ArmFigures } from '../telemetry/arm-figures.js';
import type { CallerGuard, ServerFeature } from './admin.js';
import { callerOf, etag, expectedRevision, jsonBody, onlyFields, reasonOf } from './admin-request.js';

export interface TrafficFeatureDeps {
  readonly serving: Serving;
  readonly routes: TrafficRoutes;
  readonly figures: ArmFigures;
  /** This replica's shadow figures of a model, if it mirrors. */
  readonly shadowFigures?: (model: string) => unknown;
  /** This replica's input-guard verdicts of a model, by version, guard and outcome. */
  readonly guardFigures?: (model: string) => unknown;
  /** Where every change is recorded; a model's history is read from it. */
  readonly audit: AuditLog;
  /** The kills in force concerning a model (the kill switch), if it is on. */
  readonly kills?: (model: string) => unknown;
}

/** Changes of a model shown by GET /admin/models/{m}; older ones are in the audit log. */
export const HISTORY_LENGTH = 20;

/** An audit record of a traffic change, as the model's history shows it. */
function historyEntry(a: AuditedRecord): Record<string, unknown> {
  const r = a.record;
  return { seq: a.seq, action: r.action.replace(/^traffic\./, ''), revision: r.revision, at: r.at, by: r.actor, reason: r.reason, before: r.before, after: r.after, ...(r.digests ? { digests: r.digests } : {}) };
}

/**
 * Each version's backend guard as this replica sees it now (in flight, queued, refusals, the
 * circuit breaker); versions whose backend has none (in-process models) are left out.
 */
function backendFigures(versions: ReadonlyMap<string, ServedVersion>): Record<string, BackendGuardFigures> {
  const out: Record<string, BackendGuardFigures> = {};
  for (const [v, sv] of versions) {
    const f = sv.adapter.guardFigures?.();
    if (f !== undefined) out[v] = f;
  }
  return out;
}

/** `name`, not `model`: a `model` parameter marks the prediction routes (routes/guard.ts). */
interface ModelParams { name: string }

export function trafficFeature(deps: TrafficFeatureDeps): ServerFeature {
  const { serving, routes, figures, audit } = deps;

  /** Records the change (its log line at once; its log entry now or once the store answers). */
  async function recorded(change: TrafficChange, reply: FastifyReply): Promise<TrafficChange & { audit: AuditReceipt }> {
    const receipt = await audit.record({
      actor: change.by,
      via: ADMIN_SCOPES.traffic,
      action: `traffic.${change.action}`,
      target: { kind: 'model', id: change.model },
      revision: change.revision,
      before: change.before,
      after: change.after,
      reason: change.reason,
    });
    reply.header('etag', etag(change.revision));
    return { ...change, audit: receipt };
  }

  const modelOf = (name: string) => {
    const m = serving.table.models.get(name);
    if (m === undefined) throw new GatewayError('MODEL_NOT_FOUND', clip(name));
    return m;
  };

  return {
    admin(admin: FastifyInstance, guard: CallerGuard) {
      const allowed = { preHandler: guard.require(ADMIN_SCOPES.traffic) };

      admin.get('/models', allowed, async function listModels() {
        const models = [...serving.table.models.values()].map((m) => ({
          model: m.name,
          stable: m.stable.version,
          versions: m.versionNames,
          routes: routes.live(m.name).source,
        }));
        return { models };
      });

      admin.get<{ Params: ModelParams }>('/models/:name', allowed, async function showModel(request, reply) {
        const m = modelOf(request.params.name);
        const live = routes.live(m.name);
        const [revision, history] = await Promise.all([
          routes.revision(m.name),
          audit.query({ targetKind: 'model', targetId: m.name, actionPrefix: ['traffic.', 'kill.'], limit: HISTORY_LENGTH }),
        ]);
        reply.header('etag', etag(revision));
        return {
          model: m.name,
          stable: m.stable.version,
          versions: m.versionNames.map((v) => {
            const sv = m.versions.get(v);
            return { version: v, backend: m.config.versions[v]?.backend.kind, ready: sv?.metadata !== undefined };
          }),
          traffic: { ...live, revision, traffic: live.traffic ?? { routes: [{ version: m.stable.version, weight: 100 }], rules: [] } },
          fallback: m.config.fallback ?? null,
          kills: deps.kills?.(m.name) ?? [],
          figures: { replica: REPLICA, ...figures.summary(m.name), backends: backendFigures(m.versions), shadow: deps.shadowFigures?.(m.name) ?? null, guards: deps.guardFigures?.(m.name) ?? {} },
          history: history.map(historyEntry),
        };
      });

      admin.put<{ Params: ModelParams }>('/models/:name/traffic', allowed, async function setTraffic(request, reply) {
        const m = modelOf(request.params.name);
        // Prototype keys are named by the routes' validation, with every other problem of the body.
        const body = jsonBody(request, { prototypeKeys: 'report' });
        const reason = reasonOf(body, true);
        const expected = expectedRevision(request, body);
        const { reason: _why, revision: _rev, ...traffic } = body;
        return recorded(await routes.set(m.name, traffic, callerOf(request).subject, reason, expected), reply);
      });

      admin.delete<{ Params: ModelParams }>('/models/:name/traffic', allowed, async function resetTraffic(request, reply) {
        const m = modelOf(request.params.name);
        const body = jsonBody(request);
        onlyFields(body, ['reason', 'revision']);
        const reason = reasonOf(body, true);
        return recorded(await routes.reset(m.name, callerOf(request).subject, reason, expectedRevision(request, body)), reply);
      });
    },
  };
}
