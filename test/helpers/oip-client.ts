/**
 * A small Open Inference Protocol v2 client for tests: JSON and binary-extension infer calls with
 * undici's `request` (which adds no Content-Type of its own), decoding of binary answers, and output
 * comparison with a tolerance. Built on the gateway's own binary codec, so tests that need an
 * independent check compare raw bytes with recorded ones (e.g. the FP16 hex of the dtype cases).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import type { Datatype } from '../../adapters/adapter.js';
import { decodeBinaryResponseBody, decodeTensorBytes, encodeBinaryRequest } from '../../adapters/binary.js';
import { elementCount, toJsonData } from '../../adapters/tensors.js';

export interface OipTensor {
  name: string;
  datatype: string;
  shape: number[];
  data?: unknown[];
  parameters?: Record<string, unknown>;
}
export interface OipRequest {
  id?: string;
  inputs: OipTensor[];
  outputs?: { name: string; parameters?: Record<string, unknown> }[];
  parameters?: Record<string, unknown>;
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** Any HTTP call with a bounded wait; `headers` are sent exactly as given (no Content-Type is added). */
export async function http(
  url: string,
  o: { method?: 'GET' | 'POST'; body?: string | Buffer; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  const ms = o.timeoutMs ?? 15_000;
  const res = await request(url, {
    method: o.method ?? (o.body === undefined ? 'GET' : 'POST'),
    body: o.body,
    headers: o.headers,
    headersTimeout: ms,
    bodyTimeout: ms,
    signal: AbortSignal.timeout(ms),
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body };
}

export function header(a: HttpAnswer, name: string): string | undefined {
  const v = a.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export function json(a: HttpAnswer): Record<string, unknown> {
  return JSON.parse(a.body.toString('utf8')) as Record<string, unknown>;
}

/** Polls GET /v2/health/ready until 200, failing after `timeoutMs`. */
export async function waitReady(base: string, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < until) {
    try {
      const a = await http(`${base}/v2/health/ready`, { timeoutMs: 2000 });
      if (a.status === 200) return;
      last = `${a.status} ${a.body.toString()}`;
    } catch (e) {
      last = String(e);
    }
    await sleep(100);
  }
  throw new Error(`${base} not ready within ${timeoutMs} ms: ${last}`);
}

export const inferPath = (base: string, model: string, version?: string): string =>
  `${base}/v2/models/${encodeURIComponent(model)}${version === undefined ? '' : `/versions/${encodeURIComponent(version)}`}/infer`;

/** POST a plain JSON infer request; `contentType: null` sends no Content-Type header at all. */
export function inferJson(url: string, req: OipRequest, contentType: string | null = 'application/json'): Promise<HttpAnswer> {
  return http(url, { body: JSON.stringify(req), headers: contentType === null ? {} : { 'content-type': contentType } });
}

export function flat(data: readonly unknown[]): unknown[] {
  return data.flat(Infinity as 1) as unknown[];
}

export interface BinaryOptions {
  /** Input names sent as raw bytes (default: all). The others keep their JSON `data`. */
  binaryInputs?: ReadonlySet<string>;
  /** Content-Type to send; null sends none (as tritonclient does). Default application/octet-stream. */
  contentType?: string | null;
}

/** The binary-extension body for `req`: its JSON header and the raw input bytes. */
export function encodeBinary(req: OipRequest, binaryInputs?: ReadonlySet<string>): { body: Buffer; headerLength: number } {
  const { inputs, ...head } = req;
  const tensors = inputs.map((t) => ({
    name: t.name, datatype: t.datatype as Datatype, shape: t.shape, data: flat(t.data ?? []), parameters: t.parameters,
  }));
  return encodeBinaryRequest(head, tensors, binaryInputs ?? new Set(inputs.map((t) => t.name)));
}

/** POST `req` over the binary tensor extension. Outputs come back binary only if `req` asks for it. */
export function inferBinary(url: string, req: OipRequest, o: BinaryOptions = {}): Promise<HttpAnswer> {
  const { body, headerLength } = encodeBinary(req, o.binaryInputs);
  const headers: Record<string, string> = { 'inference-header-content-length': String(headerLength) };
  const ct = o.contentType === undefined ? 'application/octet-stream' : o.contentType;
  if (ct !== null) headers['content-type'] = ct;
  return http(url, { body, headers });
}

export interface DecodedAnswer {
  /** The response header (or whole JSON body), with every binary output's `data` filled in. */
  json: Record<string, unknown> & { outputs: OipTensor[] };
  /** Raw bytes of each output that came binary, by name. */
  raw: Map<string, Buffer>;
  /** Inference-Header-Content-Length of the answer, if it used the binary extension. */
  headerLength?: number;
}

/** Decodes a JSON or binary-extension infer answer into JSON outputs. */
export function decodeAnswer(a: HttpAnswer): DecodedAnswer {
  const hl = header(a, 'inference-header-content-length');
  const raw = new Map<string, Buffer>();
  if (hl === undefined) return { json: json(a) as DecodedAnswer['json'], raw };
  const headerLength = Number(hl);
  const { header: h, binary } = decodeBinaryResponseBody(a.body, headerLength);
  const out = h as DecodedAnswer['json'];
  out.outputs.forEach((t, i) => {
    const bytes = binary.get(i);
    if (bytes === undefined) return;
    raw.set(t.name, Buffer.from(bytes));
    const dt = t.datatype as Datatype;
    t.data = toJsonData(dt, decodeTensorBytes(dt, elementCount(t.shape), Buffer.from(bytes), t.name));
  });
  return { json: out, raw, headerLength };
}

export interface Tolerance {
  /** Absolute tolerance for floats. */
  abs?: number;
  /** Relative tolerance for floats (FP16 is always compared exactly). */
  rel?: number;
}

const FLOATS = new Set(['FP32', 'FP64']);

function closeEnough(actual: unknown, expected: unknown, tol: Tolerance): boolean {
  if (typeof actual !== 'number' || typeof expected !== 'number') return false;
  if (actual === expected) return true;
  const d = Math.abs(actual - expected);
  return (tol.abs !== undefined && d <= tol.abs) || (tol.rel !== undefined && d <= tol.rel * Math.abs(expected));
}

/**
 * Asserts the outputs are the expected ones, in order: name, datatype and shape exactly; data
 * flattened, exactly for integers, BOOL, BYTES and FP16, within `tol` for FP32/FP64.
 */
export function assertOutputs(actual: readonly OipTensor[], expected: readonly OipTensor[], tol: Tolerance, what = ''): void {
  assert.deepEqual(actual.map((t) => t.name), expected.map((t) => t.name), `${what} output names`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const label = `${what} output ${e.name}`;
    assert.equal(a.datatype, e.datatype, `${label} datatype`);
    assert.deepEqual(a.shape, e.shape, `${label} shape`);
    assert.ok(Array.isArray(a.data), `${label} has data`);
    const got = flat(a.data);
    const want = flat(e.data ?? []);
    assert.equal(got.length, want.length, `${label} element count`);
    if (!FLOATS.has(e.datatype)) {
      assert.deepEqual(got, want, `${label} data`);
      continue;
    }
    for (let k = 0; k < want.length; k++) {
      assert.ok(closeEnough(got[k], want[k], tol), `${label}[${k}]: got ${String(got[k])}, expected ${String(want[k])}`);
    }
  }
}
