/**
 * Agreement of a shadow answer with the primary's (gateway/shadow.ts): every output the primary
 * returned is in the shadow's answer with the same name and shape, and the same values: numbers
 * within 1e-6 absolute or 1e-6 relative, integers beyond 2^53 and BYTES exactly. Arrays are compared
 * as the adapters return them (typed or plain, flat), so answers of two adapter kinds compare too;
 * outputs only the shadow returned, and datatypes, are not compared (a model that answers FP64 where
 * it used to answer FP32 with the same values agrees). Both answers arrive trimmed to their
 * version's declared outputs (gateway/shadow.ts), so an output a backend adds is never compared.
 */
import type { InferResponse, InferTensor } from '../adapters/adapter.js';
import { fp16BitsToNumber, nonFiniteFromString } from '../adapters/tensors.js';

const ABS_TOLERANCE = 1e-6;
const REL_TOLERANCE = 1e-6;

/** A JSON or typed value as a number or an exact integer; undefined if it is neither. */
function scalar(v: unknown): number | bigint | undefined {
  switch (typeof v) {
    case 'number':
    case 'bigint':
      return v;
    case 'boolean':
      return v ? 1 : 0;
    case 'string':
      return nonFiniteFromString(v) ?? (/^-?\d{1,40}$/.test(v) ? BigInt(v) : undefined);
    default:
      return undefined;
  }
}

function closeEnough(a: number, b: number): boolean {
  if (a === b || (a !== a && b !== b)) return true; // equal, or both NaN
  if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
  const d = Math.abs(a - b);
  return d <= ABS_TOLERANCE || d <= REL_TOLERANCE * Math.max(Math.abs(a), Math.abs(b));
}

function sameValue(a: unknown, b: unknown, bytes: boolean): boolean {
  if (a === b) return true;
  if (bytes) return false;
  const x = scalar(a);
  const y = scalar(b);
  if (x === undefined || y === undefined) return false;
  if (typeof x === 'number' && typeof y === 'number') return closeEnough(x, y);
  // At least one exact integer (64-bit): equal only if both are the same integer.
  if (typeof x === 'number') return Number.isInteger(x) && BigInt(x) === y;
  if (typeof y === 'number') return Number.isInteger(y) && BigInt(y) === x;
  return x === y;
}

/** Element i as a value: FP16 typed arrays hold bit patterns, everything else holds values. */
function reader(t: InferTensor): (i: number) => unknown {
  const data = t.data as ArrayLike<unknown>;
  if (t.datatype === 'FP16' && t.data instanceof Uint16Array) {
    const bits = t.data;
    return (i) => fp16BitsToNumber(bits[i]);
  }
  return (i) => data[i];
}

function sameTensor(p: InferTensor, s: InferTensor): boolean {
  if (p.shape.length !== s.shape.length) return false;
  for (let d = 0; d < p.shape.length; d++) if (p.shape[d] !== s.shape[d]) return false;
  const n = p.data.length;
  if (s.data.length !== n) return false;
  const bytes = p.datatype === 'BYTES' || s.datatype === 'BYTES';
  const pa = reader(p);
  const sa = reader(s);
  for (let i = 0; i < n; i++) if (!sameValue(pa(i), sa(i), bytes)) return false;
  return true;
}

/** Whether the shadow's answer agrees with the primary's. */
export function agrees(primary: InferResponse, shadow: InferResponse): boolean {
  for (const p of primary.outputs) {
    const s = shadow.outputs.find((o) => o.name === p.name);
    if (s === undefined || !sameTensor(p, s)) return false;
  }
  return true;
}
