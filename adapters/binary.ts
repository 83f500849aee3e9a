/**
 * Triton's binary tensor data extension (docs/protocol/extension_binary_data.md): a JSON header of
 * `Inference-Header-Content-Length` bytes, then the raw bytes of each tensor whose parameters carry
 * `binary_data_size`, in the order the tensors appear in the header. Raw data is little-endian,
 * row-major, unpadded; BOOL is one byte (0/1); BYTES elements are a 4-byte little-endian length
 * followed by that many bytes (carried in the gateway as UTF-8 strings).
 */
import { isUtf8 } from 'node:buffer';
import type { Datatype, InferTensor, TensorData, TypedTensorData } from './adapter.js';
import { DATATYPE_INFO, PLATFORM_LITTLE_ENDIAN, toJsonData, toTypedArray } from './tensors.js';
import { GatewayError } from '../gateway/errors.js';
import { DEFAULT_MAX_JSON_DEPTH } from '../gateway/config-schema.js';
import { parseUnambiguousJson } from './json-scan.js';

export interface DecodedBinaryBody {
  /** The parsed JSON header, not yet checked against the protocol. */
  readonly header: unknown;
  /** Raw bytes per tensor, keyed by the tensor's index in the header's `inputs` (or `outputs`). */
  readonly binary: ReadonlyMap<number, Buffer>;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** `maxDepth` set: the header is parsed as strictly as a plain JSON body (its fields are forwarded). */
function splitBody(body: Buffer, headerLength: number, key: 'inputs' | 'outputs', maxDepth?: number): DecodedBinaryBody {
  if (!Number.isSafeInteger(headerLength) || headerLength < 0 || headerLength > body.length) {
    throw new GatewayError('BAD_BINARY_HEADER', `header length ${headerLength} does not fit a body of ${body.length} bytes`);
  }
  let header: unknown;
  if (maxDepth !== undefined) {
    header = parseUnambiguousJson(body.subarray(0, headerLength), maxDepth, 'the JSON header');
  } else {
    try {
      header = JSON.parse(body.toString('utf8', 0, headerLength));
    } catch {
      throw new GatewayError('BAD_JSON', 'the JSON header is not valid JSON');
    }
  }
  const binary = new Map<number, Buffer>();
  let offset = headerLength;
  const tensors = isRecord(header) ? header[key] : undefined;
  if (Array.isArray(tensors)) {
    for (let i = 0; i < tensors.length; i++) {
      const t: unknown = tensors[i];
      const params = isRecord(t) ? t.parameters : undefined;
      if (!isRecord(params) || !('binary_data_size' in params)) continue;
      const size = params.binary_data_size;
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
        throw new GatewayError('BAD_BINARY_HEADER', `${key}[${i}]: binary_data_size must be a non-negative integer`);
      }
      if (size > body.length - offset) {
        throw new GatewayError('BAD_BINARY_HEADER', `${key}[${i}]: binary_data_size runs past the end of the body`);
      }
      binary.set(i, body.subarray(offset, offset + size));
      offset += size;
    }
  }
  if (offset !== body.length) {
    throw new GatewayError('BAD_BINARY_HEADER', `${body.length - offset} bytes after the last binary tensor`);
  }
  return { header, binary };
}

/**
 * Splits a binary-extension request into its JSON header and each input's raw bytes. The header
 * gets the plain JSON body's rules (adapters/json-scan.ts), nested at most `maxJsonDepth` deep.
 */
export function decodeBinaryRequestBody(body: Buffer, headerLength: number, maxJsonDepth = DEFAULT_MAX_JSON_DEPTH): DecodedBinaryBody {
  return splitBody(body, headerLength, 'inputs', maxJsonDepth);
}

/** The same for a backend's binary-extension response, keyed by output index. */
export function decodeBinaryResponseBody(body: Buffer, headerLength: number): DecodedBinaryBody {
  return splitBody(body, headerLength, 'outputs');
}

/**
 * A tensor from its raw bytes. Fixed-width data is a view on `raw` (no copy) when `raw` is aligned
 * for the element width, else an aligned copy. `label` names the tensor in error details.
 */
export function decodeTensorBytes(datatype: Datatype, count: number, raw: Buffer, label: string): TypedTensorData | string[] {
  const info = DATATYPE_INFO[datatype];
  if (info.array === undefined) return decodeBytesElements(count, raw, label);
  const expected = count * info.byteSize;
  if (raw.length !== expected) {
    throw new GatewayError('BAD_BINARY_HEADER', `${label}: binary_data_size is ${raw.length}, shape needs ${expected} bytes`);
  }
  if (PLATFORM_LITTLE_ENDIAN && raw.byteOffset % info.byteSize === 0) {
    return new info.array(raw.buffer, raw.byteOffset, count);
  }
  const out = new info.array(count);
  const bytes = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  raw.copy(bytes);
  if (!PLATFORM_LITTLE_ENDIAN) swapToPlatform(bytes, info.byteSize);
  return out;
}

function swapToPlatform(bytes: Buffer, width: number): void {
  if (width === 2) bytes.swap16();
  else if (width === 4) bytes.swap32();
  else if (width === 8) bytes.swap64();
}

function decodeBytesElements(count: number, raw: Buffer, label: string): string[] {
  const out = new Array<string>(count);
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (raw.length - p < 4) {
      throw new GatewayError('BAD_BINARY_HEADER', `${label}: BYTES data ends before element ${i}`);
    }
    const len = raw.readUInt32LE(p);
    p += 4;
    if (len > raw.length - p) {
      throw new GatewayError('BAD_BINARY_HEADER', `${label}: BYTES element ${i} runs past its data`);
    }
    const s = raw.toString('utf8', p, p + len);
    // Decoding replaces invalid UTF-8 with U+FFFD; only then is the slower strict check worth it.
    if (s.includes('\uFFFD') && !isUtf8(raw.subarray(p, p + len))) {
      throw new GatewayError('INVALID_VALUE', `${label} element ${i}: BYTES element is not valid UTF-8`);
    }
    out[i] = s;
    p += len;
  }
  if (p !== raw.length) {
    throw new GatewayError('BAD_BINARY_HEADER', `${label}: ${raw.length - p} bytes left after ${count} BYTES elements`);
  }
  return out;
}

/**
 * Value checks raw bytes need: every bit pattern of an integer is valid, but a BOOL byte must be 0/1
 * and floats may carry NaN/Infinity, which JSON cannot, so the model's policy applies here too.
 */
export function checkBinaryValues(datatype: Datatype, data: TypedTensorData, label: string, nonFinite: 'reject' | 'allow'): void {
  const n = data.length;
  let bad = -1;
  if (datatype === 'BOOL') {
    const b = data as Uint8Array;
    for (let i = 0; i < n && bad < 0; i++) if (b[i] > 1) bad = i;
    if (bad >= 0) throw new GatewayError('INVALID_VALUE', `${label} element ${bad}: BOOL bytes must be 0 or 1`);
    return;
  }
  if (nonFinite === 'allow') return;
  if (datatype === 'FP16') {
    const h = data as Uint16Array;
    for (let i = 0; i < n && bad < 0; i++) if ((h[i] & 0x7c00) === 0x7c00) bad = i;
  } else if (datatype === 'FP32' || datatype === 'FP64') {
    const f = data as Float32Array | Float64Array;
    for (let i = 0; i < n && bad < 0; i++) if (f[i] - f[i] !== 0) bad = i;
  }
  if (bad >= 0) throw new GatewayError('NON_FINITE_VALUE', `${label} element ${bad}: non-finite value`);
}

/** The raw little-endian bytes of a tensor; a view on the typed array where possible. */
export function encodeTensorBytes(datatype: Datatype, data: TensorData): Buffer {
  const arr = toTypedArray(datatype, data);
  if (!ArrayBuffer.isView(arr)) return encodeBytesElements(arr);
  const view = Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength);
  if (PLATFORM_LITTLE_ENDIAN || arr.BYTES_PER_ELEMENT === 1) return view;
  const copy = Buffer.from(view);
  swapToPlatform(copy, arr.BYTES_PER_ELEMENT);
  return copy;
}

function encodeBytesElements(values: readonly string[]): Buffer {
  let total = 0;
  for (let i = 0; i < values.length; i++) total += 4 + Buffer.byteLength(values[i], 'utf8');
  const out = Buffer.allocUnsafe(total);
  let p = 0;
  for (let i = 0; i < values.length; i++) {
    const written = out.write(values[i], p + 4, 'utf8');
    out.writeUInt32LE(written, p);
    p += 4 + written;
  }
  return out;
}

export interface EncodedBinaryBody {
  readonly body: Buffer;
  /** The value of `Inference-Header-Content-Length`. */
  readonly headerLength: number;
}

function encodeBody(
  head: Readonly<Record<string, unknown>>,
  key: 'inputs' | 'outputs',
  tensors: readonly InferTensor[],
  binary: ReadonlySet<string>,
): EncodedBinaryBody {
  const chunks: Buffer[] = [Buffer.alloc(0)];
  const headerTensors = new Array<Record<string, unknown>>(tensors.length);
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i];
    const entry: Record<string, unknown> = { name: t.name, datatype: t.datatype, shape: t.shape };
    if (binary.has(t.name)) {
      const bytes = encodeTensorBytes(t.datatype, t.data);
      chunks.push(bytes);
      entry.parameters = { ...t.parameters, binary_data_size: bytes.length };
    } else {
      if (t.parameters !== undefined) entry.parameters = t.parameters;
      entry.data = toJsonData(t.datatype, t.data);
    }
    headerTensors[i] = entry;
  }
  const header = Buffer.from(JSON.stringify({ ...head, [key]: headerTensors }), 'utf8');
  chunks[0] = header;
  return { body: Buffer.concat(chunks), headerLength: header.length };
}

/**
 * A binary-extension response: `head` holds the other response fields (model_name, model_version,
 * id, parameters). Outputs named in `binary` go as raw bytes after the JSON header, announced by
 * `parameters.binary_data_size` and without `data`; the others keep their `data` inline. The caller
 * sends `Inference-Header-Content-Length: headerLength` and `Content-Type: application/octet-stream`.
 */
export function encodeBinaryResponse(
  head: Readonly<Record<string, unknown>>,
  outputs: readonly InferTensor[],
  binary: ReadonlySet<string>,
): EncodedBinaryBody {
  return encodeBody(head, 'outputs', outputs, binary);
}

/** A binary-extension request, the same way (for clients, tests and forwarding to a backend). */
export function encodeBinaryRequest(
  head: Readonly<Record<string, unknown>>,
  inputs: readonly InferTensor[],
  binary: ReadonlySet<string>,
): EncodedBinaryBody {
  return encodeBody(head, 'inputs', inputs, binary);
}
