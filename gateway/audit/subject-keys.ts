/**
 * Subjects in the audit trail are pseudonyms: HMAC-SHA256 of the subject under a key of its own,
 * kept in the shared store (scope `audit-subject-keys`, one random 256-bit key per tenant and
 * subject, made by whichever replica needs it first: compare-and-set, so every replica uses the
 * same one). Erasure deletes the key (crypto-shredding): the records stay, every chain still
 * verifies, and nothing can link them to the subject any more; a later request of the same subject
 * gets a new key and a new pseudonym.
 *
 * Keys are cached per replica (bounded, least recently used first out); an erasure is announced so
 * every replica forgets its copy at once. Nothing here runs on the request path: the decision
 * records are made after the answer (decisions.ts).
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { StateStore } from '../state/store.js';

export const SUBJECT_KEYS_SCOPE = 'audit-subject-keys';
const ERASED_CHANNEL = 'audit-subject-erased';
const CACHED = 10_000;

function idOf(tenant: string | undefined, subject: string): string {
  return `${encodeURIComponent(tenant ?? '')}:${encodeURIComponent(subject)}`;
}

export class SubjectKeys {
  readonly #store: StateStore;
  readonly #log: Logger;
  readonly #cache = new Map<string, Buffer>();
  #unsubscribe: (() => Promise<void>) | undefined;

  constructor(store: StateStore, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  async start(): Promise<void> {
    try {
      this.#unsubscribe = await this.#store.subscribe(ERASED_CHANNEL, (id) => this.#forget(id));
    } catch (err) {
      this.#log.warn({ err }, 'audit: erasures on other replicas will not reach this one\'s key cache at once');
    }
  }

  /** Pseudonyms of the subjects whose keys are cached (the same bound; dropped with their key). */
  readonly #pseudonyms = new Map<string, string>();

  /** The pseudonym of a subject whose key is cached here, at once; undefined otherwise (then ask `pseudonym`). */
  cached(tenant: string | undefined, subject: string): string | undefined {
    return this.#pseudonyms.get(idOf(tenant, subject));
  }

  /** The subject's pseudonym (hex); its key is made on first use. */
  async pseudonym(tenant: string | undefined, subject: string): Promise<string> {
    const id = idOf(tenant, subject);
    const known = this.#pseudonyms.get(id);
    if (known !== undefined) return known;
    const key = await this.#keyOf(id);
    const p = createHmac('sha256', key).update(subject).digest('hex');
    if (this.#cache.get(id) === key) this.#pseudonyms.set(id, p);
    return p;
  }

  /** The subject's pseudonym if it has a key now (undefined after erasure, or before its first record); never makes one. */
  async existingPseudonym(tenant: string | undefined, subject: string): Promise<string | undefined> {
    const id = idOf(tenant, subject);
    const key = this.#cache.get(id) ?? (await this.#store.read(SUBJECT_KEYS_SCOPE, id).then((r) => (typeof r?.value === 'string' ? Buffer.from(r.value, 'base64') : undefined)));
    return key === undefined ? undefined : createHmac('sha256', key).update(subject).digest('hex');
  }

  async #keyOf(id: string): Promise<Buffer> {
    const cached = this.#cache.get(id);
    if (cached !== undefined) {
      this.#cache.delete(id);
      this.#cache.set(id, cached);
      return cached;
    }
    let key: Buffer | undefined;
    for (let attempt = 0; attempt < 4 && key === undefined; attempt++) {
      const stored = await this.#store.read(SUBJECT_KEYS_SCOPE, id);
      if (typeof stored?.value === 'string') {
        key = Buffer.from(stored.value, 'base64');
        break;
      }
      const made = randomBytes(32);
      const r = await this.#store.compareAndSet(SUBJECT_KEYS_SCOPE, id, stored?.revision ?? 0, made.toString('base64'));
      if (r.ok) key = made;
    }
    if (key === undefined) throw new Error('the subject\'s audit key kept changing');
    this.#cache.set(id, key);
    if (this.#cache.size > CACHED) this.#forget(this.#cache.keys().next().value as string);
    return key;
  }

  #forget(id: string): void {
    this.#cache.delete(id);
    this.#pseudonyms.delete(id);
  }

  /** Crypto-shredding: the subject's key is deleted everywhere; its records can no longer be linked to it. */
  async erase(tenant: string | undefined, subject: string): Promise<void> {
    const id = idOf(tenant, subject);
    await this.#store.delete(SUBJECT_KEYS_SCOPE, id);
    this.#forget(id);
    await this.#store.publish(ERASED_CHANNEL, id).catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.#unsubscribe?.().catch(() => undefined);
  }
}
