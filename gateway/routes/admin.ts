/**
 * The /admin scope: the operators' and product owners' API (kill switch, traffic, opt-outs, audit
 * arrive with their issues). Every answer under it, errors and 404s included, carries headers that
 * keep browsers and caches from doing anything with it but show it.
 */
import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../errors.js';
import { sendError } from '../error-handler.js';

export const ADMIN_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
});

export function registerAdminScope(app: FastifyInstance): void {
  void app.register(async function adminScope(admin) {
    admin.addHook('onSend', async function adminSecurityHeaders(_request, reply, payload) {
      reply.headers(ADMIN_SECURITY_HEADERS);
      return payload;
    });
    admin.setNotFoundHandler(function adminNotFound(_request, reply) {
      return sendError(reply, new GatewayError('NOT_FOUND'));
    });
  }, { prefix: '/admin' });
}
