/**
 * The request phase of the policy chain, run in `onRequest` for every /v2/models/* route: before the
 * body is read, so an unauthenticated or unauthorised client never gets to upload one. Its context
 * and outcome ride on the request to the handler, which runs the payload phase.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { newOutcome, type ChainOutcome, type PolicyChain } from '../../policies/chain.js';
import { newContext, type PolicyAction, type PolicyContext } from '../../policies/policy.js';
import { toGatewayError } from '../error-handler.js';
import { faultOf } from '../errors.js';
import type { Observers } from '../observers.js';
import type { Serving } from '../serving.js';
import { bodyRefusal } from './body-types.js';
import { UNKNOWN_MODEL } from '../telemetry/metrics.js';

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

/**
 * A prediction refused before its handler ran (401, 403, 415, …) reaches the observers like every
 * other end: with names from the table only, no version, nothing of a payload.
 */
export function observeRefusal(observers: Observers, request: FastifyRequest, reply: FastifyReply, err: unknown): void {
  const guarded = request.guarded;
  if (guarded === null || guarded.ctx.action !== 'infer') return;
  const { ctx, out } = guarded;
  const ge = toGatewayError(err);
  // Fastify times every request from its arrival; no timer of our own on the request path.
  const ms = reply.elapsedTime;
  observers.end({
    requestId: ctx.requestId, startedAt: Date.now() - ms, ms,
    model: ctx.served?.name ?? UNKNOWN_MODEL, version: '', reason: '', principal: ctx.principal,
    status: ge.status, code: ge.code, fault: faultOf(ge.code), rows: 0, optOuts: out.optOuts,
    annotations: out.annotations, served: undefined, payload: undefined, answer: undefined, log: request.log,
  });
}

export function installGuard(app: FastifyInstance, serving: Serving, policies: PolicyChain, observers: Observers): void {
  const refused = (request: FastifyRequest, reply: FastifyReply, err: unknown): Error => {
    observeRefusal(observers, request, reply, err);
    return err as Error;
  };
  /**
   * Once the caller may ask: an inference whose body the gateway cannot read is refused before a
   * byte of it is read (415, body-types.ts). In this hook rather than one of its own: one hook less
   * on every prediction, and identity is still checked first.
   */
  const admitted = (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void => {
    const refusal = request.guarded?.ctx.action === 'infer' ? bodyRefusal(request.headers, 'inference') : undefined;
    done(refusal === undefined ? undefined : refused(request, reply, refusal));
  };
  app.decorateRequest('guarded', null);
  app.addHook('onRequest', function guard(request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) {
    const params = request.params as ModelParams;
    // Only the model routes are guarded: /v2 and /v2/health/* stay open (probes, discovery). The
    // route's own parameters decide (no second look at the URL): only /v2/models/* routes have a
    // `model` parameter; /admin routes name theirs `name` and have guards of their own.
    if (params.model === undefined) return done();
    const ctx = newContext({
      model: params.model,
      // An unknown model still goes through identity first (404 only to those allowed to ask).
      served: serving.table.models.get(params.model),
      action: actionOf(request),
      pinnedVersion: params.version,
      headers: request.headers,
      requestId: String(request.id),
    });
    const out = newOutcome(ctx);
    request.guarded = { ctx, out };
    let pending: void | Promise<void>;
    try {
      pending = policies.run('request', ctx, out);
    } catch (e) {
      return done(refused(request, reply, e));
    }
    if (pending === undefined) return admitted(request, reply, done);
    pending.then(() => admitted(request, reply, done), (e: unknown) => done(refused(request, reply, e)));
  });
}
