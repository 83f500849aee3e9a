/**
 * The policy chain a configuration asks for, in Envoy filter order: who is calling
 * (authenticate), may they (authorize), which version serves them (traffic split), how much may
 * they take (rate-limit, charged by rows once the body is known). Built once at start; shared state comes from the one StateStore.
 */
import type { Logger } from 'pino';
import type { GatewayConfig } from '../gateway/config.js';
import { createStore } from '../gateway/state/create-store.js';
import { MemoryStore } from '../gateway/state/memory-store.js';
import type { StateStore } from '../gateway/state/store.js';
import { createAuthPolicy } from './authenticate.js';
import { createScopePolicy } from './authorize.js';
import { PolicyChain } from './chain.js';
import type { Policy } from './policy.js';
import { createRateLimitPolicy } from './rate-limit.js';
import { createTrafficPolicy, effectiveTraffic, type TrafficPolicy } from './traffic-split.js';
import type { ServerFeature } from '../gateway/routes/admin.js';

export interface BuiltPolicies {
  readonly chain: PolicyChain;
  readonly store: StateStore;
  /** Identifies callers of the admin and self-service routes too. */
  readonly auth: Policy;
  readonly traffic: TrafficPolicy;
  /** Admin and self-service routes the policies bring (opt-outs…). */
  readonly features: readonly ServerFeature[];
  /** Applies the model-level parts of a reloaded configuration (traffic splits). */
  reconfigure(config: GatewayConfig): void;
  close(): Promise<void>;
}

export async function buildPolicies(config: GatewayConfig, log: Logger): Promise<BuiltPolicies> {
  const store = await createStore(config.state, log);
  const auth = await createAuthPolicy(config.auth, { log });
  const policies: Policy[] = [auth, createScopePolicy(config.auth)];
  // Routing after authorization: a caller refused a model never learns which arm it would get.
  // Always present (a model without a split costs one map lookup) so a reload can add splits.
  const traffic = createTrafficPolicy(effectiveTraffic(config));
  policies.push(traffic);
  const rl = config.rateLimits;
  if (rl.rules.length > 0 || rl.tenantConcurrency !== undefined) {
    // Only a shared store needs a per-replica stand-in for when it is unreachable.
    const fallback = store.kind === 'memory' ? undefined : new MemoryStore();
    policies.push(createRateLimitPolicy(rl, { store, log, fallback }));
  }
  const features: ServerFeature[] = [];
  return {
    chain: new PolicyChain(policies),
    store,
    auth,
    traffic,
    features,
    reconfigure(next: GatewayConfig): void {
      traffic.update(effectiveTraffic(next));
    },
    async close() {
      await Promise.allSettled([auth.close(), store.close()]);
    },
  };
}
