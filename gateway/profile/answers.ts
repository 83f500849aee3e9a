/**
 * The model's answers to the reference rows, asked for once by `breakwater profile` and shared by
 * the two parts of the profile that read them: the squeeze calibration (build.ts squeezeCalibration,
 * which compares them with the answers to squeezed copies) and the drift reference (drift-reference.ts,
 * which bins their class and top probability). Only a model with a class-score output (a [N, classes]
 * probability or logit tensor) is asked.
 */
import type { Adapter, InferRequest, InferResponse, ModelMetadata, TensorMetadata } from '../../adapters/adapter.js';
import { requestFromRows, type RowValues } from '../../policies/guards/features.js';
import type { ProfileInput } from '../../policies/guards/profile.js';

/** Rows per inference call when the model's batch dimension is dynamic. */
const BATCH_ROWS = 256;

/** An output that holds a probability (or logit) vector per row: floating point, [batch, classes ≥ 2]. */
export function scoreOutput(outputs: readonly TensorMetadata[]): TensorMetadata | undefined {
  const candidates = outputs.filter((o) => o.datatype.startsWith('FP') && o.shape.length === 2 && o.shape[1] >= 2);
  return candidates.find((o) => /prob/i.test(o.name)) ?? candidates[0];
}

/** Whether every row is a probability vector (values in [0, 1] summing to 1); otherwise they are logits. */
export function areProbabilities(rows: readonly Float64Array[]): boolean {
  return rows.every((v) => {
    let sum = 0;
    for (const x of v) {
      if (!(x >= 0 && x <= 1)) return false;
      sum += x;
    }
    return Math.abs(sum - 1) < 1e-3;
  });
}

/** One inference call: the rows' request and the model's answer. */
export interface Answered {
  readonly request: InferRequest;
  readonly response: InferResponse;
  readonly rows: number;
}

/** The model's answers to the rows of the data, on its class-score output. */
export interface ModelAnswers {
  readonly output: string;
  /** Its number of classes (the output's second dimension). */
  readonly classes: number;
  /** Whether the output holds logits (some row is not a probability vector). */
  readonly logits: boolean;
  /** The model's batch dimension (−1: dynamic): squeezed copies are sent in the same layout. */
  readonly batch: number;
  /** The calls, in row order. */
  readonly calls: readonly Answered[];
  /** The output's vector per answered row, in row order. */
  readonly rows: readonly Float64Array[];
}

/**
 * Runs the model on `rows`, asking for `output` only. A fixed batch dimension b is honoured with
 * calls of exactly b rows (rows that do not fill the last call are left out).
 */
async function answer(adapter: Adapter, batch: number, inputs: readonly ProfileInput[], rows: readonly RowValues[], output: string, timeoutMs: number): Promise<Answered[]> {
  const size = batch > 0 ? batch : BATCH_ROWS;
  const out: Answered[] = [];
  for (let at = 0; at + (batch > 0 ? size : 1) <= rows.length; at += size) {
    const chunk = rows.slice(at, at + size);
    const request = { ...requestFromRows(inputs, chunk), outputs: [{ name: output }] };
    const response = await adapter.infer(request, { deadline: Date.now() + timeoutMs, requestId: `profile-${at}` });
    out.push({ request, response, rows: chunk.length });
  }
  return out;
}

/** The rows of `output` in the answers, one vector per row. */
function outputRows(answers: readonly Answered[], output: string): Float64Array[] {
  return answers.flatMap((a) => {
    const t = a.response.outputs.find((o) => o.name === output);
    if (t === undefined) throw new Error(`the model did not return output "${output}"`);
    const data = t.data as ArrayLike<unknown>;
    const width = data.length / a.rows;
    return Array.from({ length: a.rows }, (_, r) => Float64Array.from({ length: width }, (_, j) => Number(data[r * width + j])));
  });
}

/** The model's answers to `rows` on its class-score output; undefined when it has none. */
export async function modelAnswers(adapter: Adapter, metadata: ModelMetadata, inputs: readonly ProfileInput[], rows: readonly RowValues[], timeoutMs: number): Promise<ModelAnswers | undefined> {
  const output = scoreOutput(metadata.outputs);
  if (output === undefined) return undefined;
  const batch = metadata.inputs[0]?.shape[0] ?? -1;
  const calls = await answer(adapter, batch, inputs, rows, output.name, timeoutMs);
  const vectors = outputRows(calls, output.name);
  return { output: output.name, classes: output.shape[1] as number, logits: !areProbabilities(vectors), batch, calls, rows: vectors };
}
