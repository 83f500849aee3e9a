/**
 * buildServer(serving, deps) → a Fastify app with every route and hook, not listening, so tests can
 * `inject()` or `listen({port: 0})`. main.ts owns listening, signals and shutdown.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Composed } from './compose.js';
import { clientErrorHandler, frameworkErrors, installErrorHandlers } from './error-handler.js';
import { GatewayError } from './errors.js';
import { hostRefusal, installEdgeAnswers } from './http-edge.js';
import { createCallerGuard, registerAdminScope } from './routes/admin.js';
import { installGuard } from './routes/guard.js';
import { registerInferRoutes } from './routes/infer.js';
import { registerOipRoutes } from './routes/oip-v2.js';
import type { Serving } from './serving.js';

/** What the HTTP surface is built over (gateway/compose.ts makes all of it). */
export type ServerDeps = Pick<Composed, 'serving' | 'chain' | 'authenticate' | 'features' | 'observers' | 'shadow' | 'readiness'> & Partial<Pick<Composed, 'kills' | 'squeeze' | 'rollouts'>>;

/** A client's request id is kept when it is short and plain; anything else is replaced. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function requestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID();
}

/** The largest body any model accepts: the framework's cap. Each model's own limit is checked in the handler. */
function bodyCap(serving: Serving): number {
  let max = 0;
  for (const m of serving.table.models.values()) max = Math.max(max, m.config.maxBodyBytes);
  return max;
}

export function buildServer({ serving, chain, authenticate, features, observers, shadow, readiness, kills, squeeze, rollouts }: ServerDeps, log: Logger): FastifyInstance {
  const sc = serving.config.server;
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // One access line per inference (routes/infer.ts) instead of Fastify's two per request.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: requestId,
    bodyLimit: bodyCap(serving),
    // Slow clients: Node's own timers, so a stalled client never holds a socket forever.
    requestTimeout: sc.requestTimeoutMs,
    keepAliveTimeout: sc.keepAliveTimeoutMs,
    http: {
      headersTimeout: sc.headersTimeoutMs,
      // Node checks these timeouts only this often (30 s by default, which would let a slow client
      // hold a socket 30 s past its timeout).
      connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(sc.headersTimeoutMs / 4))),
      // Checked by our first hook (http-edge.ts hostRefusal), which answers in JSON and also refuses
      // a second Host; Node's own check answers a bare 400.
      requireHostHeader: false,
    },
    // While draining, requests on kept-alive connections get SHUTTING_DOWN from our own hook
    // (Fastify's built-in 503 has a body of its own shape).
    return503OnClosing: false,
    clientErrorHandler,
    // The router's own errors (a path it cannot decode, a parameter over maxParamLength) in catalogue JSON.
    frameworkErrors,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 256 },
    // request.ip: the socket's peer, or with server.trustProxy what the trusted proxies say
    // (the per-address request limit keys on it).
    trustProxy: sc.trustProxy.length === 0 ? false : [...sc.trustProxy],
  });
  app.server.maxConnections = sc.maxConnections;
  installEdgeAnswers(app.server);

  // Every body is taken as bytes: routes refuse the types they cannot read before the body is read
  // (routes/body-types.ts), and infer decides between JSON and the binary extension itself.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, function rawBody(_req, body, done) {
    done(null, body);
  });

  app.addHook('onRequest', function echoRequestId(request, reply, done) {
    reply.header('x-request-id', request.id);
    const badHost = hostRefusal(request.raw);
    if (badHost !== undefined) {
      reply.header('connection', 'close');
      done(badHost);
      return;
    }
    if (serving.draining) {
      reply.header('connection', 'close');
      done(new GatewayError('SHUTTING_DOWN'));
      return;
    }
    done();
  });

  installErrorHandlers(app);
  installGuard(app, serving, chain, observers);
  registerOipRoutes(app, serving, readiness, authenticate, kills);
  registerInferRoutes(app, { serving, policies: chain, observers, shadow, kills, squeeze, rollouts });
  registerAdminScope(app, createCallerGuard(authenticate), features);
  return app;
}
