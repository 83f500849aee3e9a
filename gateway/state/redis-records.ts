/**
 * RedisStore's records: a key per record holding its JSON (what `get` and `records` read, as
 * before revisions), and beside it a key with its revision, written together by one script
 * (redis-record-scripts.ts).
 */
import { checkRevision, recordTtl, toJson } from './checks.js';
import type { RedisConnection } from './redis-connection.js';
import { globEscape, type RedisKeys } from './redis-keys.js';
import { integers, type ScriptedRedis } from './redis-scripts.js';
import { StoreUnavailableError, type CompareAndSetResult, type RecordOptions, type VersionedRecord } from './store.js';

/** SCAN's COUNT hint and the MGET batch size of records(); exported for forget()'s DEL batches. */
export const RECORDS_BATCH = 500;

/** `-1` as the expected revision: an unconditional write. */
const ANY_REVISION = -1;

export class RedisRecords {
  readonly #conn: RedisConnection;
  readonly #redis: ScriptedRedis;
  readonly #keys: RedisKeys;

  constructor(conn: RedisConnection, redis: ScriptedRedis, keys: RedisKeys) {
    this.#conn = conn;
    this.#redis = redis;
    this.#keys = keys;
  }

  async get(scope: string, key: string): Promise<unknown> {
    const k = this.#keys.key(scope, 'r', key);
    const text = await this.#conn.call('get', () => this.#redis.get(k));
    return text === null ? undefined : parse(text, scope, key);
  }

  async read(scope: string, key: string): Promise<VersionedRecord | undefined> {
    const [r, v, s] = this.#recordKeys(scope, key);
    const reply = await this.#conn.call('read', () => this.#redis.bwReadRecord(r, v, s));
    if (Array.isArray(reply) && reply.length === 0) return undefined;
    if (Array.isArray(reply) && reply.length === 2 && typeof reply[0] === 'string' && typeof reply[1] === 'number') {
      return { value: parse(reply[0], scope, key), revision: reply[1] };
    }
    throw new StoreUnavailableError('redis read returned an unexpected reply');
  }

  async set(scope: string, key: string, value: unknown, opts?: RecordOptions): Promise<void> {
    await this.#write('set', scope, key, ANY_REVISION, toJson(value), recordTtl(opts));
  }

  async delete(scope: string, key: string): Promise<void> {
    await this.#write('delete', scope, key, ANY_REVISION, '', undefined);
  }

  async compareAndSet(scope: string, key: string, expectedRevision: number, value: unknown, opts?: RecordOptions): Promise<CompareAndSetResult> {
    checkRevision(expectedRevision);
    return this.#write('compareAndSet', scope, key, expectedRevision, value === undefined ? '' : toJson(value), recordTtl(opts));
  }

  /**
   * SCAN over the scope's record keys (COUNT 500), then MGET in batches of at most 500: each
   * command bounded by commandTimeoutMs like every other call, so a scope of n records costs about
   * 2n/500 round trips and never one long blocking command. Revision keys are another kind (v),
   * so they are not matched.
   */
  async records(scope: string): Promise<Map<string, unknown>> {
    const head = this.#keys.key(scope, 'r');
    const match = `${globEscape(head)}*`;
    const keys = new Set<string>();
    let cursor = '0';
    do {
      const [next, found] = await this.#conn.call('records', () => this.#redis.scan(cursor, 'MATCH', match, 'COUNT', RECORDS_BATCH));
      for (const k of found) keys.add(k);
      cursor = next;
    } while (cursor !== '0');
    const out = new Map<string, unknown>();
    const all = [...keys];
    for (let i = 0; i < all.length; i += RECORDS_BATCH) {
      const batch = all.slice(i, i + RECORDS_BATCH);
      const texts = await this.#conn.call('records', () => this.#redis.mget(batch));
      for (let j = 0; j < batch.length; j++) {
        const text = texts[j];
        // Deleted between SCAN and MGET.
        if (text === null || text === undefined) continue;
        const key = batch[j].slice(head.length);
        out.set(key, parse(text, scope, key));
      }
    }
    return out;
  }

  async #write(what: string, scope: string, key: string, expected: number, json: string, ttlMs: number | undefined): Promise<CompareAndSetResult> {
    const [r, v, s] = this.#recordKeys(scope, key);
    const reply = await this.#conn.call(what, () => this.#redis.bwWriteRecord(r, v, s, expected, json, ttlMs ?? 0));
    const [ok, revision] = integers(reply, 2, what);
    return { ok: ok === 1, revision };
  }

  /** The record, its revision and the scope's sequence: one hash tag, so one script may touch all three. */
  #recordKeys(scope: string, key: string): [string, string, string] {
    return [this.#keys.key(scope, 'r', key), this.#keys.key(scope, 'v', key), this.#keys.key(scope, 's')];
  }
}

function parse(text: string, scope: string, key: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new StoreUnavailableError(`record ${key} in ${scope} is not JSON`, { cause: e });
  }
}
