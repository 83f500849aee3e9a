/**
 * A drift reference compiled for counting (bins.ts says how one value falls into a bin): the monitor
 * and the profile builder add rows and model answers to a flat counts array laid out as the
 * features in profile order, then the outputs, each block `binCount(b)` long (`offsets[i]` is where
 * block i starts). Every lookup is prepared at compile time (edges, category maps, the class → bin
 * table), so counting a row or an answer allocates nothing: it runs for every sampled request.
 *
 * An answer row is a vector of class scores: probabilities, or logits (`DriftOutput.logits`, softmax
 * applied). Its class is the index of the largest score (the first on ties) and its score the top
 * probability. A row with a NaN counts as missing in both blocks; logits whose softmax is undefined
 * (an infinite logit) have a class but a missing score.
 */
import { binCount, categoricalBin, categoryIndex, numericBin, type DriftBins, type DriftReference } from './bins.js';
import type { RowValues } from '../../policies/guards/features.js';

/** A mutable counts array (Int32Array, Float64Array, number[] …). */
export interface Counts {
  [bin: number]: number;
  readonly length: number;
}

export interface CompiledDrift {
  /** Total bins over all blocks: the length a counts array needs. */
  readonly binsTotal: number;
  /** Where each block (features in order, then outputs) starts in the counts array. */
  readonly offsets: readonly number[];
  /** Adds 1 to one bin of every feature's block for this row (values in profile order). */
  addFeatures(row: RowValues, counts: Counts): void;
  /**
   * Adds 1 to the class bin and to the score bin of one answer row, `values[offset .. offset+width)`.
   * A reference without a class-score output has no output blocks: nothing is counted.
   */
  addOutputRow(values: ArrayLike<number>, offset: number, width: number, counts: Counts): void;
}

const NUMERIC = 0;
const CATEGORICAL = 1;

/** `${output}:class` and `${output}:score`, the names of a class-score output's two blocks. */
export function outputBinNames(output: string): { readonly class: string; readonly score: string } {
  return { class: `${output}:class`, score: `${output}:score` };
}

/** The class categories of an output of `classes` classes: "0" … "classes−1". */
export function classCategories(classes: number): string[] {
  return Array.from({ length: classes }, (_, j) => String(j));
}

/**
 * The top probability of one answer row (softmax first for logits); NaN when the row has a NaN or
 * its softmax is undefined. Its class is `argmaxAt`.
 */
export function topProbability(values: ArrayLike<number>, offset: number, width: number, logits: boolean): number {
  if (!(width > 0)) return NaN;
  let max = -Infinity;
  for (let j = 0; j < width; j++) {
    const v = values[offset + j];
    if (Number.isNaN(v)) return NaN;
    if (v > max) max = v;
  }
  if (!logits) return max;
  // softmax's top value: e^0 / Σ e^(x_j − max); an infinite max gives NaN (∞ − ∞).
  let sum = 0;
  for (let j = 0; j < width; j++) sum += Math.exp(values[offset + j] - max);
  return 1 / sum;
}

/** The index of the largest value of one answer row (the first on ties); −1 when the row has a NaN or no value. */
export function argmaxAt(values: ArrayLike<number>, offset: number, width: number): number {
  let best = -1;
  let max = -Infinity;
  for (let j = 0; j < width; j++) {
    const v = values[offset + j];
    if (Number.isNaN(v)) return -1;
    if (best < 0 || v > max) {
      max = v;
      best = j;
    }
  }
  return best;
}

/** Compiles `ref` for counting; throws when its output blocks do not match its output. */
export function compileDrift(ref: DriftReference): CompiledDrift {
  const n = ref.features.length;
  const kinds = new Uint8Array(n);
  const edges: (readonly number[])[] = new Array(n);
  const indexes: (ReadonlyMap<string, number> | undefined)[] = new Array(n);
  const sizes = new Int32Array(n);
  const offsets: number[] = [];
  let total = 0;
  const block = (b: DriftBins): void => {
    offsets.push(total);
    total += binCount(b);
  };
  ref.features.forEach((f, i) => {
    block(f);
    if (f.kind === 'numeric') {
      kinds[i] = NUMERIC;
      edges[i] = f.edges;
    } else {
      kinds[i] = CATEGORICAL;
      edges[i] = [];
      indexes[i] = categoryIndex(f.categories);
      sizes[i] = f.categories.length;
    }
  });
  const featureOffsets = Int32Array.from(offsets);

  let classOffset = -1;
  let scoreOffset = -1;
  let classBins = new Int32Array(0);
  let classOther = 0;
  let classMissing = 0;
  let scoreEdges: readonly number[] = [];
  const logits = ref.output?.logits === true;
  for (const o of ref.outputs) block(o);
  if (ref.output !== undefined) {
    const names = outputBinNames(ref.output.name);
    const c = ref.outputs.findIndex((o) => o.name === names.class);
    const s = ref.outputs.findIndex((o) => o.name === names.score);
    const cls = ref.outputs[c];
    const score = ref.outputs[s];
    if (cls?.kind !== 'categorical' || score?.kind !== 'numeric') throw new TypeError(`the drift reference of output "${ref.output.name}" needs a categorical block "${names.class}" and a numeric block "${names.score}"`);
    classOffset = offsets[n + c] as number;
    scoreOffset = offsets[n + s] as number;
    // Class j's bin, looked up once: its category's, or `other` for a class the reference does not name.
    const index = categoryIndex(cls.categories);
    classOther = cls.categories.length;
    classMissing = classOther + 1;
    classBins = Int32Array.from({ length: ref.output.classes }, (_, j) => index.get(String(j)) ?? classOther);
    scoreEdges = score.edges;
  }

  return {
    binsTotal: total,
    offsets: Object.freeze(offsets),
    addFeatures(row: RowValues, counts: Counts): void {
      for (let i = 0; i < n; i++) {
        const v = row[i];
        const bin = kinds[i] === NUMERIC ? numericBin(edges[i] as readonly number[], v) : categoricalBin(indexes[i] as ReadonlyMap<string, number>, sizes[i] as number, v);
        counts[(featureOffsets[i] as number) + bin]++;
      }
    },
    addOutputRow(values: ArrayLike<number>, offset: number, width: number, counts: Counts): void {
      if (classOffset < 0) return;
      const top = argmaxAt(values, offset, width);
      const classBin = top < 0 ? classMissing : top < classBins.length ? (classBins[top] as number) : classOther;
      counts[classOffset + classBin]++;
      counts[scoreOffset + numericBin(scoreEdges, topProbability(values, offset, width, logits))]++;
    },
  };
}
