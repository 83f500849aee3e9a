/**
 * Verified tokens, so a token's signature is checked once and every later request with it costs a
 * map lookup. Bounded, and never extends a token's life: an entry is dropped at the token's `exp`,
 * and as soon as the key that verified it has been retired.
 *
 * Eviction is CLOCK (second chance) rather than strict LRU: a hit only sets a flag, because moving
 * the entry to the end of the Map (delete + set) cost ~0.9 µs per hit, most of the hit path.
 *
 * Keyed by the token itself rather than a hash of it: only verified tokens get in, so the memory
 * is bounded by cacheSize × maxTokenBytes and nobody but the issuer can choose the keys, and a
 * string key cannot collide the way a truncated or custom hash could (fast-jwt GHSA-rp9m-7r4c-75qg).
 */
import type { Principal } from '../principal.js';

export interface CachedKey {
  readonly retired: boolean;
}

interface Entry {
  readonly principal: Principal;
  readonly key: CachedKey;
  /** ms since the epoch; the entry is gone from then on. */
  readonly until: number;
  /** Hit since eviction last passed it: it gets a second chance. */
  hot: boolean;
}

export class TokenCache {
  readonly #max: number;
  readonly #entries = new Map<string, Entry>();

  constructor(maxEntries: number) {
    this.#max = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(token: string, now: number): Principal | undefined {
    const e = this.#entries.get(token);
    if (e === undefined) return undefined;
    if (now >= e.until || e.key.retired) {
      this.#entries.delete(token);
      return undefined;
    }
    e.hot = true;
    return e.principal;
  }

  /** Remembers a verified token until `until` (its exp); does nothing for one already past it. */
  set(token: string, principal: Principal, key: CachedKey, until: number, now: number): void {
    if (this.#max === 0 || until <= now) return;
    if (this.#entries.size >= this.#max && !this.#entries.has(token)) this.#evictOne(now);
    this.#entries.set(token, { principal, key, until, hot: false });
  }

  /** Oldest first; a hot entry is cooled and moved to the end. Ends within one pass over the map. */
  #evictOne(now: number): void {
    for (let i = 0; i <= this.#entries.size; i++) {
      const next = this.#entries.entries().next();
      if (next.done === true) return;
      const [token, e] = next.value;
      this.#entries.delete(token);
      if (!e.hot || now >= e.until || e.key.retired) return;
      e.hot = false;
      this.#entries.set(token, e);
    }
  }

  clear(): void {
    this.#entries.clear();
  }
}
