/**
 * RedisStore's two connections (commands, and pub/sub, which takes a connection over) and the
 * deadline every command runs under.
 *
 * It must never make a request wait on a Redis that is gone: there is no offline queue (a command
 * while disconnected fails at once), every call has a deadline of `commandTimeoutMs`, and every
 * failure becomes a `StoreUnavailableError` that callers answer with their failMode. It starts
 * without Redis (unhealthy) and keeps reconnecting with a capped back-off.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { StoreSettings } from '../config.js';
import { StoreUnavailableError } from './store.js';

/** Back-off between reconnect attempts: 100 ms, 200 ms, … capped at 2 s so recovery is noticed quickly. */
const RETRY_CAP_MS = 2000;
const retryStrategy = (attempt: number): number => Math.min(attempt * 100, RETRY_CAP_MS);

export class RedisConnection {
  readonly commands: Redis;
  /** Subscriber mode takes a connection over, so pub/sub has its own. */
  readonly subscriber: Redis;
  readonly log: Logger;
  readonly #timeoutMs: number;
  #probing = false;
  /** Set when a command timed out (the server is stalled though the socket is open), cleared by the next answer. */
  #stalled = false;
  #closed = false;

  constructor(cfg: StoreSettings, log: Logger) {
    const url = cfg.redisUrl;
    if (url === undefined) throw new Error('RedisStore needs state.redisUrl');
    this.#timeoutMs = cfg.commandTimeoutMs;
    this.log = log.child({ component: 'redis-store', redis: redacted(url) });
    const options: RedisOptions = {
      // No queue while disconnected: a command fails at once rather than piling up behind an outage.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // A charge already reported as failed must not be replayed after a reconnect.
      autoResendUnfulfilledCommands: false,
      autoResubscribe: false,
      // Only a backstop: call()'s own deadline (which tells lag from silence) decides first.
      commandTimeout: cfg.commandTimeoutMs * 4,
      connectTimeout: cfg.connectTimeoutMs,
      retryStrategy,
      // Concurrent requests' commands share one write and one round trip.
      enableAutoPipelining: true,
    };
    this.commands = new Redis(url, options);
    this.subscriber = this.commands.duplicate();
    this.#watch(this.commands, 'commands');
    this.#watch(this.subscriber, 'subscriber');
  }

  /** True once both connections are ready; false on a first failure or after `ms`. */
  async ready(ms: number): Promise<boolean> {
    const up = await Promise.all([untilReady(this.commands, ms), untilReady(this.subscriber, ms)]);
    return up.every(Boolean);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Runs one command with a hard deadline. ioredis's commandTimeout also applies, but a command can
   * wait behind a running auto-pipeline or be re-sent after NOSCRIPT, each with a fresh timer; this
   * deadline bounds the caller's wait however ioredis schedules it.
   */
  call<T>(what: string, command: () => Promise<T>, conn: Redis = this.commands): Promise<T> {
    // Fails at once, without a round through ioredis's auto-pipeline, when there is no connection.
    const status = conn.status;
    if (status !== 'ready') {
      return Promise.reject(new StoreUnavailableError(`redis ${what} failed: connection is ${status}`));
    }
    return new Promise<T>((resolve, reject) => {
      let answered = false;
      const timer = setTimeout(() => {
        // Timers run before the event loop polls its sockets: after a long synchronous stretch
        // (a burst of requests) the answer may already be waiting unread. Decide after the poll
        // phase, so a busy gateway does not mistake its own lag for a dead Redis.
        setImmediate(() => {
          if (answered) return;
          this.#stalled = true;
          this.#probe();
          reject(new StoreUnavailableError(`redis ${what} timed out after ${this.#timeoutMs} ms`));
        });
      }, this.#timeoutMs);
      command().then(
        (value) => {
          answered = true;
          clearTimeout(timer);
          this.#stalled = false;
          resolve(value);
        },
        (e: unknown) => {
          answered = true;
          clearTimeout(timer);
          if (e instanceof Error && e.message === 'Command timed out') this.#stalled = true;
          reject(new StoreUnavailableError(`redis ${what} failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
        },
      );
    });
  }

  healthy(): boolean {
    if (this.#stalled) this.#probe();
    return !this.#closed && !this.#stalled && this.commands.status === 'ready' && this.subscriber.status === 'ready';
  }

  /** Quits both connections, waiting at most about commandTimeoutMs, then drops them. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([quit(this.commands, this.#timeoutMs), quit(this.subscriber, this.#timeoutMs)]);
  }

  /**
   * After a timeout the socket may still be open while the server answers nothing (paused, or a
   * partition). One PING at a time tells when it answers again, even if no request tries.
   */
  #probe(): void {
    if (this.#probing || this.#closed) return;
    this.#probing = true;
    this.call('ping', () => this.commands.ping()).then(
      () => (this.#probing = false),
      () => {
        this.#probing = false;
        // Still silent: look again shortly, so recovery does not wait for the next request.
        if (this.#stalled && !this.#closed) setTimeout(() => this.#probe(), this.#timeoutMs).unref();
      },
    );
  }

  /** Logs transitions (lost, back), not every failed reconnect attempt. */
  #watch(conn: Redis, role: string): void {
    let up = false;
    let reported = false;
    conn.on('ready', () => {
      if (reported) this.log.info({ role }, 'redis is back');
      up = true;
      reported = false;
    });
    conn.on('error', (e: unknown) => {
      if (reported || this.#closed) return this.log.debug({ err: e, role }, 'redis still unavailable');
      reported = true;
      // At start-up RedisStore.connect() reports the outage once for both connections.
      if (up) this.log.warn({ err: e, role }, 'redis connection failed; reconnecting');
    });
    conn.on('close', () => {
      if (up && !reported && !this.#closed) {
        this.log.warn({ role }, 'redis connection lost; reconnecting');
        reported = true;
      }
      up = false;
    });
  }
}

/** True once `conn` is ready; false on its first failure or after `ms`. */
function untilReady(conn: Redis, ms: number): Promise<boolean> {
  if (conn.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      conn.off('ready', onReady);
      conn.off('error', onFail);
      conn.off('close', onFail);
      resolve(ok);
    };
    const onReady = () => done(true);
    const onFail = () => done(false);
    const timer = setTimeout(onFail, ms);
    conn.once('ready', onReady);
    conn.once('error', onFail);
    conn.once('close', onFail);
  });
}

async function quit(conn: Redis, ms: number): Promise<void> {
  if (conn.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    });
    await Promise.race([conn.quit().catch(() => undefined), deadline]);
    clearTimeout(timer);
  }
  // Stops reconnecting and drops the socket if QUIT did not.
  conn.disconnect(false);
}

/** A URL fit for logs: no password. */
function redacted(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable url)';
  }
}
