/**
 * What stands between the gateway and one remote backend: its circuit breaker first (an open one
 * refuses at once, with nothing queued), then admission (a slot, or a bounded wait for one). A call
 * asks `enter` before it is sent and tells `leave` how it ended. The figures (in flight, queued,
 * refusals, the breaker's state) are read by the per-version view and the metrics; the events go
 * to the metrics as they happen.
 */
import { GatewayError } from '../gateway/errors.js';
import { Admission, type QueueShedReason } from './admission.js';
import { CircuitBreaker, type BreakerPass, type BreakerState, type CallOutcome } from './circuit-breaker.js';

export type { BreakerPass, BreakerState, CallOutcome } from './circuit-breaker.js';

/** Why a call was refused before it reached its backend (the metrics' `reason`). */
export type ShedReason = QueueShedReason | 'breaker_open';

/** Events of one served version's backend guard, as they happen (the metrics). */
export interface BackendGuardEvents {
  shed(reason: ShedReason): void;
  breakerChanged(to: BreakerState, from: BreakerState): void;
}

/** The same, for every version of a model table: bound to a version by `createAdapter`. */
export interface BackendEvents {
  backendShed(model: string, version: string, reason: ShedReason): void;
  backendBreakerChanged(model: string, version: string, to: BreakerState, from: BreakerState): void;
}

export interface BackendGuardOptions {
  readonly connections: number;
  readonly queue: number;
  readonly queueTimeoutMs: number;
  readonly breakerFailures: number;
  readonly breakerCooldownMs: number;
  readonly breakerMaxCooldownMs: number;
}

/** This replica's figures of one backend, since its version was loaded. */
export interface BackendGuardFigures {
  readonly inFlight: number;
  readonly queued: number;
  /** Calls refused with OVERLOADED (queue full, wait over) or BACKEND_UNAVAILABLE by the open breaker. */
  readonly shed: { readonly queueFull: number; readonly queueTimeout: number; readonly breakerOpen: number };
  readonly breaker: { readonly state: BreakerState; readonly opens: number; readonly rejected: number };
}

/** The cause of a refusal by an open breaker (it has no other: nothing was sent). */
const BREAKER_OPEN = Object.freeze(new Error('circuit breaker open'));

/** Whether an error is a refusal made to protect a backend: nothing was sent, nothing failed now. */
export function isShed(e: GatewayError): boolean {
  return e.code === 'OVERLOADED' || e.cause === BREAKER_OPEN;
}

export class BackendGuard {
  readonly #admission: Admission;
  readonly #breaker: CircuitBreaker;
  readonly #events: BackendGuardEvents | undefined;

  constructor(o: BackendGuardOptions, events?: BackendGuardEvents, now: () => number = Date.now) {
    this.#events = events;
    this.#admission = new Admission({
      limit: o.connections, queue: o.queue, queueTimeoutMs: o.queueTimeoutMs, now,
      onShed: events === undefined ? undefined : (reason) => events.shed(reason),
    });
    this.#breaker = new CircuitBreaker({
      failures: o.breakerFailures, cooldownMs: o.breakerCooldownMs, maxCooldownMs: o.breakerMaxCooldownMs, now,
      onChange: events === undefined ? undefined : (to, from) => events.breakerChanged(to, from),
    });
  }

  /**
   * May a call go? Its pass when it may go now, or a promise of it while it waits for a slot.
   * Throws (or rejects with) BACKEND_UNAVAILABLE while the breaker is open, OVERLOADED when there
   * is no slot in time. A pass must be handed back to `leave` exactly once.
   */
  enter(deadline: number, signal?: AbortSignal): BreakerPass | Promise<BreakerPass> {
    const pass = this.#breaker.admit();
    if (pass === undefined) throw this.#unavailable();
    let entered: true | Promise<void>;
    try {
      entered = this.#admission.enter(deadline, signal);
    } catch (e) {
      this.#breaker.record(pass, 'neutral');
      throw e;
    }
    if (entered === true) return pass;
    return entered.then(() => {
      // The breaker may have opened while this call waited: it would be one more call to a
      // backend already judged failing. (A probe goes: it is how the breaker learns.)
      if (pass === 'call' && this.#breaker.state !== 'closed') {
        this.#admission.leave();
        this.#breaker.refusedLate();
        throw this.#unavailable();
      }
      return pass;
    }, (e: unknown) => {
      this.#breaker.record(pass, 'neutral');
      throw e;
    });
  }

  /** A call that entered has ended, this way. */
  leave(pass: BreakerPass, outcome: CallOutcome): void {
    this.#admission.leave();
    this.#breaker.record(pass, outcome);
  }

  get breakerState(): BreakerState {
    return this.#breaker.state;
  }

  figures(): BackendGuardFigures {
    const a = this.#admission;
    const b = this.#breaker;
    return {
      inFlight: a.inFlight,
      queued: a.queued,
      shed: { queueFull: a.shedQueueFull, queueTimeout: a.shedQueueTimeout, breakerOpen: b.refused },
      breaker: { state: b.state, opens: b.opens, rejected: b.refused },
    };
  }

  /** Refuses what still waits (the adapter is closing). */
  close(): void {
    this.#admission.close();
  }

  #unavailable(): GatewayError {
    this.#events?.shed('breaker_open');
    const seconds = Math.max(1, Math.ceil(this.#breaker.retryAfterMs() / 1000));
    return new GatewayError('BACKEND_UNAVAILABLE', 'the backend is failing; calls are paused (circuit breaker open)', {
      cause: BREAKER_OPEN, headers: { 'retry-after': String(seconds) },
    });
  }
}
