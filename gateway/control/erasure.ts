/**
 * Erasure ("right to be forgotten"): removes what the gateway holds about a subject. That is the
 * subject's opt-out record and their rate-limit counters; nothing else the gateway writes names a
 * subject (logs carry no subject; access lines name model, version, code and time).
 *
 * Counters are named by policies/rate-limit-keys.ts: a subject rule counts `sub:<subject>:<model>:<rule>`
 * (each part URI-encoded) in the tenant's scope `t:<tenant>`, or, for a token without a tenant, in
 * the subject's own scope `s:<subject>`, where the subject's tenant rules (`ten:<model>:<rule>`)
 * count too. Keys are enumerated from the configuration: every subject rule × every model it
 * applies to (a `*` rule: every configured model), and the request limit's `req:<subject>`. Concurrency leases are not touched: they name a
 * request, not a subject, and expire by themselves.
 */
import type { GatewayConfig } from '../config.js';
import { storeUnavailable } from '../state/mirrored-scope.js';
import type { StateStore } from '../state/store.js';
import { requestCounterKey, ruleSuffix, subjectPrefix, subjectScope, tenantCounterKey, tenantScope } from '../../policies/rate-limit-keys.js';
import type { OptOutKindName, OptOutRegistry } from './opt-out-registry.js';

export interface CounterSet {
  readonly scope: string;
  readonly keys: readonly string[];
}

/** Every counter the rate-limit policy may hold for `subject`: in its own scope and in each tenant's. */
export function subjectCounters(config: Pick<GatewayConfig, 'rateLimits' | 'models'>, subject: string, tenants: readonly string[]): CounterSet[] {
  const configured = Object.keys(config.models);
  const modelsOf = (models: readonly string[]): string[] => [...new Set(models.includes('*') ? [...configured, ...models.filter((m) => m !== '*')] : models)];
  const subjectKeys: string[] = [];
  const tenantKeys: string[] = [];
  for (const r of config.rateLimits.rules) {
    for (const m of modelsOf(r.models)) {
      if (r.by === 'subject') subjectKeys.push(subjectPrefix(subject) + ruleSuffix(m, r.name));
      else tenantKeys.push(tenantCounterKey(m, r.name));
    }
  }
  // The request limit's counter sits beside the subject's rule counters (policies/request-limit.ts).
  if (config.rateLimits.requests.perSubject.limit > 0) subjectKeys.push(requestCounterKey(subject));
  if (subjectKeys.length === 0 && tenantKeys.length === 0) return [];
  const sets: CounterSet[] = [{ scope: subjectScope(subject), keys: [...subjectKeys, ...tenantKeys] }];
  for (const t of new Set(tenants)) if (subjectKeys.length > 0) sets.push({ scope: tenantScope(t), keys: subjectKeys });
  return sets;
}

export interface ErasureSummary {
  readonly subject: string;
  readonly optOuts: { readonly removed: boolean; readonly kinds: readonly OptOutKindName[] };
  readonly counters: { readonly removed: number; readonly scopes: readonly string[] };
  /** With an audit trail: the subject's pseudonym keys were deleted (its records can no longer be linked to it). */
  readonly auditKeys?: { readonly shredded: number };
}

export interface EraserDeps {
  readonly store: StateStore;
  readonly registry: OptOutRegistry;
  /** The rate-limit policy's per-replica stand-in for an unreachable store, if it has one. */
  readonly fallback?: StateStore;
  /** The configuration in force (models follow reloads). */
  readonly config: () => GatewayConfig;
  /** The audit trail's pseudonym keys (gateway/audit/subject-keys.ts), when the trail is on. */
  readonly auditKeys?: { erase(tenant: string | undefined, subject: string): Promise<void> };
}

export class Eraser {
  readonly #deps: EraserDeps;

  constructor(deps: EraserDeps) {
    this.#deps = deps;
  }

  /**
   * Counters first, then the record: when the store fails half-way the subject still has the record
   * and may simply ask again (erasure is idempotent). STATE_STORE_UNAVAILABLE when the store fails.
   */
  async erase(subject: string, tenants: readonly string[]): Promise<ErasureSummary> {
    const { store, registry, fallback, config } = this.#deps;
    const sets = subjectCounters(config(), subject, tenants);
    let removed = 0;
    for (const s of sets) {
      try {
        removed += await store.forget(s.scope, s.keys);
      } catch (err) {
        throw storeUnavailable(err);
      }
      // This replica's outage counters; other replicas' expire with their window.
      if (fallback !== undefined) removed += await fallback.forget(s.scope, s.keys);
    }
    // Crypto-shredding: the audit trail's records of the subject stay, unlinkable (every chain verifies).
    const keys = this.#deps.auditKeys;
    const tenantsShredded: (string | undefined)[] = [undefined, ...tenants];
    if (keys !== undefined) {
      try {
        for (const t of tenantsShredded) await keys.erase(t, subject);
      } catch (err) {
        throw storeUnavailable(err);
      }
    }
    const { before } = await registry.clear(subject);
    return {
      subject,
      optOuts: { removed: before !== undefined, kinds: before?.kinds ?? [] },
      counters: { removed, scopes: sets.map((s) => s.scope) },
      ...(keys === undefined ? {} : { auditKeys: { shredded: tenantsShredded.length } }),
    };
  }
}
