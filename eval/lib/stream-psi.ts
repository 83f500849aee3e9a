/**
 * The true PSI of a stream's shift, as the drift runner reports it: a stream's rows (and the
 * gateway's answers to them) counted in the profile's drift bins (gateway/drift/bins.ts, the bins
 * the live monitor counts in), compared with the profile's reference counts. Computed by the runner
 * from what it sent, not read from the gateway, so it says how large the shift is whatever the
 * monitor concludes.
 *
 * PSI = Σ (q − p)·ln(q / p) over bins, p the reference's shares and q the stream's, each share
 * smoothed with a pseudo-count of 0.5 per bin, (count + 0.5) / (total + 0.5·bins), so a bin empty
 * on one side adds a large but finite term: the monitor's own definition (statistics.ts psi), called
 * here, so that the true PSI and the monitor's figures can never disagree on what PSI means. Bins empty on both sides
 * are left out: they say nothing about a shift, and smoothed they would not cancel when the two
 * totals differ (105 iris reference rows against a million requests: the empty `missing` bin alone
 * would add 0.04 to an unshifted stream's PSI).
 */
import { binCount, categoricalBin, categoryIndex, numericBin, type DriftBins, type DriftReference } from '../../gateway/drift/bins.js';
import { psi as monitorPsi } from '../../gateway/drift/statistics.js';
import type { Row } from './models.js';

/** PSI of live counts against reference counts over the same bins: the monitor's own (gateway/drift/statistics.ts). */
export function psi(reference: ArrayLike<number>, live: ArrayLike<number>): number {
  if (reference.length !== live.length) throw new Error(`psi: ${reference.length} reference bins but ${live.length} live bins`);
  return monitorPsi(reference, live);
}

/** One feature's or output's PSI. */
export interface NamedPsi {
  readonly name: string;
  readonly psi: number;
  readonly samples: number;
}

/** Bins a value into `b`'s counts: a closure per feature, built once. */
function binner(b: DriftBins): (v: unknown) => number {
  if (b.kind === 'numeric') return (v) => numericBin(b.edges, v);
  const index = categoryIndex(b.categories);
  return (v) => categoricalBin(index, b.categories.length, v);
}

/**
 * Counts a stream's rows and answers in the reference's bins. Rows hold the model's features in
 * `featureOrder` (eval/lib/models.ts featureNames); the reference's features are matched by name.
 */
export class StreamBins {
  readonly #ref: DriftReference;
  readonly #columns: number[];
  readonly #features: { bin: (v: unknown) => number; counts: Float64Array }[];
  readonly #outputs: { bin: (v: unknown) => number; counts: Float64Array }[];
  readonly #classBins: DriftBins | undefined;
  readonly #scoreBins: DriftBins | undefined;
  #rows = 0;
  #answers = 0;

  constructor(ref: DriftReference, featureOrder: readonly string[]) {
    this.#ref = ref;
    this.#columns = ref.features.map((f) => {
      const k = featureOrder.indexOf(f.name);
      if (k < 0) throw new Error(`the profile's drift reference has a feature ${f.name} the model's rows do not (${featureOrder.join(', ')})`);
      return k;
    });
    this.#features = ref.features.map((f) => ({ bin: binner(f), counts: new Float64Array(binCount(f)) }));
    this.#outputs = ref.outputs.map((o) => ({ bin: binner(o), counts: new Float64Array(binCount(o)) }));
    const out = ref.output?.name;
    this.#classBins = ref.outputs.find((o) => o.name === `${out}:class`);
    this.#scoreBins = ref.outputs.find((o) => o.name === `${out}:score`);
  }

  get rows(): number {
    return this.#rows;
  }

  addRow(row: Row): void {
    for (let i = 0; i < this.#features.length; i++) {
      const f = this.#features[i];
      f.counts[f.bin(row[this.#columns[i]])]++;
    }
    this.#rows++;
  }

  /**
   * Adds one row's class scores (the reference's `output`, probabilities or logits): the predicted
   * class to `<output>:class`, the top probability (softmax first for logits) to `<output>:score`.
   */
  addScores(scores: ArrayLike<number>): void {
    const output = this.#ref.output;
    if (output === undefined) return;
    let best = 0;
    for (let i = 1; i < scores.length; i++) if (scores[i] > scores[best]) best = i;
    let top = scores[best];
    if (output.logits) {
      let sum = 0;
      for (let i = 0; i < scores.length; i++) sum += Math.exp(scores[i] - scores[best]);
      top = 1 / sum;
    }
    const values: Record<string, unknown> = { [`${output.name}:class`]: String(best), [`${output.name}:score`]: top };
    this.#ref.outputs.forEach((o, i) => {
      const b = this.#outputs[i];
      b.counts[b.bin(values[o.name])]++;
    });
    this.#answers++;
  }

  /**
   * Adds the rows' class scores from an OIP infer response body (the reference output's data,
   * `classes` values per row); a response without that output adds nothing and returns false.
   */
  addResponse(body: unknown): boolean {
    const output = this.#ref.output;
    if (output === undefined || this.#classBins === undefined && this.#scoreBins === undefined) return false;
    const outputs = (body as { outputs?: unknown }).outputs;
    if (!Array.isArray(outputs)) return false;
    const t = outputs.find((o: { name?: unknown }) => o?.name === output.name) as { data?: unknown } | undefined;
    if (t === undefined || !Array.isArray(t.data) || t.data.length % output.classes !== 0) return false;
    const data = t.data as number[];
    for (let r = 0; r < data.length; r += output.classes) this.addScores(data.slice(r, r + output.classes));
    return true;
  }

  /** PSI of every feature, then every output (outputs with no answer counted are left out). */
  psi(): NamedPsi[] {
    const out: NamedPsi[] = this.#ref.features.map((f, i) => ({ name: f.name, psi: psi(f.counts, this.#features[i].counts), samples: this.#rows }));
    if (this.#answers > 0) this.#ref.outputs.forEach((o, i) => out.push({ name: o.name, psi: psi(o.counts, this.#outputs[i].counts), samples: this.#answers }));
    return out;
  }
}

/** The largest PSI of a list (the stream's true PSI: the shift's size on its most shifted feature or output). */
export function maxPsi(list: readonly NamedPsi[]): NamedPsi | undefined {
  let best: NamedPsi | undefined;
  for (const p of list) if (best === undefined || p.psi > best.psi) best = p;
  return best;
}
