/**
 * The observer phase: what runs once a prediction request has ended, however it ended (answered,
 * refused by a policy, failed at the backend). Metrics, per-version figures and the access log are
 * observers; drift sampling, extraction detection, canary figures, tracing and per-prediction audit
 * plug in here too, instead of each wedging itself into the handler.
 *
 * Two rules hold for every observer, enforced here once rather than trusted to each of them:
 * - Isolation, as OpenTelemetry's multi span processor isolates its processors: an observer that
 *   throws (or rejects) never touches the response, which has already been decided, nor the
 *   observers after it. Failures are logged, at most once a minute per observer, with a count.
 * - Retention (gateway/retention.ts): the payload and the answer reach observers only when the
 *   caller did not opt out of tracking. For such a caller an observer sees codes, model, version,
 *   timings and counts: nothing derived from what they sent.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Logger } from 'pino';
import type { InferRequest, InferResponse } from '../adapters/adapter.js';
import type { Annotations, VersionView } from '../policies/policy.js';
import type { Principal } from '../policies/principal.js';
import type { ErrorCode, Fault } from './errors.js';
import { optOutsRetainPayload } from './retention.js';

/** One ended prediction request, as observers see it. */
export interface RequestEnd {
  readonly requestId: string;
  /** Wall-clock time the request arrived (ms since the epoch). */
  readonly startedAt: number;
  /** Time from arrival to the end of the handler, in ms. */
  readonly ms: number;
  /** The model as the table names it, or UNKNOWN_MODEL: never a client's string. */
  readonly model: string;
  /** The version that served (or was to serve) it; '' when it was refused before routing. */
  readonly version: string;
  /** Why that version (x-route-reason); '' when refused before routing. */
  readonly reason: string;
  readonly principal: Principal | undefined;
  readonly status: number;
  /** The catalogue code of a failure; undefined for an answer. */
  readonly code: ErrorCode | undefined;
  /** Whose fault the failure was (errors.ts faultOf); undefined for an answer. */
  readonly fault: Fault | undefined;
  /** Rows asked for (the batch dimension); 0 when the body was never read. */
  readonly rows: number;
  /** The caller's OPT_OUT bits. */
  readonly optOuts: number;
  readonly annotations: Readonly<Partial<Annotations>> | undefined;
  /** The served version's facts (metadata, artefacts), when one was chosen. */
  readonly served: VersionView | undefined;
  /** The validated request: undefined when it was never parsed or the caller opted out of tracking. */
  readonly payload: InferRequest | undefined;
  /**
   * The answer as the client received it (declared outputs only, gateway/declared-outputs.ts):
   * undefined on failure or when the caller opted out of tracking.
   */
  readonly answer: InferResponse | undefined;
  /** Outputs the backend answered that the model does not declare, dropped from the answer (0 as a rule). */
  readonly droppedOutputs: number;
  /** The request's logger (it carries the request id). */
  readonly log: FastifyBaseLogger;
}

export interface Observer {
  /** Names the observer in failure logs. */
  readonly name: string;
  /** Must not block: anything slow is queued or batched by the observer itself. */
  onEnd(end: RequestEnd): void | Promise<void>;
}

/** Failures of one observer are logged at most this often (with how many there were). */
const FAILURE_LOG_INTERVAL_MS = 60_000;

interface Failures {
  count: number;
  lastLoggedAt: number;
}

export class Observers {
  readonly #list: readonly Observer[];
  readonly #log: Logger;
  readonly #failures = new Map<string, Failures>();

  constructor(observers: readonly Observer[], log: Logger) {
    this.#list = Object.freeze([...observers]);
    this.#log = log;
  }

  get names(): readonly string[] {
    return this.#list.map((o) => o.name);
  }

  /** Hands `end` to every observer, in order; never throws. */
  end(end: RequestEnd): void {
    const seen = optOutsRetainPayload(end.optOuts) || (end.payload === undefined && end.answer === undefined)
      ? end
      : { ...end, payload: undefined, answer: undefined };
    const list = this.#list;
    for (let i = 0; i < list.length; i++) {
      const o = list[i];
      try {
        const pending = o.onEnd(seen);
        if (pending !== undefined) pending.catch((e: unknown) => this.#failed(o, e));
      } catch (e) {
        this.#failed(o, e);
      }
    }
  }

  #failed(o: Observer, err: unknown): void {
    let f = this.#failures.get(o.name);
    if (f === undefined) this.#failures.set(o.name, (f = { count: 0, lastLoggedAt: -Infinity }));
    f.count++;
    const now = Date.now();
    if (now - f.lastLoggedAt < FAILURE_LOG_INTERVAL_MS) return;
    this.#log.warn({ err, observer: o.name, failures: f.count }, 'an observer failed; no request was affected');
    f.lastLoggedAt = now;
    f.count = 0;
  }
}
