/**
 * The kill switch's alert webhook (`alerts.webhookUrl`): one Slack-compatible POST
 * (gateway/alert-message.ts) for every kill and restore.
 *
 * An alert must never slow or fail the change it reports, so `send()` only queues and returns; one
 * background loop posts the alerts in order. Each attempt is bounded (`timeoutMs`); network errors,
 * timeouts, 5xx and 429 are retried with exponential back-off (`retries` more times; Retry-After is
 * honoured up to the back-off cap), other answers are final (a 4xx will not change by asking again).
 * The queue is bounded: past `queueLimit` the oldest alert is dropped and logged, so a dead webhook
 * cannot grow the heap. `close()` lets the queue drain for at most `closeTimeoutMs`, then aborts.
 *
 * A webhook URL is a secret (Slack's carries its token in the path), so logs name its origin only,
 * and a failure is logged once per outage (with the count lost when it answers again), not per alert.
 */
import type { Logger } from 'pino';
import { alertMessage, type KillAlert, type SlackMessage } from './alert-message.js';

export type { KillAlert, SlackMessage } from './alert-message.js';

export interface AlertsOptions {
  /** Where to POST; no URL, no alerts (send() does nothing). */
  readonly webhookUrl?: string | undefined;
  /** Bound on one attempt, connection to response (default 2000 ms). */
  readonly timeoutMs?: number;
  /** Attempts after the first on a network error, timeout, 5xx or 429 (default 3). */
  readonly retries?: number;
  readonly log: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** Alerts waiting at most; the oldest is dropped beyond (default 100). */
  readonly queueLimit?: number;
  /** First back-off (default 250 ms), doubled per retry up to `maxBackoffMs` (default 5000 ms). */
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
  /** How long close() lets pending alerts go out (default `timeoutMs`). */
  readonly closeTimeoutMs?: number;
}

export interface Alerts {
  /** Queues the alert and returns at once; never throws. */
  send(alert: KillAlert): void;
  /**
   * Queues a message another control made (a drift status change, …), labelled for the logs by
   * `about`; returns at once, never throws.
   */
  post(message: () => SlackMessage, about: { readonly action: string; readonly revision: number }): void;
  /** Waits for the queued alerts (bounded by `closeTimeoutMs`); later sends are dropped. */
  close(): Promise<void>;
}

/** What one queued alert carries: its body, made when it was sent, and what a log line names. */
interface Queued {
  readonly body: string;
  readonly action: string;
  readonly revision: number;
}

type Attempt = { ok: true } | { ok: false; retry: boolean; problem: string; retryAfterMs?: number };

const NO_ALERTS: Alerts = { send() {}, post() {}, close: async () => {} };

/** The webhook sender, or one that does nothing when no URL is configured. */
export function createAlerts(opts: AlertsOptions): Alerts {
  if (opts.webhookUrl === undefined || opts.webhookUrl === '') return NO_ALERTS;
  return new WebhookAlerts(opts.webhookUrl, opts);
}

class WebhookAlerts implements Alerts {
  readonly #url: URL;
  /** Logged instead of the URL: scheme, host and port, never the path or query. */
  readonly #origin: string;
  readonly #log: AlertsOptions['log'];
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #queueLimit: number;
  readonly #backoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #closeTimeoutMs: number;
  readonly #queue: Queued[] = [];
  /** Aborted when close()'s bound passes: the attempt in flight and any back-off end at once. */
  readonly #stop = new AbortController();
  #draining: Promise<void> | undefined;
  #closed: Promise<void> | undefined;
  #failing = false;
  #lost = 0;
  /** Alerts cut off in flight by close()'s bound. */
  #abandoned = 0;

  constructor(webhookUrl: string, opts: AlertsOptions) {
    let url: URL;
    try {
      url = new URL(webhookUrl);
    } catch {
      throw new Error('alerts.webhookUrl is not a URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`alerts.webhookUrl must be http(s), not ${url.protocol}`);
    this.#url = url;
    this.#origin = url.origin;
    this.#log = opts.log;
    this.#timeoutMs = opts.timeoutMs ?? 2000;
    this.#retries = opts.retries ?? 3;
    this.#queueLimit = Math.max(1, opts.queueLimit ?? 100);
    this.#backoffMs = opts.backoffMs ?? 250;
    this.#maxBackoffMs = opts.maxBackoffMs ?? 5000;
    this.#closeTimeoutMs = opts.closeTimeoutMs ?? this.#timeoutMs;
  }

  send(alert: KillAlert): void {
    this.post(() => alertMessage(alert), alert);
  }

  post(message: () => SlackMessage, about: { readonly action: string; readonly revision: number }): void {
    if (this.#closed !== undefined) {
      this.#log.warn({ webhook: this.#origin, action: about.action, revision: about.revision }, 'alert after close not sent');
      return;
    }
    try {
      this.#queue.push({ body: JSON.stringify(message()), action: about.action, revision: about.revision });
    } catch (e) {
      this.#log.error({ problem: (e as Error).message }, 'alert could not be made; not sent');
      return;
    }
    if (this.#queue.length > this.#queueLimit) {
      const dropped = this.#queue.shift() as Queued;
      this.#log.warn({ webhook: this.#origin, action: dropped.action, revision: dropped.revision, queueLimit: this.#queueLimit }, 'alert queue full: the oldest alert was dropped');
    }
    this.#draining ??= this.#drain();
  }

  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    const bound = setTimeout(() => this.#stop.abort(), this.#closeTimeoutMs);
    try {
      await this.#draining;
    } finally {
      clearTimeout(bound);
    }
    const unsent = this.#queue.length + this.#abandoned;
    if (unsent > 0) {
      this.#log.warn({ webhook: this.#origin, dropped: unsent, closeTimeoutMs: this.#closeTimeoutMs }, 'alerts not sent before close');
      this.#queue.length = 0;
    }
  }

  /** Posts queued alerts in order until none is left (or close() gave up on them). */
  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0 && !this.#stop.signal.aborted) {
        // Out of the queue while in flight: a full queue drops the oldest waiting, not the one being sent.
        const next = this.#queue.shift() as Queued;
        if (!(await this.#deliver(next))) this.#abandoned++;
      }
    } finally {
      // Runs in the same turn as the loop's last check: a send() after it starts a new drain.
      this.#draining = undefined;
    }
  }

  /** One alert with its retries; true when delivered or given up on, false when close() cut it off. */
  async #deliver(item: Queued): Promise<boolean> {
    let problem = 'not sent';
    for (let attempt = 0; attempt <= this.#retries; attempt++) {
      const result = await this.#attempt(item.body);
      if (result.ok) {
        this.#answering();
        return true;
      }
      if (this.#stop.signal.aborted) return false;
      problem = result.problem;
      if (!result.retry || attempt === this.#retries) break;
      const backoff = Math.min(this.#maxBackoffMs, this.#backoffMs * 2 ** attempt);
      if (!(await this.#pause(Math.min(this.#maxBackoffMs, Math.max(backoff, result.retryAfterMs ?? 0))))) return false;
    }
    this.#failed(item, problem);
    return true;
  }

  async #attempt(body: string): Promise<Attempt> {
    try {
      const res = await fetch(this.#url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        // A webhook that redirects is misconfigured; following it would send the secret body elsewhere.
        redirect: 'manual',
        signal: AbortSignal.any([AbortSignal.timeout(this.#timeoutMs), this.#stop.signal]),
      });
      await res.body?.cancel().catch(() => {});
      if (res.status >= 200 && res.status < 300) return { ok: true };
      const retry = res.status === 429 || res.status >= 500;
      const after = Number(res.headers.get('retry-after'));
      return { ok: false, retry, problem: `HTTP ${res.status}`, ...(retry && after > 0 ? { retryAfterMs: after * 1000 } : {}) };
    } catch (e) {
      return { ok: false, retry: true, problem: this.#problemOf(e) };
    }
  }

  /** A network failure in words without the URL: undici's cause code (ECONNREFUSED…) or the kind of error. */
  #problemOf(e: unknown): string {
    const err = e as { name?: string; cause?: { code?: unknown; name?: unknown } };
    if (err.name === 'TimeoutError') return `no answer within ${this.#timeoutMs} ms`;
    const code = err.cause?.code ?? err.cause?.name;
    return typeof code === 'string' ? code : (err.name ?? 'error');
  }

  /** Waits `ms` unless close() gives up first; false then. */
  #pause(ms: number): Promise<boolean> {
    const signal = this.#stop.signal;
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        resolve(ok);
      };
      const onAbort = () => done(false);
      const timer = setTimeout(() => done(true), ms);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  #failed(item: Queued, problem: string): void {
    this.#lost++;
    if (this.#failing) return;
    this.#failing = true;
    this.#log.error(
      { webhook: this.#origin, problem, action: item.action, revision: item.revision, attempts: this.#retries + 1 },
      'alert webhook failed: alerts are lost until it answers again (logged once per outage)',
    );
  }

  #answering(): void {
    if (!this.#failing) return;
    this.#log.info({ webhook: this.#origin, lost: this.#lost }, 'alert webhook answers again');
    this.#failing = false;
    this.#lost = 0;
  }
}
