/**
 * Per-version figures of this replica for the product owners' view (GET /admin/models/{m}):
 * requests, errors by code, latency percentiles and the distribution of predictions, so two arms
 * of a split can be compared at a glance. The fleet-wide view is the metrics (dashboards/).
 *
 * Client mistakes are counted apart (`clientErrors`) and kept out of the error rate and the latency
 * figures: a misbehaving client must not make a healthy version look broken (nor its quick 400s make
 * a slow version look fast). `errors` are failures of the model or its backend (errors.ts faultOf);
 * failures of the gateway itself (its store, its shutdown) are `gatewayErrors`. `errorRate` is
 * errors / (answers + errors): of the requests that reached the version, the share that failed.
 *
 * An observer (gateway/observers.ts), after the answer: a few counter increments, one bucket of a
 * fixed log-scale latency histogram, and one pass over the first output's rows. Prediction values are counted, never kept
 * one by one: at most MAX_CLASSES distinct labels per version, the rest fall into `other`. A
 * subject who opted out of tracking is counted (requests, errors, latency) but their predictions
 * are not (the observer phase hands no answer): labels are derived from the payload.
 */
import type { InferResponse, InferTensor } from '../../adapters/adapter.js';
import type { Fault } from '../errors.js';
import type { Observer, RequestEnd } from '../observers.js';

/** Latency buckets: upper bounds in ms, 1.25× apart from 0.05 ms to ~60 s (the rollout's merged histograms use them too). */
export const BOUNDS: Float64Array = (() => {
  const out: number[] = [];
  for (let b = 0.05; b < 60_000; b *= 1.25) out.push(b);
  out.push(Number.POSITIVE_INFINITY);
  return Float64Array.from(out);
})();

/** Labels counted per version; a continuous output would otherwise grow without bound. */
export const MAX_CLASSES = 32;
const OTHER = 'other';

class VersionFigures {
  requests = 0;
  answers = 0;
  errors = 0;
  clientErrors = 0;
  gatewayErrors = 0;
  /** Requests in the latency histogram (all but client errors). */
  timed = 0;
  readonly errorsByCode = new Map<string, number>();
  readonly latency = new Uint32Array(BOUNDS.length);
  latencySumMs = 0;
  readonly predictions = new Map<string, number>();
  /** Name of the output the predictions were read from (the first one returned). */
  output: string | undefined;
}

export interface VersionSummary {
  /** Every request routed to the version, whatever became of it. */
  readonly requests: number;
  /** Failures of the model or its backend. */
  readonly errors: number;
  /** errors / (answers + errors). */
  readonly errorRate: number;
  /** Requests refused for the client's own mistake (4xx): not the version's doing. */
  readonly clientErrors: number;
  /** Failures of the gateway itself (its store, its shutdown). */
  readonly gatewayErrors: number;
  readonly errorsByCode: Readonly<Record<string, number>>;
  readonly latencyMs: { readonly mean: number; readonly p50: number; readonly p90: number; readonly p99: number } | null;
  /** Output the predictions are read from, and its value (or arg-max) counts. */
  readonly predictions: { readonly output: string; readonly counts: Readonly<Record<string, number>> } | null;
}

/** The q-quantile of a histogram over BOUNDS (the upper bound of the bucket it falls in). */
export function percentile(hist: ArrayLike<number>, total: number, q: number): number {
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i];
    if (seen >= rank) return i === hist.length - 1 ? BOUNDS[i - 1] : BOUNDS[i];
  }
  return BOUNDS[BOUNDS.length - 2];
}

function count(f: VersionFigures, label: string): void {
  const m = f.predictions;
  const n = m.get(label);
  if (n !== undefined) m.set(label, n + 1);
  else if (m.size < MAX_CLASSES) m.set(label, 1);
  else m.set(OTHER, (m.get(OTHER) ?? 0) + 1);
}

/**
 * Labels of a classifier's first output: the value itself for labels (integers, BOOL, BYTES), the
 * arg-max of each row for scores (floating point, [batch, classes]). A float per row (a
 * regression, a single probability) has no label and is not counted.
 */
function countPredictions(f: VersionFigures, t: InferTensor): void {
  const data = t.data as ArrayLike<unknown>;
  const isFloat = t.datatype === 'FP32' || t.datatype === 'FP64' || t.datatype === 'FP16';
  if (!isFloat) {
    for (let i = 0; i < data.length; i++) count(f, String(data[i]));
    return;
  }
  const classes = t.shape.length >= 2 ? t.shape[t.shape.length - 1] : 1;
  if (classes < 2) return;
  for (let row = 0; row + classes <= data.length; row += classes) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (Number(data[row + c]) > Number(data[row + best])) best = c;
    count(f, String(best));
  }
}

export class ArmFigures {
  readonly #models = new Map<string, Map<string, VersionFigures>>();
  readonly #since = new Date().toISOString();

  #of(model: string, version: string): VersionFigures {
    let versions = this.#models.get(model);
    if (versions === undefined) this.#models.set(model, (versions = new Map()));
    let f = versions.get(version);
    if (f === undefined) versions.set(version, (f = new VersionFigures()));
    return f;
  }

  /** One finished inference. `model` and `version` come from the model table, never the client. */
  record(model: string, version: string, ms: number, fault: Fault | undefined, code: string | undefined, response: InferResponse | undefined): void {
    if (version === '') return;
    const f = this.#of(model, version);
    f.requests++;
    if (code !== undefined) f.errorsByCode.set(code, (f.errorsByCode.get(code) ?? 0) + 1);
    if (fault === 'client') {
      f.clientErrors++;
      return;
    }
    f.timed++;
    f.latencySumMs += ms;
    let i = 0;
    while (ms > BOUNDS[i]) i++;
    f.latency[i]++;
    if (fault === 'backend') {
      f.errors++;
      return;
    }
    if (fault === 'gateway') {
      f.gatewayErrors++;
      return;
    }
    f.answers++;
    const first = response?.outputs[0];
    if (first === undefined) return;
    if (f.output === undefined) f.output = first.name;
    if (f.output === first.name) countPredictions(f, first);
  }

  /** The observer that feeds these figures. */
  observer(): Observer {
    return {
      name: 'per-version figures',
      onEnd: (e: RequestEnd) => this.record(e.model, e.version, e.ms, e.fault, e.code, e.answer),
    };
  }

  /** The figures of every version of `model` this replica has served since it started. */
  summary(model: string): { readonly since: string; readonly versions: Readonly<Record<string, VersionSummary>> } {
    const versions: Record<string, VersionSummary> = {};
    for (const [v, f] of this.#models.get(model) ?? []) {
      const n = f.timed;
      const reached = f.answers + f.errors;
      const round = (x: number) => Math.round(x * 100) / 100;
      versions[v] = {
        requests: f.requests,
        errors: f.errors,
        errorRate: reached === 0 ? 0 : round(f.errors / reached),
        clientErrors: f.clientErrors,
        gatewayErrors: f.gatewayErrors,
        errorsByCode: Object.fromEntries(f.errorsByCode),
        latencyMs: n === 0 ? null : { mean: round(f.latencySumMs / n), p50: round(percentile(f.latency, n, 0.5)), p90: round(percentile(f.latency, n, 0.9)), p99: round(percentile(f.latency, n, 0.99)) },
        predictions: f.output === undefined ? null : { output: f.output, counts: Object.fromEntries(f.predictions) },
      };
    }
    return { since: this.#since, versions };
  }

  /**
   * Forgets the figures of models and versions a reloaded configuration no longer serves (so a
   * model removed, then added again, starts afresh, and memory follows the configuration).
   */
  retain(serving: ReadonlyMap<string, { readonly versions: ReadonlyMap<string, unknown> }>): void {
    for (const [model, versions] of this.#models) {
      const m = serving.get(model);
      if (m === undefined) {
        this.#models.delete(model);
        continue;
      }
      for (const v of versions.keys()) if (!m.versions.has(v)) versions.delete(v);
    }
  }
}
