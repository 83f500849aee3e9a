/**
 * Admission to one backend: at most `limit` calls in flight, then a bounded FIFO queue with a
 * bounded wait; past either, the call is refused at once with 503 OVERLOADED and `Retry-After`.
 * Without it, calls past a pool's sockets wait inside undici until their deadline and fail with a
 * 504 after seconds, holding the client, the gateway's memory and the backend's backlog all along:
 * a backend that cannot keep up is told so in milliseconds instead (as Envoy's circuit-breaking
 * thresholds, max_requests and max_pending_requests, do).
 *
 * The fast path (a free slot, nobody queued) is a counter increment: no allocation, no timer. A
 * queued call costs one small entry and its promise; one timer serves the whole queue, armed for
 * the earliest expiry (a queue wait is bounded by `queueTimeoutMs` and by the call's own deadline,
 * whichever comes first). A caller whose signal aborts leaves the queue at once.
 */
import { GatewayError } from '../gateway/errors.js';
import { abortError } from './http-exchange.js';

/** Why a call was refused without reaching the backend (metrics attribute values). */
export type QueueShedReason = 'queue_full' | 'queue_timeout';

export interface AdmissionOptions {
  /** Calls in flight at most (the pool's sockets: undici never queues). */
  readonly limit: number;
  /** Calls waiting at most; 0: refuse as soon as `limit` are in flight. */
  readonly queue: number;
  /** Longest wait in the queue, in ms. */
  readonly queueTimeoutMs: number;
  /** The clock in ms (Date.now, or a test's). */
  readonly now?: () => number;
  /** Told of every call refused here. */
  readonly onShed?: (reason: QueueShedReason) => void;
}

/** A queued call: a node of the FIFO list. */
interface Waiter {
  readonly resolve: () => void;
  readonly reject: (e: GatewayError) => void;
  readonly expiresAt: number;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  prev: Waiter | undefined;
  next: Waiter | undefined;
}

/** Retry-After of a refusal: the queue moves within a second or it is not going to. */
const RETRY_AFTER = Object.freeze({ 'retry-after': '1' });
/** A timer may fire up to this much before the time it was asked for (ms clocks round). */
const TIMER_SLACK_MS = 1;

export function overloaded(detail: string): GatewayError {
  return new GatewayError('OVERLOADED', detail, { headers: RETRY_AFTER });
}

export class Admission {
  readonly #limit: number;
  readonly #queueLimit: number;
  readonly #queueTimeoutMs: number;
  readonly #now: () => number;
  readonly #onShed: ((reason: QueueShedReason) => void) | undefined;
  #inFlight = 0;
  #queued = 0;
  #head: Waiter | undefined;
  #tail: Waiter | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** When the armed timer fires (Infinity: none armed). */
  #timerAt = Infinity;
  /** Refusals since start, by reason. */
  #queueFull = 0;
  #queueTimeout = 0;

  constructor(o: AdmissionOptions) {
    this.#limit = o.limit;
    this.#queueLimit = o.queue;
    this.#queueTimeoutMs = o.queueTimeoutMs;
    this.#now = o.now ?? Date.now;
    this.#onShed = o.onShed;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get queued(): number {
    return this.#queued;
  }

  get shedQueueFull(): number {
    return this.#queueFull;
  }

  get shedQueueTimeout(): number {
    return this.#queueTimeout;
  }

  /**
   * Takes a slot: `true` when one was free (the call goes now), else a promise that resolves once
   * a slot is handed over. Throws OVERLOADED when the queue is full or the call could not wait at
   * all (its deadline is here); the promise rejects with OVERLOADED when the wait ran out, and
   * with the caller's abort error when its signal fires. Every `true` or resolved promise must be
   * matched by one `leave()`.
   */
  enter(deadline: number, signal?: AbortSignal): true | Promise<void> {
    // FIFO: a newcomer never overtakes a waiting call, even if a slot just freed.
    if (this.#inFlight < this.#limit && this.#queued === 0) {
      this.#inFlight++;
      return true;
    }
    if (this.#queued >= this.#queueLimit) throw this.#shed('queue_full', 'the backend has no free slot and its queue is full');
    const now = this.#now();
    const expiresAt = Math.min(now + this.#queueTimeoutMs, deadline);
    if (expiresAt <= now) throw this.#shed('queue_timeout', 'the backend has no free slot before the deadline');
    if (signal?.aborted) throw abortError(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject, expiresAt, signal, onAbort: undefined, prev: this.#tail, next: undefined };
      if (this.#tail === undefined) this.#head = w;
      else this.#tail.next = w;
      this.#tail = w;
      this.#queued++;
      if (signal !== undefined) {
        w.onAbort = () => {
          this.#remove(w);
          reject(abortError(signal.reason));
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      if (expiresAt < this.#timerAt) this.#arm(expiresAt, now);
    });
  }

  /** A call ended: its slot goes to the longest-waiting call that can still use it. */
  leave(): void {
    this.#inFlight--;
    if (this.#head === undefined) return;
    const now = this.#now();
    while (this.#inFlight < this.#limit && this.#head !== undefined) {
      const w = this.#head;
      this.#remove(w);
      if (w.expiresAt <= now) {
        w.reject(this.#shed('queue_timeout', 'no slot of the backend freed in time'));
        continue;
      }
      this.#inFlight++;
      w.resolve();
    }
  }

  /** Refuses every queued call (the adapter is closing). */
  close(): void {
    clearTimeout(this.#timer);
    this.#timerAt = Infinity;
    while (this.#head !== undefined) {
      const w = this.#head;
      this.#remove(w);
      w.reject(new GatewayError('MODEL_NOT_READY', 'backend adapter is closed'));
    }
  }

  #shed(reason: QueueShedReason, detail: string): GatewayError {
    if (reason === 'queue_full') this.#queueFull++;
    else this.#queueTimeout++;
    this.#onShed?.(reason);
    return overloaded(detail);
  }

  #remove(w: Waiter): void {
    if (w.prev === undefined) this.#head = w.next;
    else w.prev.next = w.next;
    if (w.next === undefined) this.#tail = w.prev;
    else w.next.prev = w.prev;
    w.prev = w.next = undefined;
    this.#queued--;
    if (w.onAbort !== undefined) w.signal?.removeEventListener('abort', w.onAbort);
  }

  #arm(at: number, now: number): void {
    clearTimeout(this.#timer);
    this.#timerAt = at;
    // Not unref'd: a queued call is work owed an answer, and this timer is what bounds it.
    this.#timer = setTimeout(() => this.#sweep(), Math.max(0, at - now));
  }

  /** The timer fired: refuse every call whose wait is over, then re-arm for the earliest left. */
  #sweep(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.#now() + TIMER_SLACK_MS;
    let next = Infinity;
    for (let w = this.#head; w !== undefined;) {
      const after = w.next;
      if (w.expiresAt <= now) {
        this.#remove(w);
        w.reject(this.#shed('queue_timeout', 'no slot of the backend freed in time'));
      } else if (w.expiresAt < next) {
        next = w.expiresAt;
      }
      w = after;
    }
    if (next !== Infinity) this.#arm(next, now - TIMER_SLACK_MS);
  }
}
