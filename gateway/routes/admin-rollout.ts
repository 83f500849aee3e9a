/**
 * Rollouts (scope admin:traffic, docs/rollouts.md):
 *   GET  /admin/models/{m}/rollout                  the state: step, time and canary requests in the
 *                                                   step, each criterion's value against its limit,
 *                                                   the figures merged across replicas, the decisions
 *   PUT  /admin/models/{m}/rollout                  starts one: {canary, stable?, steps, criteria, pauseAfterMs?, reason}
 *   POST /admin/models/{m}/rollout/{action}         pause | resume | promote | abort: {reason}
 * Every change is a compare-and-set on the model's rollout record and one audit record
 * (`rollout.<action>`, beside the `traffic.set` of the weights it moved); the answer is the
 * rollout after it and where its record went.
 */
import type { FastifyInstance } from 'fastify';
import { ADMIN_SCOPES } from '../../policies/principal.js';
import { GatewayError } from '../errors.js';
import type { Rollouts } from '../rollout/rollouts.js';
import type { CallerGuard, ServerFeature } from './admin.js';
import { callerOf, jsonBody, onlyFields, reasonOf } from './admin-request.js';

/** `name`, not `model`: a `model` parameter marks the prediction routes (routes/guard.ts). */
interface ModelParams { name: string }
const ACTIONS = ['pause', 'resume', 'promote', 'abort'] as const;
type Action = (typeof ACTIONS)[number];

export function rolloutFeature(deps: { readonly rollouts: Rollouts }): ServerFeature {
  const { rollouts } = deps;
  return {
    admin(admin: FastifyInstance, guard: CallerGuard) {
      const allowed = { preHandler: guard.require(ADMIN_SCOPES.traffic) };

      admin.get<{ Params: ModelParams }>('/models/:name/rollout', allowed, async function showRollout(request) {
        return rollouts.show(request.params.name);
      });

      admin.put<{ Params: ModelParams }>('/models/:name/rollout', allowed, async function startRollout(request, reply) {
        const body = jsonBody(request, { prototypeKeys: 'report' });
        const reason = reasonOf(body, true);
        const { reason: _why, ...spec } = body;
        const done = await rollouts.begin(request.params.name, spec, callerOf(request).subject, reason);
        return reply.code(201).send(done);
      });

      admin.post<{ Params: ModelParams & { action: string } }>('/models/:name/rollout/:action', allowed, async function actOnRollout(request) {
        const action = request.params.action;
        if (!(ACTIONS as readonly string[]).includes(action)) throw new GatewayError('NOT_FOUND', `no rollout action ${JSON.stringify(action.slice(0, 32))} (${ACTIONS.join(', ')})`);
        const body = jsonBody(request);
        onlyFields(body, ['reason']);
        return rollouts.act(request.params.name, action as Action, callerOf(request).subject, reasonOf(body, true));
      });
    },
  };
}
