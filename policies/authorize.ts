/**
 * May the principal do this: `predict:<model>` (or `predict:*`) to infer, and, unless
 * `auth.metadataRequiresScope` is false, to read the model's metadata. A missing scope is 403
 * FORBIDDEN with the RFC 6750 §3.1 `insufficient_scope` challenge naming the scope needed.
 */
import type { AuthConfig } from '../gateway/config.js';
import { GatewayError } from '../gateway/errors.js';
import { missingToken } from './auth/verify.js';
import { CONTINUE, type Decision, type Policy, type PolicyContext } from './policy.js';
import { mayPredict, predictScope } from './principal.js';

/** Model names as the configuration allows them: also safe inside a quoted header parameter. */
const SAFE_MODEL = /^[A-Za-z0-9_.-]{1,128}$/;
/** The model name is the client's: only this much of it goes back in the message. */
const MAX_ECHO = 64;

function echo(model: string): string {
  const printable = model.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > MAX_ECHO ? `${printable.slice(0, MAX_ECHO)}…` : printable;
}

export function insufficientScope(model: string): GatewayError {
  // A name no model can have gets a challenge without `scope`: a quote or CR/LF in a header
  // parameter would be header injection (and Node would refuse the header with a 500).
  const challenge = SAFE_MODEL.test(model)
    ? `Bearer error="insufficient_scope", scope="${predictScope(model)}"`
    : 'Bearer error="insufficient_scope"';
  return new GatewayError('FORBIDDEN', `needs scope ${predictScope(echo(model))}`, { headers: { 'www-authenticate': challenge } });
}

export function createScopePolicy(cfg: AuthConfig): Policy {
  const metadataOpen = !cfg.metadataRequiresScope;
  return {
    name: 'authorize',
    phase: 'request',
    evaluate: function authorize(ctx: PolicyContext): Decision {
      const p = ctx.principal;
      if (p === undefined) return { kind: 'deny', error: missingToken() };
      if (ctx.action === 'metadata' && metadataOpen) return CONTINUE;
      if (mayPredict(p, ctx.model)) return CONTINUE;
      return { kind: 'deny', error: insufficientScope(ctx.model) };
    },
  };
}
