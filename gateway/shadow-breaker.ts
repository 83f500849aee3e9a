/**
 * The shadow's circuit breaker, one per model (as Envoy's outlier detection ejects a host): after
 * `suspendAfter` copies in a row end in an error or a timeout, no copy of that model is sent for a
 * cool-down (1 s, doubling on each re-opening up to 30 s). The first copy after it is a probe: its
 * failure re-opens the breaker at once, an answer closes it. A dead shadow then costs the gateway a
 * few failed calls a second instead of one per mirrored request.
 */

export const FIRST_COOLDOWN_MS = 1000;
export const MAX_COOLDOWN_MS = 30_000;

export class ShadowBreaker {
  readonly #now: () => number;
  /** Copies in a row that failed. */
  #failures = 0;
  /** When the current suspension ends (0: none yet), and its length. */
  #openUntil = 0;
  #cooldownMs = 0;

  /** `now`: the clock in ms (a test's fake one, or Date.now). */
  constructor(now: () => number) {
    this.#now = now;
  }

  /** Whether copies are suspended now. */
  isOpen(): boolean {
    return this.#openUntil !== 0 && this.#now() < this.#openUntil;
  }

  /**
   * A copy failed: `after` in a row (or one probe after a suspension) suspend copies. Returns the
   * length of the suspension this failure started, if it started one; `after` 0 never suspends.
   */
  failed(after: number): number | undefined {
    if (after === 0) return undefined;
    this.#failures++;
    const now = this.#now();
    if (this.#failures < after || now < this.#openUntil) return undefined;
    this.#cooldownMs = Math.min(MAX_COOLDOWN_MS, this.#cooldownMs === 0 ? FIRST_COOLDOWN_MS : this.#cooldownMs * 2);
    this.#openUntil = now + this.#cooldownMs;
    // A probe's failure re-opens at once: keep the count at the threshold.
    this.#failures = after - 1;
    return this.#cooldownMs;
  }

  /** A copy was answered: the breaker closes. Returns whether it had been suspending copies. */
  answered(): boolean {
    const wasSuspending = this.#cooldownMs !== 0;
    this.#failures = 0;
    this.#cooldownMs = 0;
    this.#openUntil = 0;
    return wasSuspending;
  }
}
