/**
 * Configuration: parsed from YAML, validated once against the JSON Schema in config-schema.ts,
 * defaults filled, relative paths resolved, then deep-frozen. Nothing downstream re-checks it.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { FromSchema, JSONSchema } from 'json-schema-to-ts';
import { parse as parseYaml } from 'yaml';
import type { OnnxBackendOptions } from '../adapters/onnx.js';
import type { OipHttpBackendOptions } from '../adapters/oip-http.js';
import {
  authSchema,
  configSchema,
  fallbackSchema,
  loggingSchema,
  oipHttpBackendSchema,
  onnxBackendSchema,
  rateLimitSchema,
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
}

export type TrafficConfig = Validated<typeof trafficSchema>;
export type TrafficRoute = TrafficConfig['routes'][number];
export type TrafficRule = TrafficConfig['rules'][number];
export type ShadowConfig = NonNullable<TrafficConfig['shadow']>;
export type FallbackConfig = Validated<typeof fallbackSchema>;

/** By hand: `stable` is always set (config.ts picks the highest version), and backends are typed by kind. */
export interface ModelConfig {
  readonly versions: Readonly<Record<string, VersionConfig>>;
  readonly stable: string;
  readonly traffic?: TrafficConfig;
  readonly fallback?: FallbackConfig;
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

/**
 * A model's traffic given at run time (the admin API, the shared store): the same schema and checks
 * as the configuration file's `models.<m>.traffic`, defaults filled, frozen. Throws ConfigError.
 */
export function parseTraffic(input: unknown, versions: readonly string[], source = 'traffic'): TrafficConfig {
  const raw: unknown = structuredClone(input ?? null);
  if (!validateTraffic(raw)) throw new ConfigError(source, describe('', validateTraffic.errors));
  const problems = checkTraffic('traffic', raw as TrafficConfig, versions);
  if (problems.length > 0) throw new ConfigError(source, problems);
  return deepFreeze(raw as TrafficConfig);
}

/** Highest numeric version; else the last one in lexical order. */
function defaultStable(versions: readonly string[]): string {
  const numeric = versions.filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(a) - Number(b));
  return numeric.at(-1) ?? [...versions].sort().at(-1) ?? '';
}

function deepFreeze<T>(value: T): T {
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
  if (!validateTop(raw)) throw new ConfigError(source, describe('', validateTop.errors));
  const cfg = raw as { models: Record<string, Record<string, unknown>>; server: { workers: number | 'auto' } };
  if (cfg.server.workers === 'auto') cfg.server.workers = availableParallelism();
  const problems: string[] = [];
  for (const [name, model] of Object.entries(cfg.models)) {
    const versions = model.versions as Record<string, { backend: Record<string, unknown> }>;
    for (const [v, ver] of Object.entries(versions)) {
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
      problems.push(...checkTraffic(`models.${name}.traffic`, model.traffic as TrafficConfig, names));
      if ((model.traffic as TrafficConfig).unleash !== undefined && (raw as { unleash?: unknown }).unleash === undefined) {
        problems.push(`models.${name}.traffic.unleash: needs a top-level unleash section (the server to ask)`);
      }
    }
    const fb = model.fallback as FallbackConfig | undefined;
    if (fb?.version !== undefined && !names.includes(fb.version)) {
      problems.push(`models.${name}.fallback.version: version "${fb.version}" is not among its versions (${names.join(', ')})`);
    }
  }
  const st = (raw as unknown as { state: { snapshotDir: string } }).state;
  if (!isAbsolute(st.snapshotDir)) st.snapshotDir = resolve(baseDir, st.snapshotDir);
  const un = (raw as { unleash?: { bootstrapFile?: string } }).unleash;
  if (un?.bootstrapFile !== undefined && !isAbsolute(un.bootstrapFile)) un.bootstrapFile = resolve(baseDir, un.bootstrapFile);
  problems.push(...checkAuth(raw as unknown as { auth: Record<string, unknown> }, baseDir, options.requireIdentity ?? true));
  if (problems.length > 0) throw new ConfigError(source, problems);
  return deepFreeze(raw as GatewayConfig);
}

/**
 * What JSON Schema cannot say about a traffic split: weights, versions, one matcher per rule.
 * Shared by the configuration and the admin API (PUT /admin/models/{m}/traffic).
 */
export function checkTraffic(at: string, traffic: TrafficConfig, versions: readonly string[]): string[] {
  const problems: string[] = [];
  const known = (v: string) => versions.includes(v);
  const total = traffic.routes.reduce((sum, r) => sum + r.weight, 0);
  if (total !== 100) problems.push(`${at}.routes: weights must sum to 100 (they sum to ${total})`);
  traffic.routes.forEach((r, i) => {
    if (!known(r.version)) problems.push(`${at}.routes.${i}.version: version "${r.version}" is not among its versions (${versions.join(', ')})`);
  });
  const seen = new Set<string>();
  traffic.rules.forEach((r, i) => {
    if (!known(r.version)) problems.push(`${at}.rules.${i}.version: version "${r.version}" is not among its versions (${versions.join(', ')})`);
    if ((r.claim === undefined) === (r.header === undefined)) problems.push(`${at}.rules.${i}: give exactly one of claim, header`);
    if (seen.has(r.name)) problems.push(`${at}.rules.${i}.name: "${r.name}" is used by an earlier rule`);
    seen.add(r.name);
  });
  if (traffic.shadow !== undefined && !known(traffic.shadow.version)) {
    problems.push(`${at}.shadow.version: version "${traffic.shadow.version}" is not among its versions (${versions.join(', ')})`);
  }
  return problems;
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
