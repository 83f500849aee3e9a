/**
 * What the gateway knows about each protocol datatype, and the conversions between the JSON form of
 * tensor data and typed arrays. Everything here runs on every prediction, so conversions are plain
 * indexed loops over preallocated arrays, and a typed array of the right kind is passed through.
 */
import { DATATYPES, type Datatype, type TensorData, type TypedTensorData } from './adapter.js';
import { GatewayError } from '../gateway/errors.js';

/** The constructors of `TypedTensorData`, as one callable shape. */
export interface TypedArrayConstructor {
  readonly BYTES_PER_ELEMENT: number;
  new (length: number): TypedTensorData;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedTensorData;
}

export type DatatypeKind = 'bool' | 'int' | 'int64' | 'float' | 'bytes';

export interface DatatypeInfo {
  readonly kind: DatatypeKind;
  /** Bytes per element in the binary extension; 0 for BYTES, whose elements vary in size. */
  readonly byteSize: number;
  /** Undefined for BYTES, which is carried as `string[]`. */
  readonly array: TypedArrayConstructor | undefined;
  /** Integer bounds; bigint for the 64-bit types because they pass 2^53. */
  readonly min?: number | bigint;
  readonly max?: number | bigint;
}

export const DATATYPE_INFO: Readonly<Record<Datatype, DatatypeInfo>> = {
  BOOL: { kind: 'bool', byteSize: 1, array: Uint8Array },
  UINT8: { kind: 'int', byteSize: 1, array: Uint8Array, min: 0, max: 0xff },
  UINT16: { kind: 'int', byteSize: 2, array: Uint16Array, min: 0, max: 0xffff },
  UINT32: { kind: 'int', byteSize: 4, array: Uint32Array, min: 0, max: 0xffffffff },
  UINT64: { kind: 'int64', byteSize: 8, array: BigUint64Array, min: 0n, max: 0xffffffffffffffffn },
  INT8: { kind: 'int', byteSize: 1, array: Int8Array, min: -0x80, max: 0x7f },
  INT16: { kind: 'int', byteSize: 2, array: Int16Array, min: -0x8000, max: 0x7fff },
  INT32: { kind: 'int', byteSize: 4, array: Int32Array, min: -0x80000000, max: 0x7fffffff },
  INT64: { kind: 'int64', byteSize: 8, array: BigInt64Array, min: -0x8000000000000000n, max: 0x7fffffffffffffffn },
  // FP16 travels as its IEEE bit patterns: JavaScript has no half-precision array in Node 20.
  FP16: { kind: 'float', byteSize: 2, array: Uint16Array },
  FP32: { kind: 'float', byteSize: 4, array: Float32Array },
  FP64: { kind: 'float', byteSize: 8, array: Float64Array },
  BYTES: { kind: 'bytes', byteSize: 0, array: undefined },
};

/** Largest finite values; larger inputs are refused rather than left to round to Infinity or to this. */
export const FP16_MAX = 65504;
export const FP32_MAX = 3.4028234663852886e38;

const DATATYPE_SET: ReadonlySet<string> = new Set(DATATYPES);
export function isDatatype(x: unknown): x is Datatype {
  return typeof x === 'string' && DATATYPE_SET.has(x);
}

/** Number of elements of a shape; a scalar (empty shape) has one. */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (let i = 0; i < shape.length; i++) n *= shape[i];
  return n;
}

// Scratch views to read a double's bits without allocating; typed arrays use the platform's byte
// order, so the high word's index depends on it.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const HI = LITTLE_ENDIAN ? 1 : 0;
const LO = 1 - HI;
export const PLATFORM_LITTLE_ENDIAN = LITTLE_ENDIAN;

/** 2^(e-25) for half exponents e = 0..31, so decoding needs no Math.pow. */
const HALF_SCALE = new Float64Array(32);
for (let e = 0; e < 32; e++) HALF_SCALE[e] = 2 ** (e - 25);

export function fp16BitsToNumber(bits: number): number {
  const e = (bits >>> 10) & 0x1f;
  const m = bits & 0x3ff;
  const sign = bits & 0x8000 ? -1 : 1;
  if (e === 0) return sign * m * HALF_SCALE[1]; // subnormal: m * 2^-24
  if (e === 31) return m === 0 ? sign * Infinity : NaN;
  return sign * (m + 1024) * HALF_SCALE[e];
}

/**
 * Rounds to the nearest half, ties to even, straight from the double's bits: going through float32
 * first would round twice and can be off by one ulp on ties.
 */
export function numberToFp16Bits(x: number): number {
  f64[0] = x;
  const hi = u32[HI];
  const lo = u32[LO];
  const sign = (hi >>> 16) & 0x8000;
  const exp = (hi >>> 20) & 0x7ff;
  if (exp === 0x7ff) return sign | ((hi & 0xfffff) !== 0 || lo !== 0 ? 0x7e00 : 0x7c00);
  const e = exp - 1023;
  if (e > 15) return sign | 0x7c00;
  if (e >= -14) {
    // Keep the top 10 of 52 mantissa bits; the 42 dropped ones decide the rounding. A carry out of
    // the mantissa correctly bumps the exponent, and past 65504 lands exactly on Infinity.
    const m = (hi >>> 10) & 0x3ff;
    const rest = hi & 0x3ff;
    let bits = ((e + 15) << 10) | m;
    if (rest > 0x200 || (rest === 0x200 && (lo !== 0 || (m & 1) === 1))) bits++;
    return sign | bits;
  }
  // Half subnormals are multiples of 2^-24; scaling by a power of two is exact.
  const v = Math.abs(x) * 16777216;
  const f = Math.floor(v);
  const d = v - f;
  const m = d > 0.5 || (d === 0.5 && (f & 1) === 1) ? f + 1 : f;
  return sign | m;
}

/** The JSON spellings of non-finite floats (JSON itself cannot carry them). */
export function nonFiniteFromString(s: string): number | undefined {
  if (s === 'NaN') return NaN;
  if (s === 'Infinity') return Infinity;
  if (s === '-Infinity') return -Infinity;
  return undefined;
}

function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string') return nonFiniteFromString(v) ?? Number(v);
  return NaN;
}

function toBigInt(v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'boolean') return v ? 1n : 0n;
  // Validated values are integers or decimal-integer strings, both of which BigInt takes exactly.
  if (typeof v === 'number' || typeof v === 'string') return BigInt(v);
  throw new GatewayError('INTERNAL', 'non-integer value in a 64-bit integer tensor');
}

/**
 * Typed array (or `string[]` for BYTES) for already validated data. A typed array of the datatype's
 * own kind is returned as is; any other array is converted element by element.
 */
export function toTypedArray(datatype: Datatype, data: TensorData): TypedTensorData | string[] {
  const info = DATATYPE_INFO[datatype];
  const n = data.length;
  if (info.array === undefined) {
    if (ArrayBuffer.isView(data)) throw new GatewayError('INTERNAL', 'BYTES tensor given as a typed array');
    // Validation guarantees strings, so the plain array is reused rather than copied.
    return data as string[];
  }
  if (data instanceof info.array) return data;
  const src = data as ArrayLike<unknown>;
  switch (info.kind) {
    case 'int64': {
      const out = info.array === BigInt64Array ? new BigInt64Array(n) : new BigUint64Array(n);
      for (let i = 0; i < n; i++) out[i] = toBigInt(src[i]);
      return out;
    }
    case 'bool': {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = src[i] === true || (src[i] !== false && toNumber(src[i]) !== 0) ? 1 : 0;
      return out;
    }
    default: {
      if (datatype === 'FP16') {
        const out = new Uint16Array(n);
        for (let i = 0; i < n; i++) out[i] = numberToFp16Bits(toNumber(src[i]));
        return out;
      }
      const out = new info.array(n) as Exclude<TypedTensorData, BigInt64Array | BigUint64Array>;
      for (let i = 0; i < n; i++) out[i] = toNumber(src[i]);
      return out;
    }
  }
}

/** A float in JSON: non-finite values become the strings "NaN", "Infinity", "-Infinity". */
function jsonFloat(v: number): number | string {
  if (v - v === 0) return v; // false exactly for NaN and ±Infinity
  return v !== v ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
}

/**
 * JSON values for a response. 64-bit integers stay numbers while exact (|v| <= 2^53-1) and become
 * decimal strings beyond; BOOL becomes booleans; FP16 bits become numbers; non-finite floats become
 * "NaN"/"Infinity"/"-Infinity" because JSON cannot carry them. Plain arrays are already JSON values.
 */
export function toJsonData(datatype: Datatype, data: TensorData): unknown[] {
  if (!ArrayBuffer.isView(data)) return data as unknown[];
  const n = data.length;
  const out = new Array<unknown>(n);
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    // Reading the two 32-bit halves avoids creating a BigInt per element. The double sum is exact
    // below 2^53 and rounds monotonically above, so a safe integer result is the exact value.
    const words = data instanceof BigInt64Array
      ? new Int32Array(data.buffer, data.byteOffset, n * 2)
      : new Uint32Array(data.buffer, data.byteOffset, n * 2);
    for (let i = 0; i < n; i++) {
      const x = words[2 * i + HI] * 4294967296 + (words[2 * i + LO] >>> 0);
      out[i] = Number.isSafeInteger(x) ? x : data[i].toString();
    }
    return out;
  }
  const kind = DATATYPE_INFO[datatype].kind;
  if (kind === 'bool') {
    for (let i = 0; i < n; i++) out[i] = data[i] !== 0;
  } else if (datatype === 'FP16' && data instanceof Uint16Array) {
    for (let i = 0; i < n; i++) out[i] = jsonFloat(fp16BitsToNumber(data[i]));
  } else if (kind === 'float') {
    for (let i = 0; i < n; i++) out[i] = jsonFloat(data[i]);
  } else if (kind === 'bytes') {
    throw new GatewayError('INTERNAL', 'BYTES tensor given as a typed array');
  } else {
    for (let i = 0; i < n; i++) out[i] = data[i];
  }
  return out;
}
