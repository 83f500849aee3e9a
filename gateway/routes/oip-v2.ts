/**
 * The Open Inference Protocol v2 REST surface, except infer (routes/infer.ts): server metadata,
 * health, model metadata and readiness. https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol
 * Server metadata names the exact build only as server.advertiseVersion allows (by default to
 * authenticated callers); the protocol's `version` field is always there.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServedModel, ServedVersion } from '../../adapters/registry.js';
import { newContext, type Policy } from '../../policies/policy.js';
import type { ServerConfig } from '../config.js';
import { clip, GatewayError } from '../errors.js';
import type { Readiness } from '../readiness.js';
import type { Serving } from '../serving.js';
import { GATEWAY_VERSION } from '../version.js';

interface ModelParams { model: string; version?: string }

const JSON_TYPE = 'application/json; charset=utf-8';
/** What GET /v2 says as `version` to a caller not shown the build (server.advertiseVersion). */
export const NEUTRAL_VERSION = 'unspecified';
const serverMetadata = (version: string): string => JSON.stringify({ name: 'breakwater', version, extensions: ['binary_tensor_data'] });
const WITH_VERSION = serverMetadata(GATEWAY_VERSION);
const WITHOUT_VERSION = serverMetadata(NEUTRAL_VERSION);

export function findModel(serving: Serving, name: string): ServedModel {
  const m = serving.table.models.get(name);
  if (m === undefined) throw new GatewayError('MODEL_NOT_FOUND', clip(name));
  return m;
}

export function findVersion(model: ServedModel, version: string | undefined): ServedVersion {
  if (version === undefined) return model.stable;
  const v = model.versions.get(version);
  if (v === undefined) throw new GatewayError('VERSION_NOT_FOUND', `${model.name} version ${clip(version)}`);
  return v;
}


async function versionReady(v: ServedVersion): Promise<boolean> {
  return v.metadata !== undefined && (await v.adapter.ready());
}

function sendJson(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply.code(status).header('content-type', JSON_TYPE).send(body);
}

/**
 * Whether GET /v2 may name the exact build: per server.advertiseVersion, by default only to a
 * caller whose token verifies (through the request limits, so this is no free token oracle). A
 * request without a token never reaches authentication: probes are not failed authentications.
 */
function versionShown(server: ServerConfig, authNeeded: boolean, authenticate: Policy): (request: FastifyRequest) => boolean | Promise<boolean> {
  if (server.advertiseVersion === 'always' || (server.advertiseVersion === 'authenticated' && !authNeeded)) return () => true;
  if (server.advertiseVersion === 'never') return () => false;
  return function authenticated(request: FastifyRequest) {
    if (request.headers.authorization === undefined) return false;
    const ctx = newContext({ model: '', served: undefined, action: 'metadata', headers: request.headers, requestId: String(request.id), peer: request });
    return Promise.resolve(authenticate.evaluate(ctx)).then((d) => d.kind === 'continue' && d.principal !== undefined, () => false);
  };
}

/** What the kill switch stops, for readiness: a killed model or version is not ready. */
export interface KilledView {
  isDenied(model: string): boolean;
  isKilled(model: string, version: string): boolean;
}

export function registerOipRoutes(app: FastifyInstance, serving: Serving, readiness: Readiness, authenticate: Policy, kills?: KilledView): void {
  const shown = versionShown(serving.config.server, !serving.config.auth.insecureNoAuth, authenticate);
  app.get('/v2', async function serverMetadata(request, reply) {
    return sendJson(reply, 200, (await shown(request)) ? WITH_VERSION : WITHOUT_VERSION);
  });

  app.get('/v2/health/live', async function live(_req, reply) {
    return sendJson(reply, 200, '{"live":true}');
  });

  // Ready when not draining, holding the shared state it must not serve without (readiness.ts),
  // and every model's stable version can serve: a load balancer then sends traffic only to
  // replicas that can answer for every model they advertise.
  app.get('/v2/health/ready', async function ready(_req, reply) {
    let ok = !serving.draining && readiness.ready;
    if (ok) {
      const checks = await Promise.all([...serving.table.models.values()].map((m) => versionReady(m.stable)));
      ok = checks.every(Boolean);
    }
    return sendJson(reply, ok ? 200 : 503, ok ? '{"ready":true}' : '{"ready":false}');
  });

  const metadata = async function modelMetadata(req: { params: ModelParams }, reply: FastifyReply) {
    const model = findModel(serving, req.params.model);
    const v = findVersion(model, req.params.version);
    const md = v.requireMetadata();
    reply.header('x-model-version', v.version);
    return sendJson(reply, 200, JSON.stringify({
      name: model.name,
      versions: model.versionNames,
      platform: md.platform,
      inputs: md.inputs,
      outputs: md.outputs,
      ...(md.nonTensorOutputs?.length ? { parameters: { non_tensor_outputs: md.nonTensorOutputs } } : {}),
    }));
  };
  app.get<{ Params: ModelParams }>('/v2/models/:model', metadata);
  app.get<{ Params: ModelParams }>('/v2/models/:model/versions/:version', metadata);

  const modelReady = async function modelReady(req: { params: ModelParams }, reply: FastifyReply) {
    const model = findModel(serving, req.params.model);
    const v = findVersion(model, req.params.version);
    // Stopped by the kill switch: not ready (deny mode for the model; a killed version when asked
    // by name). /v2/health/ready stays about the gateway itself.
    const killed = kills !== undefined && (kills.isDenied(model.name) || (req.params.version !== undefined && kills.isKilled(model.name, v.version)));
    const ok = !killed && (await versionReady(v));
    reply.header('x-model-version', v.version);
    return sendJson(reply, ok ? 200 : 503, JSON.stringify({ name: model.name, ready: ok }));
  };
  app.get<{ Params: ModelParams }>('/v2/models/:model/ready', modelReady);
  app.get<{ Params: ModelParams }>('/v2/models/:model/versions/:version/ready', modelReady);
}
