/**
 * A remote backend that speaks the Open Inference Protocol v2 over HTTP/JSON (KServe, Triton, MLServer).
 * One keep-alive undici Pool per backend. Inference is never retried: it may not be idempotent, and
 * a retry after a timeout would double the load on a backend that is already struggling. Errors
 * carry only generic details; the backend's address and its own error text stay in `cause`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool, type Dispatcher } from 'undici';
import { GatewayError, isGatewayError } from '../gateway/errors.js';
import type { Adapter, InferOptions, InferRequest, InferResponse, InferTensor, ModelMetadata, TensorMetadata } from './adapter.js';
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
}

/** Largest response body accepted from a backend; larger answers are BACKEND_BAD_RESPONSE. */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
const MAX_ERROR_BODY_BYTES = 16 * 1024; // of a non-2xx body, kept for the log (in `cause`)
const MAX_DATA_NESTING = 32; // deeper `data` arrays are rejected, not recursed into
const UNFORWARDED_PARAMETER = /^(binary_data|shared_memory)/; // binary answers, backend shared memory

/** Knobs for tests and embedding; the configuration does not expose them. */
export interface OipHttpLimits { readonly maxResponseBytes?: number }

interface Reply { readonly status: number; readonly body: Buffer }

export class OipHttpAdapter implements Adapter {
  readonly kind = 'oip-http';
  readonly #opts: OipHttpBackendOptions;
  readonly #pool: Pool;
  /** Path of the model's routes at the backend, e.g. /v2/models/iris/versions/1. */
  readonly #modelPath: string;
  readonly #maxResponseBytes: number;
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
    this.#pool = new Pool(url.origin, {
      connections: options.connections, pipelining: 1, keepAliveTimeout: options.keepAliveTimeoutMs,
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
    if (options.signal.aborted) throw abortError(options.signal.reason);
    const left = Number.isFinite(options.deadline) ? options.deadline - Date.now() : Infinity;
    const timeoutMs = Math.ceil(Math.min(this.#opts.timeoutMs, left));
    if (timeoutMs <= 0) throw new GatewayError('BACKEND_TIMEOUT', 'deadline passed before the call');
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (/^[\x21-\x7e]{1,256}$/.test(options.requestId)) headers['x-request-id'] = options.requestId;
    const raw = request.rawJson;
    // The client's bytes go as they are, unless they could ask for binary or shared-memory tensors.
    const body = raw !== undefined && !raw.includes('binary_data') && !raw.includes('shared_memory')
      ? raw : JSON.stringify(toWire(request));
    try {
      const reply = await this.#exchange('POST', `${this.#modelPath}/infer`, { body, headers, timeoutMs, signal: options.signal });
      if (!isOk(reply.status)) throw statusError(reply, 'inference');
      return parseInferResponse(reply.body, request);
    } catch (e) {
      // Let the next ready() probe again instead of trusting a cached "ready".
      if (isGatewayError(e) && e.code === 'BACKEND_UNAVAILABLE') this.#health = undefined;
      throw e;
    }
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
    this.#closing ??= (async () => {
      // In-flight calls end within timeoutMs by construction; past that (plus a margin), force it.
      const grace = sleep(this.#opts.timeoutMs + 1000, false, { ref: false });
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
    const ms = this.#opts.connectTimeoutMs;
    const signal = AbortSignal.timeout(ms);
    try {
      const res = await this.#pool.request({ method: 'GET', path: `${this.#modelPath}/ready`, signal, headersTimeout: ms, bodyTimeout: ms });
      await res.body.dump({ limit: 64 * 1024, signal });
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }

  /**
   * One HTTP exchange with a total time bound (`timeoutMs` covers headers and body), the caller's
   * signal, and a size cap. The body is always read to the end or destroyed, so no socket leaks.
   */
  async #exchange(
    method: 'GET' | 'POST',
    path: string,
    o: { body?: string | Buffer; headers?: Record<string, string>; timeoutMs: number; signal?: AbortSignal },
  ): Promise<Reply> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error(`no answer within ${o.timeoutMs} ms`));
    }, o.timeoutMs);
    const onAbort = () => controller.abort(o.signal?.reason);
    o.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const res = await this.#pool.request({
        method, path, body: o.body, headers: o.headers, signal: controller.signal,
        headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs,
      });
      const ok = isOk(res.statusCode);
      const cap = ok ? this.#maxResponseBytes : MAX_ERROR_BODY_BYTES;
      if (ok && Number(res.headers['content-length']) > cap) {
        res.body.destroy();
        throw new GatewayError('BACKEND_BAD_RESPONSE', `response body is larger than ${cap} bytes`);
      }
      const body = await readBody(res.body, cap, !ok);
      return { status: res.statusCode, body };
    } catch (e) {
      if (timedOut) throw new GatewayError('BACKEND_TIMEOUT', `no answer within ${o.timeoutMs} ms`, { cause: e });
      if (o.signal?.aborted) throw abortError(o.signal.reason, e);
      if (isGatewayError(e)) throw e;
      throw transportError(e);
    } finally {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
    }
  }
}

const isOk = (status: number): boolean => status >= 200 && status < 300;

/** Reads the whole body up to `cap` bytes; beyond, either truncates (error bodies) or rejects. */
async function readBody(body: Dispatcher.ResponseData['body'], cap: number, truncate: boolean): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (size + chunk.length > cap) {
      // Leaving the loop destroys the stream (and its socket) instead of draining a huge body.
      if (truncate) {
        chunks.push(chunk.subarray(0, cap - size));
        return Buffer.concat(chunks);
      }
      throw new GatewayError('BACKEND_BAD_RESPONSE', `response body is larger than ${cap} bytes`);
    }
    size += chunk.length;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/** The caller gave up (client gone, or the gateway's deadline). A GatewayError reason is kept. */
function abortError(reason: unknown, cause: unknown = reason): GatewayError {
  if (isGatewayError(reason)) return reason;
  return new GatewayError('BACKEND_TIMEOUT', 'the call was cancelled', { cause });
}

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN',
  'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED']);
const BAD_RESPONSE_CODES = new Set(['UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_HEADERS_OVERFLOW', 'UND_ERR_INFO']);

/** The first `code` on the error, its `cause` chain or an AggregateError's members (happy eyeballs). */
function errorCode(e: unknown, depth = 0): string | undefined {
  if (typeof e !== 'object' || e === null || depth > 4) return undefined;
  const { code, name, cause, errors } = e as { code?: unknown; name?: unknown; cause?: unknown; errors?: unknown };
  if (typeof code === 'string') return code;
  if (name === 'HTTPParserError') return 'HPE_UNKNOWN'; // undici leaves `code` unset for some parse errors
  if (Array.isArray(errors)) return errorCode(errors[0], depth + 1);
  return errorCode(cause, depth + 1);
}

/** Maps a transport failure; the detail names the class only: address and errno stay in `cause`. */
function transportError(e: unknown): GatewayError {
  const code = errorCode(e) ?? 'unknown';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new GatewayError('BACKEND_TIMEOUT', 'the backend stopped sending', { cause: e });
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return new GatewayError('BACKEND_UNAVAILABLE', 'connect timed out', { cause: e });
  if (UNAVAILABLE_CODES.has(code)) return new GatewayError('BACKEND_UNAVAILABLE', 'could not reach the backend', { cause: e });
  if (code.startsWith('HPE_') || BAD_RESPONSE_CODES.has(code)) {
    return new GatewayError('BACKEND_BAD_RESPONSE', 'the answer is not valid HTTP', { cause: e });
  }
  if (code === 'UND_ERR_INVALID_ARG') return new GatewayError('INTERNAL', undefined, { cause: e });
  return new GatewayError('BACKEND_ERROR', 'the call failed', { cause: e });
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
  const data: unknown[] = [];
  if (!flatten(x.data, data, 0)) throw bad(`output ${i} data is nested too deeply`);
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

function parseInferResponse(body: Buffer, request: InferRequest): InferResponse {
  const json = parseJson(body);
  if (!isRecord(json) || !Array.isArray(json.outputs)) throw bad('response has no outputs array');
  let outputs = json.outputs.map(parseOutput);
  if (request.outputs !== undefined) {
    const wanted = new Set(request.outputs.map((o) => o.name));
    outputs = outputs.filter((o) => wanted.has(o.name));
    for (const name of wanted) {
      if (!outputs.some((o) => o.name === name)) throw bad('response lacks a requested output');
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
