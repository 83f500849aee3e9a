/**
 * POST /v2/models/{m}[/versions/{v}]/infer: the request path. In order: find the model, run the
 * policy chain (which picks the version or denies), bound the body, parse and check the tensors, check them against the model's metadata, call the
 * backend with a deadline, encode the answer. Nothing reaches a backend before every check passed.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { TIMEOUT_HEADER, type InferRequest, type InferResponse } from '../../adapters/adapter.js';
import { releaseAll, type PolicyChain } from '../../policies/chain.js';
import { toGatewayError } from '../error-handler.js';
import { GatewayError } from '../errors.js';
import { encodeInferResponse } from '../infer-response.js';
import { parseInferRequest } from '../infer-request.js';
import type { Serving } from '../serving.js';
import { ShadowMirror } from '../shadow.js';
import { outcomeRetainsPayload } from '../retention.js';
import { UNKNOWN_MODEL, type GatewayMetrics } from '../telemetry/metrics.js';
import { ArmFigures } from '../telemetry/arm-figures.js';
import { validateAgainstMetadata } from '../validate-request.js';
import { acceptBodies } from './body-types.js';
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
 * equal across inputs. A request is charged at least one row, even for an empty batch.
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

export function registerInferRoutes(app: FastifyInstance, serving: Serving, metrics: GatewayMetrics, policies: PolicyChain, figures: ArmFigures = new ArmFigures(), shadow: ShadowMirror = new ShadowMirror({ metrics })): void {
  const accessLog = (): boolean => serving.config.logging.accessLog;

  async function infer(request: FastifyRequest<{ Params: InferParams }>, reply: FastifyReply) {
    const started = performance.now();
    const table = serving.table;
    table.acquire();
    // Metric attributes take names from the table only: a client spraying unknown model or version
    // names must not create a time series per name.
    let modelName = UNKNOWN_MODEL;
    let version = '';
    let errorCode: string | undefined;
    let answer: InferResponse | undefined;
    const guarded = request.guarded;
    try {
      if (guarded === null) throw new GatewayError('INTERNAL', 'infer route without its guard');
      const { ctx, out } = guarded;
      const model = findModel(serving, request.params.model);
      modelName = model.name;
      const served = findVersion(model, out.version);
      version = served.version;
      reply.header('x-model-version', version).header('x-route-reason', out.reason);
      const md = served.requireMetadata();
      const body = request.body;
      if (!Buffer.isBuffer(body) || body.length === 0) throw new GatewayError('BAD_REQUEST', 'the request has no body');
      const mc = model.config;
      if (body.length > mc.maxBodyBytes) throw new GatewayError('PAYLOAD_TOO_LARGE', `limit for ${model.name} is ${mc.maxBodyBytes} bytes`);
      const inferRequest = parseInferRequest(body, headerLength(request.headers[HEADER_LENGTH], body.length), {
        maxElements: mc.maxElements,
        nonFinite: mc.nonFinite,
      });
      validateAgainstMetadata(inferRequest, md);
      if (policies.has('payload')) {
        ctx.request = inferRequest;
        ctx.rows = rowsOf(inferRequest);
        const pending = policies.run('payload', ctx, out);
        if (pending !== undefined) await pending;
      }
      if (out.headers !== undefined) reply.headers(out.headers);
      // The adapter enforces the deadline itself: one timer per request, not one here and one there.
      const primaryStarted = performance.now();
      const primary = served.adapter.infer(inferRequest, {
        deadline: Date.now() + timeoutFor(request.headers[TIMEOUT_HEADER], mc.inferTimeoutMs),
        requestId: String(request.id),
      });
      // A copy to the shadow version (gateway/shadow.ts): never awaited here, never throws.
      if (out.shadow !== undefined) {
        const raw = reply.raw;
        shadow.mirror({
          model: model.name, version, request: inferRequest, target: out.shadow, optOuts: out.optOuts, table,
          primary, primaryStarted, requestId: String(request.id),
          onResponded: (done) => (raw.closed ? done() : void raw.once('close', done)),
        });
      }
      const response: InferResponse = await primary;
      // Prediction labels are derived from the payload: not kept for a tracking opt-out (the
      // request is still counted).
      if (outcomeRetainsPayload(out)) answer = response;
      const encoded = encodeInferResponse(response, inferRequest, model.name, version);
      if (encoded.headerLength !== undefined) {
        reply.header(HEADER_LENGTH, encoded.headerLength).header('content-type', 'application/octet-stream');
      } else {
        reply.header('content-type', 'application/json; charset=utf-8');
      }
      return reply.send(encoded.body);
    } catch (e) {
      const ge = toGatewayError(e);
      errorCode = ge.code;
      throw ge;
    } finally {
      if (guarded !== null) releaseAll(guarded.out, (e) => request.log.warn({ err: e }, 'a policy release failed'));
      table.release();
      const seconds = (performance.now() - started) / 1000;
      metrics.recordInfer(modelName, version, seconds, errorCode);
      figures.record(modelName, version, seconds * 1000, errorCode, answer);
      if (accessLog()) {
        request.log.info({ model: modelName, version, code: errorCode ?? 'OK', ms: Math.round(seconds * 1e4) / 10 }, 'infer');
      }
    }
  }

  // Refused before the body is read, and counted like the guard's refusals (names from the table only).
  const onRequest = acceptBodies('inference', function countRefusedBody(request, error) {
    const model = serving.table.models.get((request.params as InferParams).model);
    metrics.recordInfer(model?.name ?? UNKNOWN_MODEL, '', 0, error.code);
  });
  // Bodies are taken as raw bytes: plain JSON is forwarded as is to HTTP backends, and the binary
  // extension needs the bytes anyway. The per-model limit is checked in the handler; this is the cap.
  app.post<{ Params: InferParams }>('/v2/models/:model/infer', { onRequest }, infer);
  app.post<{ Params: InferParams }>('/v2/models/:model/versions/:version/infer', { onRequest }, infer);
}
