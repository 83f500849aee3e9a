/**
 * The /admin scope (operators' and product owners' API) and the callers' own endpoints. Every
 * answer under /admin, errors and 404s included, carries headers that keep browsers and caches
 * from doing anything with it but show it.
 *
 * Features (traffic, opt-outs, kill switch…) bring their routes as `ServerFeature`s; each route
 * states the scope it needs with `guard.require(scope)` (or `guard.authenticated()` for a caller's
 * own data). Callers are identified by the same authentication policy as the prediction API.
 * Bodies arrive as bytes (server.ts takes every body raw): a body that is not JSON is refused before
 * it is read (body-types.ts); what routes read from a request (body, caller, reason, revision) is in
 * admin-request.ts.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import { ANONYMOUS } from '../../policies/authenticate.js';
import { newContext, type Policy } from '../../policies/policy.js';
import type { Principal } from '../../policies/principal.js';
import { routeMiss } from '../error-handler.js';
import { GatewayError } from '../errors.js';
import type {} from './admin-request.js';
import { acceptBodies } from './body-types.js';

export const ADMIN_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
});

export interface CallerGuard {
  /** Authenticates the caller (401) and requires `scope` (403). */
  require(scope: string): preHandlerAsyncHookHandler;
  /**
   * Any authenticated caller with a subject of their own (self-service). The anonymous principal
   * of auth.insecureNoAuth is refused: it is everyone, so it has no data of its own.
   */
  authenticated(): preHandlerAsyncHookHandler;
}

/** Routes a feature adds: under /admin (prefix applied), and at the top level. */
export interface ServerFeature {
  readonly admin?: (admin: FastifyInstance, guard: CallerGuard) => void;
  readonly routes?: (app: FastifyInstance, guard: CallerGuard) => void;
}

export function createCallerGuard(authenticate: Policy): CallerGuard {
  async function identify(request: FastifyRequest): Promise<Principal> {
    const ctx = newContext({ model: '', served: undefined, action: 'metadata', headers: request.headers, requestId: String(request.id), peer: request });
    const d = await authenticate.evaluate(ctx);
    if (d.kind === 'deny') throw d.headers === undefined ? d.error : d.error.withHeaders(d.headers);
    const p = d.kind === 'continue' ? d.principal : undefined;
    if (p === undefined) throw new GatewayError('UNAUTHENTICATED');
    request.caller = p;
    return p;
  }
  return {
    require(scope: string): preHandlerAsyncHookHandler {
      return async function requireScope(request: FastifyRequest) {
        const p = await identify(request);
        if (!p.scopes.has(scope)) throw new GatewayError('FORBIDDEN', `this needs the ${scope} scope`);
      };
    },
    authenticated(): preHandlerAsyncHookHandler {
      return async function requireSubject(request: FastifyRequest) {
        const p = await identify(request);
        if (p === ANONYMOUS) throw new GatewayError('FORBIDDEN', 'self-service needs a token of your own (authentication is off)');
      };
    },
  };
}

export function registerAdminScope(app: FastifyInstance, guard: CallerGuard, features: readonly ServerFeature[]): void {
  app.decorateRequest('caller', null);
  // Admin and self-service bodies are JSON documents: anything else is 415 before it is read.
  const jsonBodies = acceptBodies('json');
  void app.register(async function selfServiceScope(scope) {
    scope.addHook('onRequest', jsonBodies);
    for (const f of features) f.routes?.(scope, guard);
  });
  void app.register(async function adminScope(admin) {
    admin.addHook('onRequest', jsonBodies);
    admin.addHook('onSend', async function adminSecurityHeaders(_request, reply: FastifyReply, payload) {
      reply.headers(ADMIN_SECURITY_HEADERS);
      return payload;
    });
    admin.setNotFoundHandler(routeMiss);
    for (const f of features) f.admin?.(admin, guard);
  }, { prefix: '/admin' });
}
