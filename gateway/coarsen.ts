/**
 * An answer made less useful for copying the model (the extraction guard's `coarsen` response,
 * policies/guards/input-guards.ts): scores rounded to a few decimals, or each score vector replaced
 * by its label. Model extraction fits a copy to the scores; a rounded score or a bare label carries
 * far less of the decision surface, while a legitimate caller still gets its decision.
 *
 * Only FP32 and FP64 outputs change. `labelOnly` turns an output of shape [N, K] (K ≥ 2) into its
 * argmax per row, INT64 of shape [N], under the same name; other float outputs are rounded.
 */
import type { InferResponse, InferTensor } from '../adapters/adapter.js';
import type { Coarsen } from '../policies/guards/input-guards.js';

// FP16 travels as bit patterns (adapters/tensors.ts) and is left as it is.
const FLOAT = new Set(['FP32', 'FP64']);

function rounded(t: InferTensor, decimals: number): InferTensor {
  const f = 10 ** decimals;
  const data = Float64Array.from(t.data as ArrayLike<number>, (x) => Math.round(x * f) / f);
  return { ...t, data: t.datatype === 'FP64' ? data : Float32Array.from(data) };
}

function labels(t: InferTensor): InferTensor {
  const [n, k] = t.shape as [number, number];
  const src = t.data as ArrayLike<number>;
  const out = new BigInt64Array(n);
  for (let r = 0; r < n; r++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (src[r * k + j] > src[r * k + best]) best = j;
    out[r] = BigInt(best);
  }
  return { name: t.name, datatype: 'INT64', shape: [n], data: out, ...(t.parameters === undefined ? {} : { parameters: t.parameters }) };
}

export function coarsenAnswer(answer: InferResponse, c: Coarsen): InferResponse {
  let changed = false;
  const outputs = answer.outputs.map((t) => {
    if (!FLOAT.has(t.datatype)) return t;
    changed = true;
    if (c.labelOnly && t.shape.length === 2 && (t.shape[1] ?? 0) >= 2) return labels(t);
    return rounded(t, c.decimals);
  });
  return changed ? { ...answer, outputs } : answer;
}
