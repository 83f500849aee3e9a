/**
 * Feature squeezing (Xu, Evans and Qi, NDSS 2018): an adversarial perturbation rides on detail a
 * model does not need, so removing that detail (fewer bits per value, a median filter over an
 * image) moves an adversarial input's prediction far more than a clean one's. This file makes the
 * squeezed copies of a request (`squeezeRequests`) and scores each row, per squeezer, by how far the
 * model's answer to its squeezed copy moved from its answer to the original (`squeezeScores`). The
 * guard policy runs the copies after the answer and compares each squeezer's score with that
 * squeezer's calibrated threshold (`squeezeFired`).
 *
 * Squeezers act on numeric inputs (FP32, FP64 and the integer datatypes); they refuse FP16, BOOL and
 * BYTES, which have no meaningful bit depth or neighbourhood here.
 */
import type { InferRequest, InferResponse, InferTensor, TensorData } from '../../adapters/adapter.js';
import type { SqueezeProfile, Squeezer } from './profile.js';

/** A value of validated tensor data as a number ("NaN" and "Infinity" strings included). */
function valueAt(data: TensorData, i: number): number {
  const v = data[i];
  return typeof v === 'number' ? v : Number(v);
}

function checkSqueezable(t: InferTensor): void {
  if (t.datatype === 'FP16' || t.datatype === 'BOOL' || t.datatype === 'BYTES') {
    throw new TypeError(`input "${t.name}" is ${t.datatype}: squeezers act on FP32, FP64 and integer inputs only`);
  }
}

/** Writable storage for `n` squeezed values of `datatype`: floats stay typed, integers are rounded. */
function outputArray(datatype: string, n: number): Float32Array | Float64Array | number[] {
  if (datatype === 'FP32') return new Float32Array(n);
  if (datatype === 'FP64') return new Float64Array(n);
  return new Array<number>(n).fill(0);
}

/** Integer datatypes (plain arrays from `outputArray`) take whole numbers: a bit-depth level may fall between. */
function roundIntegers(data: Float32Array | Float64Array | number[]): void {
  if (Array.isArray(data)) for (let i = 0; i < data.length; i++) data[i] = Math.round(data[i]);
}

/**
 * Reduces each value to `bits` bits over [min, max]: clamp, then round to the nearest of 2^bits
 * evenly spaced levels (bits 1 on [0, 1] is Xu et al.'s binarisation of MNIST).
 */
export function bitDepth(src: TensorData, from: number, count: number, bits: number, min: number, max: number, out: { [i: number]: number }, at: number): void {
  const levels = 2 ** bits - 1;
  const span = max - min;
  for (let i = 0; i < count; i++) {
    const x = valueAt(src, from + i);
    const c = x < min ? min : x > max ? max : x;
    // NaN stays NaN (a comparison with NaN is false), as the model would see it.
    out[at + i] = span > 0 ? min + (Math.round(((c - min) / span) * levels) / levels) * span : c;
  }
}

/**
 * A size×size median filter over the last two dimensions (height × width) of each image in
 * `src[from, from + count)`, edges replicated (scipy's mode `nearest`). The window spans offsets
 * −⌊size/2⌋ … size−1−⌊size/2⌋; the median is the element of rank ⌊size²/2⌋ (for an even window,
 * the upper of the two middle values, as scipy.ndimage.median_filter takes it).
 */
export function median(src: TensorData, from: number, count: number, height: number, width: number, size: number, out: { [i: number]: number }, at: number, scratch: Float64Array): void {
  const lo = Math.floor(size / 2);
  const window = size * size;
  const rank = window >> 1;
  const plane = height * width;
  for (let p = 0; p < count; p += plane) {
    const base = from + p;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let n = 0;
        for (let dy = -lo; dy < size - lo; dy++) {
          const yy = y + dy < 0 ? 0 : y + dy >= height ? height - 1 : y + dy;
          for (let dx = -lo; dx < size - lo; dx++) {
            const xx = x + dx < 0 ? 0 : x + dx >= width ? width - 1 : x + dx;
            // Insertion into the sorted prefix: windows are a handful of values.
            const v = valueAt(src, base + yy * width + xx);
            let j = n++;
            while (j > 0 && scratch[j - 1] > v) {
              scratch[j] = scratch[j - 1];
              j--;
            }
            scratch[j] = v;
          }
        }
        out[at + p + y * width + x] = scratch[rank];
      }
    }
  }
}

/** Writes `squeezer` applied to all of `t`'s values into `out` from `at`. */
function squeezeInto(squeezer: Squeezer, t: InferTensor, out: { [i: number]: number }, at: number, scratch: Float64Array): void {
  const n = t.data.length;
  if (squeezer.kind === 'bit-depth') {
    bitDepth(t.data, 0, n, squeezer.bits, squeezer.min, squeezer.max, out, at);
    return;
  }
  if (t.shape.length < 3) throw new TypeError(`a median squeezer needs an image input; "${t.name}" has shape [${t.shape.join(',')}]`);
  median(t.data, 0, n, t.shape[t.shape.length - 2], t.shape[t.shape.length - 1], squeezer.size, out, at, scratch);
}

/** The tensor's values repeated `times` times (the inputs a squeezer does not touch). */
function repeated(t: InferTensor, times: number): TensorData {
  const n = t.data.length;
  if (ArrayBuffer.isView(t.data)) {
    const src = t.data;
    const Ctor = src.constructor as new (length: number) => typeof src;
    const out = new Ctor(n * times);
    for (let s = 0; s < times; s++) (out as { set(a: typeof src, at: number): void }).set(src, s * n);
    return out;
  }
  const out = new Array<unknown>(n * times);
  for (let s = 0; s < times; s++) for (let i = 0; i < n; i++) out[s * n + i] = t.data[i];
  return out;
}

function squeezersOf(sq: SqueezeProfile, request: InferRequest): InferTensor[] {
  return sq.squeezers.map((s) => {
    const t = request.inputs.find((i) => i.name === s.input);
    if (t === undefined) throw new TypeError(`the request has no input "${s.input}" to squeeze`);
    checkSqueezable(t);
    return t;
  });
}

/**
 * The squeezed copies of `request`, asking only for the compared output. When the model's batch
 * dimension is dynamic: one request holding every squeezer's copy of every row, squeezer-major
 * (rows 0…N−1 squeezed by the first squeezer, then by the second, …), so the extra inference is one
 * call. Otherwise (a fixed batch, like the MNIST model's 1) one request per squeezer, in order.
 */
export function squeezeRequests(sq: SqueezeProfile, request: InferRequest, batchDynamic: boolean): InferRequest[] {
  const targets = squeezersOf(sq, request);
  const outputs = [{ name: sq.output }];
  const scratch = new Float64Array(Math.max(1, ...sq.squeezers.map((s) => (s.kind === 'median' ? s.size * s.size : 1))));
  const base = { outputs, ...(request.parameters === undefined ? {} : { parameters: request.parameters }) };
  if (!batchDynamic) {
    return sq.squeezers.map((s, k) => {
      const t = targets[k];
      const data = outputArray(t.datatype, t.data.length);
      squeezeInto(s, t, data, 0, scratch);
      roundIntegers(data);
      return { ...base, inputs: request.inputs.map((i) => (i === t ? { name: i.name, datatype: i.datatype, shape: i.shape, data } : i)) };
    });
  }
  const times = sq.squeezers.length;
  const inputs = request.inputs.map((input): InferTensor => {
    const shape = [input.shape[0] * times, ...input.shape.slice(1)];
    if (!targets.includes(input)) return { name: input.name, datatype: input.datatype, shape, data: repeated(input, times) };
    const n = input.data.length;
    const data = outputArray(input.datatype, n * times);
    for (let k = 0; k < times; k++) {
      if (targets[k] === input) squeezeInto(sq.squeezers[k], input, data, k * n, scratch);
      else for (let i = 0; i < n; i++) data[k * n + i] = valueAt(input.data, i);
    }
    roundIntegers(data);
    return { name: input.name, datatype: input.datatype, shape, data };
  });
  return [{ ...base, inputs }];
}

/** The compared output of a response; a backend that left it out cannot be scored. */
function outputOf(sq: SqueezeProfile, res: InferResponse): TensorData {
  const t = res.outputs.find((o) => o.name === sq.output);
  if (t === undefined) throw new TypeError(`the answer has no output "${sq.output}" to compare`);
  return t.data;
}

/** Row `r`'s probability vector of `k` classes into `out` (softmax first for logits). */
function probabilities(data: TensorData, r: number, k: number, logits: boolean, out: Float64Array): void {
  const from = r * k;
  if (!logits) {
    for (let j = 0; j < k; j++) out[j] = valueAt(data, from + j);
    return;
  }
  let max = -Infinity;
  for (let j = 0; j < k; j++) {
    const v = valueAt(data, from + j);
    out[j] = v;
    if (v > max) max = v;
  }
  let sum = 0;
  for (let j = 0; j < k; j++) {
    out[j] = Math.exp(out[j] - max);
    sum += out[j];
  }
  for (let j = 0; j < k; j++) out[j] /= sum;
}

/**
 * Per squeezer, per row of the original request: the L1 distance between the probability vector the
 * model gave the original row and the one it gave that row's squeezed copy (0: squeezing changed
 * nothing; 2: the probability moved entirely to other classes). `squeezed` are the answers to
 * `squeezeRequests`' requests, in order, in either layout (one squeezer-major batch, or one answer
 * per squeezer). The result is squeezer-major: `scores[k][r]`.
 */
export function squeezeScores(sq: SqueezeProfile, original: InferResponse, squeezed: readonly InferResponse[], rows: number): Float64Array[] {
  const orig = outputOf(sq, original);
  const k = orig.length / rows;
  if (!Number.isInteger(k) || k === 0) throw new TypeError(`output "${sq.output}" has ${orig.length} values for ${rows} rows`);
  const held = squeezed.reduce((n, res) => n + outputOf(sq, res).length / k, 0);
  if (held !== rows * sq.squeezers.length) throw new TypeError(`expected ${rows * sq.squeezers.length} squeezed rows, the answers hold ${held}`);
  const scores = sq.squeezers.map(() => new Float64Array(rows));
  const p = new Float64Array(k);
  const q = new Float64Array(k);
  let g = 0; // the squeezed row across all answers: squeezer ⌊g / rows⌋, original row g mod rows
  for (const res of squeezed) {
    const data = outputOf(sq, res);
    const count = data.length / k;
    for (let i = 0; i < count; i++, g++) {
      probabilities(orig, g % rows, k, sq.logits, p);
      probabilities(data, i, k, sq.logits, q);
      let l1 = 0;
      for (let j = 0; j < k; j++) l1 += Math.abs(p[j] - q[j]);
      // NaN (a model answering NaN) counts as the largest disagreement, never as none.
      scores[Math.floor(g / rows)][g % rows] = l1 !== l1 ? 2 : l1;
    }
  }
  return scores;
}

/** Whether any row's score under any squeezer is above that squeezer's threshold (`Calibration.squeeze`). */
export function squeezeFired(scores: readonly Float64Array[], thresholds: readonly number[]): boolean {
  if (thresholds.length !== scores.length) throw new TypeError(`${scores.length} squeezers, ${thresholds.length} thresholds`);
  return scores.some((s, k) => s.some((x) => x > thresholds[k]));
}

/** An answer's probability vectors, one per row (softmax applied for logits): for the borderline test. */
export function probabilityRows(sq: SqueezeProfile, answer: InferResponse): Float64Array[] {
  const data = outputOf(sq, answer);
  const t = answer.outputs.find((o) => o.name === sq.output);
  const rows = t?.shape[0] ?? 1;
  const k = data.length / rows;
  const out: Float64Array[] = [];
  for (let r = 0; r < rows; r++) {
    const p = new Float64Array(k);
    probabilities(data, r, k, sq.logits, p);
    out.push(p);
  }
  return out;
}
