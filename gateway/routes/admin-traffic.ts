/**
 * The product owners' controls (scope admin:traffic):
 *   GET    /admin/models                  every model: stable version and where its routes come from
 *   GET    /admin/models/{m}              versions, live routes (weights, rules, shadow, flag),
 *                                          this replica's per-version figures, recent changes
 *   PUT    /admin/models/{m}/traffic      replaces the routes: {routes, rules?, shadow?, unleash?, reason}
 *   DELETE /admin/models/{m}/traffic      back to the configuration file's routes: {reason}
 * Changes are validated like the configuration, stored in the shared store and reach every
 * replica (gateway/control/traffic-routes.ts); the answer is the audit entry (before/after).
 */
import { hostname } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { ADMIN_SCOPES } from '../../policies/principal.js';
import type { TrafficRoutes } from '../control/traffic-routes.js';
import { clip, GatewayError } from '../errors.js';
import type { Serving } from '../serving.js';
import type { ArmFigures } from '../telemetry/arm-figures.js';
import type { CallerGuard, ServerFeature } from './admin.js';
import { callerOf, jsonBody, reasonOf } from './admin-request.js';

export interface TrafficFeatureDeps {
  readonly serving: Serving;
  readonly routes: TrafficRoutes;
  readonly figures: ArmFigures;
  /** This replica's shadow figures of a model, if it mirrors. */
  readonly shadowFigures?: (model: string) => unknown;
}

/** `name`, not `model`: a `model` parameter marks the prediction routes (routes/guard.ts). */
interface ModelParams { name: string }

export function trafficFeature(deps: TrafficFeatureDeps): ServerFeature {
  const { serving, routes, figures } = deps;
  const replica = `${hostname()}:${process.pid}`;

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

      admin.get<{ Params: ModelParams }>('/models/:name', allowed, async function showModel(request) {
        const m = modelOf(request.params.name);
        const live = routes.live(m.name);
        return {
          model: m.name,
          stable: m.stable.version,
          versions: m.versionNames.map((v) => {
            const sv = m.versions.get(v);
            return { version: v, backend: m.config.versions[v]?.backend.kind, ready: sv?.metadata !== undefined };
          }),
          traffic: { ...live, traffic: live.traffic ?? { routes: [{ version: m.stable.version, weight: 100 }], rules: [] } },
          fallback: m.config.fallback ?? null,
          figures: { replica, ...figures.summary(m.name), shadow: deps.shadowFigures?.(m.name) ?? null },
          history: await routes.history(m.name),
        };
      });

      admin.put<{ Params: ModelParams }>('/models/:name/traffic', allowed, async function setTraffic(request) {
        const m = modelOf(request.params.name);
        const body = jsonBody(request);
        const reason = reasonOf(body, true);
        const { reason: _why, ...traffic } = body;
        return routes.set(m.name, traffic, callerOf(request).subject, reason);
      });

      admin.delete<{ Params: ModelParams }>('/models/:name/traffic', allowed, async function resetTraffic(request) {
        const m = modelOf(request.params.name);
        return routes.reset(m.name, callerOf(request).subject, reasonOf(jsonBody(request), true));
      });
    },
  };
}
