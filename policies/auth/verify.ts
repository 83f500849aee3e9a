/**
 * Bearer token → Principal. fast-jwt (the core of @fastify/jwt) checks the signature, the `alg`
 * allow-list, `crit` (RFC 7515 §4.1.11: no extension is understood, so any `crit` fails),
 * exp/nbf with the configured skew, iss and aud. Around it this file does what fast-jwt leaves to
 * its caller:
 *   - the size cap, before any parsing;
 *   - key selection: `kid` picks among keys already held (configured, or the local JWKS copy), by
 *     equality; each key has its own pinned algorithm list, fitted to its type (keys.ts);
 *   - the unknown-kid refetch (jwks.ts: cooldown-bounded, timeout-bounded);
 *   - `sub` (a non-empty string), a finite `exp`, an `iat` not in the future (beyond the skew);
 *     the claims → Principal mapping (scopes from the one configured claim);
 *   - the cache (cache.ts);
 *   - turning every failure into one UNAUTHENTICATED error whose detail is ours: never the
 *     library's text, the server's time, or a kid it knows.
 */
import { createVerifier } from 'fast-jwt';
import type { AuthConfig } from '../../gateway/config.js';
import { GatewayError } from '../../gateway/errors.js';
import { isJwtAlgorithm, type JwtAlgorithm } from '../../gateway/jwt-algorithms.js';
import type { Principal } from '../principal.js';
import { TokenCache } from './cache.js';
import type { JwksClient } from './jwks.js';
import type { TrustedKey } from './keys.js';

/** RFC 6750 §3: a request without credentials gets the challenge alone, a bad token the error code. */
export const CHALLENGE = Object.freeze({ 'www-authenticate': 'Bearer' });
export const INVALID_TOKEN_CHALLENGE = Object.freeze({ 'www-authenticate': 'Bearer error="invalid_token"' });

/**
 * A token without a kid is tried against every key that accepts its alg; past this many it is
 * refused rather than letting one request cost a signature check per key.
 */
const MAX_KEYS_TRIED = 4;
const REQUIRED_CLAIMS = ['exp', 'iss', 'aud'];
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export function missingToken(): GatewayError {
  return new GatewayError('UNAUTHENTICATED', 'no bearer token', { headers: CHALLENGE });
}

export function invalidToken(detail: string): GatewayError {
  return new GatewayError('UNAUTHENTICATED', detail, { headers: INVALID_TOKEN_CHALLENGE });
}

/** What each fast-jwt failure tells the client: a fixed phrase of ours, never the library's message. */
const DETAILS: Readonly<Record<string, string>> = {
  FAST_JWT_MALFORMED: 'token is malformed',
  FAST_JWT_INVALID_PAYLOAD: 'token is malformed',
  FAST_JWT_INVALID_TYPE: 'token is malformed',
  FAST_JWT_INVALID_ALGORITHM: 'token algorithm is not accepted',
  FAST_JWT_MISSING_SIGNATURE: 'token is not signed',
  FAST_JWT_INVALID_SIGNATURE: 'token signature is invalid',
  FAST_JWT_VERIFY_ERROR: 'token signature is invalid',
  FAST_JWT_INVALID_CRIT_HEADER: 'token has a critical header that is not understood',
  FAST_JWT_MISSING_REQUIRED_CLAIM: 'token lacks exp, iss or aud',
  FAST_JWT_INVALID_CLAIM_TYPE: 'token has a claim of the wrong type',
  FAST_JWT_INVALID_CLAIM_VALUE: 'token is for another issuer or audience',
  FAST_JWT_EXPIRED: 'token has expired',
  FAST_JWT_INACTIVE: 'token is not valid yet',
};

function codeOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A signature that does not match this key: the next candidate key may still match. */
function isKeyMismatch(e: unknown): boolean {
  const code = codeOf(e);
  return code === 'FAST_JWT_INVALID_SIGNATURE' || code === 'FAST_JWT_VERIFY_ERROR';
}

type Claims = Record<string, unknown>;
type VerifyFn = (token: string) => Claims;

interface TokenHeader {
  readonly alg: JwtAlgorithm;
  readonly kid: string | undefined;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Just enough of the header to choose a key; fast-jwt then parses the whole token strictly. */
function readHeader(token: string): TokenHeader {
  const dot = token.indexOf('.');
  const segment = dot > 0 ? token.slice(0, dot) : '';
  if (!BASE64URL.test(segment)) throw invalidToken('token is malformed');
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw invalidToken('token is malformed');
  }
  if (!isObject(header)) throw invalidToken('token is malformed');
  // `none`, unknown and non-string algorithms end here, before any key is looked at.
  if (!isJwtAlgorithm(header.alg)) throw invalidToken('token algorithm is not accepted');
  if (header.kid !== undefined && typeof header.kid !== 'string') throw invalidToken('token is malformed');
  return { alg: header.alg, kid: header.kid };
}

/**
 * The scopes of the one configured claim: a space-separated string (RFC 8693 / RFC 9068 `scope`)
 * or an array of strings (Azure AD's and Okta's `scp`). Never merged with another claim: a token
 * whose issuer lets users add custom claims must not be able to add scopes through one.
 */
function scopesOf(value: unknown): Set<string> {
  const into = new Set<string>();
  if (typeof value === 'string') {
    for (const s of value.split(' ')) if (s.length > 0) into.add(s);
  } else if (Array.isArray(value)) {
    for (const s of value) if (typeof s === 'string' && s.length > 0 && !s.includes(' ')) into.add(s);
  }
  return into;
}

/** Where claims are read from, and the clock they are judged by. */
export interface ClaimRules {
  readonly tenantClaim: string;
  readonly scopeClaim: string;
  /** The clock-skew leeway, in ms. */
  readonly skewMs: number;
}

/**
 * Claims → Principal; the signature and standard claims (exp, nbf, iss, aud) have been checked
 * already. `iat` is checked here (fast-jwt only reads it for maxAge): a token issued more than the
 * leeway in the future was minted by a clock (or a hand) that cannot be trusted, and accepted it
 * would outlive its issuer's intended lifetime.
 */
export function toPrincipal(claims: Claims, rules: ClaimRules, now: number = Date.now()): Principal {
  const sub = claims.sub;
  if (typeof sub !== 'string' || sub.length === 0) throw invalidToken('token has no subject');
  // JSON can say 1e999, which parses to Infinity: a token that would never expire.
  const exp = claims.exp;
  if (typeof exp !== 'number' || !Number.isFinite(exp)) throw invalidToken('token has a claim of the wrong type');
  const iat = claims.iat;
  if (iat !== undefined) {
    if (typeof iat !== 'number' || !Number.isFinite(iat)) throw invalidToken('token has a claim of the wrong type');
    if (iat * 1000 > now + rules.skewMs) throw invalidToken('token is issued in the future');
  }
  const tenant = Object.hasOwn(claims, rules.tenantClaim) ? claims[rules.tenantClaim] : undefined;
  return Object.freeze({
    subject: sub,
    tenant: typeof tenant === 'string' && tenant.length > 0 ? tenant : undefined,
    scopes: scopesOf(Object.hasOwn(claims, rules.scopeClaim) ? claims[rules.scopeClaim] : undefined),
    expiresAt: exp * 1000,
  });
}

export interface VerifyStats {
  /** Signature checks run (one per key tried); a cache hit runs none. */
  signatureChecks: number;
  cacheHits: number;
}

export class TokenVerifier {
  readonly #keys: readonly TrustedKey[];
  readonly #jwks: JwksClient | undefined;
  readonly #cache: TokenCache;
  readonly #maxTokenBytes: number;
  readonly #claimRules: ClaimRules;
  readonly #verifiers = new WeakMap<TrustedKey, VerifyFn>();
  readonly #claimOptions: { allowedIss: string; allowedAud: string[]; clockTolerance: number };
  readonly stats: VerifyStats = { signatureChecks: 0, cacheHits: 0 };

  constructor(cfg: AuthConfig, keys: readonly TrustedKey[], jwks: JwksClient | undefined) {
    if (cfg.issuer === undefined || cfg.audience === undefined) throw new Error('auth.issuer and auth.audience are required to verify tokens');
    if (keys.length === 0 && jwks === undefined) throw new Error('auth: no keys and no jwks to verify tokens with');
    this.#keys = keys;
    this.#jwks = jwks;
    this.#cache = new TokenCache(cfg.cacheSize);
    this.#maxTokenBytes = cfg.maxTokenBytes;
    this.#claimRules = { tenantClaim: cfg.tenantClaim, scopeClaim: cfg.scopeClaim, skewMs: cfg.clockSkewSeconds * 1000 };
    this.#claimOptions = {
      allowedIss: cfg.issuer,
      allowedAud: typeof cfg.audience === 'string' ? [cfg.audience] : [...cfg.audience],
      clockTolerance: cfg.clockSkewSeconds * 1000,
    };
    // Configured keys get their verifiers now, so a key the library refuses stops the start.
    for (const k of keys) this.#verifierFor(k);
  }

  /**
   * The token's principal, or a thrown (or rejected) UNAUTHENTICATED GatewayError. Synchronous
   * unless the token names a kid the JWKS copy lacks and a refetch is allowed.
   */
  verify(token: string): Principal | Promise<Principal> {
    // Header values are latin1, so length is bytes; nothing has been parsed yet.
    if (token.length > this.#maxTokenBytes) throw invalidToken('token is too large');
    const hit = this.#cache.get(token, Date.now());
    if (hit !== undefined) {
      this.stats.cacheHits++;
      return hit;
    }
    const header = readHeader(token);
    const jwks = this.#jwks;
    if (header.kid !== undefined && jwks !== undefined && jwks.get(header.kid) === undefined) {
      const refetch = jwks.refetchForUnknownKid();
      if (refetch !== undefined) return refetch.then(() => this.#check(token, header));
    }
    return this.#check(token, header);
  }

  /** Whether `token` is verified and cached (no signature check needed): a map lookup, no parsing. */
  knows(token: string): boolean {
    return token.length <= this.#maxTokenBytes && this.#cache.get(token, Date.now()) !== undefined;
  }

  #candidates(alg: JwtAlgorithm, kid: string | undefined): TrustedKey[] {
    const out: TrustedKey[] = [];
    for (const k of this.#keys) {
      if ((k.kid === undefined || kid === undefined || k.kid === kid) && k.algorithms.has(alg)) out.push(k);
    }
    const jwks = this.#jwks;
    if (jwks !== undefined) {
      if (kid !== undefined) {
        const k = jwks.get(kid);
        if (k !== undefined && k.algorithms.has(alg)) out.push(k);
      } else {
        for (const k of jwks.keys) if (k.algorithms.has(alg)) out.push(k);
      }
    }
    return out;
  }

  #knowsKid(kid: string): boolean {
    return this.#keys.some((k) => k.kid === kid) || this.#jwks?.get(kid) !== undefined;
  }

  #check(token: string, { alg, kid }: TokenHeader): Principal {
    const candidates = this.#candidates(alg, kid);
    if (candidates.length === 0) {
      throw invalidToken(kid !== undefined && !this.#knowsKid(kid) ? 'token key is not known' : 'token algorithm is not accepted');
    }
    if (candidates.length > MAX_KEYS_TRIED) throw invalidToken('token names no key id (kid)');
    for (const key of candidates) {
      let claims: Claims;
      this.stats.signatureChecks++;
      try {
        claims = this.#verifierFor(key)(token);
      } catch (e) {
        if (isKeyMismatch(e)) continue;
        throw invalidToken(DETAILS[codeOf(e) ?? ''] ?? 'token could not be verified');
      }
      const principal = toPrincipal(claims, this.#claimRules);
      this.#cache.set(token, principal, key, principal.expiresAt, Date.now());
      return principal;
    }
    throw invalidToken('token signature is invalid');
  }

  #verifierFor(key: TrustedKey): VerifyFn {
    let v = this.#verifiers.get(key);
    if (v === undefined) {
      v = createVerifier({
        key: key.material,
        algorithms: [...key.algorithms],
        cache: false, // ours (cache.ts) also drops tokens of retired keys
        requiredClaims: REQUIRED_CLAIMS,
        allowedCritHeaders: [],
        ...this.#claimOptions,
      }) as VerifyFn;
      this.#verifiers.set(key, v);
    }
    return v;
  }
}
