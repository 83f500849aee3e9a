/**
 * A worker's StateStore when `server.workers > 1` and there is no Redis: every call goes over the
 * cluster's IPC channel to the one store the primary holds (relay-host.ts), so the workers of a
 * host share limits, routes and opt-outs as replicas share them through Redis.
 *
 * It fails like RedisStore: every call is bounded by `commandTimeoutMs`, and a call that times out,
 * or is made while the channel is closed, fails with StoreUnavailableError (callers apply their
 * failMode). Calls are forwarded generically (RELAYED in relay-protocol.ts); what the primary's
 * store throws comes back with its class and message.
 */
import type { Logger } from 'pino';
import {
  asReply, decodeError, decodeValue, encodeArgs, holesOf, RELAYED, type RelayChannel, type RelayReply, type RelayRequest, type Relayed,
} from './relay-protocol.js';
import { StoreUnavailableError, type StateStore } from './store.js';

export interface RelayStoreOptions {
  /** state.commandTimeoutMs: past it a call fails with StoreUnavailableError. */
  readonly timeoutMs: number;
  readonly log: Logger;
}

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

type Handler = (message: string) => void;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type RequestBody = DistributiveOmit<RelayRequest, 'bw' | 'id'>;

/** The relayed methods: put on the prototype from the one list, in the class's static block. */
export interface RelayStore extends Pick<StateStore, Relayed> {}

export class RelayStore implements StateStore {
  /** Logs and metrics say where state lives: in the primary, through this relay. */
  readonly kind = 'relay';
  readonly #channel: RelayChannel;
  readonly #timeoutMs: number;
  readonly #log: Logger;
  readonly #pending = new Map<number, Pending>();
  /** Subscription id (the id of its subscribe request) → handler. */
  readonly #subscriptions = new Map<number, Handler>();
  readonly #stopListening: () => void;
  #lastId = 0;
  #closed = false;

  static {
    for (const method of RELAYED) {
      // A named function per method, so stack traces say which call it was.
      const relayed = {
        [method](this: RelayStore, ...args: unknown[]): Promise<unknown> {
          return this.#call(method, args);
        },
      }[method];
      Object.defineProperty(RelayStore.prototype, method, { value: relayed, writable: true, configurable: true });
    }
  }

  constructor(channel: RelayChannel, opts: RelayStoreOptions) {
    this.#channel = channel;
    this.#timeoutMs = opts.timeoutMs;
    this.#log = opts.log.child({ component: 'state-relay' });
    this.#stopListening = channel.listen(
      (m) => this.#receive(m),
      () => this.#fail(`state relay: the channel to the primary closed`),
    );
  }

  #call(method: Relayed, args: unknown[]): Promise<unknown> {
    for (const a of args) {
      // JSON would send null in its place; the primary's store must not take it for a value.
      if (typeof a === 'function' || typeof a === 'symbol') return Promise.reject(new TypeError(`${method}: a ${typeof a} cannot be relayed to the primary`));
    }
    return this.#request(method, { op: 'call', method, ...encodeArgs(args), holes: holesOf(args) });
  }

  async subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    const id = ++this.#lastId;
    // A wrapper, so the same function subscribed twice is two subscriptions, as in the other stores.
    // Registered before asking: a message may arrive before the primary's answer does.
    this.#subscriptions.set(id, (m) => onMessage(m));
    try {
      await this.#request('subscribe', { op: 'subscribe', channel }, id);
    } catch (e) {
      this.#subscriptions.delete(id);
      // The primary may still have subscribed after the deadline; its messages are dropped here.
      void this.#request('unsubscribe', { op: 'unsubscribe', sub: id }).catch(() => undefined);
      throw e;
    }
    return async () => {
      // Delivery stops here at once, whether or not the primary hears of it.
      if (!this.#subscriptions.delete(id) || this.#closed) return;
      await this.#request('unsubscribe', { op: 'unsubscribe', sub: id }).catch((e: unknown) => {
        this.#log.debug({ err: e }, 'unsubscribe was not confirmed by the primary');
      });
    };
  }

  healthy(): boolean {
    return !this.#closed && this.#channel.connected();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#channel.connected()) {
      try {
        this.#channel.send({ bw: 'store', op: 'close', id: ++this.#lastId });
      } catch {
        // The channel closed meanwhile: the primary drops this worker's subscriptions anyway.
      }
    }
    this.#fail('state relay: the store is closed');
    this.#closed = true;
    this.#subscriptions.clear();
    this.#stopListening();
  }

  /** Sends one request and waits for its answer, at most `timeoutMs`. */
  #request(what: string, body: RequestBody, id = ++this.#lastId): Promise<unknown> {
    if (this.#closed) return Promise.reject(new StoreUnavailableError(`state relay ${what} failed: the store is closed`));
    if (!this.#channel.connected()) return Promise.reject(new StoreUnavailableError(`state relay ${what} failed: the channel to the primary is closed`));
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        // Timers run before the event loop reads its sockets: after a long synchronous stretch the
        // answer may be waiting unread. Decide after the poll phase, as RedisStore does.
        setImmediate(() => {
          if (!this.#pending.delete(id)) return;
          reject(new StoreUnavailableError(`state relay ${what} timed out after ${this.#timeoutMs} ms`));
        });
      }, this.#timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      try {
        this.#channel.send({ bw: 'store', id, ...body } as RelayRequest);
      } catch (e) {
        clearTimeout(timer);
        this.#pending.delete(id);
        // A value JSON cannot write (a BigInt) is the caller's mistake, as with the primary's own store.
        reject(e instanceof TypeError ? e : new StoreUnavailableError(`state relay ${what} failed: ${(e as Error).message}`, { cause: e }));
      }
    });
  }

  #receive(raw: unknown): void {
    const m = asReply(raw);
    if (m === undefined) return;
    if (m.op === 'message') return this.#deliver(m.sub, m.message);
    this.#answer(m);
  }

  #answer(m: Extract<RelayReply, { op: 'reply' }>): void {
    const p = this.#pending.get(m.id);
    // Already timed out (or a reply to `close`): nobody waits for it.
    if (p === undefined) return;
    this.#pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.error !== undefined) p.reject(decodeError(m.error));
    else p.resolve(decodeValue(m));
  }

  #deliver(sub: number, message: string): void {
    const h = this.#subscriptions.get(sub);
    if (h === undefined) return;
    try {
      h(message);
    } catch (e) {
      // A subscriber's failure is its own; it must not stop delivery to the others.
      this.#log.error({ err: e }, 'subscriber threw');
    }
  }

  /** Fails every call in flight at once: none of them can be answered any more. */
  #fail(why: string): void {
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.reject(new StoreUnavailableError(why));
    }
  }
}
