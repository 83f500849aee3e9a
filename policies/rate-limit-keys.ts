/**
 * How rate-limit counters are named in the StateStore: one place, read by the rate-limit policy
 * (which charges them) and by erasure (which removes a subject's). Every part is URI-encoded, so
 * ':' and '%' cannot make subject `a:b` meet subject `a` with model `b:…`.
 *
 * A tenant's principals share the tenant's scope `t:<tenant>`; a principal without a tenant is a
 * tenant of its own, in `s:<subject>` (prefixed, so a tenantless subject named like a tenant never
 * shares that tenant's counters).
 */
const enc = encodeURIComponent;

export const tenantScope = (tenant: string): string => `t:${enc(tenant)}`;
export const subjectScope = (subject: string): string => `s:${enc(subject)}`;
/** The prefix of a subject rule's counter; the rule's suffix completes it. */
export const subjectPrefix = (subject: string): string => `sub:${enc(subject)}`;
/** Appended to subjectPrefix: `:<model>:<rule>`. */
export const ruleSuffix = (model: string, rule: string): string => `:${enc(model)}:${enc(rule)}`;
/** A tenant rule's counter, in the tenant's scope. */
export const tenantCounterKey = (model: string, rule: string): string => `ten:${enc(model)}:${enc(rule)}`;

/**
 * The request limit (policies/request-limit.ts): every request of a subject, one counter in the
 * same scope as its rules' counters (its tenant's, or its own).
 */
export const requestCounterKey = (subject: string): string => `req:${enc(subject)}`;
/** Failed authentications from one client address (an IPv6 address's /64): a scope of its own. */
export const addressScope = (address: string): string => `a:${enc(address)}`;
export const FAILED_AUTH_KEY = 'auth-failures';
