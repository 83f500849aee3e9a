/**
 * A remote backend that speaks the Open Inference Protocol v2 over HTTP/JSON (KServe, Triton, MLServer).
 * One keep-alive undici Pool per backend. Inference is never retried: it may not be idempotent, and
 * a retry after a timeout would double the load on a backend that is already struggling. Errors
 * carry only generic details; the backend's address and its own error text stay in `cause`.
 *
 * Every inference passes the backend's guard (backend-guard.ts) first: its circuit breaker, then
 * admission to at most `connections` calls in flight (so undici never queues one) with a bounded
 * queue; each call then tells the breaker whether it showed the backend failing.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { BACKEND_GUARD_DEFAULTS } from '../gateway/config-schema.js';
import { GatewayError, isGatewayError } from '../gateway/errors.js';
import { BackendGuard, type BackendGuardEvents, type BackendGuardFigures, type CallOutcome } from './backend-guard.js';
import type { Adapter, InferOptions, InferRequest, InferResponse, InferTensor, ModelMetadata, TensorMetadata } from './adapter.js';
import { TIMEOUT_HEADER } from './adapter.js';
import { abortError, exchange, isOk, type ExchangeReply } from './http-exchange.js';
import { elementCount, isDatatype, toJsonData } from './tensors.js';

export interface OipHttpBackendOptions {
  readonly kind: 'oip-http';
  readonly url: string; // base, e.g. http://127.0.0.1:9000 (a path prefix is kept)
  readonly model: string; // the model's name at the backend
  readonly version?: string; // the backend's version; omitted → unversioned routes
  readonly connectTimeoutMs: number; // also bounds a readiness probe
  readonly timeoutMs: number; // one call's upper bound; a request's deadline may be shorter
  readonly connections: number; // pool size
  readonly keepAliveTimeoutMs: number;
  readonly healthIntervalMs: number; // readiness is probed at most this often
  // Load shedding and the circuit breaker (config-schema.ts; BACKEND_GUARD_DEFAULTS when absent).
  readonly queue?: number; // calls waiting for a slot at most; absent: BACKEND_GUARD_DEFAULTS.queue
  readonly queueTimeoutMs?: number;
  readonly breakerFailures?: number;
  readonly breakerCooldownMs?: number;
  readonly breakerMaxCooldownMs?: number;
}

/** Largest response body accepted from a backend; larger answers are BACKEND_BAD_RESPONSE. */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
const MAX_ERROR_BODY_BYTES = 16 * 1024;
const CLOSE_GRACE_MS = 1000; // of a non-2xx body, kept for the log (in `cause`)
const MAX_DATA_NESTING = 32; // deeper `data` arrays are rejected, not recursed into
const UNFORWARDED_PARAMETER = /^(binary_data|shared_memory)/; // binary answers, backend shared memory

/** Knobs for tests and embedding; the configuration does not expose them. */
export interface OipHttpLimits {
  readonly maxResponseBytes?: number;
  /** Where the guard's events go (the metrics); bound to one served version. */
  readonly events?: BackendGuardEvents;
  /** The guard's clock. */
  readonly now?: () => number;
}

/**
 * How a failed call bears on the breaker. Transport failures, broken answers and timeouts are the
 * backend's; a timeout only when the call had the backend's whole `timeoutMs` (a caller who asked
 * for 1 ms must not be able to open the breaker for everyone); a call the caller gave up is neutral.
 */
function outcomeOf(e: unknown, fullBudget: boolean, signal: AbortSignal | undefined): CallOutcome {
  if (signal?.aborted || !isGatewayError(e)) return 'neutral';
  switch (e.code) {
    case 'BACKEND_UNAVAILABLE':
    case 'BACKEND_BAD_RESPONSE':
    case 'BACKEND_ERROR':
      return 'failure';
    case 'BACKEND_TIMEOUT':
      return fullBudget ? 'failure' : 'neutral';
    default:
      return 'neutral';
  }
}

/** A non-2xx status: 5xx, 429 (the backend says it is overloaded) and 404 (the model is gone) are its faults; other 4xx show it serving. */
const statusOutcome = (status: number): CallOutcome => (status >= 500 || status === 429 || status === 404 ? 'failure' : 'success');

type Reply = ExchangeReply;

export class OipHttpAdapter implements Adapter {
  readonly kind = 'oip-http';
  readonly #opts: OipHttpBackendOptions;
  readonly #pool: Pool;
  /** Path of the model's routes at the backend, e.g. /v2/models/iris/versions/1. */
  readonly #modelPath: string;
  readonly #maxResponseBytes: number;
  readonly #guard: BackendGuard;
  #metadata: ModelMetadata | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  #health: { ok: boolean; at: number } | undefined;
  #probe: Promise<boolean> | undefined;

  constructor(options: OipHttpBackendOptions, limits: OipHttpLimits = {}) {
    const url = new URL(options.url);
    this.#opts = options;
    this.#maxResponseBytes = limits.maxResponseBytes ?? MAX_RESPONSE_BYTES;
    const prefix = url.pathname.replace(/\/+$/, '');
    const version = options.version === undefined ? '' : `/versions/${encodeURIComponent(options.version)}`;
    this.#modelPath = `${prefix}/v2/models/${encodeURIComponent(options.model)}${version}`;
    this.#guard = new BackendGuard({
      connections: options.connections,
      queue: options.queue ?? BACKEND_GUARD_DEFAULTS.queue,
      queueTimeoutMs: options.queueTimeoutMs ?? BACKEND_GUARD_DEFAULTS.queueTimeoutMs,
      breakerFailures: options.breakerFailures ?? BACKEND_GUARD_DEFAULTS.breakerFailures,
      breakerCooldownMs: options.breakerCooldownMs ?? BACKEND_GUARD_DEFAULTS.breakerCooldownMs,
      breakerMaxCooldownMs: options.breakerMaxCooldownMs ?? BACKEND_GUARD_DEFAULTS.breakerMaxCooldownMs,
    }, limits.events, limits.now);
    // One socket more than inferences may use: a readiness probe or a metadata read never waits
    // behind `connections` slow inferences (admission keeps inferences to `connections`).
    this.#pool = new Pool(url.origin, {
      connections: options.connections + 1, pipelining: 1, keepAliveTimeout: options.keepAliveTimeoutMs,
      connect: { timeout: options.connectTimeoutMs },
    });
  }

  async load(): Promise<void> {
    this.#assertOpen();
    const reply = await this.#exchange('GET', this.#modelPath, { timeoutMs: this.#opts.timeoutMs });
    if (!isOk(reply.status)) throw statusError(reply, 'model metadata');
    this.#metadata = parseMetadata(reply.body);
  }

  metadata(): ModelMetadata {
    if (this.#metadata === undefined) throw new GatewayError('MODEL_NOT_READY', 'backend metadata not loaded');
    return this.#metadata;
  }

  async infer(request: InferRequest, options: InferOptions): Promise<InferResponse> {
    this.#assertOpen();
    if (this.#metadata === undefined) throw new GatewayError('MODEL_NOT_READY', 'backend metadata not loaded');
    if (options.signal?.aborted) throw abortError(options.signal.reason);
    // Refused here (breaker open, no slot in time) the call costs the backend nothing.
    let pass = this.#guard.enter(options.deadline, options.signal);
    if (typeof pass !== 'string') pass = await pass;
    let outcome: CallOutcome = 'neutral';
    let fullBudget = false;
    try {
      const left = Number.isFinite(options.deadline) ? options.deadline - Date.now() : Infinity;
      const timeoutMs = Math.ceil(Math.min(this.#opts.timeoutMs, left));
      if (timeoutMs <= 0) throw new GatewayError('BACKEND_TIMEOUT', 'deadline passed before the call');
      fullBudget = timeoutMs >= this.#opts.timeoutMs;
      const reply = await this.#send(request, options, timeoutMs);
      if (!isOk(reply.status)) {
        outcome = statusOutcome(reply.status);
        throw statusError(reply, 'inference');
      }
      outcome = 'failure'; // until the answer proves readable
      const response = parseInferResponse(reply.body, request);
      outcome = 'success';
      return response;
    } catch (e) {
      if (outcome === 'neutral') outcome = outcomeOf(e, fullBudget, options.signal);
      // Let the next ready() probe again instead of trusting a cached "ready".
      if (isGatewayError(e) && e.code === 'BACKEND_UNAVAILABLE') this.#health = undefined;
      throw e;
    } finally {
      this.#guard.leave(pass, outcome);
    }
  }

  /** The guard's figures: in flight, queued, refusals, the breaker (the per-version view, metrics). */
  guardFigures(): BackendGuardFigures {
    return this.#guard.figures();
  }

  /** Sends one inference, bounded by `timeoutMs`. */
  #send(request: InferRequest, options: InferOptions, timeoutMs: number): Promise<Reply> {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (/^[\x21-\x7e]{1,256}$/.test(options.requestId)) headers['x-request-id'] = options.requestId;
    // The time left, so a backend that honours it (another Breakwater does) stops when we would.
    headers[TIMEOUT_HEADER] = String(timeoutMs);
    // The client's bytes go as they are; the parser offers them only when they ask for no binary
    // or shared-memory tensors (which this adapter could not read back).
    const body = request.rawJson ?? JSON.stringify(toWire(request));
    return this.#exchange('POST', `${this.#modelPath}/infer`, { body, headers, timeoutMs, signal: options.signal });
  }

  async ready(): Promise<boolean> {
    if (this.#closed || this.#metadata === undefined) return false;
    const h = this.#health;
    if (h !== undefined && Date.now() - h.at < this.#opts.healthIntervalMs) return h.ok;
    this.#probe ??= this.#probeReady().then((ok) => {
      this.#health = { ok, at: Date.now() };
      this.#probe = undefined;
      return ok;
    });
    return (await this.#probe) && !this.#closed;
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#guard.close();
    this.#closing ??= (async () => {
      // The gateway closes an adapter once no request uses it; calls still in flight here are being
      // cut off by a shutdown past its grace, so they get a second, not their whole timeout.
      const grace = sleep(CLOSE_GRACE_MS, false, { ref: false });
      const graceful = await Promise.race([this.#pool.close().then(() => true, () => true), grace]);
      if (!graceful) await this.#pool.destroy().catch(() => undefined);
    })();
    return this.#closing;
  }

  #assertOpen(): void {
    if (this.#closed) throw new GatewayError('MODEL_NOT_READY', 'backend adapter is closed');
  }

  /** GET the model's readiness; bounded by connectTimeoutMs, never throws. */
  async #probeReady(): Promise<boolean> {
    try {
      const reply = await this.#exchange('GET', `${this.#modelPath}/ready`, { timeoutMs: this.#opts.connectTimeoutMs });
      return reply.status === 200;
    } catch {
      return false;
    }
  }

  #exchange(method: 'GET' | 'POST', path: string, o: { body?: string | Buffer; headers?: Record<string, string>; timeoutMs: number; signal?: AbortSignal }): Promise<Reply> {
    return exchange(this.#pool, {
      method, path, ...o, maxBytes: this.#maxResponseBytes, maxErrorBytes: MAX_ERROR_BODY_BYTES,
    });
  }
}

/** A non-2xx answer. The backend's own text goes to `cause` (logged), never to the detail. */
function statusError(reply: Reply, what: string): GatewayError {
  const cause = new Error(`backend answered HTTP ${reply.status} to ${what}: ${reply.body.toString('utf8')}`);
  const detail = `backend answered HTTP ${reply.status} to ${what}`;
  if (reply.status === 503 || reply.status === 429) return new GatewayError('BACKEND_UNAVAILABLE', detail, { cause });
  return new GatewayError('BACKEND_ERROR', detail, { cause });
}

const bad = (detail: string, cause?: unknown) => new GatewayError('BACKEND_BAD_RESPONSE', detail, { cause });
const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw bad('response body is not JSON', e);
  }
}

/** Integer dimensions; -1 (dynamic) only where `min` allows it (metadata, not answers). */
function isShape(x: unknown, min: -1 | 0): x is number[] {
  return Array.isArray(x) && x.every((d) => Number.isSafeInteger(d) && (d as number) >= min);
}

function parseTensorMetadata(x: unknown, where: string): TensorMetadata {
  if (!isRecord(x) || typeof x.name !== 'string' || x.name === '' || !isDatatype(x.datatype) || !isShape(x.shape, -1)) {
    throw bad(`metadata ${where} is not a tensor description`);
  }
  return { name: x.name, datatype: x.datatype, shape: x.shape };
}

function parseMetadata(body: Buffer): ModelMetadata {
  const json = parseJson(body);
  if (!isRecord(json) || !Array.isArray(json.inputs) || !Array.isArray(json.outputs)) {
    throw bad('model metadata has no inputs and outputs arrays');
  }
  const inputs = json.inputs.map((t, i) => parseTensorMetadata(t, `input ${i}`));
  const outputs = json.outputs.map((t, i) => parseTensorMetadata(t, `output ${i}`));
  for (const list of [inputs, outputs]) {
    if (new Set(list.map((t) => t.name)).size !== list.length) throw bad('model metadata repeats a tensor name');
  }
  const platform = typeof json.platform === 'string' && json.platform !== '' ? json.platform : 'oip-http';
  // Breakwater's own extension (another Breakwater as the backend): outputs JSON cannot carry.
  const nonTensor = isRecord(json.parameters) ? json.parameters.non_tensor_outputs : undefined;
  if (Array.isArray(nonTensor) && nonTensor.length > 0 && nonTensor.every((n) => typeof n === 'string')) {
    return { platform, inputs, outputs, nonTensorOutputs: nonTensor as string[] };
  }
  return { platform, inputs, outputs };
}

function flatten(data: readonly unknown[], out: unknown[], depth: number): boolean {
  for (const v of data) {
    if (!Array.isArray(v)) out.push(v);
    else if (depth >= MAX_DATA_NESTING || !flatten(v, out, depth + 1)) return false;
  }
  return true;
}

const NUMERIC_STRING = /^(-?\d+|NaN|-?Infinity)$/;

function parseOutput(x: unknown, i: number): InferTensor {
  if (!isRecord(x) || typeof x.name !== 'string' || !isDatatype(x.datatype) || !isShape(x.shape, 0) || !Array.isArray(x.data)) {
    throw bad(`output ${i} is not a tensor with name, datatype, shape and data`);
  }
  // Flat data (the usual answer) is checked in place; nested data is copied flat first.
  let data: unknown[] = x.data;
  if (data.length > 0 && Array.isArray(data[0])) {
    data = [];
    if (!flatten(x.data, data, 0)) throw bad(`output ${i} data is nested too deeply`);
  }
  if (data.length !== elementCount(x.shape)) throw bad(`output ${i} data does not match its shape`);
  const dt = x.datatype;
  for (let k = 0; k < data.length; k++) {
    const v = data[k];
    const fits = dt === 'BYTES' ? typeof v === 'string'
      : dt === 'BOOL' ? typeof v === 'boolean' || v === 0 || v === 1
        : typeof v === 'number' || (typeof v === 'string' && NUMERIC_STRING.test(v));
    if (!fits) throw bad(`output ${i} has a value that is not a ${dt}`);
    if (dt === 'BOOL') data[k] = v === true || v === 1;
  }
  return { name: x.name, datatype: dt, shape: x.shape, data };
}

/**
 * The backend's answer, every output it sent. Trimming to the outputs the model declares and the
 * request selected is the gateway's, once for every adapter (gateway/declared-outputs.ts), which
 * also counts what a backend adds; here only what no answer may do is refused: an output named twice
 * (a client could read either one) or a requested one missing.
 */
function parseInferResponse(body: Buffer, request: InferRequest): InferResponse {
  const json = parseJson(body);
  if (!isRecord(json) || !Array.isArray(json.outputs)) throw bad('response has no outputs array');
  const outputs = json.outputs.map(parseOutput);
  // A handful of outputs: pairwise costs less than a Set per answer.
  for (let i = 1; i < outputs.length; i++) {
    for (let j = 0; j < i; j++) if (outputs[j].name === outputs[i].name) throw bad('response names an output twice');
  }
  const wanted = request.outputs;
  if (wanted !== undefined) {
    for (const w of wanted) {
      if (!outputs.some((o) => o.name === w.name)) throw bad('response lacks a requested output');
    }
  }
  return isRecord(json.parameters) ? { outputs, parameters: json.parameters } : { outputs };
}

function forwardable(p: Readonly<Record<string, unknown>> | undefined): Record<string, unknown> | undefined {
  if (p === undefined) return undefined;
  const entries = Object.entries(p).filter(([k]) => !UNFORWARDED_PARAMETER.test(k));
  return entries.length === 0 ? undefined : Object.fromEntries(entries);
}

/** The JSON body for a request given as tensors (undefined fields vanish in JSON.stringify). */
function toWire(r: InferRequest): unknown {
  return {
    id: r.id,
    inputs: r.inputs.map((t) => ({
      name: t.name, datatype: t.datatype, shape: t.shape, data: toJsonData(t.datatype, t.data), parameters: forwardable(t.parameters),
    })),
    outputs: r.outputs?.map((o) => ({ name: o.name, parameters: forwardable(o.parameters) })),
    parameters: forwardable(r.parameters),
  };
}
