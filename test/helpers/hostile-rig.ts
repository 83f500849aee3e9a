/**
 * The hostile-input suite's rig and its invariants: one in-process gateway in front of a real
 * loopback backend that records the bytes of every infer body and answers the model's declared
 * outputs plus one it does not declare. `check` asserts what must hold of every answer; `checkAccepted`
 * what must hold of every request the gateway let through (the strict oracle: the backend got
 * exactly the validated request); `checkRefused` what must hold of a request that breaks a rule.
 */
import assert from 'node:assert/strict';
import type { RunningGateway } from '../../gateway/main.js';
import { ERRORS } from '../../gateway/errors.js';
import { startFakeOipBackend, type FakeOipBackend, type OipTensorJson, type RecordedCall } from './backends.js';
import { startInProcess } from './gateway.js';
import { emit } from './json-tree.js';
import type { OipModelMetadataJson } from './backends.js';
import { DECLARED_OUTPUTS, META, MODEL, UNDECLARED_OUTPUT, type Expect, type Rendered, type RequestSpec } from './hostile-requests.js';
import { rawRequest, type RawRequest, type RawResponse } from './raw-send.js';
import { parseStrictJson, strictEqual, StrictJsonError, type StrictJson, type StrictObject } from './strict-json.js';

export const HEADER_LENGTH = 'inference-header-content-length';
/** Large enough that a body nested 100 000 levels deep is read and refused for its nesting, not its size. */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface Rig {
  readonly gw: RunningGateway;
  readonly backend: FakeOipBackend;
  readonly port: number;
  close(): Promise<void>;
}

/** The backend's answer: every declared output asked for (all when none is named), plus one undeclared. */
export function backendAnswer(req: { inputs?: { shape?: unknown }[]; outputs?: { name?: unknown }[] }, undeclared: boolean): { outputs: OipTensorJson[] } {
  const first = Array.isArray(req.inputs) ? req.inputs[0]?.shape : undefined;
  const batch = Array.isArray(first) && typeof first[0] === 'number' && first[0] >= 0 && first[0] <= 1000 ? first[0] : 1;
  const all: OipTensorJson[] = [
    { name: 'y', datatype: 'FP32', shape: [batch], data: new Array(batch).fill(0.5) },
    { name: 'z', datatype: 'INT32', shape: [batch, 2], data: new Array(batch * 2).fill(7) },
  ];
  const wanted = Array.isArray(req.outputs) ? new Set(req.outputs.map((o) => o?.name)) : undefined;
  const outputs = wanted === undefined ? all : all.filter((o) => wanted.has(o.name));
  if (!undeclared) return { outputs };
  return { outputs: [...outputs, { name: UNDECLARED_OUTPUT, datatype: 'FP32', shape: [batch, 4], data: new Array(batch * 4).fill(0.25) }] };
}

export interface RigOptions {
  /** `false` keeps the backend to declared outputs, so that a suite about headers or paths fails for its own rules only. */
  readonly undeclared?: boolean;
  /** Versions of the model, all served by the one backend. */
  readonly versions?: string[];
  /** The backend's metadata (default META; its name must stay MODEL). */
  readonly meta?: OipModelMetadataJson;
  /** Merged over the model's configuration (e.g. allowEmptyBatch). */
  readonly model?: Record<string, unknown>;
  /** More models, each served by the same backend as version 1 (e.g. one a token may not use). */
  readonly also?: readonly string[];
  /** Merged over the gateway's configuration. */
  readonly config?: Record<string, unknown>;
}

/** Starts the backend and the gateway. */
export async function startRig(opts: RigOptions = {}): Promise<Rig> {
  const undeclared = opts.undeclared ?? true;
  const backend = await startFakeOipBackend(opts.meta ?? META, (req) => backendAnswer(req as never, undeclared));
  const version = { backend: { kind: 'oip-http', url: backend.url, model: MODEL } };
  const gw = await startInProcess({
    models: {
      [MODEL]: {
        maxBodyBytes: MAX_BODY_BYTES,
        maxElements: 1000,
        versions: Object.fromEntries((opts.versions ?? ['1']).map((v) => [v, version])),
        ...opts.model,
      },
      ...Object.fromEntries((opts.also ?? []).map((name) => [name, { versions: { '1': version } }])),
    },
    ...opts.config,
  });
  return {
    gw,
    backend,
    port: Number(new URL(gw.url).port),
    close: async () => {
      await gw.close();
      await backend.close();
    },
  };
}

/** The bytes and headers a client sends for a rendered request. */
export function toRawRequest(spec: RequestSpec, r: Rendered, contentType: string | undefined): RawRequest {
  const header = emit(r.tree, spec.style);
  const path = `/v2/models/${MODEL}/infer`;
  if (r.binary.length === 0) {
    return { method: 'POST', path, headers: contentType === undefined ? [] : [['Content-Type', contentType]], body: header };
  }
  return {
    method: 'POST',
    path,
    headers: [['Content-Type', 'application/octet-stream'], [HEADER_LENGTH, String(header.length)]],
    body: Buffer.concat([header, ...r.binary]),
  };
}

export interface Exchange {
  readonly request: RawRequest;
  readonly response: RawResponse;
  /** Infer calls the backend received while this request was answered. */
  readonly backendCalls: readonly RecordedCall[];
}

/** Sends one request and records what reached the backend meanwhile (requests run one at a time). */
export async function exchange(rig: Rig, request: RawRequest): Promise<Exchange> {
  const before = rig.backend.calls();
  const response = await rawRequest(rig.port, request);
  return { request, response, backendCalls: rig.backend.inferCalls().slice(before) };
}

const CODES: ReadonlySet<string> = new Set(Object.keys(ERRORS));
/** Framework, runtime and backend text that must never reach a client. */
const LEAKS = /FST_|fastify|statusCode|\n\s*at |\bat [^\s"]+ \(|node:internal|127\.0\.0\.1|localhost|ECONN|UND_ERR/i;
/** Client text longer than this is not quoted back (gateway/errors.ts clip). */
const ECHO = 65;

function clientTexts(request: RawRequest): string[] {
  const texts = [request.path, ...(request.headers ?? []).map(([, v]) => v)];
  if (request.body !== undefined && request.body.length < 2_000_000) texts.push(Buffer.from(request.body).toString('utf8'));
  return texts.filter((t) => t.length >= ECHO);
}

/** The status, and code when refused: for outcome counts. */
export function outcome(x: Exchange): string {
  const code = x.response.status >= 400 ? (tryJson(x.response.body) as { code?: string } | undefined)?.code : undefined;
  return code === undefined ? String(x.response.status) : `${x.response.status} ${code}`;
}

export function tryJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

export function show(x: Exchange): string {
  return `${x.request.method} ${x.request.path.slice(0, 100)} → ${x.response.status} ${x.response.body.toString('utf8').slice(0, 300)}`;
}

/**
 * The invariants of every answer: no 5xx, JSON (or the binary extension), catalogue errors, nothing
 * leaked. `backendFaults`: the 5xx codes this answer may carry (a property that overloads or breaks
 * the backend on purpose); the rest holds of them too.
 */
export function check(x: Exchange, rig: Pick<Rig, 'backend'>, opts: { backendFaults?: readonly string[] } = {}): void {
  const { status, headers, body } = x.response;
  assert.ok(Number.isInteger(status) && status >= 200, `no HTTP answer: ${show(x)}`);
  if (status >= 500 && opts.backendFaults !== undefined) {
    const code = (tryJson(body) as { code?: string } | undefined)?.code;
    assert.ok(code !== undefined && opts.backendFaults.includes(code), `a 5xx other than ${opts.backendFaults.join('/')}: ${show(x)}`);
  } else {
    assert.ok(status < 500, `a 5xx for a client's request to a healthy backend: ${show(x)}`);
  }
  const type = headers['content-type'] ?? '';
  const port = String(rig.backend.port);
  for (const [name, value] of Object.entries(headers)) {
    assert.doesNotMatch(`${name}: ${value}`, LEAKS, `header leaks framework or backend text: ${name}: ${value}`);
    assert.ok(!value.includes(`:${port}`), `header names the backend's port: ${name}: ${value}`);
  }
  if (status === 200 && headers[HEADER_LENGTH] !== undefined) {
    assert.match(type, /^application\/octet-stream/, show(x));
    return;
  }
  assert.match(type, /^application\/json/, `not JSON: ${show(x)}`);
  let json: StrictJson;
  try {
    json = parseStrictJson(body);
  } catch (e) {
    assert.fail(`the answer is not strict JSON (${(e as Error).message}): ${show(x)}`);
  }
  if (status < 400) return;
  assert.ok(json !== null && typeof json === 'object' && !Array.isArray(json), show(x));
  const err = json as StrictObject;
  assert.deepEqual(Object.keys(err).sort(), ['code', 'error'], `not the catalogue's error shape: ${show(x)}`);
  assert.equal(typeof err.error, 'string', show(x));
  assert.ok(typeof err.code === 'string' && CODES.has(err.code), `code not in the catalogue: ${show(x)}`);
  assert.equal(ERRORS[err.code as keyof typeof ERRORS].status, status, `status differs from the catalogue's for ${String(err.code)}: ${show(x)}`);
  const text = body.toString('utf8');
  assert.doesNotMatch(text, LEAKS, `the error leaks framework or backend text: ${show(x)}`);
  assert.ok(!text.includes(`:${port}`), `the error names the backend's port: ${show(x)}`);
  const message = err.error as string;
  for (const client of clientTexts(x.request)) {
    for (let i = 0; i + ECHO <= message.length; i++) {
      const window = message.slice(i, i + ECHO);
      assert.ok(!client.includes(window), `the error echoes ${ECHO}+ characters of the client's input: ${show(x)}`);
    }
  }
}

/** A refused request: the status and code family the rule requires, and nothing reached the backend. */
export function checkRefused(x: Exchange, expect: Extract<Expect, { kind: 'refuse' }>, what: string): void {
  const { status, body } = x.response;
  const code = (tryJson(body) as { code?: string } | undefined)?.code;
  assert.ok(expect.statuses.includes(status), `${what}: expected ${expect.statuses.join('/')}, got ${show(x)}`);
  if (expect.codes !== undefined) assert.ok(code !== undefined && expect.codes.includes(code), `${what}: expected a code in ${expect.codes.join(', ')}, got ${show(x)}`);
  assert.equal(x.backendCalls.length, 0, `${what}: a refused request reached the backend`);
}

// ---------------------------------------------------------------------------------------------
// The oracle: what a backend received is the request that was validated.

function splitBinary(body: Buffer, headerLength: number): { header: StrictJson; parts: Buffer[] } {
  const header = parseStrictJson(body.subarray(0, headerLength));
  const parts: Buffer[] = [];
  let offset = headerLength;
  const inputs = (header as StrictObject).inputs;
  for (const t of Array.isArray(inputs) ? inputs : []) {
    const size = ((t as StrictObject).parameters as StrictObject | undefined)?.binary_data_size;
    if (typeof size === 'number') {
      parts.push(body.subarray(offset, offset + size));
      offset += size;
    } else {
      parts.push(Buffer.alloc(0));
    }
  }
  assert.equal(offset, body.length, 'binary parts do not add up to the body');
  return { header, parts };
}

function decodeBinary(datatype: string, raw: Buffer): unknown[] {
  const copy = Buffer.from(raw);
  switch (datatype) {
    case 'FP32': return Array.from(new Float32Array(copy.buffer, copy.byteOffset, copy.length / 4));
    case 'INT64': return Array.from(new BigInt64Array(copy.buffer, copy.byteOffset, copy.length / 8), (v) => v.toString());
    case 'BOOL': return Array.from(copy, (b) => b !== 0);
    default: {
      const out: string[] = [];
      for (let p = 0; p < copy.length;) {
        const len = copy.readUInt32LE(p);
        out.push(copy.toString('utf8', p + 4, p + 4 + len));
        p += 4 + len;
      }
      return out;
    }
  }
}

function flat(data: StrictJson): StrictJson[] {
  const out: StrictJson[] = [];
  const work: StrictJson[] = [data];
  while (work.length > 0) {
    const v = work.pop() as StrictJson;
    if (Array.isArray(v)) for (let i = v.length - 1; i >= 0; i--) work.push(v[i]);
    else out.push(v);
  }
  return out;
}

/** Parameters as the protocol reads them: the binary_data* ones are the gateway's to consume; {} is none. */
function canonParams(p: StrictJson | undefined): StrictJson | undefined {
  if (p === undefined || p === null || typeof p !== 'object' || Array.isArray(p)) return p;
  const out = Object.create(null) as StrictObject;
  for (const k of Object.keys(p)) if (!/^binary_data/.test(k)) out[k] = p[k];
  return Object.keys(out).length === 0 ? undefined : out;
}

function canonTensor(t: StrictJson, part: Buffer | undefined): StrictJson {
  if (t === null || typeof t !== 'object' || Array.isArray(t)) return t;
  const out = Object.create(null) as StrictObject;
  for (const k of Object.keys(t)) {
    if (k === 'parameters') {
      const p = canonParams(t[k]);
      if (p !== undefined) out[k] = p;
    } else if (k !== 'data') {
      out[k] = t[k];
    }
  }
  const dt = typeof t.datatype === 'string' ? t.datatype : '';
  const values = part !== undefined && t.data === undefined ? decodeBinary(dt, part) as StrictJson[] : t.data === undefined ? undefined : flat(t.data);
  if (values !== undefined) {
    out.data = dt === 'INT64' || dt === 'UINT64'
      ? values.map((v) => (typeof v === 'number' || (typeof v === 'string' && /^-?\d+$/.test(v)) ? BigInt(v).toString() : v))
      : values;
  }
  return out;
}

/** A request as the protocol reads it: data flat, 64-bit integers as decimal text, binary parts decoded. */
export function canonRequest(v: StrictJson, parts?: Buffer[]): StrictJson {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
  const out = Object.create(null) as StrictObject;
  for (const k of Object.keys(v)) {
    const value = v[k];
    if (k === 'parameters') {
      const p = canonParams(value);
      if (p !== undefined) out[k] = p;
    } else if (k === 'inputs' && Array.isArray(value)) {
      let binaryIndex = 0;
      out[k] = value.map((t) => {
        const hasPart = (t as StrictObject | null)?.parameters !== undefined && typeof ((t as StrictObject).parameters as StrictObject)?.binary_data_size === 'number';
        return canonTensor(t, hasPart ? parts?.[binaryIndex++] : undefined);
      });
    } else if (k === 'outputs' && Array.isArray(value)) {
      out[k] = value.map((o) => canonTensor(o, undefined));
    } else {
      out[k] = value;
    }
  }
  return out;
}

/** The request a client sent, strictly parsed (JSON, or the binary extension's header and parts). */
export function clientRequest(request: RawRequest): StrictJson {
  const body = Buffer.from(request.body ?? '');
  const lengthHeader = request.headers?.find(([n]) => n.toLowerCase() === HEADER_LENGTH)?.[1];
  if (lengthHeader === undefined) return canonRequest(parseStrictJson(body));
  const { header } = splitBinary(body, Number(lengthHeader));
  const parts: Buffer[] = [];
  let offset = Number(lengthHeader);
  for (const t of ((header as StrictObject).inputs as StrictJson[])) {
    const size = ((t as StrictObject).parameters as StrictObject | undefined)?.binary_data_size;
    if (typeof size === 'number') {
      parts.push(body.subarray(offset, offset + size));
      offset += size;
    }
  }
  return canonRequest(header, parts);
}

/** What a backend received, strictly parsed and read as the protocol reads it (as `clientRequest`). */
export function backendRequest(call: RecordedCall): StrictJson {
  const lengthHeader = call.headers[HEADER_LENGTH];
  if (typeof lengthHeader !== 'string') return canonRequest(parseStrictJson(call.body));
  const { header, parts } = splitBinary(call.body, Number(lengthHeader));
  const compact = parts.filter((_, i) => typeof (((header as StrictObject).inputs as StrictObject[])[i]?.parameters as StrictObject | undefined)?.binary_data_size === 'number');
  return canonRequest(header, compact);
}

function answerOutputs(x: Exchange): string[] {
  const { headers, body } = x.response;
  const length = headers[HEADER_LENGTH];
  const json = length === undefined ? parseStrictJson(body) : parseStrictJson(body.subarray(0, Number(length)));
  const outputs = (json as StrictObject).outputs;
  assert.ok(Array.isArray(outputs), `an answer without outputs: ${show(x)}`);
  return outputs.map((o) => String((o as StrictObject).name));
}

/**
 * A request answered 200: the client's body is strict JSON; exactly one call reached the backend
 * and its bytes strictly parse to the same request (as the protocol reads it; with `without`, the
 * client's request less that tensor member, which the gateway may drop instead of refusing); the
 * answer carries only declared outputs, exactly the ones asked for.
 */
export function checkAccepted(x: Exchange, what: string, without?: string): { identical: boolean } {
  assert.equal(x.response.status, 200, `${what}: ${show(x)}`);
  let sent: StrictJson;
  try {
    sent = clientRequest(x.request);
  } catch (e) {
    if (e instanceof StrictJsonError) assert.fail(`${what}: accepted a body a strict parser refuses (${e.message}): ${show(x)}`);
    throw e;
  }
  assert.equal(x.backendCalls.length, 1, `${what}: expected one backend call, got ${x.backendCalls.length}`);
  const call = x.backendCalls[0];
  let received: StrictJson;
  try {
    received = backendRequest(call);
  } catch (e) {
    if (e instanceof StrictJsonError) assert.fail(`${what}: the backend received bytes a strict parser refuses (${e.message})`);
    throw e;
  }
  if (without !== undefined) {
    for (const list of [(sent as StrictObject).inputs, (sent as StrictObject).outputs]) {
      if (Array.isArray(list)) for (const t of list) if (t !== null && typeof t === 'object' && !Array.isArray(t)) delete t[without];
    }
  }
  assert.ok(strictEqual(sent, received), `${what}: the backend received another request than the one validated:\n` +
    `validated: ${JSON.stringify(sent).slice(0, 800)}\nforwarded: ${JSON.stringify(received).slice(0, 800)}`);
  const names = answerOutputs(x);
  assert.ok(!names.includes(UNDECLARED_OUTPUT), `${what}: an output the model does not declare reached the client: ${names.join(', ')}`);
  const asked = (sent as StrictObject).outputs;
  const expected = Array.isArray(asked) ? asked.map((o) => String((o as StrictObject).name)) : DECLARED_OUTPUTS;
  assert.deepEqual([...names].sort(), [...expected].sort(), `${what}: outputs answered`);
  return { identical: Buffer.from(x.request.body ?? '').equals(call.body) };
}
