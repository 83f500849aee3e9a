/**
 * Which request bodies a route can read, decided from the headers in `onRequest`, before a byte of
 * the body is read (server.ts takes every body raw; this decides whether it is worth reading).
 *
 * - Inference (OIP v2): no Content-Type at all (tritonclient's HTTP client sends none), JSON
 *   (application/json or any +json type), or application/octet-stream (the binary tensor
 *   extension; aiohttp-based clients such as tritonclient.http.aio also send it for plain JSON:
 *   routes/infer.ts tells the two apart by Inference-Header-Content-Length).
 * - Admin and self-service: JSON, or no Content-Type.
 * - JSON is UTF-8 (RFC 8259 §8.1): another charset is refused rather than misread.
 * - Any Content-Encoding but identity is refused: the gateway does not inflate bodies, and a
 *   compressed body would slip past the size limits meant for what it expands to.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import { clip, GatewayError } from '../errors.js';

export type BodyKind = 'inference' | 'json';

const SEND_JSON: Record<BodyKind, string> = {
  inference: 'send application/json (or application/octet-stream for the binary tensor extension)',
  json: 'send application/json',
};

/** True when the request announces a body (Node and Fastify read one only then). */
function hasBody(headers: IncomingHttpHeaders): boolean {
  const length = headers['content-length'];
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function isJson(essence: string): boolean {
  return essence === 'application/json' || (essence.endsWith('+json') && essence.includes('/'));
}

/** The charset parameter of a media type, lower-cased and unquoted, if it has one. */
function charsetOf(contentType: string): string | undefined {
  for (const param of contentType.split(';').slice(1)) {
    const eq = param.indexOf('=');
    if (eq !== -1 && param.slice(0, eq).trim().toLowerCase() === 'charset') {
      return param.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1').toLowerCase();
    }
  }
  return undefined;
}

function refuse(detail: string): GatewayError {
  return new GatewayError('UNSUPPORTED_MEDIA_TYPE', detail);
}

/** Why a route of `kind` cannot read the body these headers announce, or undefined if it can. */
export function bodyRefusal(headers: IncomingHttpHeaders, kind: BodyKind): GatewayError | undefined {
  const type = headers['content-type'];
  const encoding = headers['content-encoding'];
  if ((type === undefined || type === 'application/json') && encoding === undefined) return undefined;
  if (!hasBody(headers)) return undefined;
  if (encoding !== undefined && encoding.trim() !== '' && encoding.trim().toLowerCase() !== 'identity') {
    return refuse(`Content-Encoding "${clip(encoding)}" is not supported; send the body uncompressed`);
  }
  if (type === undefined) return undefined;
  const essence = (type.split(';')[0] ?? '').trim().toLowerCase();
  if (isJson(essence)) {
    const charset = charsetOf(type);
    if (charset === undefined || charset === 'utf-8' || charset === 'utf8') return undefined;
    return refuse(`charset "${clip(charset)}" is not supported; JSON is read as UTF-8`);
  }
  if (kind === 'inference' && essence === 'application/octet-stream') return undefined;
  if (essence === 'application/x-www-form-urlencoded') {
    return refuse(`a form body (what curl -d sends by default) is not JSON; ${SEND_JSON[kind]}: add -H 'Content-Type: application/json'`);
  }
  return refuse(`Content-Type "${clip(type)}" is not supported; ${SEND_JSON[kind]}`);
}

/**
 * An onRequest hook refusing bodies a route of `kind` cannot read with 415 UNSUPPORTED_MEDIA_TYPE;
 * `onRefused` may count the refusal. A request with an acceptable body costs two header lookups.
 */
export function acceptBodies(kind: BodyKind, onRefused?: (request: FastifyRequest, error: GatewayError) => void): onRequestHookHandler {
  return function acceptBody(request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) {
    const refusal = bodyRefusal(request.headers, kind);
    if (refusal !== undefined) onRefused?.(request, refusal);
    done(refusal);
  };
}
