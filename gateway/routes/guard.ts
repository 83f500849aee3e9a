/**
 * The request phase of the policy chain, run in `onRequest` for every /v2/models/* route: before the
 * body is read, so an unauthenticated or unauthorised client never gets to upload one. Its context
 * and outcome ride on the request to the handler, which runs the payload phase.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { newOutcome, type ChainOutcome, type PolicyChain } from '../../policies/chain.js';
import type { PolicyAction, PolicyContext } from '../../policies/policy.js';
import { toGatewayError } from '../error-handler.js';
import type { Serving } from '../serving.js';
import { UNKNOWN_MODEL, type GatewayMetrics } from '../telemetry/metrics.js';

export interface Guarded {
  readonly ctx: PolicyContext;
  readonly out: ChainOutcome;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the guard on /v2/models/* routes. */
    guarded: Guarded | null;
  }
}

interface ModelParams { model?: string; version?: string }

function actionOf(request: FastifyRequest): PolicyAction {
  return request.method === 'POST' ? 'infer' : 'metadata';
}

export function installGuard(app: FastifyInstance, serving: Serving, policies: PolicyChain, metrics: GatewayMetrics): void {
  /** Refusals before the handler (401, 403) are counted like every other infer outcome. */
  const refused = (request: FastifyRequest, model: string | undefined, err: unknown): Error => {
    if (actionOf(request) === 'infer') metrics.recordInfer(model ?? UNKNOWN_MODEL, '', 0, toGatewayError(err).code);
    return err as Error;
  };
  app.decorateRequest('guarded', null);
  app.addHook('onRequest', function guard(request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) {
    const params = request.params as ModelParams;
    // Only the model routes are guarded: /v2 and /v2/health/* stay open (probes, discovery). The
    // route's own parameters decide (no second look at the URL): only /v2/models/* routes have a
    // `model` parameter; /admin routes name theirs `name` and have guards of their own.
    if (params.model === undefined) return done();
    const model = serving.table.models.get(params.model);
    const ctx: PolicyContext = {
      model: params.model,
      action: actionOf(request),
      pinnedVersion: params.version,
      // An unknown model still goes through identity first (404 only to those allowed to ask).
      stableVersion: model?.stable.version ?? '',
      headers: request.headers,
      requestId: String(request.id),
      principal: undefined,
      request: undefined,
      rows: 0,
    };
    const out = newOutcome(ctx);
    request.guarded = { ctx, out };
    let pending: void | Promise<void>;
    const known = model?.name;
    try {
      pending = policies.run('request', ctx, out);
    } catch (e) {
      return done(refused(request, known, e));
    }
    if (pending === undefined) return done();
    pending.then(() => done(), (e: unknown) => done(refused(request, known, e)));
  });
}
