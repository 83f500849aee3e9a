/**
 * Shadow traffic (`models.<m>.traffic.shadow`): a sampled copy of a request is sent to another
 * version, its answer compared with the primary's and thrown away. The traffic policy decides which
 * requests are mirrored (ChainOutcome.shadow); this file sends the copies, one ShadowMirror per
 * process.
 *
 * The primary never notices: `mirror()` returns nothing to wait for and throws nothing; every
 * failure of the copy (backend down or slow, version missing, a bug here) is caught and counted.
 * Copies are bounded per model (`maxConcurrent` in flight on this replica; past it a copy is
 * dropped, never queued) and by their own deadline (`timeoutMs`, enforced by the adapter like the
 * primary's). In `after` mode a copy starts only once the primary's answer has been sent, so it
 * never competes with it; `parallel` starts it with the primary (comparable latency, shared backend
 * time). A copy holds the model table the primary used until it ends, so a reload cannot close the
 * shadow's adapter under it.
 *
 * Beside it: a shadow that keeps failing is suspended by its breaker (shadow-breaker.ts; suspended
 * copies are counted as dropped, and as `suspended`), the answers are compared by shadow-compare.ts,
 * and the figures per model are counted in a ShadowTally (shadow-figures.ts).
 *
 * Both answers are compared as a client would receive them (gateway/declared-outputs.ts): the
 * primary's trimmed to the outputs its version declares, the shadow's to those the shadow version
 * declares, both to the request's selection. An output only a backend adds is neither compared nor
 * a disagreement; the shadow's undeclared ones are counted against the shadow version like the
 * primary's.
 */
import type { Logger } from 'pino';
import type { Adapter, InferRequest, InferResponse, ModelMetadata } from '../adapters/adapter.js';
import { NO_SHADOW, type ShadowTarget } from '../policies/policy.js';
import { minimiseOutputs, undeclaredOutputs } from './declared-outputs.js';
import { isGatewayError } from './errors.js';
import { ShadowBreaker } from './shadow-breaker.js';
import { agrees } from './shadow-compare.js';
import { ShadowTally, type ShadowFigures } from './shadow-figures.js';
import type { GatewayMetrics, ShadowOutcome } from './telemetry/metrics.js';
import { validateAgainstMetadata } from './validate-request.js';

/** What the mirror needs of a model table (adapters/registry.ts ModelTable satisfies it). */
export interface ShadowTable {
  acquire(): void;
  release(): void;
  readonly models: ReadonlyMap<string, { readonly versions: ReadonlyMap<string, ShadowVersion> }>;
}

export interface ShadowVersion {
  /** Undefined until the version's backend has answered once (MODEL_NOT_READY for a primary). */
  readonly metadata: ModelMetadata | undefined;
  readonly adapter: Pick<Adapter, 'infer'>;
}

/** One mirrored request, as the infer handler knows it once the primary call has started. */
export interface MirrorCall {
  /** The model's name in the table (never the client's string: it becomes a metric attribute). */
  readonly model: string;
  /** The version serving the primary. */
  readonly version: string;
  /** The parsed request, already checked against the primary version's metadata. */
  readonly request: InferRequest;
  readonly target: ShadowTarget;
  /** The caller's OPT_OUT bits. */
  readonly optOuts: number;
  /** The table the primary is served from: held until the copy ends, so a reload cannot close its adapter. */
  readonly table: ShadowTable;
  /** The primary's answer (in flight or settled), started at `primaryStarted` (performance.now()). */
  readonly primary: Promise<InferResponse>;
  readonly primaryStarted: number;
  /**
   * Registers a callback for when the primary's answer has been sent to the client; `after` mode
   * starts the copy then. Called during mirror(). Without it the copy starts once the primary settles.
   */
  readonly onResponded?: (done: () => void) => void;
  readonly requestId: string;
  /** The model's `allowEmptyBatch`, so the copy is checked as the primary was. */
  readonly allowEmptyBatch?: boolean;
}

type ShadowMetrics = Pick<GatewayMetrics, 'recordShadow'> & Partial<Pick<GatewayMetrics, 'recordOutputsDropped'>>;

export interface ShadowMirrorOptions {
  readonly metrics?: ShadowMetrics;
  /** Backend failures of copies are logged at debug; failures of the mirror itself at warn. */
  readonly log?: Logger;
  /** The breaker's clock (ms); for tests. */
  readonly now?: () => number;
  /** The kill switch: a version it stops gets no copy, even one decided before the kill arrived. */
  readonly isKilled?: (model: string, version: string) => boolean;
  /**
   * Both answers of a compared pair, as compared (a rollout's comparison copies count their classes:
   * gateway/rollout/comparisons.ts). Called after the tally; what it throws is caught and logged.
   */
  readonly onCompared?: (model: string, primary: InferResponse, shadow: InferResponse) => void;
}

interface ModelState {
  /** Copies of this model in flight here, whatever their target. */
  inFlight: number;
  tally: ShadowTally;
  breaker: ShadowBreaker;
}

type Timed = { readonly ok: true; readonly response: InferResponse; readonly ms: number } | { readonly ok: false; readonly ms: number };

type ShadowResult =
  | { readonly kind: 'answered'; readonly response: InferResponse; readonly ms: number }
  | { readonly kind: 'failed'; readonly outcome: 'error' | 'timeout'; readonly ms: number | undefined; readonly error: unknown }
  | { readonly kind: 'dropped' }
  | { readonly kind: 'suspended' };

const DROPPED: ShadowResult = Object.freeze({ kind: 'dropped' });
const SUSPENDED: ShadowResult = Object.freeze({ kind: 'suspended' });

function timed(p: Promise<InferResponse>, started: number): Promise<Timed> {
  return p.then(
    (response) => ({ ok: true, response, ms: performance.now() - started }),
    () => ({ ok: false, ms: performance.now() - started }),
  );
}

/**
 * The primary's answer sent, or `ms` passed: a client slow to read its answer must not hold a copy
 * (and the model table it holds) back for ever. The backend call is over by then either way.
 */
function sentOrLate(sent: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
    timer.unref();
  });
  return Promise.race([sent, late]).finally(() => clearTimeout(timer));
}

export class ShadowMirror {
  readonly #models = new Map<string, ModelState>();
  readonly #metrics: ShadowMetrics | undefined;
  readonly #log: Logger | undefined;
  readonly #now: () => number;
  readonly #isKilled: ((model: string, version: string) => boolean) | undefined;
  readonly #onCompared: ShadowMirrorOptions['onCompared'];
  /** Mirrors not yet ended (waiting for the primary, or in flight). */
  #pending = 0;
  #idle: (() => void)[] = [];

  constructor(opts: ShadowMirrorOptions = {}) {
    this.#metrics = opts.metrics;
    this.#log = opts.log;
    this.#now = opts.now ?? Date.now;
    this.#isKilled = opts.isKilled;
    this.#onCompared = opts.onCompared;
  }

  /** Mirrors one request; returns at once and never throws. */
  mirror(call: MirrorCall): void {
    let tally: ShadowTally | undefined;
    try {
      const { model, target } = call;
      const state = this.#stateFor(model, target);
      tally = state.tally;
      // The chain clears the shadow of such callers already; a copy must never slip through regardless.
      if ((call.optOuts & NO_SHADOW) !== 0) {
        tally.optedOut++;
        this.#record(model, target.version, 'skipped', undefined);
        return;
      }
      if (target.version === call.version) return; // a version never shadows itself
      this.#begin(call, state, tally);
    } catch (e) {
      if (tally !== undefined) tally.errors++;
      this.#record(call.model, call.target.version, 'error', undefined);
      this.#log?.warn({ err: e, model: call.model }, 'shadow mirror failed');
    }
  }

  /** Figures for `model` on this replica, or undefined if it was never mirrored here. */
  figures(model: string): ShadowFigures | undefined {
    const state = this.#models.get(model);
    return state?.tally.figures(state.inFlight, state.breaker.isOpen());
  }

  /** Resolves once no mirror is waiting or in flight (tests; a shutdown that wants the figures complete). */
  idle(): Promise<void> {
    if (this.#pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #stateFor(model: string, target: ShadowTarget): ModelState {
    let state = this.#models.get(model);
    if (state === undefined) {
      state = { inFlight: 0, tally: new ShadowTally(target.version, target.mode), breaker: new ShadowBreaker(this.#now) };
      this.#models.set(model, state);
    } else if (state.tally.version !== target.version || state.tally.mode !== target.mode) {
      // A new comparison: copies still in flight for the old target finish into the old tally.
      state.tally = new ShadowTally(target.version, target.mode);
      state.breaker = new ShadowBreaker(this.#now);
    }
    return state;
  }

  #begin(call: MirrorCall, state: ModelState, tally: ShadowTally): void {
    call.table.acquire();
    this.#pending++;
    let primary: Promise<Timed>;
    let responded: Promise<void> | undefined;
    let shadow: Promise<ShadowResult> | undefined;
    try {
      primary = timed(call.primary, call.primaryStarted);
      if (call.target.mode === 'parallel') {
        shadow = this.#send(call, state, tally);
      } else if (call.onResponded !== undefined) {
        let done!: () => void;
        responded = new Promise<void>((resolve) => (done = resolve));
        call.onResponded(done);
      }
    } catch (e) {
      this.#end(call);
      throw e;
    }
    this.#complete(call, state, tally, primary, responded, shadow)
      .catch((e: unknown) => {
        tally.errors++;
        this.#record(call.model, call.target.version, 'error', undefined);
        this.#log?.warn({ err: e, model: call.model }, 'shadow mirror failed');
      })
      .finally(() => this.#end(call))
      .catch(() => undefined);
  }

  async #complete(
    call: MirrorCall,
    state: ModelState,
    tally: ShadowTally,
    primaryP: Promise<Timed>,
    responded: Promise<void> | undefined,
    shadowP: Promise<ShadowResult> | undefined,
  ): Promise<void> {
    const { model } = call;
    const version = call.target.version;
    if (shadowP === undefined) {
      // after: nothing to compare with a failed primary, so nothing is sent.
      const p = await primaryP;
      if (!p.ok) {
        tally.primaryFailed++;
        this.#record(model, version, 'skipped', undefined);
        return;
      }
      if (responded !== undefined) await sentOrLate(responded, call.target.timeoutMs);
      shadowP = this.#send(call, state, tally);
    }
    const s = await shadowP;
    if (s.kind === 'dropped' || s.kind === 'suspended') {
      tally.dropped++;
      if (s.kind === 'suspended') tally.suspended++;
      this.#record(model, version, 'dropped', undefined);
      return;
    }
    const seconds = s.ms === undefined ? undefined : s.ms / 1000;
    if (s.kind === 'failed') {
      if (s.outcome === 'timeout') tally.timeouts++;
      else tally.errors++;
      this.#record(model, version, s.outcome, seconds);
      this.#log?.debug({ model, version, code: isGatewayError(s.error) ? s.error.code : undefined }, 'shadow call failed');
      return;
    }
    const p = await primaryP;
    if (!p.ok) {
      tally.primaryFailed++;
      this.#record(model, version, 'skipped', seconds);
      return;
    }
    const primaryMd = call.table.models.get(model)?.versions.get(call.version)?.metadata;
    const primary = primaryMd === undefined ? p.response : minimiseOutputs(p.response, primaryMd, call.request);
    const agreed = agrees(primary, s.response);
    if (agreed) tally.agreed++;
    else tally.disagreed++;
    tally.shadowMs += s.ms;
    tally.primaryMs += p.ms;
    this.#record(model, version, agreed ? 'agree' : 'disagree', seconds);
    this.#onCompared?.(model, primary, s.response);
  }

  /** Starts the copy now, if there is room; never rejects. */
  #send(call: MirrorCall, state: ModelState, tally: ShadowTally): Promise<ShadowResult> {
    const { target } = call;
    if (state.inFlight >= target.maxConcurrent) return Promise.resolve(DROPPED);
    if (state.breaker.isOpen()) return Promise.resolve(SUSPENDED);
    // Checked when the copy would leave (after the primary's answer in `after` mode), not only when
    // the request was routed: a kill that arrived in between stops it.
    if (this.#isKilled?.(call.model, target.version) === true) return Promise.resolve(DROPPED);
    const sv = call.table.models.get(call.model)?.versions.get(target.version);
    let deadline: number;
    let started: number;
    let answer: Promise<InferResponse>;
    let md: ModelMetadata;
    try {
      if (sv === undefined) throw new Error(`shadow version ${target.version} is not served`);
      if (sv.metadata === undefined) throw new Error(`shadow version ${target.version} is not ready`);
      md = sv.metadata;
      // Nothing reaches a backend unchecked: the request was checked against the primary's metadata.
      validateAgainstMetadata(call.request, md, call.allowEmptyBatch);
      deadline = Date.now() + target.timeoutMs;
      started = performance.now();
      answer = sv.adapter.infer(call.request, { deadline, requestId: `${call.requestId}-shadow` });
    } catch (error) {
      return Promise.resolve({ kind: 'failed', outcome: 'error', ms: undefined, error });
    }
    state.inFlight++;
    tally.sent++;
    return answer.then(
      (response): ShadowResult => {
        state.inFlight--;
        const ms = performance.now() - started;
        // An adapter that cannot be interrupted (onnx) may answer past the deadline: still a timeout.
        if (Date.now() > deadline) {
          this.#failed(call.model, state, target.suspendAfter);
          return { kind: 'failed', outcome: 'timeout', ms, error: undefined };
        }
        this.#answered(call.model, state);
        const minimised = minimiseOutputs(response, md, call.request);
        if (minimised !== response) this.#dropped(call.model, target.version, undeclaredOutputs(response, md));
        return { kind: 'answered', response: minimised, ms };
      },
      (error: unknown): ShadowResult => {
        state.inFlight--;
        this.#failed(call.model, state, target.suspendAfter);
        const outcome = isGatewayError(error) && error.code === 'BACKEND_TIMEOUT' ? 'timeout' : 'error';
        return { kind: 'failed', outcome, ms: performance.now() - started, error };
      },
    );
  }

  /** A copy failed: its breaker may suspend the shadow. */
  #failed(model: string, state: ModelState, after: number): void {
    const suspendedMs = state.breaker.failed(after);
    if (suspendedMs !== undefined) this.#log?.warn({ model, version: state.tally.version, suspendedMs }, 'shadow copies keep failing; suspended');
  }

  /** A copy was answered: its breaker closes. */
  #answered(model: string, state: ModelState): void {
    if (state.breaker.answered()) this.#log?.info({ model, version: state.tally.version }, 'shadow answers again; copies resume');
  }

  #end(call: MirrorCall): void {
    try {
      call.table.release();
    } finally {
      if (--this.#pending === 0) {
        const waiting = this.#idle;
        this.#idle = [];
        for (const resolve of waiting) resolve();
      }
    }
  }

  #dropped(model: string, version: string, count: number): void {
    if (count === 0) return;
    try {
      this.#metrics?.recordOutputsDropped?.(model, version, count);
    } catch {
      // telemetry never breaks a mirror
    }
  }

  #record(model: string, version: string, outcome: ShadowOutcome, seconds: number | undefined): void {
    try {
      this.#metrics?.recordShadow(model, version, outcome, seconds);
    } catch {
      // telemetry never breaks a request, nor a mirror
    }
  }
}
