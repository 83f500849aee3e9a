/**
 * The adversarial-perturbation guard (feature squeezing, Xu et al., NDSS 2018), run after the
 * answer: the model is run again on squeezed copies of the input (reduced bit depth, median
 * smoothing; squeeze.ts), in one batched call when the model's batch dimension is dynamic, and the
 * disagreement between the answer and each squeezed copy's answer is compared with that squeezer's
 * calibrated threshold in the profile. A perturbation crafted to flip the answer rarely survives the
 * squeezing; a natural input's answer barely moves.
 *
 * It costs extra inference, so it runs on a `sampleRate` share of requests, or (borderline > 0)
 * only when the answer's top two probabilities are closer than `borderline`. Its call is bounded by
 * `guards.timeoutMs` and by the request's own deadline, whichever comes first.
 */
import type { InferRequest, InferResponse } from '../../adapters/adapter.js';
import type { GuardsConfig } from '../../gateway/config.js';
import type { GuardEvents, GuardOutcome } from './guard-events.js';
import type { Profile } from './profile.js';
import { probabilityRows, squeezeFired, squeezeRequests, squeezeScores } from './squeeze.js';

export interface SqueezeCall {
  readonly model: string;
  readonly version: string;
  readonly guards: GuardsConfig;
  readonly profile: Profile | undefined;
  readonly request: InferRequest;
  readonly answer: InferResponse;
  /** Whether the model takes any batch size (one batched call) or a fixed one (one call per squeezer). */
  readonly batchDynamic: boolean;
  /** The request's deadline (ms since the epoch). */
  readonly deadline: number;
  /** Runs the served version on a request, by the given deadline. */
  run(request: InferRequest, deadline: number): Promise<InferResponse>;
}

export interface SqueezeDeps {
  readonly events: GuardEvents;
  /** Seconds the extra inference took, per sampled request (a histogram). */
  readonly timed?: (model: string, version: string, seconds: number) => void;
  readonly onError?: (model: string, e: unknown) => void;
  /** [0, 1): the sampling draw (Math.random by default; tests pass their own). */
  readonly random?: () => number;
}

/** The smallest gap, over rows, between an answer's two highest probabilities. */
function smallestMargin(probs: readonly Float64Array[]): number {
  let least = Infinity;
  for (const p of probs) {
    let a = -Infinity;
    let b = -Infinity;
    for (const x of p) {
      if (x > a) [a, b] = [x, a];
      else if (x > b) b = x;
    }
    least = Math.min(least, a - b);
  }
  return least;
}

export class SqueezeGuard {
  readonly #deps: SqueezeDeps;
  readonly #random: () => number;

  constructor(deps: SqueezeDeps) {
    this.#deps = deps;
    this.#random = deps.random ?? Math.random;
  }

  /** Whether this model's squeezing guard is on. */
  static on(g: GuardsConfig | undefined): boolean {
    const mode = g?.squeeze?.mode;
    return mode !== undefined && mode !== 'off';
  }

  /** The guard's verdict in its mode (pass, skipped, flag, reject, route or error); never throws. */
  async judge(c: SqueezeCall): Promise<GuardOutcome> {
    const cfg = c.guards.squeeze;
    const mode = cfg?.mode ?? 'off';
    if (mode === 'off') return 'skipped';
    const outcome = await this.#judge(c, cfg?.sampleRate ?? 1, cfg?.borderline ?? 0).catch((e: unknown) => {
      this.#deps.onError?.(c.model, e);
      return 'error' as const;
    });
    const reported: GuardOutcome = outcome === 'fired' ? mode : outcome;
    this.#deps.events.outcome(c.model, c.version, 'squeeze', reported);
    return reported;
  }

  async #judge(c: SqueezeCall, sampleRate: number, borderline: number): Promise<'fired' | 'pass' | 'skipped'> {
    const sq = c.profile?.squeeze;
    const thresholds = c.profile?.calibration.squeeze;
    if (sq === undefined || thresholds === undefined) throw new Error('the profile has no squeeze calibration');
    if (borderline > 0) {
      if (smallestMargin(probabilityRows(sq, c.answer)) >= borderline) return 'skipped';
    } else if (sampleRate < 1 && this.#random() >= sampleRate) {
      return 'skipped';
    }
    const started = performance.now();
    const deadline = Math.min(c.deadline, Date.now() + c.guards.timeoutMs);
    const requests = squeezeRequests(sq, c.request, c.batchDynamic);
    const answers = await Promise.all(requests.map((r) => c.run(r, deadline)));
    this.#deps.timed?.(c.model, c.version, (performance.now() - started) / 1000);
    return squeezeFired(squeezeScores(sq, c.answer, answers, c.request.inputs[0]?.shape[0] ?? 1), thresholds) ? 'fired' : 'pass';
  }
}
