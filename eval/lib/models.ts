/**
 * The three models the evaluation serves, and how one row of features becomes an OIP v2 infer
 * request and back. A row holds one value per feature (each element of each input tensor, in input
 * order, then element order: the feature numbering of policies/guards/profile.ts); a missing float
 * value is null, sent as the JSON string "NaN".
 */
import type { OipRequest, OipTensor } from './sets.js';

export type Value = number | string | null;
export type Row = Value[];

export interface InputSpec {
  readonly name: string;
  readonly datatype: 'FP32' | 'INT64' | 'BYTES';
  /** The shape of one row (the tensor's shape without the batch dimension). */
  readonly rowShape: readonly number[];
  /** Feature names, one per element (CSV column names of the reference data). */
  readonly features: readonly string[];
}

export interface ModelSpec {
  readonly name: 'titanic' | 'iris' | 'mnist';
  /** The model file under the shared assets' models/ folder. */
  readonly file: string;
  readonly inputs: readonly InputSpec[];
  /** The output holding the class scores, and whether they are logits (softmax applied) or probabilities. */
  readonly output: string;
  readonly logits: boolean;
  /** The largest batch the model takes (MNIST's graph is fixed at 1). */
  readonly maxBatch: number;
  /** Whether NaN reaches the model (the Titanic graph imputes missing ages and fares). */
  readonly nonFinite: boolean;
}

const MNIST_PIXELS = Array.from({ length: 784 }, (_, i) => `Input3[${i}]`);

export const TITANIC: ModelSpec = {
  name: 'titanic',
  file: 'titanic_logreg_nozipmap.onnx',
  inputs: [
    { name: 'pclass', datatype: 'INT64', rowShape: [1], features: ['pclass'] },
    { name: 'sex', datatype: 'BYTES', rowShape: [1], features: ['sex'] },
    { name: 'age', datatype: 'FP32', rowShape: [1], features: ['age'] },
    { name: 'fare', datatype: 'FP32', rowShape: [1], features: ['fare'] },
    { name: 'embarked', datatype: 'BYTES', rowShape: [1], features: ['embarked'] },
  ],
  output: 'probabilities',
  logits: false,
  maxBatch: 1024,
  nonFinite: true,
};

export const IRIS: ModelSpec = {
  name: 'iris',
  file: 'iris_mlp_dynamic.onnx',
  inputs: [{ name: 'input', datatype: 'FP32', rowShape: [4], features: ['input[0]', 'input[1]', 'input[2]', 'input[3]'] }],
  output: 'output',
  logits: true,
  maxBatch: 1024,
  nonFinite: false,
};

export const MNIST: ModelSpec = {
  name: 'mnist',
  file: 'mnist_cntk_opset7.onnx',
  inputs: [{ name: 'Input3', datatype: 'FP32', rowShape: [1, 28, 28], features: MNIST_PIXELS }],
  output: 'Plus214_Output_0',
  logits: true,
  maxBatch: 1,
  nonFinite: false,
};

export const MODELS: readonly ModelSpec[] = [TITANIC, IRIS, MNIST];

export function modelSpec(name: string): ModelSpec {
  const spec = MODELS.find((m) => m.name === name);
  if (spec === undefined) throw new Error(`no model named ${name}`);
  return spec;
}

/** Every feature name, in feature order. */
export function featureNames(spec: ModelSpec): string[] {
  return spec.inputs.flatMap((i) => i.features);
}

/** A value as JSON carries it: strings for BYTES, and "NaN" (missing), "Infinity", "-Infinity" for non-finite floats. */
function wireValue(input: InputSpec, v: Value): number | string {
  if (input.datatype === 'BYTES') return String(v);
  if (v === null) return 'NaN';
  return typeof v === 'number' && !Number.isFinite(v) ? String(v) : v;
}

/** An infer request body for these rows (one batch; the caller keeps within `maxBatch`). */
export function requestOf(spec: ModelSpec, rows: readonly Row[]): OipRequest {
  let first = 0;
  const inputs: OipTensor[] = spec.inputs.map((input) => {
    const width = input.features.length;
    const data: (number | string)[] = [];
    for (const row of rows) for (let k = 0; k < width; k++) data.push(wireValue(input, row[first + k]));
    first += width;
    return { name: input.name, datatype: input.datatype, shape: [rows.length, ...input.rowShape], data };
  });
  return { inputs };
}

/** The rows of a request (the inverse of requestOf; "NaN" becomes null, other non-finite strings stay numbers). */
export function rowsOf(spec: ModelSpec, request: OipRequest): Row[] {
  const byName = new Map(request.inputs.map((t) => [t.name, t]));
  const n = request.inputs[0]?.shape[0] ?? 0;
  const rows: Row[] = Array.from({ length: n }, () => []);
  for (const input of spec.inputs) {
    const t = byName.get(input.name);
    if (t === undefined) throw new Error(`request has no input ${input.name}`);
    const width = input.features.length;
    for (let r = 0; r < n; r++) {
      for (let k = 0; k < width; k++) {
        const v = t.data[r * width + k];
        if (input.datatype === 'BYTES') rows[r].push(String(v));
        else if (v === 'NaN') rows[r].push(null);
        else if (typeof v === 'string') rows[r].push(Number(v));
        else rows[r].push(v as number);
      }
    }
  }
  return rows;
}

/** A row as the model sees it, as a string key (equality between sets and the reference): floats at FP32 precision. */
export function rowKey(row: readonly Value[]): string {
  return JSON.stringify(row.map((v) => (typeof v !== 'number' ? v : Number.isFinite(v) ? Math.fround(v) : String(v))));
}

/** Class probabilities from the model's output values for one row. */
export function probabilities(spec: ModelSpec, scores: readonly number[]): number[] {
  if (!spec.logits) return scores.slice();
  const max = Math.max(...scores);
  const e = scores.map((s) => Math.exp(s - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

export function argmax(xs: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}
