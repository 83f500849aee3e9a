/**
 * The request phase of the policy chain, run in `onRequest` for every /v2/models/* route: before the
 * body is read, so an unauthenticated or unauthorised client never gets to upload one. Its context
 * and outcome ride on the request to the handler, which runs the payload phase.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { newOutcome, type ChainOutcome, type PolicyChain } from '../../policies/chain.js';
import { newContext, type PolicyAction, type PolicyContext } from '../../policies/policy.js';
import { toGatewayError } from '../error-handler.js';
import type { InferRequest, InferResponse } from '../../adapters/adapter.js';
import type { ServedVersion } from '../../adapters/registry.js';
import { faultOf, type GatewayError } from '../errors.js';
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

/** What only the place a prediction ended knows; the rest comes from what the guard put on the request. */
export interface Ending {
  /** The model as the table names it, or UNKNOWN_MODEL. */
  readonly model: string;
  /** The version that served (or was to serve) it; undefined: refused before routing. */
  readonly served?: ServedVersion;
  readonly failure?: GatewayError;
  readonly payload?: InferRequest;
  readonly answer?: InferResponse;
  /** Undeclared outputs of the backend's answer, dropped (RequestEnd.droppedOutputs). */
  readonly droppedOutputs?: number;
}

/**
 * Hands an ended prediction to the observers: the one place a RequestEnd is made, whether the
 * handler answered or a hook refused. Observers.end withholds payload and answer from a caller who
 * opted out of tracking (gateway/retention.ts).
 */
export function observeEnd(observers: Observers, request: FastifyRequest, reply: FastifyReply, end: Ending): void {
  const guarded = request.guarded;
  const out = guarded?.out;
  const { served, failure } = end;
  // Fastify times every request from its arrival (body read included): no timer of our own.
  const ms = reply.elapsedTime;
  observers.end({
    requestId: String(request.id),
    startedAt: Date.now() - ms,
    ms,
    model: end.model,
    version: served?.version ?? '',
    reason: served === undefined ? '' : (out?.reason ?? ''),
    principal: guarded?.ctx.principal,
    status: failure?.status ?? 200,
    code: failure?.code,
    fault: failure === undefined ? undefined : faultOf(failure.code),
    rows: guarded?.ctx.rows ?? 0,
    optOuts: out?.optOuts ?? 0,
    annotations: out?.annotations,
    served,
    payload: end.payload,
    answer: end.answer,
    droppedOutputs: end.droppedOutputs ?? 0,
    log: request.log,
  });
}

/** A prediction refused before its handler ran (401, 403, 415, …): observed like every other end. */
function observeRefusal(observers: Observers, request: FastifyRequest, reply: FastifyReply, err: unknown): void {
  const ctx = request.guarded?.ctx;
  if (ctx === undefined || ctx.action !== 'infer') return;
  observeEnd(observers, request, reply, { model: ctx.served?.name ?? UNKNOWN_MODEL, failure: toGatewayError(err) });
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
    const refusal = request.guarded?.ctx.action === 'infer' ? bodyRefusal(request.headers, 'inference', request.raw.rawHeaders) : undefined;
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
      // The request itself: its `ip` getter is read only if a request limit needs the address.
      peer: request,
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
