/**
 * The error catalogue: every error the gateway can return, with a stable code, an HTTP status and a
 * message. Nothing else in the code base invents a status or an error body: it throws `GatewayError`
 * with one of these codes, and the error handler (gateway/error-handler.ts) turns it into
 * `{"error": "...", "code": "..."}`. README.md documents every code; a test checks it stays so.
 */

export interface ErrorSpec {
  readonly status: number;
  readonly message: string;
}

export const ERRORS = {
  // 400: the client's request is wrong
  BAD_JSON: { status: 400, message: 'request body is not valid JSON' },
  // JSON that parsers may read differently (gateway/json-scan.ts): refused, since its bytes are forwarded.
  AMBIGUOUS_JSON: { status: 400, message: 'request body is JSON that parsers may read differently' },
  // Neutral: admin and self-service routes answer it too; the detail says what is wrong.
  BAD_REQUEST: { status: 400, message: 'request is not valid' },
  BAD_BINARY_HEADER: { status: 400, message: 'binary tensor request is malformed' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'content type is not supported' },
  UNKNOWN_INPUT: { status: 400, message: 'input is not an input of the model' },
  MISSING_INPUT: { status: 400, message: 'a required input of the model is missing' },
  DUPLICATE_INPUT: { status: 400, message: 'an input is given more than once' },
  UNKNOWN_OUTPUT: { status: 400, message: 'requested output is not an output of the model' },
  DATATYPE_MISMATCH: { status: 400, message: 'input datatype does not match the model' },
  UNKNOWN_DATATYPE: { status: 400, message: 'datatype is not one of the protocol datatypes' },
  SHAPE_MISMATCH: { status: 400, message: 'input shape does not match the model' },
  SHAPE_DATA_MISMATCH: { status: 400, message: 'input data length does not match its shape' },
  BATCH_MISMATCH: { status: 400, message: 'inputs disagree on the batch dimension' },
  // A 0 in a shape: refused unless the model takes empty batches (allowEmptyBatch), and then only there.
  EMPTY_TENSOR: { status: 400, message: 'input has a zero-size dimension' },
  INVALID_VALUE: { status: 400, message: 'input value is not valid for its datatype' },
  VALUE_OUT_OF_RANGE: { status: 400, message: 'input value is out of range for its datatype' },
  NON_FINITE_VALUE: { status: 400, message: 'NaN and Infinity are not accepted by this model' },
  TOO_MANY_ELEMENTS: { status: 413, message: 'tensor has more elements than allowed' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'request body is too large' },
  // 401/403: who is calling, and whether they may (RFC 6750: both carry WWW-Authenticate)
  UNAUTHENTICATED: { status: 401, message: 'missing or invalid bearer token' },
  FORBIDDEN: { status: 403, message: 'the token does not grant this request' },
  // The subject opted out of automated decisions and the model has no fallback version: the detail
  // says how to get a human decision (models.<m>.fallback.humanDecision).
  HUMAN_DECISION_REQUIRED: { status: 403, message: 'this subject opted out of automated decisions; ask for a human decision' },
  // An input guard in reject mode refused the input (policies/guards/): the guard is named, never
  // its score or threshold, which an attacker could tune against.
  INPUT_REJECTED: { status: 422, message: 'the input was refused by an input guard' },
  // The caller's queries look like an attempt to copy the model (extraction guard, mode deny).
  EXTRACTION_SUSPECTED: { status: 403, message: 'queries refused: the pattern of this caller\'s queries looks like model extraction' },
  // Admin API: a traffic change that fails validation (weights, versions, rules)
  INVALID_TRAFFIC: { status: 400, message: 'traffic routes are not valid' },
  // Admin API: the change was made against a revision that has moved since (If-Match or "revision");
  // the detail names the current one. Nothing was changed: read again, then decide.
  REVISION_CONFLICT: { status: 409, message: 'the record changed since the revision given; nothing was changed' },
  // Kill switch (docs/kill-switch.md): a kill whose rollback target is not a loaded, ready version
  // of the model (or none is left), and a restore of something that is not killed.
  ROLLBACK_TARGET_UNAVAILABLE: { status: 409, message: 'no ready version to roll back to; nothing was changed (mode "deny" stops the model without one)' },
  NOT_KILLED: { status: 409, message: 'nothing of the kind is killed; nothing was changed' },
  // 404: the thing asked for does not exist
  NOT_FOUND: { status: 404, message: 'route not found' },
  // 405: the route exists, not for this method; the Allow header lists the methods it takes
  METHOD_NOT_ALLOWED: { status: 405, message: 'method not allowed on this route' },
  MODEL_NOT_FOUND: { status: 404, message: 'model not found' },
  VERSION_NOT_FOUND: { status: 404, message: 'model version not found' },
  // Drift (docs/drift.md): the model has no drift section (or it is off), or two versions whose
  // references bin values differently are compared.
  DRIFT_NOT_MONITORED: { status: 404, message: 'this model is not monitored for drift' },
  DRIFT_NOT_COMPARABLE: { status: 409, message: 'the two versions\' drift references bin their values differently; they cannot be compared' },
  // Rollouts (docs/rollouts.md): a rollout that fails validation, none for the model, or an action
  // its state does not allow (resume what is not paused, start while one runs).
  INVALID_ROLLOUT: { status: 400, message: 'the rollout is not valid' },
  ROLLOUT_NOT_FOUND: { status: 404, message: 'this model has no rollout' },
  ROLLOUT_CONFLICT: { status: 409, message: 'the rollout\'s state does not allow this; nothing was changed' },
  // The audit trail (docs/audit.md) could not make a change's record durable: the change stands.
  AUDIT_UNAVAILABLE: { status: 503, message: 'the audit trail could not record this durably' },
  // 408/431: the client's connection misbehaved before a request could be routed
  REQUEST_TIMEOUT: { status: 408, message: 'request was not received in time' },
  HEADERS_TOO_LARGE: { status: 431, message: 'request headers are too large' },
  // The request target itself is wrong: bad percent-encoding, or a path segment over the router's limit
  BAD_URL: { status: 400, message: 'request URL is not valid' },
  URI_TOO_LONG: { status: 414, message: 'a segment of the request path is too long' },
  // An Expect header other than 100-continue (RFC 9110 §10.1.1)
  EXPECTATION_FAILED: { status: 417, message: 'the Expect header is not supported' },
  // 429: the caller is over its quota; Retry-After says when to come back
  RATE_LIMITED: { status: 429, message: 'rate limit exceeded' },
  CONCURRENCY_LIMITED: { status: 429, message: 'too many concurrent requests for this tenant' },
  // 5xx: the gateway or a backend failed, never the client
  MODEL_NOT_READY: { status: 503, message: 'model version is not ready' },
  MODEL_LOAD_FAILED: { status: 503, message: 'model version could not be loaded' },
  BACKEND_UNAVAILABLE: { status: 503, message: 'model backend is unavailable' },
  // The gateway shed the call to protect the backend: its calls in flight and its queue were full,
  // or no slot freed within the queue's wait (adapters/admission.ts). Retry-After says when to retry.
  OVERLOADED: { status: 503, message: 'model backend is at capacity; retry later' },
  BACKEND_TIMEOUT: { status: 504, message: 'model backend did not answer in time' },
  BACKEND_BAD_RESPONSE: { status: 502, message: 'model backend returned an invalid response' },
  BACKEND_ERROR: { status: 502, message: 'model backend failed to run the inference' },
  SHUTTING_DOWN: { status: 503, message: 'gateway is shutting down' },
  // An operator stopped the model (kill switch, mode deny), or this replica cannot confirm the kill
  // state and killSwitch.onStoreLoss is deny. Retry-After says when to try again.
  MODEL_KILLED: { status: 503, message: 'this model is stopped by its operators' },
  // A replica told to start closed (state.mirrors) has not read the shared state it needs yet.
  GATEWAY_NOT_READY: { status: 503, message: 'gateway is starting: shared state has not been read yet' },
  QUOTA_STORE_UNAVAILABLE: { status: 503, message: 'quota store is unavailable' },
  // An admin or self-service change could not be stored in the shared store (nothing was changed)
  STATE_STORE_UNAVAILABLE: { status: 503, message: 'shared state store is unavailable; nothing was changed' },
  // A guard in reject mode failed (threw or ran out of time) and guards.failClosed is set.
  GUARD_UNAVAILABLE: { status: 503, message: 'an input guard could not judge the request' },
  INTERNAL: { status: 500, message: 'internal error' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/**
 * Whose fault an error is: the client's (every 4xx), the model's or its backend's (it could not
 * answer), or the gateway's own (its store, its shutdown, a bug). Per-version figures and the
 * canary analysis to come count only `backend` faults against a version: a misbehaving client must
 * never make a healthy version look broken.
 */
export type Fault = 'client' | 'backend' | 'gateway';

const BACKEND_FAULTS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'MODEL_NOT_READY', 'MODEL_LOAD_FAILED', 'BACKEND_UNAVAILABLE', 'OVERLOADED', 'BACKEND_TIMEOUT', 'BACKEND_BAD_RESPONSE', 'BACKEND_ERROR',
]);

export function faultOf(code: ErrorCode): Fault {
  if (ERRORS[code].status < 500) return 'client';
  return BACKEND_FAULTS.has(code) ? 'backend' : 'gateway';
}

/** An error with a catalogued code. `detail` is safe to show the client; `cause` is logged only. */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: string | undefined;

  /** Response headers the error needs (Retry-After, WWW-Authenticate, RateLimit…). */
  readonly headers: Readonly<Record<string, string>> | undefined;

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown; headers?: Readonly<Record<string, string>> }) {
    const spec = ERRORS[code];
    super(detail === undefined ? spec.message : `${spec.message}: ${detail}`, options);
    this.name = 'GatewayError';
    this.code = code;
    this.status = spec.status;
    this.detail = detail;
    this.headers = options?.headers;
  }

  /** The same error with more response headers. */
  withHeaders(headers: Readonly<Record<string, string>>): GatewayError {
    return new GatewayError(this.code, this.detail, { cause: this.cause, headers: { ...this.headers, ...headers } });
  }

  /** The body sent to the client; `error` is the protocol's field, `code` is ours. */
  toJSON(): { error: string; code: ErrorCode } {
    return { error: this.message, code: this.code };
  }
}

/** Client-supplied text (a model or input name) short enough to quote in an error detail. */
export function clip(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}…` : s;
}

export function isGatewayError(e: unknown): e is GatewayError {
  return e instanceof GatewayError;
}
