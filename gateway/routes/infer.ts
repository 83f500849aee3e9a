/**
 * POST /v2/models/{m}[/versions/{v}]/infer: the request path. In order: find the model, run the
 * policy chain (which picks the version or denies), bound the body, parse and check the tensors, check them against the model's metadata, call the
 * backend with a deadline, keep only the outputs the model declares, encode the answer. Nothing reaches a backend before every check passed.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { TIMEOUT_HEADER, type InferRequest, type InferResponse } from '../../adapters/adapter.js';
import type { ServedVersion } from '../../adapters/registry.js';
import { releaseAll, type PolicyChain } from '../../policies/chain.js';
import { toGatewayError } from '../error-handler.js';
import { minimiseOutputs, undeclaredOutputs } from '../declared-outputs.js';
import { GatewayError } from '../errors.js';
import { encodeInferResponse } from '../infer-response.js';
import { parseInferRequest } from '../infer-request.js';
import type { Observers } from '../observers.js';
import type { Serving } from '../serving.js';
import type { ShadowMirror } from '../shadow.js';
import type { Rollouts } from '../rollout/rollouts.js';
import { REASON_KILL_SWITCH, type KillSwitchPolicy } from '../../policies/kill-switch.js';
import { GUARD_HEADER, ROUTE_REASON_PREFIX } from '../../policies/guards/input-guards.js';
import type { Profile } from '../../policies/guards/profile.js';
import { SqueezeGuard } from '../../policies/guards/squeeze-guard.js';
import { coarsenAnswer } from '../coarsen.js';
import { UNKNOWN_MODEL } from '../telemetry/metrics.js';
import { validateAgainstMetadata } from '../validate-request.js';
import { observeEnd } from './guard.js';
import { findModel, findVersion } from './oip-v2.js';

interface InferParams { model: string; version?: string }


const HEADER_LENGTH = 'inference-header-content-length';

function headerLength(value: string | string[] | undefined, bodyLength: number): number | undefined {
  if (value === undefined) return undefined;
  const s = Array.isArray(value) ? value[0] : value;
  if (s === undefined || !/^\d{1,10}$/.test(s) || Number(s) > bodyLength) {
    throw new GatewayError('BAD_BINARY_HEADER', `${HEADER_LENGTH} must be an integer no larger than the body`);
  }
  return Number(s);
}

/**
 * Rows the request asks to infer: the batch (first) dimension, which validation has checked to be
 * equal across inputs. A request is charged at least one row, even for an empty batch (a model
 * with `allowEmptyBatch`): it still costs a backend call, and must not be free to repeat.
 */
function rowsOf(req: InferRequest): number {
  const first = req.inputs[0]?.shape[0];
  return first === undefined || first < 1 ? 1 : first;
}

/** A caller may shorten the deadline (x-request-timeout-ms), never lengthen it. */
function timeoutFor(asked: string | string[] | undefined, configured: number): number {
  if (typeof asked !== 'string' || !/^\d{1,9}$/.test(asked)) return configured;
  const ms = Number(asked);
  return ms > 0 && ms < configured ? ms : configured;
}

export interface InferDeps {
  readonly serving: Serving;
  readonly policies: PolicyChain;
  /** What runs after the answer: metrics, per-version figures, the access log, … */
  readonly observers: Observers;
  readonly shadow: ShadowMirror;
  /** The kill switch, for answers computed while a kill arrived (undefined: killSwitch.enabled false). */
  readonly kills?: KillSwitchPolicy;
  /** The squeezing guard (undefined: no model has one). */
  readonly squeeze?: SqueezeGuard;
  /** Rollouts: a sampled canary request is copied to stable after the answer (gateway/rollout/rollouts.ts). */
  readonly rollouts?: Pick<Rollouts, 'sampled' | 'compare'>;
}

export function registerInferRoutes(app: FastifyInstance, { serving, policies, observers, shadow, kills, squeeze, rollouts }: InferDeps): void {
  async function infer(request: FastifyRequest<{ Params: InferParams }>, reply: FastifyReply) {
    const table = serving.table;
    table.acquire();
    // Observers see names from the table only: a client spraying unknown model or version names
    // must not create a time series (or a figure) per name.
    let modelName = UNKNOWN_MODEL;
    let served: ServedVersion | undefined;
    let failure: GatewayError | undefined;
    let inferRequest: InferRequest | undefined;
    let answer: InferResponse | undefined;
    let droppedOutputs = 0;
    const guarded = request.guarded;
    try {
      if (guarded === null) throw new GatewayError('INTERNAL', 'infer route without its guard');
      const { ctx, out } = guarded;
      const model = findModel(serving, request.params.model);
      modelName = model.name;
      served = findVersion(model, out.version);
      let version = served.version;
      reply.header('x-model-version', version).header('x-route-reason', out.reason);
      let md = served.requireMetadata();
      const body = request.body;
      if (!Buffer.isBuffer(body) || body.length === 0) throw new GatewayError('BAD_REQUEST', 'the request has no body');
      const mc = model.config;
      if (body.length > mc.maxBodyBytes) throw new GatewayError('PAYLOAD_TOO_LARGE', `limit for ${model.name} is ${mc.maxBodyBytes} bytes`);
      const parsed = parseInferRequest(body, headerLength(request.headers[HEADER_LENGTH], body.length), {
        maxElements: mc.maxElements,
        nonFinite: mc.nonFinite,
        maxJsonDepth: mc.maxJsonDepth,
        unknownMembers: mc.unknownMembers,
      });
      validateAgainstMetadata(parsed, md, mc.allowEmptyBatch);
      inferRequest = parsed;
      // The request served by another version (a guard's route, a kill while in flight): checked
      // against that version's metadata, and said in the response headers.
      const moveTo = (target: string, reason: string): ServedVersion => {
        const next = findVersion(model, target);
        const nextMd = next.requireMetadata();
        validateAgainstMetadata(parsed, nextMd, mc.allowEmptyBatch);
        served = next;
        version = next.version;
        md = nextMd;
        reply.header('x-model-version', version).header('x-route-reason', reason);
        return next;
      };
      ctx.version = served;
      ctx.request = parsed;
      ctx.rows = rowsOf(parsed);
      if (policies.has('payload')) {
        const pending = policies.run('payload', ctx, out);
        if (pending !== undefined) await pending;
        // An input guard in route mode sends the request to another version (policies/guards/).
        if (out.version !== version) ctx.version = moveTo(out.version, out.reason);
      }
      if (out.headers !== undefined) reply.headers(out.headers);
      // The adapter enforces the deadline itself: one timer per request, not one here and one there.
      // Only a mirrored request needs its primary timed (shadow latency is compared with it).
      const primaryStarted = out.shadow === undefined ? 0 : performance.now();
      const deadline = Date.now() + timeoutFor(request.headers[TIMEOUT_HEADER], mc.inferTimeoutMs);
      const primary = served.adapter.infer(parsed, { deadline, requestId: String(request.id) });
      // A copy to the shadow version (gateway/shadow.ts): never awaited here, never throws.
      if (out.shadow !== undefined) {
        const raw = reply.raw;
        shadow.mirror({
          model: model.name, version, request: parsed, target: out.shadow, optOuts: out.optOuts, table,
          allowEmptyBatch: mc.allowEmptyBatch,
          primary, primaryStarted, requestId: String(request.id),
          onResponded: (done) => (raw.closed ? done() : void raw.once('close', done)),
        });
      }
      // A canary under rollout: a sampled request is compared with stable's answer (never awaited, never throws).
      if (rollouts !== undefined && rollouts.sampled(model.name, version)) {
        const raw = reply.raw;
        rollouts.compare({
          model: model.name, version, request: parsed, optOuts: out.optOuts, table, allowEmptyBatch: mc.allowEmptyBatch,
          primary, primaryStarted, requestId: String(request.id),
          onResponded: (done) => (raw.closed ? done() : void raw.once('close', done)),
        });
      }
      let response: InferResponse = await primary;
      // A kill that arrived while the backend computed: that answer never leaves. The request runs
      // again on the version that answers now, within the same deadline (or is refused, deny mode).
      // Once: a second kill in between is refused rather than chased.
      const moved = kills?.recheck(model.name, version);
      if (moved !== undefined) {
        if ('error' in moved) throw moved.error;
        response = await moveTo(moved.target, REASON_KILL_SWITCH).adapter.infer(parsed, { deadline, requestId: String(request.id) });
        const still = kills?.recheck(model.name, version);
        if (still !== undefined) throw 'error' in still ? still.error : new GatewayError('MODEL_KILLED', 'the version answering instead was stopped too');
      }
      // The squeezing guard needs the answer: it runs the model again on squeezed copies of the input.
      let fired = out.annotations?.guardsFired;
      if (squeeze !== undefined && SqueezeGuard.on(mc.guards)) {
        const guards = mc.guards!;
        const judged = served;
        const verdict = await squeeze.judge({
          model: model.name, version, guards, profile: judged.artifacts.get('profile') as Profile | undefined,
          request: parsed, answer: response, batchDynamic: (md.inputs[0]?.shape[0] ?? -1) === -1, deadline,
          run: (r, by) => judged.adapter.infer(r, { deadline: by, requestId: String(request.id) }),
        });
        if (verdict === 'reject') throw new GatewayError('INPUT_REJECTED', 'refused by the squeeze guard');
        if (verdict === 'error' && guards.failClosed && guards.squeeze?.mode === 'reject') throw new GatewayError('GUARD_UNAVAILABLE');
        if (verdict === 'flag' || verdict === 'route') fired = [...(fired ?? []), 'squeeze'];
        if (verdict === 'route' && guards.routeTo !== undefined && guards.routeTo !== version) {
          response = await moveTo(guards.routeTo, `${ROUTE_REASON_PREFIX}squeeze`).adapter.infer(parsed, { deadline, requestId: String(request.id) });
        }
      }
      if (fired !== undefined && fired.length > 0) reply.header(GUARD_HEADER, fired.join(','));
      // Only declared (and, if named, requested) outputs reach the client and the observers, in JSON
      // and binary answers alike: trimmed once here, before either encoding.
      let minimised = minimiseOutputs(response, md, parsed);
      if (minimised !== response) droppedOutputs = undeclaredOutputs(response, md);
      // A caller the extraction guard flagged, in coarsen mode: rounded scores, or labels only.
      const coarse = out.annotations?.coarsen;
      if (coarse !== undefined) minimised = coarsenAnswer(minimised, coarse);
      answer = minimised;
      const encoded = encodeInferResponse(minimised, parsed, model.name, version);
      if (encoded.headerLength !== undefined) {
        reply.header(HEADER_LENGTH, encoded.headerLength).header('content-type', 'application/octet-stream');
      } else {
        reply.header('content-type', 'application/json; charset=utf-8');
      }
      return reply.send(encoded.body);
    } catch (e) {
      failure = toGatewayError(e);
      throw failure;
    } finally {
      if (guarded !== null) releaseAll(guarded.out, (e) => request.log.warn({ err: e }, 'a policy release failed'));
      table.release();
      observeEnd(observers, request, reply, { model: modelName, served, failure, payload: inferRequest, answer, droppedOutputs });
    }
  }

  // Bodies are taken as raw bytes: plain JSON is forwarded as is to HTTP backends, and the binary
  // extension needs the bytes anyway. The per-model limit is checked in the handler; this is the cap.
  app.post<{ Params: InferParams }>('/v2/models/:model/infer', infer);
  app.post<{ Params: InferParams }>('/v2/models/:model/versions/:version/infer', infer);
}
