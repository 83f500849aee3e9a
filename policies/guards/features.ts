/**
 * Features: the per-row values every guard reads. A request's tensors (or a CSV's cells) become one
 * `RowValues` per batch row, one entry per feature in profile order (profile.ts: inputs in order,
 * then each tensor element row-major). The same conversion serves the request path (the guards),
 * `breakwater profile` (the reference data) and the evaluation, so a value means the same everywhere.
 *
 * Missing is `null`: NaN in a float tensor (the form models that impute take, like the Titanic
 * pipeline), an empty string in a BYTES tensor, an empty CSV cell. ±Infinity stays a number (the
 * contract calls it non-finite).
 */
import type { Datatype, InferRequest, InferTensor, TensorMetadata } from '../../adapters/adapter.js';
import type { ProfileInput } from './profile.js';

/** One batch row's features: a number, a string (BYTES) or null (missing). */
export type RowValues = (number | string | null)[];

/** The part of a profile the conversion needs (a profile being built has no more yet). */
export interface FeatureLayout {
  readonly inputs: readonly ProfileInput[];
}

/** An input whose row is an image: at least two dimensions of 8 or more (e.g. [1, 28, 28]). */
export function isImageInput(input: Pick<ProfileInput, 'rowShape'>): boolean {
  return input.rowShape.filter((d) => d >= 8).length >= 2;
}

/**
 * The profile's inputs from a model's metadata: each tensor's first dimension is the batch, the rest
 * is one row. A row dimension the model leaves dynamic cannot be profiled element by element.
 */
export function profileInputs(tensors: readonly TensorMetadata[]): ProfileInput[] {
  let first = 0;
  return tensors.map((t) => {
    if (t.shape.length === 0) throw new Error(`input "${t.name}" is a scalar: it has no batch dimension to profile rows along`);
    const rowShape = t.shape.slice(1);
    if (rowShape.some((d) => d < 0)) throw new Error(`input "${t.name}" has a dynamic dimension beyond the batch (shape [${t.shape.join(', ')}]): its features cannot be numbered`);
    const featureCount = rowShape.reduce((n, d) => n * d, 1);
    const input: ProfileInput = { name: t.name, datatype: t.datatype, rowShape, firstFeature: first, featureCount };
    first += featureCount;
    return input;
  });
}

/** Feature names of an input: the input's own name for one element per row, else `name[i]` (row-major). */
export function featureNames(input: Pick<ProfileInput, 'name' | 'featureCount'>): string[] {
  if (input.featureCount === 1) return [input.name];
  return Array.from({ length: input.featureCount }, (_, i) => `${input.name}[${i}]`);
}

/** Number of features of a layout. */
export function featureCount(layout: FeatureLayout): number {
  let n = 0;
  for (const i of layout.inputs) n += i.featureCount;
  return n;
}

/** IEEE half bits → number (FP16 tensors travel as their bit patterns). */
function halfToNumber(bits: number): number {
  const e = (bits >>> 10) & 0x1f;
  const m = bits & 0x3ff;
  const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m === 0 ? Infinity : NaN) : (m + 1024) * 2 ** (e - 25);
  return bits & 0x8000 ? -v : v;
}

/** A numeric tensor element as a feature value: NaN → null (missing); JSON's "NaN"/"Infinity" spellings read. */
function numericValue(datatype: Datatype, v: unknown, fp16Bits: boolean): number | null {
  let x: number;
  if (typeof v === 'number') x = fp16Bits ? halfToNumber(v) : v;
  else if (typeof v === 'bigint') x = Number(v);
  else if (typeof v === 'boolean') x = v ? 1 : 0;
  else if (typeof v === 'string') x = v === 'NaN' ? NaN : v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : Number(v);
  else x = NaN;
  return x !== x ? null : datatype === 'BOOL' ? (x !== 0 ? 1 : 0) : x;
}

/** Copies one tensor's elements into the rows' feature slots [first, first + count). */
function fill(rows: RowValues[], tensor: InferTensor, first: number, count: number): void {
  const data = tensor.data as ArrayLike<unknown>;
  if (tensor.datatype === 'BYTES') {
    for (let r = 0; r < rows.length; r++) {
      const row = rows[r];
      for (let j = 0; j < count; j++) {
        const v = data[r * count + j];
        row[first + j] = typeof v === 'string' && v !== '' ? v : null;
      }
    }
    return;
  }
  const fp16Bits = tensor.datatype === 'FP16' && data instanceof Uint16Array;
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r];
    for (let j = 0; j < count; j++) row[first + j] = numericValue(tensor.datatype, data[r * count + j], fp16Bits);
  }
}

/**
 * The feature values of each batch row of a request already validated against the model (names,
 * datatypes, shapes). An input the layout has and the request lacks leaves its features missing.
 */
export function featureRows(layout: FeatureLayout, request: InferRequest): RowValues[] {
  const n = request.inputs[0]?.shape[0] ?? 0;
  const width = featureCount(layout);
  const rows: RowValues[] = new Array(n);
  for (let r = 0; r < n; r++) rows[r] = new Array<number | string | null>(width).fill(null);
  for (const input of layout.inputs) {
    const tensor = request.inputs.find((t) => t.name === input.name);
    if (tensor !== undefined) fill(rows, tensor, input.firstFeature, input.featureCount);
  }
  return rows;
}

/** How CSV columns name an input's features: input name → column names, one per feature in order. */
export type ColumnMap = Readonly<Record<string, readonly string[]>>;

/**
 * The columns of each input: `map` if it names the input, else the input's feature names (profile.ts:
 * the input's name for one element per row, `name[i]` otherwise). Throws naming what is missing.
 */
export function csvColumns(inputs: readonly ProfileInput[], header: readonly string[], map: ColumnMap = {}): number[] {
  const at = new Map<string, number>();
  header.forEach((h, i) => {
    if (!at.has(h)) at.set(h, i);
  });
  const out: number[] = [];
  for (const input of inputs) {
    const names = map[input.name] ?? featureNames(input);
    if (names.length !== input.featureCount) {
      throw new Error(`input "${input.name}" has ${input.featureCount} features per row; the column map names ${names.length}`);
    }
    const missing = names.filter((n) => !at.has(n));
    if (missing.length > 0) {
      const shown = missing.length > 4 ? `${missing.slice(0, 4).join(', ')} … (${missing.length} in all)` : missing.join(', ');
      throw new Error(`the header has no column ${shown} for input "${input.name}"`);
    }
    for (const n of names) out.push(at.get(n) as number);
  }
  return out;
}

/** A CSV cell as a feature value of a tensor of `datatype`: empty → null; a number that is not one → an error. */
function cellValue(datatype: string, cell: string, where: () => string): number | string | null {
  if (datatype === 'BYTES') return cell === '' ? null : cell;
  const t = cell.trim();
  if (t === '' || t === 'NaN') return null;
  if (datatype === 'BOOL' && (t === 'true' || t === 'false')) return t === 'true' ? 1 : 0;
  const x = t === 'Infinity' ? Infinity : t === '-Infinity' ? -Infinity : Number(t);
  if (x !== x) throw new Error(`${where()}: "${cell.length > 32 ? `${cell.slice(0, 32)}…` : cell}" is not a number (the input is ${datatype})`);
  return x;
}

/**
 * Feature rows from CSV records (a header, then records of cells): each input's features read from
 * their columns (csvColumns); other columns are ignored.
 */
export function rowsFromCsv(inputs: readonly ProfileInput[], header: readonly string[], records: readonly (readonly string[])[], map: ColumnMap = {}): RowValues[] {
  const columns = csvColumns(inputs, header, map);
  const types: string[] = [];
  for (const input of inputs) for (let j = 0; j < input.featureCount; j++) types.push(input.datatype);
  return records.map((cells, r) => columns.map((c, f) => cellValue(types[f], cells[c] ?? '', () => `record ${r + 1}, column "${header[c]}"`)));
}

/**
 * The inverse of featureRows: an infer request holding `rows` (a batch of rows.length). Missing
 * becomes NaN in a float tensor and "" in a BYTES tensor; an integer or BOOL tensor cannot carry a
 * missing value (an error naming the feature).
 */
export function requestFromRows(inputs: readonly ProfileInput[], rows: readonly RowValues[]): InferRequest {
  return {
    inputs: inputs.map((input) => {
      const data: (number | string)[] = new Array(rows.length * input.featureCount);
      const float = input.datatype.startsWith('FP');
      for (let r = 0; r < rows.length; r++) {
        for (let j = 0; j < input.featureCount; j++) {
          const v = rows[r][input.firstFeature + j];
          if (v !== null) data[r * input.featureCount + j] = v;
          else if (input.datatype === 'BYTES') data[r * input.featureCount + j] = '';
          else if (float) data[r * input.featureCount + j] = NaN;
          else throw new Error(`row ${r + 1}: input "${input.name}" (${input.datatype}) cannot carry a missing value`);
        }
      }
      return { name: input.name, datatype: input.datatype as Datatype, shape: [rows.length, ...input.rowShape], data };
    }),
  };
}
