/**
 * The policy chain a configuration asks for, in Envoy filter order: who is calling
 * (authenticate), may they (authorize), which version serves them (traffic split, then the
 * caller's opt-outs), how much may they take (rate-limit, charged by rows once the body is known). Built once at start; shared state comes from the one StateStore.
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
import { createOptOutPolicy } from './opt-out.js';
import { Eraser } from './opt-outs/erasure.js';
import { OptOutRegistry } from './opt-outs/registry.js';
import { createRateLimitPolicy } from './rate-limit.js';
import { createTrafficPolicy, effectiveTraffic, type TrafficPolicy } from './traffic-split.js';
import { createUnleashSource, type UnleashSource } from './unleash.js';
import type { ServerFeature } from '../gateway/routes/admin.js';
import { optOutsFeature } from '../gateway/routes/opt-outs.js';
import { TrafficRoutes } from '../gateway/control/traffic-routes.js';

export interface BuiltPolicies {
  readonly chain: PolicyChain;
  readonly store: StateStore;
  /** Identifies callers of the admin and self-service routes too. */
  readonly auth: Policy;
  readonly traffic: TrafficPolicy;
  /** The live routes of every model (configuration or admin API). */
  readonly routes: TrafficRoutes;
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
  // Flag-driven splits read a local copy of Unleash's flags; the source exists before the policy
  // (start-up waits briefly for it, never for an unreachable Unleash). Wired once, like `auth`.
  const unleash: UnleashSource | undefined = config.unleash === undefined ? undefined : await createUnleashSource(config.unleash, log);
  const traffic = createTrafficPolicy(effectiveTraffic(config), { variants: unleash });
  policies.push(traffic);
  // Opt-outs right after the split, so they override it (stable, fallback); a local copy of the
  // registry, kept fresh by notification and every state.reconcileMs.
  const optOuts = new OptOutRegistry(store, { log, reconcileMs: config.state.reconcileMs });
  await optOuts.start();
  const optOut = createOptOutPolicy(config, { optOuts, experiments: traffic });
  policies.push(optOut);
  // The live routes: the file's, or those set at run time through the admin API (shared store).
  let current = config;
  const routes = await TrafficRoutes.start({
    store,
    log,
    config,
    onChange: (overrides) => traffic.update(effectiveTraffic(current, overrides)),
  });
  const rl = config.rateLimits;
  let limitsFallback: MemoryStore | undefined;
  if (rl.rules.length > 0 || rl.tenantConcurrency !== undefined) {
    // Only a shared store needs a per-replica stand-in for when it is unreachable.
    const fallback = store.kind === 'memory' ? undefined : new MemoryStore();
    limitsFallback = fallback;
    policies.push(createRateLimitPolicy(rl, { store, log, fallback }));
  }
  const features: ServerFeature[] = [];
  features.push(optOutsFeature({ registry: optOuts, eraser: new Eraser({ store, registry: optOuts, fallback: limitsFallback, config: () => current }) }));
  return {
    chain: new PolicyChain(policies),
    store,
    auth,
    traffic,
    routes,
    features,
    reconfigure(next: GatewayConfig): void {
      current = next;
      traffic.update(effectiveTraffic(next, routes.overrides));
      optOut.update(next);
      routes.reconfigure(next).catch((e: unknown) => log.warn({ err: e }, 'traffic: re-reading stored routes after a reload failed'));
    },
    async close() {
      await routes.close();
      await optOuts.close();
      await Promise.allSettled([auth.close(), store.close(), unleash?.close()]);
    },
  };
}
