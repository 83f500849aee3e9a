/**
 * Contexts for policy unit tests: the shape the gateway builds (policy.ts newContext), over a model
 * view made from a configuration, so a test states only what it is about.
 */
import type { GatewayConfig } from '../gateway/config.js';
import { newContext, type ModelView, type PolicyAction, type PolicyContext, type VersionView } from './policy.js';
import type { Principal } from './principal.js';

const NO_ARTIFACTS: ReadonlyMap<string, unknown> = new Map();

/** A served model as the model table would show it, from a model of `config` (stable may be overridden, as mid-reload). */
export function viewOf(config: GatewayConfig, model: string, stable?: string): ModelView | undefined {
  const mc = config.models[model];
  if (mc === undefined) return undefined;
  const versions = new Map<string, VersionView>(Object.keys(mc.versions).map((v) => [v, { version: v, metadata: undefined, artifacts: NO_ARTIFACTS }]));
  const s = stable ?? mc.stable;
  return { name: model, config: mc, versions, stable: versions.get(s) ?? { version: s, metadata: undefined, artifacts: NO_ARTIFACTS } };
}

export interface TestContext {
  readonly served?: ModelView;
  readonly action?: PolicyAction;
  readonly pinnedVersion?: string;
  readonly headers?: Readonly<Record<string, string | string[] | undefined>>;
  readonly requestId?: string;
  readonly principal?: Principal;
  readonly rows?: number;
}

export function testContext(model: string, over: TestContext = {}): PolicyContext {
  const ctx = newContext({
    model,
    served: over.served,
    action: over.action ?? 'infer',
    pinnedVersion: over.pinnedVersion,
    headers: over.headers ?? {},
    requestId: over.requestId ?? 'r',
  });
  ctx.principal = over.principal;
  ctx.rows = over.rows ?? 0;
  return ctx;
}
