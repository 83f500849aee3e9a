/**
 * The Open Inference Protocol v2 REST surface, except infer (routes/infer.ts): server metadata,
 * health, model metadata and readiness. https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ServedModel, ServedVersion } from '../../adapters/registry.js';
import { clip, GatewayError } from '../errors.js';
import type { Readiness } from '../readiness.js';
import type { Serving } from '../serving.js';
import { GATEWAY_VERSION } from '../version.js';

interface ModelParams { model: string; version?: string }

const JSON_TYPE = 'application/json; charset=utf-8';
const SERVER_METADATA = JSON.stringify({
  name: 'breakwater',
  version: GATEWAY_VERSION,
  extensions: ['binary_tensor_data'],
});

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

export function registerOipRoutes(app: FastifyInstance, serving: Serving, readiness: Readiness): void {
  app.get('/v2', async function serverMetadata(_req, reply) {
    return sendJson(reply, 200, SERVER_METADATA);
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
    const ok = await versionReady(v);
    reply.header('x-model-version', v.version);
    return sendJson(reply, ok ? 200 : 503, JSON.stringify({ name: model.name, ready: ok }));
  };
  app.get<{ Params: ModelParams }>('/v2/models/:model/ready', modelReady);
  app.get<{ Params: ModelParams }>('/v2/models/:model/versions/:version/ready', modelReady);
}
