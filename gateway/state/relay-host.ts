/**
 * The primary's side of the state relay: one StateStore (a MemoryStore) that every worker's
 * RelayStore reaches over its IPC channel. Calls run on it in the order they arrive, so a limit
 * holds across workers exactly as within one process.
 *
 * Pub/sub rides on the store's own: each subscription a worker makes is a subscription here that
 * forwards to that worker, so a publish reaches every subscriber of its channel in every worker
 * (the publisher's included, as with Redis). A worker whose channel closes loses its subscriptions.
 */
import type { Logger } from 'pino';
import { asRequest, decodeArgs, encodeError, encodeValue, withHoles, type RelayChannel, type RelayMessage, type RelayRequest } from './relay-protocol.js';
import type { StateStore } from './store.js';

type Call = Extract<RelayRequest, { op: 'call' }>;

export class RelayHost {
  readonly #store: StateStore;
  readonly #log: Logger;
  readonly #peers = new Set<Peer>();

  constructor(store: StateStore, log: Logger) {
    this.#store = store;
    this.#log = log.child({ component: 'state-relay' });
  }

  /** Workers served now (channels not yet closed). */
  get workers(): number {
    return this.#peers.size;
  }

  /** Serves one worker's requests until its channel closes. */
  serve(channel: RelayChannel): void {
    const peer = new Peer(channel);
    this.#peers.add(peer);
    const stopListening = channel.listen(
      (raw) => {
        const m = asRequest(raw);
        if (m !== undefined) void this.#handle(peer, m);
      },
      () => {
        if (!this.#peers.delete(peer)) return;
        stopListening();
        peer.dropSubscriptions();
      },
    );
  }

  async #handle(peer: Peer, m: RelayRequest): Promise<void> {
    let answer: { value?: unknown; map?: [string, unknown][] } = {};
    try {
      switch (m.op) {
        case 'call':
          answer = encodeValue(await this.#run(m));
          break;
        case 'subscribe':
          peer.subscribed(m.id, await this.#store.subscribe(m.channel, function forward(message) {
            peer.send({ bw: 'store', op: 'message', sub: m.id, message });
          }));
          break;
        case 'unsubscribe':
          await peer.unsubscribe(m.sub);
          break;
        case 'close':
          peer.dropSubscriptions();
          break;
      }
    } catch (e) {
      peer.send({ bw: 'store', op: 'reply', id: m.id, error: encodeError(e) });
      return;
    }
    if (!peer.send({ bw: 'store', op: 'reply', id: m.id, ...answer }) && peer.connected()) {
      // Connected, yet the answer would not serialise: say so rather than let the worker time out.
      this.#log.warn({ op: m.op, method: m.op === 'call' ? m.method : undefined }, 'an answer could not be sent to a worker');
      peer.send({ bw: 'store', op: 'reply', id: m.id, error: { name: 'StoreUnavailableError', message: 'state relay: the answer could not be sent' } });
    }
  }

  #run(m: Call): Promise<unknown> {
    // Only a listed method (asRequest checked): a worker cannot close or reach into the primary's store.
    const method = this.#store[m.method] as (...args: unknown[]) => Promise<unknown>;
    return method.apply(this.#store, withHoles(decodeArgs(m.args, m.nonFinite), m.holes));
  }
}

/** One worker as the host sees it: its channel and its subscriptions. */
class Peer {
  readonly #channel: RelayChannel;
  /** The worker's subscription id → unsubscribe from the store. */
  readonly #subscriptions = new Map<number, () => Promise<void>>();

  constructor(channel: RelayChannel) {
    this.#channel = channel;
  }

  connected(): boolean {
    return this.#channel.connected();
  }

  /** False when the worker is gone (nobody waits any more) or the message cannot be serialised. */
  send(message: RelayMessage): boolean {
    if (!this.#channel.connected()) return false;
    try {
      this.#channel.send(message);
      return true;
    } catch {
      return false;
    }
  }

  subscribed(id: number, stop: () => Promise<void>): void {
    // The worker went away while the store subscribed: nobody would ever unsubscribe it.
    if (!this.#channel.connected()) return void stop();
    this.#subscriptions.set(id, stop);
  }

  async unsubscribe(id: number): Promise<void> {
    const stop = this.#subscriptions.get(id);
    this.#subscriptions.delete(id);
    await stop?.();
  }

  dropSubscriptions(): void {
    for (const stop of this.#subscriptions.values()) void stop();
    this.#subscriptions.clear();
  }
}
