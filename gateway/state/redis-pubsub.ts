/**
 * RedisStore's publish/subscribe. The subscriptions are ours, not ioredis's (autoResubscribe is
 * off), so one made while Redis is down takes effect once it is back, and one that fails is made
 * again on the next reconnect. Delivery is at most once: callers reconcile from records.
 */
import type { RedisConnection } from './redis-connection.js';
import type { RedisKeys } from './redis-keys.js';

type Handler = (message: string) => void;

export class RedisPubSub {
  readonly #conn: RedisConnection;
  readonly #keys: RedisKeys;
  /** Prefixed channel → handlers. */
  readonly #channels = new Map<string, Set<Handler>>();
  /** Prefixed channel → its SUBSCRIBE in flight, which later subscribers to the channel wait for too. */
  readonly #subscribing = new Map<string, Promise<void>>();

  constructor(conn: RedisConnection, keys: RedisKeys) {
    this.#conn = conn;
    this.#keys = keys;
    conn.subscriber.on('ready', () => this.#resubscribe());
    conn.subscriber.on('message', (channel: string, message: string) => this.#deliver(channel, message));
  }

  async publish(channel: string, message: string): Promise<void> {
    const redis = this.#conn.commands;
    await this.#conn.call('publish', () => redis.publish(this.#keys.channel(channel), message));
  }

  /**
   * Never fails for want of Redis: the subscription is recorded and (re)made on every reconnect of
   * the subscriber connection. While Redis is down, messages are lost.
   */
  async subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    const full = this.#keys.channel(channel);
    const sub = this.#conn.subscriber;
    let handlers = this.#channels.get(full);
    const first = handlers === undefined;
    if (handlers === undefined) {
      handlers = new Set();
      this.#channels.set(full, handlers);
    }
    // A wrapper, so the same function subscribed twice is two subscriptions, as in MemoryStore.
    const h: Handler = (m) => onMessage(m);
    handlers.add(h);
    if (first && sub.status === 'ready') {
      // Wait for the server's confirmation, so a publish made after this resolves reaches us.
      // On failure the subscription stays recorded and is made on reconnect.
      const confirmed = this.#conn.call('subscribe', () => sub.subscribe(full), sub).then(
        () => undefined,
        (e: unknown) => void this.#conn.log.warn({ err: e, channel }, 'subscribe failed; will retry on reconnect'),
      );
      this.#subscribing.set(full, confirmed);
      void confirmed.then(() => this.#subscribing.get(full) === confirmed && this.#subscribing.delete(full));
    }
    await this.#subscribing.get(full);
    return () => this.#unsubscribeOne(full, h);
  }

  /** Forgets every subscription (the store is closing). */
  clear(): void {
    this.#channels.clear();
  }

  async #unsubscribeOne(full: string, h: Handler): Promise<void> {
    const handlers = this.#channels.get(full);
    if (handlers === undefined || !handlers.delete(h) || handlers.size > 0) return;
    this.#channels.delete(full);
    // Messages for the channel are dropped from now on whether or not UNSUBSCRIBE reaches Redis.
    const sub = this.#conn.subscriber;
    if (sub.status !== 'ready') return;
    await this.#conn.call('unsubscribe', () => sub.unsubscribe(full), sub).catch((e: unknown) => {
      this.#conn.log.debug({ err: e }, 'unsubscribe failed (the connection is being replaced)');
    });
  }

  #resubscribe(): void {
    const channels = [...this.#channels.keys()];
    if (channels.length === 0) return;
    this.#conn.subscriber.subscribe(...channels).then(
      () => this.#conn.log.info({ channels: channels.length }, 'resubscribed'),
      (e: unknown) => this.#conn.log.warn({ err: e }, 'resubscribe failed; will retry on reconnect'),
    );
  }

  #deliver(channel: string, message: string): void {
    const handlers = this.#channels.get(channel);
    if (handlers === undefined) return;
    for (const h of handlers) {
      try {
        h(message);
      } catch (e) {
        // A subscriber's failure is its own; it must not stop delivery to the others.
        this.#conn.log.error({ err: e, channel: channel.slice(this.#keys.prefix.length) }, 'subscriber threw');
      }
    }
  }
}
