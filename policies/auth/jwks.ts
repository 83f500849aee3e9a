/**
 * A local copy of the issuer's JWKS, so verifying a token reads memory. Fetched at start (bounded by
 * the timeout; a failure does not stop the gateway), refreshed in the background every
 * refreshIntervalMs, retried with back-off while failing, and refetched early when a token names a
 * `kid` the copy lacks (key rotation), at most once per cooldownMs. A failed or unusable fetch keeps
 * the previous keys: a broken JWKS endpoint must not log everybody out.
 *
 * `kid` is only ever compared with the kids of fetched keys; the URL is the configured one, always.
 */
import { createPublicKey, type JsonWebKey } from 'node:crypto';
import type { Logger } from 'pino';
import { Agent, request } from 'undici';
import { algorithmsForPublicKey, type JwtAlgorithm } from '../../gateway/jwt-algorithms.js';
import { toSpkiPem, type TrustedKey } from './keys.js';

export interface JwksOptions {
  readonly url: string;
  readonly algorithms: readonly JwtAlgorithm[];
  readonly refreshIntervalMs: number;
  readonly cooldownMs: number;
  readonly timeoutMs: number;
}

export interface JwksDeps {
  readonly log: Logger;
  /** The clock for the cooldown; Date.now by default. */
  readonly now?: () => number;
  /** First retry delay after a failed fetch; it doubles up to MAX_RETRY_MS (or the refresh interval). */
  readonly retryBaseMs?: number;
}

/** A JWKS is a few KiB; a larger answer is a misconfigured URL or an attack on the parser. */
export const MAX_JWKS_BYTES = 256 * 1024;
/** Issuers publish two or three keys around a rotation; more than this is not a key set. */
export const MAX_JWKS_KEYS = 64;
const MAX_KID_LENGTH = 256;
const MAX_RETRY_MS = 60_000;

export interface ParsedJwks {
  readonly keys: TrustedKey[];
  /** Why each unusable key was left out (for the log). */
  readonly skipped: string[];
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * The usable signing keys of a JWKS document, each pinned to the configured algorithms that fit
 * its type (and to its own `alg`, when it names one). Private and symmetric keys are refused: a
 * JWKS is public.
 */
export function parseJwks(doc: unknown, algorithms: readonly JwtAlgorithm[]): ParsedJwks {
  if (!isObject(doc) || !Array.isArray(doc.keys)) throw new Error('not a JWKS document (no "keys" array)');
  if (doc.keys.length > MAX_JWKS_KEYS) throw new Error(`more than ${MAX_JWKS_KEYS} keys`);
  const keys: TrustedKey[] = [];
  const skipped: string[] = [];
  const seen = new Set<string>();
  doc.keys.forEach((jwk: unknown, i: number) => {
    const why = (reason: string) => skipped.push(`keys[${i}]: ${reason}`);
    if (!isObject(jwk)) return why('not an object');
    const kid = jwk.kid;
    if (kid !== undefined && (typeof kid !== 'string' || kid.length === 0 || kid.length > MAX_KID_LENGTH)) return why('kid is not a short string');
    if (typeof kid === 'string' && seen.has(kid)) return why('duplicate kid');
    if (jwk.kty === 'oct' || jwk.d !== undefined) return why('private or symmetric key in a public key set');
    if (jwk.use !== undefined && jwk.use !== 'sig') return why('not a signing key (use)');
    if (Array.isArray(jwk.key_ops) && !jwk.key_ops.includes('verify')) return why('not a verification key (key_ops)');
    let key;
    try {
      key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
    } catch {
      return why(`not a valid ${String(jwk.kty)} key`);
    }
    const fits = algorithmsForPublicKey(key);
    if (typeof fits === 'string') return why(fits);
    const pinned = algorithms.filter((a) => fits.includes(a) && (jwk.alg === undefined || jwk.alg === a));
    if (pinned.length === 0) return why(`no accepted algorithm fits it (alg ${String(jwk.alg ?? 'unset')})`);
    if (typeof kid === 'string') seen.add(kid);
    keys.push({ kid, algorithms: new Set(pinned), material: toSpkiPem(key), source: 'jwks', retired: false });
  });
  return { keys, skipped };
}

function sameKey(a: TrustedKey, b: TrustedKey): boolean {
  return a.kid === b.kid && a.material === b.material && a.algorithms.size === b.algorithms.size && [...a.algorithms].every((x) => b.algorithms.has(x));
}

export class JwksClient {
  readonly #opts: JwksOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #retryBaseMs: number;
  readonly #agent: Agent;
  readonly #closing = new AbortController();
  #byKid = new Map<string, TrustedKey>();
  #all: readonly TrustedKey[] = [];
  #inflight: Promise<boolean> | undefined;
  #lastFetchAt = Number.NEGATIVE_INFINITY;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Fetch attempts so far (for tests and metrics). */
  fetches = 0;

  constructor(opts: JwksOptions, deps: JwksDeps) {
    this.#opts = opts;
    this.#log = deps.log;
    this.#now = deps.now ?? Date.now;
    this.#retryBaseMs = deps.retryBaseMs ?? 1000;
    // Its own small pool, so close() leaves no socket behind; no redirects are followed.
    this.#agent = new Agent({
      connections: 2,
      connect: { timeout: opts.timeoutMs },
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
    });
  }

  /** The first fetch (never rejects; false if it failed), then the background refresh. */
  async start(): Promise<boolean> {
    const ok = await this.refresh();
    this.#schedule();
    return ok;
  }

  /** The key with this kid, if the local copy has it. */
  get(kid: string): TrustedKey | undefined {
    return this.#byKid.get(kid);
  }

  /** Every usable key (tokens without a kid are tried against these). */
  get keys(): readonly TrustedKey[] {
    return this.#all;
  }

  /**
   * A token named a kid the copy lacks: the refetch to wait for (joining one under way), or
   * undefined while the cooldown since the last fetch runs. The wait is bounded by timeoutMs.
   */
  refetchForUnknownKid(): Promise<boolean> | undefined {
    if (this.#closed) return undefined;
    if (this.#inflight !== undefined) return this.#inflight;
    if (this.#now() - this.#lastFetchAt < this.#opts.cooldownMs) return undefined;
    return this.refresh();
  }

  /** Fetches now (or joins the fetch under way); resolves true if the copy was replaced. */
  refresh(): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    this.#inflight ??= this.#refresh().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#closing.abort();
    await this.#inflight;
    await this.#agent.destroy().catch(() => {});
  }

  async #refresh(): Promise<boolean> {
    this.#lastFetchAt = this.#now();
    this.fetches++;
    try {
      const { keys, skipped } = parseJwks(await this.#fetch(), this.#opts.algorithms);
      if (skipped.length > 0) this.#log.warn({ url: this.#opts.url, skipped }, 'JWKS keys left out');
      if (keys.length === 0) throw new Error('no usable key');
      this.#install(keys);
      this.#failures = 0;
      return true;
    } catch (e) {
      if (this.#closed) return false;
      this.#failures++;
      this.#log.warn(
        { url: this.#opts.url, err: describeError(e), failures: this.#failures, keys: this.#all.length },
        this.#all.length > 0 ? 'JWKS refresh failed; keeping the previous keys' : 'JWKS fetch failed; tokens cannot be verified until it succeeds',
      );
      return false;
    }
  }

  /** Replaces the copy; keys that did not change keep their identity (and their cached tokens). */
  #install(fresh: readonly TrustedKey[]): void {
    const kept = fresh.map((k) => this.#all.find((old) => sameKey(old, k)) ?? k);
    for (const old of this.#all) if (!kept.includes(old)) old.retired = true;
    const byKid = new Map<string, TrustedKey>();
    for (const k of kept) if (k.kid !== undefined) byKid.set(k.kid, k);
    const changed = kept.length !== this.#all.length || kept.some((k, i) => k !== this.#all[i]);
    this.#byKid = byKid;
    this.#all = Object.freeze(kept);
    if (changed) this.#log.info({ url: this.#opts.url, kids: kept.map((k) => k.kid ?? null) }, 'JWKS keys loaded');
  }

  async #fetch(): Promise<unknown> {
    const signal = AbortSignal.any([this.#closing.signal, AbortSignal.timeout(this.#opts.timeoutMs)]);
    const res = await request(this.#opts.url, { dispatcher: this.#agent, signal, headers: { accept: 'application/json' } });
    try {
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
      const declared = Number(res.headers['content-length']);
      if (declared > MAX_JWKS_BYTES) throw new Error(`larger than ${MAX_JWKS_BYTES} bytes`);
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > MAX_JWKS_BYTES) throw new Error(`larger than ${MAX_JWKS_BYTES} bytes`);
        chunks.push(chunk as Buffer);
      }
      return JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } finally {
      // An unread body is dropped; destroying it emits an abort error nobody needs to hear.
      if (!res.body.destroyed) res.body.on('error', () => {}).destroy();
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    const delay = this.#failures === 0
      ? this.#opts.refreshIntervalMs
      : Math.min(this.#opts.refreshIntervalMs, MAX_RETRY_MS, this.#retryBaseMs * 2 ** Math.min(this.#failures - 1, 16));
    this.#timer = setTimeout(() => {
      void this.refresh().then(() => this.#schedule());
    }, delay);
    this.#timer.unref();
  }
}

function describeError(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    return code !== undefined ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}
