/**
 * Parses a client's infer body (plain JSON, or Triton's binary tensor extension) into an
 * `InferRequest`, checking everything that does not need the model: structure, datatypes, shapes
 * against data, element limits and every value against its datatype. Checks against the model's
 * metadata are in validate-request.ts.
 *
 * Details name the input (cut to 64 characters) and the element index, never the client's values.
 *
 * A plain JSON body may be forwarded byte for byte (`rawJson`), so what the gateway checks must be
 * all a backend can read: the bytes are proved unambiguous (adapters/json-scan.ts), members outside
 * the protocol are refused or dropped, and parameter values are scalars JSON.stringify writes back
 * unchanged.
 */
import type { Datatype, InferRequest, InferTensor, RequestedOutput, TensorData } from '../adapters/adapter.js';
import { DATATYPE_INFO, FP16_MAX, FP32_MAX, elementCount, isDatatype, nonFiniteFromString } from '../adapters/tensors.js';
import { checkBinaryValues, decodeBinaryRequestBody, decodeTensorBytes } from '../adapters/binary.js';
import { parseUnambiguousJson } from '../adapters/json-scan.js';
import { clip, GatewayError, type ErrorCode } from './errors.js';

export interface ParseLimits {
  /** Most elements one input tensor may have. */
  readonly maxElements: number;
  /** Whether NaN/Infinity float values reach the model. */
  readonly nonFinite: 'reject' | 'allow';
  /** Deepest JSON nesting accepted (the body's object is 1). */
  readonly maxJsonDepth: number;
  /** Members the protocol does not define: refused, or left out of what is forwarded. */
  readonly unknownMembers: 'refuse' | 'drop';
}

const MAX_NAME_LENGTH = 256;

type Json = Record<string, unknown>;
function isRecord(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** A client-given name, short enough to quote in an error detail. */
export function quoteName(name: string): string {
  return `'${clip(name)}'`;
}

export function parseInferRequest(body: Buffer, headerLength: number | undefined, limits: ParseLimits): InferRequest {
  let json: unknown;
  let binary: ReadonlyMap<number, Buffer> | undefined;
  if (headerLength === undefined) {
    json = parseUnambiguousJson(body, limits.maxJsonDepth, 'the body');
  } else {
    const decoded = decodeBinaryRequestBody(body, headerLength, limits.maxJsonDepth);
    json = decoded.header;
    binary = decoded.binary;
  }
  if (!isRecord(json)) throw new GatewayError('BAD_REQUEST', 'the body must be a JSON object');
  const members: Members = { mode: limits.unknownMembers, dropped: false };
  checkMembers(json, REQUEST_MEMBERS, 'the request', members);
  const { id, inputs, outputs, parameters } = json;
  if (id !== undefined && typeof id !== 'string') throw new GatewayError('BAD_REQUEST', '`id` must be a string');
  if (parameters !== undefined && !isRecord(parameters)) {
    throw new GatewayError('BAD_REQUEST', '`parameters` must be an object');
  }
  checkParameters(parameters, 'parameters');
  if (!Array.isArray(inputs) || inputs.length === 0) {
    throw new GatewayError('BAD_REQUEST', '`inputs` must be a non-empty array');
  }
  const check: ValueCheck = { label: '', nonFinite: limits.nonFinite };
  const tensors = new Array<InferTensor>(inputs.length);
  const names = new Set<string>();
  for (let i = 0; i < inputs.length; i++) {
    tensors[i] = parseInput(inputs[i], i, names, binary, limits, check, members);
  }
  const result: {
    -readonly [K in keyof InferRequest]: InferRequest[K];
  } = { inputs: tensors };
  if (id !== undefined) result.id = id;
  if (outputs !== undefined) result.outputs = parseOutputs(outputs, members);
  if (parameters !== undefined) result.parameters = parameters;
  // Plain JSON asking for no binary outputs may be forwarded byte for byte by a pass-through
  // adapter; a request for binary outputs is the gateway's to answer, and one whose unknown
  // members were dropped no longer matches its bytes: the adapter re-encodes both.
  if (
    headerLength === undefined && !members.dropped &&
    !asksBinaryOutput(parameters) && !result.outputs?.some((o) => asksBinaryOutput(o.parameters))
  ) {
    result.rawJson = body;
  }
  return result;
}

/** The members the protocol defines, per object (KServe's and Triton's REST request schemas). */
const REQUEST_MEMBERS: ReadonlySet<string> = new Set(['id', 'parameters', 'inputs', 'outputs']);
const INPUT_MEMBERS: ReadonlySet<string> = new Set(['name', 'shape', 'datatype', 'parameters', 'data']);
const OUTPUT_MEMBERS: ReadonlySet<string> = new Set(['name', 'parameters']);

/** Per-request state of the member checks: whether something was dropped. */
interface Members {
  readonly mode: 'refuse' | 'drop';
  dropped: boolean;
}

/**
 * Unknown members are refused, or (mode `drop`) noted as dropped: the parsed request keeps only
 * known members, so leaving the forwarded bytes out is all dropping takes.
 */
function checkMembers(o: Json, known: ReadonlySet<string>, where: string, members: Members): void {
  for (const key in o) {
    if (known.has(key)) continue;
    if (members.mode === 'refuse') {
      throw new GatewayError('BAD_REQUEST', `${where} has a member the protocol does not define: ${quoteName(key)}`);
    }
    members.dropped = true;
  }
}

function asksBinaryOutput(p: unknown): boolean {
  return isRecord(p) && (p.binary_data_output !== undefined || p.binary_data !== undefined);
}

/**
 * Parameter values are what the protocol allows: strings, numbers and booleans. A number must be
 * one every parser reads alike: finite, and a whole value only within ±2^53 (JavaScript rounds a
 * larger integer that Python or Go would keep exact, and once parsed 1e300 looks the same; such
 * ids go as strings).
 *
 * Shared-memory tensors (the protocol's shared-memory extension) would let a client point the
 * backend at data the gateway never sees, and so never checks: they are refused outright.
 */
function checkParameters(p: unknown, where: string): void {
  if (!isRecord(p)) return;
  for (const key in p) {
    if (key.startsWith('shared_memory')) {
      throw new GatewayError('BAD_REQUEST', `${where}: shared-memory tensors are not accepted through the gateway`);
    }
    const v = p[key];
    if (typeof v === 'string' || typeof v === 'boolean') continue;
    if (typeof v !== 'number') {
      throw new GatewayError('BAD_REQUEST', `${where}: parameter ${quoteName(key)} must be a string, number or boolean`);
    }
    if (!Number.isFinite(v) || (Number.isInteger(v) && !Number.isSafeInteger(v))) {
      throw new GatewayError('BAD_REQUEST', `${where}: parameter ${quoteName(key)} is beyond what every JSON parser reads alike (an integer beyond 2^53 goes as a string)`);
    }
  }
}

function parseName(x: unknown, what: string): string {
  if (typeof x !== 'string' || x.length === 0 || x.length > MAX_NAME_LENGTH) {
    throw new GatewayError('BAD_REQUEST', `${what} name must be a string of 1 to ${MAX_NAME_LENGTH} characters`);
  }
  return x;
}

function parseInput(
  x: unknown,
  index: number,
  names: Set<string>,
  binary: ReadonlyMap<number, Buffer> | undefined,
  limits: ParseLimits,
  check: ValueCheck,
  members: Members,
): InferTensor {
  if (!isRecord(x)) throw new GatewayError('BAD_REQUEST', `inputs[${index}] must be an object`);
  checkMembers(x, INPUT_MEMBERS, `inputs[${index}]`, members);
  const name = parseName(x.name, `inputs[${index}]`);
  const label = `input ${quoteName(name)}`;
  if (names.has(name)) throw new GatewayError('DUPLICATE_INPUT', label);
  names.add(name);
  const { datatype, shape, data, parameters } = x;
  if (!isDatatype(datatype)) {
    throw new GatewayError('UNKNOWN_DATATYPE', `${label}: datatype must be one of the protocol datatypes`);
  }
  if (!Array.isArray(shape)) throw new GatewayError('BAD_REQUEST', `${label}: shape must be an array`);
  for (let d = 0; d < shape.length; d++) {
    const dim: unknown = shape[d];
    if (typeof dim !== 'number' || !Number.isSafeInteger(dim) || dim < 0) {
      throw new GatewayError('BAD_REQUEST', `${label}: shape dimensions must be non-negative integers`);
    }
  }
  const dims = shape as number[];
  const count = elementCount(dims);
  if (count > limits.maxElements) {
    throw new GatewayError('TOO_MANY_ELEMENTS', `${label} has more than ${limits.maxElements} elements`);
  }
  if (parameters !== undefined && !isRecord(parameters)) {
    throw new GatewayError('BAD_REQUEST', `${label}: parameters must be an object`);
  }
  checkParameters(parameters, label);
  check.label = label;
  const raw = binary?.get(index);
  let values: TensorData;
  let params = parameters;
  if (raw !== undefined) {
    if (data !== undefined) throw new GatewayError('BAD_BINARY_HEADER', `${label} has both data and binary_data_size`);
    const typed = decodeTensorBytes(datatype, count, raw, label);
    if (ArrayBuffer.isView(typed)) checkBinaryValues(datatype, typed, label, limits.nonFinite);
    values = typed;
    // binary_data_size describes this body only; an adapter re-encoding the tensor must not see it.
    const { binary_data_size: _size, ...rest } = parameters as Json;
    params = Object.keys(rest).length > 0 ? rest : undefined;
  } else if (isRecord(parameters) && 'binary_data_size' in parameters) {
    throw new GatewayError('BAD_BINARY_HEADER', `${label} has binary_data_size but the request has no binary part`);
  } else {
    if (!Array.isArray(data)) throw new GatewayError('BAD_REQUEST', `${label}: data must be an array`);
    values = flattenAndCheck(data, dims, count, datatype, check);
  }
  const tensor: { -readonly [K in keyof InferTensor]: InferTensor[K] } = { name, datatype, shape: dims, data: values };
  if (params !== undefined) tensor.parameters = params;
  return tensor;
}

/**
 * Flat data is checked in place and returned as is; nested data must follow the shape exactly and
 * is copied into a new flat array. The walk uses an explicit stack because the nesting depth is the
 * client's to choose.
 */
function flattenAndCheck(
  data: unknown[],
  shape: readonly number[],
  count: number,
  datatype: Datatype,
  check: ValueCheck,
): unknown[] {
  const rank = shape.length;
  if (rank <= 1 || !Array.isArray(data[0])) {
    if (data.length !== count) {
      throw new GatewayError('SHAPE_DATA_MISMATCH', `${check.label} has ${data.length} values, shape needs ${count}`);
    }
    checkJsonValues(datatype, data, data, 0, check);
    return data;
  }
  const mismatch = (): GatewayError => new GatewayError('SHAPE_DATA_MISMATCH', `${check.label}: nested data does not follow the shape`);
  if (data.length !== shape[0]) throw mismatch();
  const out = new Array<unknown>(count);
  let filled = 0;
  const stack: unknown[][] = [data];
  const next: number[] = [0];
  while (stack.length > 0) {
    const depth = stack.length - 1;
    const level = stack[depth];
    const i = next[depth];
    if (i === level.length) {
      stack.pop();
      next.pop();
      continue;
    }
    next[depth] = i + 1;
    const child: unknown = level[i];
    if (!Array.isArray(child) || child.length !== shape[depth + 1]) throw mismatch();
    if (depth + 2 === rank) {
      checkJsonValues(datatype, child, out, filled, check);
      filled += child.length;
    } else {
      stack.push(child);
      next.push(0);
    }
  }
  return out;
}

function parseOutputs(x: unknown, members: Members): RequestedOutput[] {
  if (!Array.isArray(x)) throw new GatewayError('BAD_REQUEST', '`outputs` must be an array');
  const out = new Array<RequestedOutput>(x.length);
  const seen = new Set<string>();
  for (let i = 0; i < x.length; i++) {
    const o: unknown = x[i];
    if (!isRecord(o)) throw new GatewayError('BAD_REQUEST', `outputs[${i}] must be an object`);
    checkMembers(o, OUTPUT_MEMBERS, `outputs[${i}]`, members);
    const name = parseName(o.name, `outputs[${i}]`);
    if (seen.has(name)) throw new GatewayError('BAD_REQUEST', `output ${quoteName(name)} is requested twice`);
    seen.add(name);
    if (o.parameters !== undefined && !isRecord(o.parameters)) {
      throw new GatewayError('BAD_REQUEST', `output ${quoteName(name)}: parameters must be an object`);
    }
    checkParameters(o.parameters, `output ${quoteName(name)}`);
    out[i] = o.parameters === undefined ? { name } : { name, parameters: o.parameters };
  }
  return out;
}

/** Per-request state of the value checks; `label` is reset for each input instead of reallocated. */
interface ValueCheck {
  label: string;
  readonly nonFinite: 'reject' | 'allow';
}

function valueError(code: ErrorCode, check: ValueCheck, index: number, why: string): GatewayError {
  return new GatewayError(code, `${check.label} element ${index}: ${why}`);
}

/** A value of the wrong JS type; an array there means the data is nested deeper than the shape. */
function wrongType(check: ValueCheck, index: number, v: unknown, expected: string): GatewayError {
  if (Array.isArray(v)) {
    return new GatewayError('SHAPE_DATA_MISMATCH', `${check.label} element ${index}: data is nested deeper than the shape`);
  }
  return valueError('INVALID_VALUE', check, index, `expected ${expected}, got ${v === null ? 'null' : typeof v}`);
}

const DECIMAL_INTEGER = /^-?\d{1,20}$/;
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);
const TWO_63 = 2 ** 63;
const TWO_64 = 2 ** 64;

/**
 * Checks `src` against the datatype and writes the values into `dst` from `base` (the same array
 * when the client's data is already flat). 64-bit decimal strings within 2^53 are stored as numbers,
 * so that only values beyond 2^53 stay strings, as `TensorData` promises.
 */
function checkJsonValues(datatype: Datatype, src: readonly unknown[], dst: unknown[], base: number, check: ValueCheck): void {
  const info = DATATYPE_INFO[datatype];
  const n = src.length;
  switch (info.kind) {
    case 'bool':
      for (let i = 0; i < n; i++) {
        const v = src[i];
        // Triton's JSON form has only true/false; 0/1 would hide a client sending the wrong column.
        if (typeof v !== 'boolean') throw wrongType(check, base + i, v, 'true or false');
        dst[base + i] = v;
      }
      return;
    case 'int': {
      const min = info.min as number;
      const max = info.max as number;
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (typeof v !== 'number' || !Number.isInteger(v)) {
          throw wrongType(check, base + i, v, 'an integer');
        }
        if (v < min || v > max) throw valueError('VALUE_OUT_OF_RANGE', check, base + i, `outside the ${datatype} range`);
        dst[base + i] = v;
      }
      return;
    }
    case 'int64': {
      const unsigned = datatype === 'UINT64';
      const min = info.min as bigint;
      const max = info.max as bigint;
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (typeof v === 'number' && Number.isSafeInteger(v)) {
          if (unsigned && v < 0) throw valueError('VALUE_OUT_OF_RANGE', check, base + i, 'outside the UINT64 range');
          dst[base + i] = v;
        } else if (typeof v === 'string' && DECIMAL_INTEGER.test(v)) {
          const b = BigInt(v);
          if (b < min || b > max) throw valueError('VALUE_OUT_OF_RANGE', check, base + i, `outside the ${datatype} range`);
          dst[base + i] = b <= MAX_SAFE_BIG && b >= -MAX_SAFE_BIG ? Number(b) : b.toString();
        } else if (typeof v === 'number' && Number.isInteger(v)) {
          if (unsigned ? v < 0 || v >= TWO_64 : v < -TWO_63 || v >= TWO_63) {
            throw valueError('VALUE_OUT_OF_RANGE', check, base + i, `outside the ${datatype} range`);
          }
          throw valueError('INVALID_VALUE', check, base + i, 'beyond 2^53 a JSON number has lost precision; send it as a decimal string');
        } else {
          throw wrongType(check, base + i, v, 'an integer or a decimal integer string');
        }
      }
      return;
    }
    case 'float': {
      const limit = datatype === 'FP16' ? FP16_MAX : datatype === 'FP32' ? FP32_MAX : Number.MAX_VALUE;
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (typeof v === 'number') {
          // JSON.parse turns 1e999 into Infinity, which lands here as out of range too.
          if (!(v <= limit && v >= -limit)) throw valueError('VALUE_OUT_OF_RANGE', check, base + i, `outside the ${datatype} range`);
        } else if (typeof v !== 'string' || nonFiniteFromString(v) === undefined) {
          throw wrongType(check, base + i, v, 'a number, "NaN", "Infinity" or "-Infinity"');
        } else if (check.nonFinite === 'reject') {
          throw valueError('NON_FINITE_VALUE', check, base + i, 'non-finite value');
        }
        dst[base + i] = v;
      }
      return;
    }
    case 'bytes':
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (typeof v !== 'string') throw wrongType(check, base + i, v, 'a string');
        dst[base + i] = v;
      }
      return;
  }
}
