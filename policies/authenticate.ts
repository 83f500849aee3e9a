/**
 * Who is calling: the `Authorization: Bearer <jwt>` header, verified (policies/auth/verify.ts) and
 * turned into the request's Principal. Every failure is 401 UNAUTHENTICATED with an RFC 6750
 * challenge; a request with no bearer token gets the bare `Bearer` challenge.
 *
 * With `auth.insecureNoAuth` every request is the anonymous principal, allowed everything.
 */
import type { Logger } from 'pino';
import type { AuthConfig } from '../gateway/config.js';
import { GatewayError, isGatewayError } from '../gateway/errors.js';
import { JwksClient } from './auth/jwks.js';
import { loadConfiguredKeys } from './auth/keys.js';
import { INVALID_TOKEN_CHALLENGE, missingToken, TokenVerifier, type VerifyStats } from './auth/verify.js';
import type { Decision, Policy, PolicyContext } from './policy.js';
import { ADMIN_SCOPES, type Principal } from './principal.js';

export interface AuthPolicy extends Policy {
  /** Counters of the verifier (zero with insecureNoAuth). */
  readonly stats: Readonly<VerifyStats>;
  /**
   * Whether the request's bearer token is one already verified (cached): what the request limits
   * let through from an address over its failed-authentication limit. Always true without auth.
   */
  knows(headers: PolicyContext['headers']): boolean;
  /** Stops the JWKS refresh; idempotent. */
  close(): Promise<void>;
}

export interface AuthDeps {
  readonly log: Logger;
  /** JWKS: the cooldown clock and the first retry delay; for tests. */
  readonly now?: () => number;
  readonly jwksRetryBaseMs?: number;
}

export const ANONYMOUS: Principal = Object.freeze({
  subject: 'anonymous',
  tenant: undefined,
  scopes: new Set<string>(['predict:*', ...Object.values(ADMIN_SCOPES)]),
  expiresAt: Number.POSITIVE_INFINITY,
});

const BEARER = 'bearer ';

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 7235 §2.1). */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string' || header.length <= BEARER.length) return undefined;
  if (header.slice(0, BEARER.length).toLowerCase() !== BEARER) return undefined;
  const token = header.slice(BEARER.length).trimStart();
  return token.length > 0 ? token : undefined;
}

function deny(error: GatewayError): Decision {
  return { kind: 'deny', error };
}

function denyFor(e: unknown): Decision {
  // verify.ts only throws UNAUTHENTICATED; anything else is a bug, and still not a way in.
  return deny(isGatewayError(e) ? e : new GatewayError('UNAUTHENTICATED', 'token could not be verified', { cause: e, headers: INVALID_TOKEN_CHALLENGE }));
}

export async function createAuthPolicy(cfg: AuthConfig, deps: AuthDeps): Promise<AuthPolicy> {
  if (cfg.insecureNoAuth) {
    deps.log.warn('auth.insecureNoAuth is on: every request is served as an anonymous principal with every scope; anyone who can reach the port can call every model and admin action');
    const decision: Decision = Object.freeze({ kind: 'continue', principal: ANONYMOUS });
    return {
      name: 'authenticate',
      phase: 'request',
      stats: Object.freeze({ signatureChecks: 0, cacheHits: 0 }),
      evaluate: function authenticateAnonymous() {
        return decision;
      },
      knows: () => true,
      close: () => Promise.resolve(),
    };
  }

  const keys = await loadConfiguredKeys(cfg.keys);
  const jwks = cfg.jwks === undefined ? undefined : new JwksClient(cfg.jwks, { log: deps.log, now: deps.now, retryBaseMs: deps.jwksRetryBaseMs });
  const verifier = new TokenVerifier(cfg, keys, jwks);
  // Bounded by the JWKS timeout; a JWKS server that is down does not stop the start (its tokens
  // fail with 401 until a background retry succeeds).
  if (jwks !== undefined) await jwks.start();

  const accept = (principal: Principal): Decision => ({ kind: 'continue', principal });
  return {
    name: 'authenticate',
    phase: 'request',
    stats: verifier.stats,
    evaluate: function authenticate(ctx: PolicyContext): Decision | Promise<Decision> {
      const token = bearerToken(ctx.headers.authorization);
      if (token === undefined) return deny(missingToken());
      let result: Principal | Promise<Principal>;
      try {
        result = verifier.verify(token);
      } catch (e) {
        return denyFor(e);
      }
      return result instanceof Promise ? result.then(accept, denyFor) : accept(result);
    },
    knows(headers: PolicyContext['headers']): boolean {
      const token = bearerToken(headers.authorization);
      return token !== undefined && verifier.knows(token);
    },
    close: async () => {
      await jwks?.close();
    },
  };
}
