/**
 * Which request bodies a route can read, decided from the headers in `onRequest`, before a byte of
 * the body is read (server.ts takes every body raw; this decides whether it is worth reading).
 *
 * - Inference (OIP v2): no Content-Type at all (tritonclient's HTTP client sends none),
 *   application/json, or application/octet-stream (the binary tensor extension; aiohttp-based
 *   clients such as tritonclient.http.aio also send it for plain JSON: routes/infer.ts tells the two
 *   apart by Inference-Header-Content-Length).
 * - Admin and self-service: application/json, or no Content-Type.
 * - application/json only, not any `+json` type or a look-alike (`json-seq`, `jsonx`): each of those
 *   means something else to whoever reads it next. Its one parameter is a charset naming UTF-8
 *   (RFC 8259 §8.1), in any spelling (`utf-8`, `UTF8`, quoted); another charset, an unknown or
 *   malformed parameter, or the charset given twice is refused rather than guessed at.
 * - One Content-Type header: Node keeps the first of several, a proxy in front may keep the last,
 *   so two are refused rather than read one way here and another way there.
 * - Any Content-Encoding but identity is refused: the gateway does not inflate bodies (no
 *   decompression bomb to defuse, no limit to apply twice), and a compressed body would slip past
 *   the size limits meant for what it expands to. Likewise a Transfer-Encoding other than plain
 *   `chunked` (`gzip, chunked`): Node's parser undoes only the chunking.
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

/** True when the raw header list names Content-Type more than once (Node's `headers` keeps only the first). */
function repeatedContentType(rawHeaders: readonly string[]): boolean {
  let seen = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 12 && name.toLowerCase() === 'content-type') {
      if (seen) return true;
      seen = true;
    }
  }
  return false;
}

/** One parameter, RFC 9110 §5.6.6: a token, `=`, a token or a quoted string (whitespace around tolerated). */
const PARAMETER = /^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:([!#$%&'*+.^_`|~0-9A-Za-z-]+)|"([^"\\]*)")\s*$/;
const UTF8 = /^\s*utf-?8\s*$/i;

/**
 * Why the parameters of an accepted type are not acceptable, or undefined: `allowCharset` takes
 * one charset naming UTF-8; nothing else is taken. Empty segments (`application/json;`) are allowed.
 */
function parameterRefusal(params: readonly string[], allowCharset: boolean): GatewayError | undefined {
  let charset = false;
  for (const param of params) {
    if (param.trim() === '') continue;
    const m = PARAMETER.exec(param);
    if (m === null) return refuse(`the Content-Type parameter "${clip(param.trim())}" is malformed`);
    const name = m[1]!.toLowerCase();
    if (!allowCharset || name !== 'charset') return refuse(`the Content-Type parameter "${clip(name)}" is not supported`);
    if (charset) return refuse('the charset is given more than once');
    charset = true;
    const value = m[2] ?? m[3]!;
    if (!UTF8.test(value)) return refuse(`charset "${clip(value.trim())}" is not supported; JSON is read as UTF-8`);
  }
  return undefined;
}

function refuse(detail: string): GatewayError {
  return new GatewayError('UNSUPPORTED_MEDIA_TYPE', detail);
}

/**
 * Why a route of `kind` cannot read the body these headers announce, or undefined if it can.
 * `rawHeaders` (the request's raw header list) is read only when a body is announced with a type.
 */
export function bodyRefusal(headers: IncomingHttpHeaders, kind: BodyKind, rawHeaders: readonly string[]): GatewayError | undefined {
  // No body, nothing to misread.
  if (!hasBody(headers)) return undefined;
  const type = headers['content-type'];
  const encoding = headers['content-encoding'];
  const transfer = headers['transfer-encoding'];
  if (encoding !== undefined && encoding.trim() !== '' && encoding.trim().toLowerCase() !== 'identity') {
    return refuse(`Content-Encoding "${clip(encoding)}" is not supported; send the body uncompressed`);
  }
  if (transfer !== undefined && transfer.trim().toLowerCase() !== 'chunked') {
    return refuse(`Transfer-Encoding "${clip(transfer)}" is not supported; send the body uncompressed, with Content-Length or chunked`);
  }
  if (type === undefined) return undefined;
  if (repeatedContentType(rawHeaders)) return refuse('Content-Type is given more than once');
  // The common case, asked first: no parameters to look at.
  if (type === 'application/json') return undefined;
  const parts = type.split(';');
  const essence = parts[0]!.trim().toLowerCase();
  if (essence === 'application/json') return parameterRefusal(parts.slice(1), true);
  if (kind === 'inference' && essence === 'application/octet-stream') return parameterRefusal(parts.slice(1), false);
  if (essence === 'application/x-www-form-urlencoded') {
    return refuse(`a form body (what curl -d sends by default) is not JSON; ${SEND_JSON[kind]}: add -H 'Content-Type: application/json'`);
  }
  return refuse(`Content-Type "${clip(type)}" is not supported; ${SEND_JSON[kind]}`);
}

/**
 * An onRequest hook refusing bodies a route of `kind` cannot read with 415 UNSUPPORTED_MEDIA_TYPE;
 * `onRefused` may count the refusal. A plain JSON request costs a few header lookups and one pass
 * over the raw header names.
 */
export function acceptBodies(kind: BodyKind, onRefused?: (request: FastifyRequest, error: GatewayError) => void): onRequestHookHandler {
  return function acceptBody(request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) {
    const refusal = bodyRefusal(request.headers, kind, request.raw.rawHeaders);
    if (refusal !== undefined) onRefused?.(request, refusal);
    done(refusal);
  };
}
