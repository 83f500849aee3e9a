/**
 * Configuration: parsed from YAML, validated once against the JSON Schema in config-schema.ts,
 * defaults filled, relative paths resolved, then deep-frozen. Nothing downstream re-checks it.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { FromSchema, JSONSchema } from 'json-schema-to-ts';
import { parse as parseYaml } from 'yaml';
import type { OnnxBackendOptions } from '../adapters/onnx.js';
import type { OipHttpBackendOptions } from '../adapters/oip-http.js';
import {
  alertsSchema,
  auditSchema,
  authSchema,
  configSchema,
  REQUEST_LIMIT_NAMES,
  fallbackSchema,
  fleetSchema,
  killSwitchSchema,
  guardsSchema,
  driftSchema,
  loggingSchema,
  modelKillSwitchSchema,
  oipHttpBackendSchema,
  onnxBackendSchema,
  PROTOTYPE_KEYS,
  rateLimitSchema,
  rolloutSchema,
  rolloutSettingsSchema,
  serverSchema,
  stateSchema,
  trafficSchema,
  unleashSchema,
} from './config-schema.js';
import { ALGORITHM_FAMILY, HMAC_ALGORITHMS, importPublicPem, keyKindOf, type JwtAlgorithm } from './jwt-algorithms.js';

/**
 * The configuration's types. Where the validated value is exactly what the schema says (Ajv fills
 * every default, so a defaulted field is present), the type is derived from the schema
 * (json-schema-to-ts, type-only) and a field is described once, in config-schema.ts. Types stay
 * written by hand where config.ts changes the value after validation in a way the schema cannot
 * say: see each one.
 */
type Validated<S extends JSONSchema> = DeepReadonly<FromSchema<S>>;
/** The configuration is deep-frozen once built; its types say so. */
type DeepReadonly<T> = T extends readonly (infer U)[] ? readonly DeepReadonly<U>[] : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;
/** The schema's type with the fields config.ts resolves after validation retyped (one flat type in hovers). */
type Resolved<T, R> = { readonly [K in keyof T]: K extends keyof R ? R[K] : T[K] };

/** By hand: the schema checks only `kind` here, and each kind's own schema (and type) after it. */
export type BackendConfig = OnnxBackendOptions | OipHttpBackendOptions;

export interface VersionConfig {
  readonly backend: BackendConfig;
  /** The reference profile's file (resolved against the configuration's folder). */
  readonly profile?: string;
}

export type TrafficConfig = Validated<typeof trafficSchema>;
export type TrafficRoute = TrafficConfig['routes'][number];
export type TrafficRule = TrafficConfig['rules'][number];
export type ShadowConfig = NonNullable<TrafficConfig['shadow']>;
export type FallbackConfig = Validated<typeof fallbackSchema>;
export type ModelKillSwitchConfig = Validated<typeof modelKillSwitchSchema>;
export type GuardsConfig = Validated<typeof guardsSchema>;
export type DriftConfig = Validated<typeof driftSchema>;
export type GuardName = 'contract' | 'ood' | 'squeeze' | 'extraction';
export type KillSwitchConfig = Validated<typeof killSwitchSchema>;
export type FleetConfig = Validated<typeof fleetSchema>;
export type AlertsConfig = Validated<typeof alertsSchema>;
export type RolloutConfig = Validated<typeof rolloutSchema>;
export type RolloutStep = RolloutConfig['steps'][number];
export type RolloutCriteria = RolloutConfig['criteria'];
export type RolloutSettings = Validated<typeof rolloutSettingsSchema>;
export type AuditConfig = Validated<typeof auditSchema>;

/** By hand: `stable` is always set (config.ts picks the highest version), and backends are typed by kind. */
export interface ModelConfig {
  readonly versions: Readonly<Record<string, VersionConfig>>;
  readonly stable: string;
  readonly traffic?: TrafficConfig;
  readonly fallback?: FallbackConfig;
  readonly killSwitch?: ModelKillSwitchConfig;
  readonly guards?: GuardsConfig;
  readonly drift?: DriftConfig;
  readonly rollout?: RolloutConfig;
  readonly auditPayloads: boolean;
  readonly nonFinite: 'reject' | 'allow';
  readonly maxBodyBytes: number;
  readonly maxElements: number;
  readonly allowEmptyBatch: boolean;
  readonly maxJsonDepth: number;
  readonly unknownMembers: 'refuse' | 'drop';
  readonly inferTimeoutMs: number;
}

/** `workers` is resolved: "auto" becomes the number of cores. */
export type ServerConfig = Resolved<Validated<typeof serverSchema>, { workers: number }>;

export type { JwtAlgorithm } from './jwt-algorithms.js';

/** Key files are resolved against the configuration's folder (still strings: the schema's type holds). */
export type AuthConfig = Validated<typeof authSchema>;
export type AuthKeyConfig = AuthConfig['keys'][number];
/** `snapshotDir` is resolved against the configuration's folder. */
export type StateConfig = Validated<typeof stateSchema>;
/** What the store itself needs of `state` (create-store.ts, the Redis store): tests and tools build it by hand. */
export type StoreSettings = Pick<StateConfig, 'redisUrl' | 'keyPrefix' | 'commandTimeoutMs' | 'connectTimeoutMs' | 'quotaBlocks' | 'reconcileMs'>;
export type MirrorStart = StateConfig['mirrors']['optOuts'];
/** `bootstrapFile` is resolved against the configuration's folder. */
export type UnleashConfig = Validated<typeof unleashSchema>;
export type RateLimitConfig = Validated<typeof rateLimitSchema>;
export type RateLimitRule = RateLimitConfig['rules'][number];
export type LoggingConfig = Validated<typeof loggingSchema>;

/** By hand, as a list of the named sections, so an editor shows names rather than one large type. */
export interface GatewayConfig {
  readonly auth: AuthConfig;
  readonly state: StateConfig;
  readonly rateLimits: RateLimitConfig;
  readonly unleash?: UnleashConfig;
  readonly killSwitch: KillSwitchConfig;
  readonly fleet: FleetConfig;
  readonly alerts: AlertsConfig;
  readonly rollout: RolloutSettings;
  /** Paths resolved against the configuration file's folder. */
  readonly audit?: AuditConfig;
  readonly server: ServerConfig;
  readonly logging: LoggingConfig;
  readonly models: Readonly<Record<string, ModelConfig>>;
}

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(source: string, problems: readonly string[]) {
    super(`invalid configuration in ${source}:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true });
const validateTop = ajv.compile(configSchema);
const backendValidators: Record<string, ValidateFunction> = {
  onnx: ajv.compile(onnxBackendSchema),
  'oip-http': ajv.compile(oipHttpBackendSchema),
};

function describe(prefix: string, errors: readonly ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => {
    const path = `${prefix}${e.instancePath}`.replace(/^\//, '').replaceAll('/', '.') || '(top level)';
    if (e.keyword === 'additionalProperties') {
      return `${path}: unknown field "${String(e.params.additionalProperty)}"`;
    }
    if (e.keyword === 'enum') return `${path}: must be one of ${JSON.stringify(e.params.allowedValues)}`;
    return `${path}: ${e.message ?? 'is invalid'}`;
  });
}

const validateTraffic = ajv.compile(trafficSchema);
const validateRollout = ajv.compile(rolloutSchema);

/**
 * Where a parsed JSON (or YAML) document has a key named `__proto__`, `constructor` or
 * `prototype`, at any depth. JSON.parse makes such keys plain own properties, but the next
 * copy, merge or lookup by name may not (an object spread into a target with a setter, a
 * `config[name]` lookup that finds Object.prototype's member): admin bodies and the configuration
 * refuse them outright rather than reason about every place one could travel to.
 *
 * Iterative, not recursive: an admin body of 256 KiB can nest a hundred thousand levels deep.
 */
const BANNED: ReadonlySet<string> = new Set(PROTOTYPE_KEYS);
/** Enough to show the pattern; a document with more gets "and N more". */
export const MAX_PROTOTYPE_KEYS_REPORTED = 16;

/** Dotted paths (`routes.0.__proto__`) of every prototype key in `value`, in document order: at most MAX_PROTOTYPE_KEYS_REPORTED, then a count of the rest. */
export function prototypeKeyProblems(value: unknown, prefix = ''): string[] {
  const found: string[] = [];
  let more = 0;
  // Depth first, children pushed last-first so they come off in document order.
  const stack: { readonly v: unknown; readonly at: string; readonly key: string | undefined }[] = [{ v: value, at: prefix, key: undefined }];
  while (stack.length > 0) {
    const { v, at, key } = stack.pop()!;
    if (key !== undefined && BANNED.has(key)) {
      if (found.length < MAX_PROTOTYPE_KEYS_REPORTED) found.push(`${at.length > 128 ? `…${at.slice(-128)}` : at}: "${key}" is not allowed as a key`);
      else more++;
    }
    if (v === null || typeof v !== 'object') continue;
    // Own enumerable properties only: what JSON.parse and the YAML parser made.
    const keys = Object.keys(v);
    for (let i = keys.length - 1; i >= 0; i--) {
      const k = keys[i];
      const path = at === '' ? k : `${at}.${k}`;
      stack.push({ v: (v as Record<string, unknown>)[k], at: path.length > 256 ? path.slice(-256) : path, key: k });
    }
  }
  if (more > 0) found.push(`and ${more} more keys named __proto__, constructor or prototype`);
  return found;
}

/**
 * A model's traffic given at run time (the admin API, the shared store): the same schema and checks
 * as the configuration file's `models.<m>.traffic`, defaults filled, frozen. Throws ConfigError.
 */
export function parseTraffic(input: unknown, versions: readonly string[], source = 'traffic'): TrafficConfig {
  const raw: unknown = structuredClone(input ?? null);
  // Every problem in one answer: prototype keys, the schema's, and what the schema cannot say
  // (checked on whatever parts have the right shape, even when others do not).
  const problems = prototypeKeyProblems(raw, 'traffic');
  if (!validateTraffic(raw)) problems.push(...describe('', validateTraffic.errors));
  problems.push(...checkTraffic('traffic', raw, versions));
  if (problems.length > 0) throw new ConfigError(source, [...new Set(problems)]);
  return deepFreeze(raw as TrafficConfig);
}

/**
 * A model's rollout given at run time (PUT /admin/models/{m}/rollout): the same schema and checks
 * as the configuration file's `models.<m>.rollout`, defaults filled, frozen. Throws ConfigError
 * naming every problem.
 */
export function parseRollout(input: unknown, model: ModelConfig, source = 'rollout'): RolloutConfig {
  const raw: unknown = structuredClone(input ?? null);
  const problems = prototypeKeyProblems(raw, 'rollout');
  if (!validateRollout(raw)) problems.push(...describe('', validateRollout.errors));
  problems.push(...checkRollout('rollout', raw, model));
  if (problems.length > 0) throw new ConfigError(source, [...new Set(problems)]);
  return deepFreeze(raw as RolloutConfig);
}

/**
 * What JSON Schema cannot say about a rollout: versions that exist and differ, steps strictly
 * increasing to 100 (promotion), at least one criterion, drift judged only where it is monitored.
 */
export function checkRollout(at: string, input: unknown, model: { readonly versions: Readonly<Record<string, unknown>>; readonly stable: string; readonly drift?: { readonly enabled: boolean } }): string[] {
  const problems: string[] = [];
  const r = asRecord(input);
  const versions = Object.keys(model.versions);
  const known = (v: unknown) => typeof v === 'string' && versions.includes(v);
  const stable = r.stable === undefined ? model.stable : r.stable;
  if (typeof r.canary === 'string' && !known(r.canary)) problems.push(`${at}.canary: version "${clipped(r.canary)}" is not among the model's versions (${versions.join(', ')})`);
  if (r.stable !== undefined && typeof r.stable === 'string' && !known(r.stable)) problems.push(`${at}.stable: version "${clipped(r.stable)}" is not among the model's versions (${versions.join(', ')})`);
  if (typeof r.canary === 'string' && r.canary === stable) problems.push(`${at}.canary: the canary must differ from the stable version (${clipped(String(stable))})`);
  if (Array.isArray(r.steps)) {
    const weights = r.steps.map((s) => asRecord(s).weight);
    weights.forEach((w, i) => {
      if (i > 0 && typeof w === 'number' && typeof weights[i - 1] === 'number' && w <= (weights[i - 1] as number)) {
        problems.push(`${at}.steps.${i}.weight: steps must increase (${String(weights[i - 1])} then ${w})`);
      }
    });
    const last = weights.at(-1);
    if (typeof last === 'number' && last !== 100) problems.push(`${at}.steps: the last step must be 100 (the canary serves everyone before it is promoted); it is ${last}`);
  }
  const c = r.criteria;
  if (c !== undefined && c !== null && typeof c === 'object' && Object.keys(c).length === 0) {
    problems.push(`${at}.criteria: name at least one criterion (errorRate, latencyP99, guards, drift, disagreement): a rollout judged on nothing would promote on no evidence`);
  }
  if (c !== null && typeof c === 'object' && (c as Record<string, unknown>).drift !== undefined && model.drift?.enabled !== true) {
    problems.push(`${at}.criteria.drift: the model's drift is not monitored (models.<m>.drift)`);
  }
  return problems;
}

/** Highest numeric version; else the last one in lexical order. */
function defaultStable(versions: readonly string[]): string {
  const numeric = versions.filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(a) - Number(b));
  return numeric.at(-1) ?? [...versions].sort().at(-1) ?? '';
}

/** Freezes `value` and everything it holds (what a validated configuration, or a loaded profile, is). */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

export interface BuildConfigOptions {
  /**
   * false: a configuration that names no identity provider at all (no issuer, audience, keys or
   * JWKS, and not insecureNoAuth) passes, for `validate`: a repository or a file whose identity
   * comes from serve's flags is checked without them. Anything given is still checked in full.
   */
  readonly requireIdentity?: boolean;
}

/**
 * Validates a parsed configuration object. `baseDir` resolves relative model paths. Throws
 * ConfigError listing every problem (path and reason), or returns the frozen configuration.
 */
export function buildConfig(input: unknown, baseDir: string, source = 'configuration', options: BuildConfigOptions = {}): GatewayConfig {
  const raw: unknown = structuredClone(input ?? {});
  // What the admin API refuses in a body, the file may not say either (prototype-keys.ts).
  const keyProblems = prototypeKeyProblems(raw);
  if (!validateTop(raw)) throw new ConfigError(source, [...keyProblems, ...describe('', validateTop.errors)]);
  if (keyProblems.length > 0) throw new ConfigError(source, keyProblems);
  const cfg = raw as { models: Record<string, Record<string, unknown>>; server: { workers: number | 'auto' } };
  if (cfg.server.workers === 'auto') cfg.server.workers = availableParallelism();
  const problems: string[] = [];
  for (const [name, model] of Object.entries(cfg.models)) {
    const versions = model.versions as Record<string, { backend: Record<string, unknown>; profile?: string }>;
    for (const [v, ver] of Object.entries(versions)) {
      if (ver.profile !== undefined && !isAbsolute(ver.profile)) ver.profile = resolve(baseDir, ver.profile);
      const kind = String(ver.backend.kind);
      const check = backendValidators[kind];
      const at = `/models/${name}/versions/${v}/backend`;
      if (check === undefined || !check(ver.backend)) {
        problems.push(...describe(at, check?.errors));
        continue;
      }
      if (kind === 'onnx' && typeof ver.backend.path === 'string' && !isAbsolute(ver.backend.path)) {
        ver.backend.path = resolve(baseDir, ver.backend.path);
      }
    }
    const names = Object.keys(versions);
    if (model.stable === undefined) model.stable = defaultStable(names);
    else if (!names.includes(String(model.stable))) {
      problems.push(`models.${name}.stable: version "${String(model.stable)}" is not among its versions (${names.join(', ')})`);
    }
    if (model.traffic !== undefined) {
      problems.push(...checkTraffic(`models.${name}.traffic`, model.traffic, names));
      if ((model.traffic as TrafficConfig).unleash !== undefined && (raw as { unleash?: unknown }).unleash === undefined) {
        problems.push(`models.${name}.traffic.unleash: needs a top-level unleash section (the server to ask)`);
      }
    }
    const fb = model.fallback as FallbackConfig | undefined;
    if (fb?.version !== undefined && !names.includes(fb.version)) {
      problems.push(`models.${name}.fallback.version: version "${fb.version}" is not among its versions (${names.join(', ')})`);
    }
    if (model.guards !== undefined) problems.push(...checkGuards(`models.${name}.guards`, model.guards as GuardsConfig, versions));
    if (model.drift !== undefined) problems.push(...checkDrift(`models.${name}.drift`, model.drift as DriftConfig, versions));
    if (model.rollout !== undefined) {
      problems.push(...checkRollout(`models.${name}.rollout`, model.rollout, { versions, stable: String(model.stable), drift: model.drift as DriftConfig | undefined }));
    }
    const rollbackTo = (model.killSwitch as ModelKillSwitchConfig | undefined)?.rollbackTo;
    if (rollbackTo !== undefined && !names.includes(rollbackTo)) {
      problems.push(`models.${name}.killSwitch.rollbackTo: version "${rollbackTo}" is not among its versions (${names.join(', ')})`);
    }
  }
  const au = (raw as unknown as { audit?: { dir: string; signingKeyFile: string; publicKeyFiles: string[] } }).audit;
  if (au !== undefined) {
    if (!isAbsolute(au.dir)) au.dir = resolve(baseDir, au.dir);
    if (!isAbsolute(au.signingKeyFile)) au.signingKeyFile = resolve(baseDir, au.signingKeyFile);
    au.publicKeyFiles = au.publicKeyFiles.map((f) => (isAbsolute(f) ? f : resolve(baseDir, f)));
  }
  const st = (raw as unknown as { state: { snapshotDir: string } }).state;
  if (!isAbsolute(st.snapshotDir)) st.snapshotDir = resolve(baseDir, st.snapshotDir);
  const un = (raw as { unleash?: { bootstrapFile?: string } }).unleash;
  if (un?.bootstrapFile !== undefined && !isAbsolute(un.bootstrapFile)) un.bootstrapFile = resolve(baseDir, un.bootstrapFile);
  problems.push(...checkAuth(raw as unknown as { auth: Record<string, unknown> }, baseDir, options.requireIdentity ?? true));
  const rl = (raw as unknown as { rateLimits: RateLimitConfig }).rateLimits;
  rl.rules.forEach((r, i) => {
    if (r.name === REQUEST_LIMIT_NAMES.perSubject || r.name === REQUEST_LIMIT_NAMES.failedAuthPerAddress) problems.push(`rateLimits.rules.${i}.name: "${r.name}" names a request limit (rateLimits.requests); choose another`);
  });
  (raw as unknown as { server: ServerConfig }).server.trustProxy.forEach((a, i) => {
    if (!isProxyAddress(a)) problems.push(`server.trustProxy.${i}: "${a}" is not an IP address, a CIDR, or loopback/linklocal/uniquelocal`);
  });
  if (problems.length > 0) throw new ConfigError(source, problems);
  return deepFreeze(raw as GatewayConfig);
}

/** What the schema cannot say about drift: a reference for every version, thresholds in order. */
function checkDrift(at: string, d: DriftConfig, versions: Record<string, { profile?: unknown }>): string[] {
  const problems: string[] = [];
  if (!d.enabled) return problems;
  const without = Object.keys(versions).filter((v) => versions[v]?.profile === undefined);
  if (without.length > 0 && d.baseline === undefined) {
    problems.push(`${at}: drift needs a reference for every version: a profile (versions.<v>.profile, built with \`breakwater profile\`) or a baseline of production samples (${at}.baseline.samples); missing on ${without.join(', ')}`);
  }
  if (d.baseline !== undefined && d.window.seconds !== undefined) problems.push(`${at}.baseline: a baseline of samples needs a window of samples (${at}.window.samples), not of seconds`);
  if (d.thresholds.psiWarning > d.thresholds.psiDrift) problems.push(`${at}.thresholds: psiWarning (${d.thresholds.psiWarning}) must not exceed psiDrift (${d.thresholds.psiDrift})`);
  return problems;
}

/** Guards that are on (mode not off) in a model's guards section. */
export function guardsOn(g: GuardsConfig | undefined): GuardName[] {
  if (g === undefined) return [];
  const on: GuardName[] = [];
  for (const name of ['contract', 'ood', 'squeeze', 'extraction'] as const) {
    const mode = g[name]?.mode;
    if (mode !== undefined && mode !== 'off') on.push(name);
  }
  return on;
}

/** What the schema cannot say about guards: a profile on every version, and where `route` goes. */
function checkGuards(at: string, g: GuardsConfig, versions: Record<string, { profile?: unknown }>): string[] {
  const problems: string[] = [];
  const names = Object.keys(versions);
  const on = guardsOn(g);
  if (on.length > 0) {
    const without = names.filter((v) => versions[v]?.profile === undefined);
    if (without.length > 0) problems.push(`${at}: guards ${on.join(', ')} need a reference profile on every version; missing on ${without.join(', ')} (build one with \`breakwater profile\`, then set versions.<v>.profile)`);
  }
  const routing = (['contract', 'ood', 'squeeze'] as const).filter((n) => g[n]?.mode === 'route');
  if (routing.length > 0 && g.routeTo === undefined) problems.push(`${at}.routeTo: guards ${routing.join(', ')} are in route mode and need the version to route to`);
  if (g.routeTo !== undefined && !names.includes(g.routeTo)) problems.push(`${at}.routeTo: version "${g.routeTo}" is not among its versions (${names.join(', ')})`);
  return problems;
}

/**
 * What JSON Schema cannot say about a traffic split: weights, versions, one matcher per rule.
 * Shared by the configuration and the admin API (PUT /admin/models/{m}/traffic).
 */
export function checkTraffic(at: string, input: unknown, versions: readonly string[]): string[] {
  // Also run on a value the schema refused (parseTraffic names every problem at once): each part is
  // checked only where it has the shape the check needs; the schema has named what else is wrong.
  const problems: string[] = [];
  const traffic = asRecord(input);
  const known = (v: unknown) => typeof v === 'string' && versions.includes(v);
  const shown = (v: unknown) => clipped(String(v));
  const routes = Array.isArray(traffic.routes) ? traffic.routes.map(asRecord) : [];
  if (routes.length > 0 && routes.every((r) => typeof r.weight === 'number')) {
    const total = routes.reduce((sum, r) => sum + (r.weight as number), 0);
    if (total !== 100) problems.push(`${at}.routes: weights must sum to 100 (they sum to ${total})`);
  }
  // A version listed twice would take both arms' share under one name (the weights of the first
  // would be reported, the traffic of both served): each version is one arm.
  const versionAt = new Map<string, number>();
  const nameAt = new Map<string, number>();
  routes.forEach((r, i) => {
    if (typeof r.version !== 'string') return;
    if (!known(r.version)) problems.push(`${at}.routes.${i}.version: version "${shown(r.version)}" is not among its versions (${versions.join(', ')})`);
    const first = versionAt.get(r.version);
    if (first !== undefined) problems.push(`${at}.routes.${i}.version: version "${shown(r.version)}" is already routed by routes.${first}`);
    else versionAt.set(r.version, i);
    if (typeof r.name !== 'string') return;
    const named = nameAt.get(r.name);
    if (named !== undefined) problems.push(`${at}.routes.${i}.name: "${shown(r.name)}" is used by routes.${named}`);
    else nameAt.set(r.name, i);
  });
  const rules = Array.isArray(traffic.rules) ? traffic.rules.map(asRecord) : [];
  const ruleAt = new Map<string, number>();
  rules.forEach((r, i) => {
    if (typeof r.version === 'string' && !known(r.version)) problems.push(`${at}.rules.${i}.version: version "${shown(r.version)}" is not among its versions (${versions.join(', ')})`);
    if ((r.claim === undefined) === (r.header === undefined)) problems.push(`${at}.rules.${i}: give exactly one of claim, header`);
    if (typeof r.name !== 'string') return;
    const first = ruleAt.get(r.name);
    if (first !== undefined) problems.push(`${at}.rules.${i}.name: "${shown(r.name)}" is used by an earlier rule`);
    else ruleAt.set(r.name, i);
  });
  const shadow = traffic.shadow === undefined ? undefined : asRecord(traffic.shadow);
  if (shadow !== undefined && typeof shadow.version === 'string' && !known(shadow.version)) {
    problems.push(`${at}.shadow.version: version "${shown(shadow.version)}" is not among its versions (${versions.join(', ')})`);
  }
  return problems;
}

/** A name from a body quoted in a problem: short. */
function clipped(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}…` : s;
}

/** What proxy-addr (Fastify's trustProxy) compiles: an address, a CIDR (or address/netmask), or a named range. */
function isProxyAddress(a: string): boolean {
  if (a === 'loopback' || a === 'linklocal' || a === 'uniquelocal') return true;
  const slash = a.indexOf('/');
  const ip = slash < 0 ? a : a.slice(0, slash);
  const kind = isIP(ip);
  if (kind === 0) return false;
  if (slash < 0) return true;
  const bits = a.slice(slash + 1);
  if (/^\d{1,3}$/.test(bits)) return Number(bits) <= (kind === 4 ? 32 : 128);
  return kind === 4 && isIP(bits) === 4;
}

/** Whether `auth` names no identity provider at all (what serve's flags would then have to give). */
export function namesNoIdentity(auth: Pick<AuthConfig, 'insecureNoAuth' | 'issuer' | 'audience' | 'keys' | 'jwks'>): boolean {
  return !auth.insecureNoAuth && auth.issuer === undefined && auth.audience === undefined && auth.keys.length === 0 && auth.jwks === undefined;
}

/** What JSON Schema cannot say about `auth`: what is required together, and key sources. */
function checkAuth(cfg: { auth: Record<string, unknown> }, baseDir: string, requireIdentity: boolean): string[] {
  const auth = cfg.auth;
  const problems: string[] = [];
  const keys = (auth.keys ?? []) as Record<string, unknown>[];
  keys.forEach((k, i) => {
    const sources = ['publicKey', 'publicKeyFile', 'secret', 'secretFile'].filter((f) => k[f] !== undefined);
    if (sources.length !== 1) problems.push(`auth.keys.${i}: give exactly one of publicKey, publicKeyFile, secret, secretFile`);
    const symmetric = k.secret !== undefined || k.secretFile !== undefined;
    const hmac = (k.algorithms as JwtAlgorithm[]).map((a) => ALGORITHM_FAMILY[a] === 'hmac');
    if (symmetric && hmac.includes(false)) problems.push(`auth.keys.${i}.algorithms: a secret can only be used with ${HMAC_ALGORITHMS.join('/')}`);
    if (!symmetric && hmac.includes(true)) problems.push(`auth.keys.${i}.algorithms: HS* needs a secret, never a public key (algorithm confusion)`);
    for (const f of ['publicKeyFile', 'secretFile']) {
      if (typeof k[f] === 'string' && !isAbsolute(k[f] as string)) k[f] = resolve(baseDir, k[f] as string);
    }
  });
  if (auth.insecureNoAuth === true) return problems;
  if (!requireIdentity && namesNoIdentity(auth as unknown as AuthConfig)) return problems;
  if (auth.issuer === undefined) problems.push('auth.issuer: required (or set auth.insecureNoAuth: true, which is insecure)');
  if (auth.audience === undefined) problems.push('auth.audience: required (or set auth.insecureNoAuth: true, which is insecure)');
  if (keys.length === 0 && auth.jwks === undefined) {
    problems.push('auth: give keys or a jwks url to verify tokens with (or set auth.insecureNoAuth: true, which is insecure)');
  }
  return problems;
}

/** Settings given on the command line or in the environment; they win over the file. */
export interface ConfigOverrides {
  readonly host?: string;
  readonly port?: number;
  readonly workers?: number | 'auto';
  readonly redisUrl?: string;
  /** A PEM public key file; its algorithm is inferred from the key type. */
  readonly jwtPublicKeyFile?: string;
  readonly jwksUrl?: string;
  readonly jwtIssuer?: string;
  readonly jwtAudience?: string;
  readonly insecureNoAuth?: boolean;
}

/**
 * The one algorithm a PEM public key given by flag is pinned to, from its kind (jwt-algorithms.ts:
 * RSA → RS256, P-256 → ES256, P-384 → ES384, P-521 → ES512, Ed25519/Ed448 → EdDSA). A key no
 * algorithm may use, or a file that cannot be read, is a ConfigError naming the file.
 */
function algorithmsForKey(file: string): JwtAlgorithm[] {
  const refuse = (problem: string) => new ConfigError(file, [`the JWT public key (--jwt-public-key) ${problem}`]);
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    throw refuse(`cannot be read: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const key = importPublicPem(pem);
  if (typeof key === 'string') throw refuse(key);
  const kind = keyKindOf(key);
  if (typeof kind === 'string') throw refuse(`cannot be used: ${kind}`);
  return [kind.inferred];
}

function asRecord(x: unknown): Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Record<string, unknown>) : {};
}

/** Applies overrides to a parsed (not yet validated) configuration object; throws ConfigError for an unusable key file. */
export function applyOverrides(raw: unknown, overrides: ConfigOverrides): unknown {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const obj = raw as Record<string, unknown>;
  const server = { ...(typeof obj.server === 'object' && obj.server !== null ? obj.server : {}) } as Record<string, unknown>;
  if (overrides.host !== undefined) server.host = overrides.host;
  if (overrides.port !== undefined) server.port = overrides.port;
  if (overrides.workers !== undefined) server.workers = overrides.workers;
  const state = { ...asRecord(obj.state) };
  if (overrides.redisUrl !== undefined) state.redisUrl = overrides.redisUrl;
  const auth = { ...asRecord(obj.auth) };
  if (overrides.jwtIssuer !== undefined) auth.issuer = overrides.jwtIssuer;
  if (overrides.jwtAudience !== undefined) auth.audience = overrides.jwtAudience;
  if (overrides.insecureNoAuth === true) auth.insecureNoAuth = true;
  if (overrides.jwksUrl !== undefined) auth.jwks = { ...asRecord(auth.jwks), url: overrides.jwksUrl };
  if (overrides.jwtPublicKeyFile !== undefined) {
    // The flag's key joins the file's keys; its algorithms follow from its type (see keys.ts).
    const file = resolve(overrides.jwtPublicKeyFile);
    const flagKey = { publicKeyFile: file, algorithms: algorithmsForKey(file) };
    auth.keys = [...(Array.isArray(auth.keys) ? auth.keys : []), flagKey];
  }
  return { ...obj, server, state, auth };
}

/** Reads, parses and validates a YAML (or JSON) configuration file. */
export async function loadConfigFile(file: string, overrides: ConfigOverrides = {}, options: BuildConfigOptions = {}): Promise<GatewayConfig> {
  const path = resolve(file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ConfigError(path, [`cannot read the file: ${(e as NodeJS.ErrnoException).code ?? String(e)}`]);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text, { prettyErrors: true });
  } catch (e) {
    throw new ConfigError(path, [`not valid YAML: ${(e as Error).message.split('\n')[0]}`]);
  }
  return buildConfig(applyOverrides(parsed, overrides), dirname(path), path, options);
}
