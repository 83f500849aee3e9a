/**
 * What every admin and self-service route reads from a request, said once: its JSON body, who is
 * calling, why (the reason that goes to the audit log), and the revision a change was made against.
 * Bodies arrive as bytes (server.ts takes every body raw).
 */
import type { FastifyRequest } from 'fastify';
import type { Principal } from '../../policies/principal.js';
import { checkUtf8, scanJson } from '../../adapters/json-scan.js';
import { prototypeKeyProblems } from '../config.js';
import { clip, GatewayError } from '../errors.js';

/** Admin bodies are small documents; anything larger is refused before parsing. */
export const ADMIN_BODY_LIMIT = 256 * 1024;
/** Deepest nesting of an admin body (a traffic change is 4 deep); deeper is BAD_JSON. */
const ADMIN_BODY_DEPTH = 16;
/** Long enough for a ticket reference and a sentence; it goes to the audit log. */
export const MAX_REASON_LENGTH = 512;

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by a CallerGuard pre-handler: who called an admin or self-service route. */
    caller: Principal | null;
  }
}

export interface JsonBodyOptions {
  /**
   * `refuse` (default): a key named __proto__, constructor or prototype anywhere in the body is
   * BAD_REQUEST naming every one. `report`: the route's own validation names them among its other
   * problems (the traffic routes: INVALID_TRAFFIC, config.ts parseTraffic).
   */
  readonly prototypeKeys?: 'refuse' | 'report';
}

/** The request body parsed as a JSON object (BAD_JSON / BAD_REQUEST / PAYLOAD_TOO_LARGE otherwise). */
export function jsonBody(request: FastifyRequest, opts: JsonBodyOptions = {}): Record<string, unknown> {
  const body = request.body;
  if (!Buffer.isBuffer(body) || body.length === 0) throw new GatewayError('BAD_REQUEST', 'a JSON body is required');
  if (body.length > ADMIN_BODY_LIMIT) throw new GatewayError('PAYLOAD_TOO_LARGE', `limit is ${ADMIN_BODY_LIMIT} bytes`);
  const text = body.toString('utf8');
  checkUtf8(body, text, 'the body');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new GatewayError('BAD_JSON');
  }
  // The same reading as an infer body's: a key twice (JSON.parse keeps the last, a reviewer reading
  // the audit log or another tool may see the first), lone surrogates. Prototype keys are named below.
  scanJson(text, ADMIN_BODY_DEPTH, true);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new GatewayError('BAD_REQUEST', 'the body must be a JSON object');
  if (opts.prototypeKeys !== 'report') {
    const problems = prototypeKeyProblems(parsed);
    if (problems.length > 0) throw new GatewayError('BAD_REQUEST', problems.join('; '));
  }
  return parsed as Record<string, unknown>;
}

/** The body if there is one (a DELETE may say why), else an empty object. */
export function optionalJsonBody(request: FastifyRequest): Record<string, unknown> {
  const b = request.body;
  return !Buffer.isBuffer(b) || b.length === 0 ? {} : jsonBody(request);
}

/** The authenticated caller; the route's guard has run (without it the route was registered wrong). */
export function callerOf(request: FastifyRequest): Principal {
  if (request.caller === null) throw new GatewayError('INTERNAL', 'admin route without its guard');
  return request.caller;
}

/**
 * The body's `reason`: a non-blank string of at most MAX_REASON_LENGTH characters. Required for
 * changes an operator makes to everyone's traffic; optional for a subject's own choices.
 */
export function reasonOf(body: Record<string, unknown>, required: true): string;
export function reasonOf(body: Record<string, unknown>, required: false): string | undefined;
export function reasonOf(body: Record<string, unknown>, required: boolean): string | undefined {
  const r = body.reason;
  if (r === undefined && !required) return undefined;
  if (typeof r !== 'string' || r.trim().length === 0) {
    throw new GatewayError('BAD_REQUEST', required ? 'say why: "reason" is required (it goes to the audit log)' : '"reason" must be a non-empty string');
  }
  if (r.length > MAX_REASON_LENGTH) throw new GatewayError('BAD_REQUEST', `"reason" is longer than ${MAX_REASON_LENGTH} characters`);
  return r;
}

/** Refuses fields other than `allowed` (a typo must not pass silently). */
export function onlyFields(body: Record<string, unknown>, allowed: readonly string[]): void {
  for (const field of Object.keys(body)) {
    if (!allowed.includes(field)) throw new GatewayError('BAD_REQUEST', `unknown field "${clip(field)}"; the fields are ${allowed.join(', ')}`);
  }
}

/**
 * The revision a change is made against, if the caller says: `If-Match: "12"` (RFC 9110; `W/` and
 * unquoted are taken too, `*` means no condition) or a `revision` field in the body. Undefined:
 * unconditional (the change is made against whatever is current, and says what it replaced).
 */
export function expectedRevision(request: FastifyRequest, body: Record<string, unknown> = {}): number | undefined {
  const header = request.headers['if-match'];
  let fromHeader: number | undefined;
  if (typeof header === 'string' && header.trim() !== '*') {
    const m = /^\s*(?:W\/)?"?(\d{1,15})"?\s*$/.exec(header);
    if (m === null) throw new GatewayError('BAD_REQUEST', 'If-Match must be one revision, e.g. "12" (as the ETag of the GET)');
    fromHeader = Number(m[1]);
  }
  const field = body.revision;
  if (field !== undefined && (!Number.isSafeInteger(field) || (field as number) < 0)) throw new GatewayError('BAD_REQUEST', '"revision" must be a non-negative integer (as the GET shows it)');
  const fromBody = field as number | undefined;
  if (fromHeader !== undefined && fromBody !== undefined && fromHeader !== fromBody) throw new GatewayError('BAD_REQUEST', 'If-Match and "revision" name different revisions');
  return fromHeader ?? fromBody;
}

/** The ETag of a revision (strong: a revision names exactly one stored value). */
export function etag(revision: number): string {
  return `"${revision}"`;
}
