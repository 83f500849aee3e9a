/**
 * The edge where errors become HTTP. Every error leaves as `{"error": "...", "code": "..."}` with the
 * catalogue's status; framework errors are mapped onto catalogue codes; anything unexpected is
 * logged with its stack and answered as a bare INTERNAL, never with its message.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isShed } from '../adapters/backend-guard.js';
import { GatewayError, isGatewayError, type ErrorCode } from './errors.js';
import { retainsPayload } from './retention.js';

/** Fastify's own codes for problems that are the client's. */
const FASTIFY_CODES: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BAD_JSON',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BAD_JSON',
  FST_ERR_CTP_EMPTY_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_BAD_URL: 'BAD_URL',
  FST_ERR_MAX_PARAM_LENGTH: 'URI_TOO_LONG',
  FST_ERR_ASYNC_CONSTRAINT: 'BAD_REQUEST',
};

export function toGatewayError(err: unknown): GatewayError {
  if (isGatewayError(err)) return err;
  const fe = err as Partial<FastifyError> | undefined;
  const mapped = fe?.code !== undefined ? FASTIFY_CODES[fe.code] : undefined;
  if (mapped !== undefined) return new GatewayError(mapped, undefined, { cause: err });
  // A 4xx raised by the framework or by Node's parser is the client's fault; say so without detail.
  if (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    if (fe.statusCode === 413) return new GatewayError('PAYLOAD_TOO_LARGE', undefined, { cause: err });
    if (fe.statusCode === 408) return new GatewayError('REQUEST_TIMEOUT', undefined, { cause: err });
    if (fe.statusCode === 414) return new GatewayError('URI_TOO_LONG', undefined, { cause: err });
    return new GatewayError('BAD_REQUEST', undefined, { cause: err });
  }
  return new GatewayError('INTERNAL', undefined, { cause: err });
}

/** A cause without its message: its class and, if it has one, its code (ECONNRESET, UND_ERR_SOCKET…). */
function opaque(cause: unknown): { type: string; code?: string } | undefined {
  if (cause === undefined || cause === null) return undefined;
  const type = typeof cause === 'object' ? (cause.constructor?.name ?? 'Object') : typeof cause;
  const code = (cause as { code?: unknown }).code;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(code) ? { type, code } : { type };
}

export function sendError(reply: FastifyReply, err: GatewayError): FastifyReply {
  if (err.headers !== undefined) reply.headers(err.headers);
  return reply.code(err.status).header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(err.toJSON()));
}

/** Answers `ge` on a socket no request or reply owns (yet, or any more), then closes it. */
export function answerOnSocket(socket: Duplex, ge: GatewayError): void {
  const body = JSON.stringify(ge.toJSON());
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${ge.status} ${STATUS_CODES[ge.status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy();
}

/**
 * Errors Node's HTTP parser raises before a request exists (slow or malformed clients): answered
 * on the raw socket, in the same JSON shape, then the connection is closed.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  // A reset connection has nobody left to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  // The parser can fail after a request was handed over and answered (a body it cannot frame, e.g.
  // `Transfer-Encoding: gzip`): a second answer on the same socket would be read as the answer to
  // the next request, so the connection is just closed (what Node itself does in that case).
  if ((socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true) {
    socket.destroy();
    return;
  }
  const code: ErrorCode = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'REQUEST_TIMEOUT'
    : err.code === 'HPE_HEADER_OVERFLOW' ? 'HEADERS_TOO_LARGE' : 'BAD_REQUEST';
  answerOnSocket(socket, new GatewayError(code));
}

/**
 * Fastify's `frameworkErrors`: what its router raises before any route or hook runs (a path it cannot
 * decode, a parameter over maxParamLength). Without it Fastify answers with a body of its own that
 * names its error code and echoes the path; with it, the catalogue answers like everywhere else.
 */
export function frameworkErrors(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const ge = toGatewayError(err);
  request.log.debug({ code: ge.code }, 'request rejected');
  reply.header('x-request-id', request.id);
  sendError(reply, ge);
}

export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler(function gatewayErrorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply) {
    const ge = toGatewayError(err);
    // Refused to protect a backend (OVERLOADED, an open breaker): expected under load and counted
    // by the metrics; a stack logged per refusal would spend the gateway's time when it has least.
    if (isShed(ge)) request.log.debug({ code: ge.code }, 'request shed');
    else if (retainsPayload(request)) {
      if (ge.status >= 500) request.log.error({ err: ge.cause ?? ge, code: ge.code }, 'request failed');
      else request.log.debug({ code: ge.code, detail: ge.detail }, 'request rejected');
    } else if (ge.status >= 500) {
      // Opted out of tracking: a detail or a cause's message may quote the payload (or a backend's
      // echo of it), so only what names the failure is logged.
      request.log.error({ code: ge.code, cause: opaque(ge.cause), payloadRetained: false }, 'request failed');
    } else {
      request.log.debug({ code: ge.code, payloadRetained: false }, 'request rejected');
    }
    return sendError(reply, ge);
  });
  app.setNotFoundHandler(routeMiss);
}

/** Methods a route answers; Fastify adds HEAD to every GET route. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

/**
 * The not-found handler: a path that some route serves under another method is 405 with `Allow`
 * (RFC 9110 §15.5.6), any other path 404. The router is asked only once a request has missed, so
 * matched requests pay nothing for it.
 */
export function routeMiss(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const allowed = METHODS.filter((m) => m !== request.method && request.server.findRoute({ method: m, url: request.url }) !== null);
  if (allowed.length === 0) return sendError(reply, new GatewayError('NOT_FOUND'));
  const allow = allowed.join(', ');
  return sendError(reply, new GatewayError('METHOD_NOT_ALLOWED', `${request.method} is not one of ${allow}`, { headers: { allow } }));
}
