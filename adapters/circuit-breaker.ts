/**
 * A backend's circuit breaker (as Envoy's outlier detection, or Hystrix): after `failures` calls
 * in a row end in a backend fault, calls are refused at once for a cool-down instead of each
 * waiting for the same failure; once it is over, exactly one call goes through as a probe
 * (half-open) while the others are still refused. The probe's success closes the breaker; its
 * failure opens it again for a cool-down twice as long (up to `maxCooldownMs`). A failing backend
 * then gets a handful of calls per cool-down instead of one per request, and the time to recover.
 *
 * What counts is the caller's to say (`record`): a failure is the backend's fault (unreachable,
 * reset, timeout, 5xx, a broken answer), a success is any answer that shows it serving (4xx
 * included: it judged the request), and a neutral end (the caller gave up, the call never went)
 * says nothing. Only a probe's outcome moves a breaker that is not closed: calls started before it
 * opened and ending late say nothing about the backend now.
 *
 * (The shadow's breaker, gateway/shadow-breaker.ts, is simpler on purpose: a copy is never
 * refused to anyone, so it needs no half-open state nor a single probe.)
 */

export type BreakerState = 'closed' | 'open' | 'half-open';
/** The gauge value of each state (metrics: breakwater.backend.breaker_state). */
export const BREAKER_STATE_VALUE: Readonly<Record<BreakerState, number>> = { closed: 0, 'half-open': 1, open: 2 };

/** What a call may do: go as usual, go as the one probe, or nothing (refused: `undefined`). */
export type BreakerPass = 'call' | 'probe';
export type CallOutcome = 'success' | 'failure' | 'neutral';

export interface BreakerOptions {
  /** Backend faults in a row that open the breaker; 0: it never opens. */
  readonly failures: number;
  /** The first cool-down, in ms. */
  readonly cooldownMs: number;
  /** The longest cool-down, in ms (each failed probe doubles it up to this). */
  readonly maxCooldownMs: number;
  /** The clock in ms (Date.now, or a test's). */
  readonly now?: () => number;
  /** Told of every change of state. */
  readonly onChange?: (to: BreakerState, from: BreakerState) => void;
}

export class CircuitBreaker {
  readonly #threshold: number;
  readonly #firstCooldownMs: number;
  readonly #maxCooldownMs: number;
  readonly #now: () => number;
  readonly #onChange: ((to: BreakerState, from: BreakerState) => void) | undefined;
  #state: BreakerState = 'closed';
  /** Backend faults in a row (closed). */
  #failures = 0;
  /** When the cool-down ends (open), and its length. */
  #openUntil = 0;
  #cooldownMs = 0;
  /** Whether the probe is out (half-open). */
  #probing = false;
  #opens = 0;
  #refused = 0;

  constructor(o: BreakerOptions) {
    this.#threshold = o.failures;
    this.#firstCooldownMs = o.cooldownMs;
    this.#maxCooldownMs = Math.max(o.cooldownMs, o.maxCooldownMs);
    this.#now = o.now ?? Date.now;
    this.#onChange = o.onChange;
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** Times it opened (from closed, or again after a failed probe). */
  get opens(): number {
    return this.#opens;
  }

  /** Calls refused while it was open or probing. */
  get refused(): number {
    return this.#refused;
  }

  /** Whether a call may go now; `undefined`: refused (and counted). */
  admit(): BreakerPass | undefined {
    if (this.#state === 'closed') return 'call';
    if (this.#state === 'open') {
      if (this.#now() < this.#openUntil) {
        this.#refused++;
        return undefined;
      }
      this.#to('half-open');
    }
    if (this.#probing) {
      this.#refused++;
      return undefined;
    }
    this.#probing = true;
    return 'probe';
  }

  /** The ms until a refused call is worth retrying (the cool-down left; a probe's wait). */
  retryAfterMs(): number {
    return this.#state === 'open' ? Math.max(0, this.#openUntil - this.#now()) : this.#firstCooldownMs;
  }

  /** A call let through before the breaker opened was refused after all (it had waited for a slot). */
  refusedLate(): void {
    this.#refused++;
  }

  /** How a call that `admit()` let through ended. */
  record(pass: BreakerPass, outcome: CallOutcome): void {
    if (pass === 'probe') {
      this.#probing = false;
      if (this.#state !== 'half-open') return;
      if (outcome === 'success') {
        this.#failures = 0;
        this.#cooldownMs = 0;
        this.#to('closed');
      } else if (outcome === 'failure') {
        this.#open(Math.min(this.#maxCooldownMs, this.#cooldownMs * 2));
      }
      // Neutral: the next call probes instead.
      return;
    }
    if (this.#state !== 'closed') return;
    if (outcome === 'success') this.#failures = 0;
    else if (outcome === 'failure' && this.#threshold > 0 && ++this.#failures >= this.#threshold) this.#open(this.#firstCooldownMs);
  }

  #open(cooldownMs: number): void {
    this.#cooldownMs = cooldownMs;
    this.#openUntil = this.#now() + cooldownMs;
    this.#failures = 0;
    this.#opens++;
    this.#to('open');
  }

  #to(state: BreakerState): void {
    const from = this.#state;
    this.#state = state;
    this.#onChange?.(state, from);
  }
}
