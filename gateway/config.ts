/**
 * Configuration: parsed from YAML, validated once against the JSON Schema in config-schema.ts,
 * defaults filled, relative paths resolved, then deep-frozen. Nothing downstream re-checks it.
 */
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parse as parseYaml } from 'yaml';
import type { OnnxBackendOptions } from '../adapters/onnx.js';
import type { OipHttpBackendOptions } from '../adapters/oip-http.js';
import { configSchema, oipHttpBackendSchema, onnxBackendSchema, trafficSchema } from './config-schema.js';

export type BackendConfig = OnnxBackendOptions | OipHttpBackendOptions;

export interface VersionConfig {
  readonly backend: BackendConfig;
}

export interface TrafficRoute {
  readonly version: string;
  /** Percent, integer; a model's weights sum to 100. */
  readonly weight: number;
  /** Reported as x-route-reason; default `arm:<version>` (`stable` for the stable version). */
  readonly name?: string;
}

export interface TrafficRule {
  readonly name: string;
  readonly version: string;
  /** Exactly one of claim and header. `scope` matches when the principal holds that scope. */
  readonly claim?: { readonly name: 'sub' | 'tenant' | 'scope'; readonly equals: string };
  readonly header?: { readonly name: string; readonly equals: string };
}

export interface ShadowConfig {
  readonly version: string;
  /** Percent of requests mirrored, per request, in 0.01 steps. */
  readonly percent: number;
  readonly mode: 'after' | 'parallel';
  readonly timeoutMs: number;
  readonly maxConcurrent: number;
  /** Failed copies in a row before the shadow is suspended for a cool-down; 0: never. */
  readonly suspendAfter: number;
}

export interface TrafficConfig {
  readonly routes: readonly TrafficRoute[];
  readonly rules: readonly TrafficRule[];
  readonly shadow?: ShadowConfig;
  readonly unleash?: { readonly flag: string };
}

export interface FallbackConfig {
  /** Served to subjects who opted out of automated decisions. */
  readonly version?: string;
  /** Told to them when there is no fallback version (HUMAN_DECISION_REQUIRED). */
  readonly humanDecision?: string;
}

export interface ModelConfig {
  readonly versions: Readonly<Record<string, VersionConfig>>;
  readonly stable: string;
  readonly traffic?: TrafficConfig;
  readonly fallback?: FallbackConfig;
  readonly nonFinite: 'reject' | 'allow';
  readonly maxBodyBytes: number;
  readonly maxElements: number;
  readonly inferTimeoutMs: number;
}

export interface ServerConfig {
  readonly host: string;
  readonly port: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly maxConnections: number;
  readonly shutdownGraceMs: number;
  readonly watchConfig: boolean;
  /** Resolved: "auto" becomes the number of cores. */
  readonly workers: number;
}

export type JwtAlgorithm = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA' | 'HS256' | 'HS384' | 'HS512';

export interface AuthKeyConfig {
  readonly kid?: string;
  /** Exactly one of these four, checked at validation; files are resolved against the config's folder. */
  readonly publicKey?: string;
  readonly publicKeyFile?: string;
  readonly secret?: string;
  readonly secretFile?: string;
  readonly algorithms: readonly JwtAlgorithm[];
}

export interface AuthConfig {
  readonly insecureNoAuth: boolean;
  /** Required unless insecureNoAuth. */
  readonly issuer?: string;
  readonly audience?: string | readonly string[];
  readonly clockSkewSeconds: number;
  readonly maxTokenBytes: number;
  readonly tenantClaim: string;
  readonly metadataRequiresScope: boolean;
  readonly cacheSize: number;
  readonly keys: readonly AuthKeyConfig[];
  readonly jwks?: {
    readonly url: string;
    readonly algorithms: readonly JwtAlgorithm[];
    readonly refreshIntervalMs: number;
    readonly cooldownMs: number;
    readonly timeoutMs: number;
  };
}

export interface StateConfig {
  readonly redisUrl?: string;
  readonly keyPrefix: string;
  readonly commandTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly quotaBlocks: boolean;
  readonly reconcileMs: number;
}

export interface UnleashConfig {
  readonly url: string;
  readonly appName: string;
  readonly apiTokenEnv: string;
  readonly refreshIntervalMs: number;
  /** Resolved against the configuration's folder. */
  readonly bootstrapFile?: string;
}

export interface RateLimitRule {
  readonly name: string;
  readonly by: 'subject' | 'tenant';
  readonly models: readonly string[];
  readonly limit: number;
  readonly windowMs: number;
}

export interface RateLimitConfig {
  readonly failMode: 'local' | 'closed' | 'open';
  readonly rules: readonly RateLimitRule[];
  readonly tenantConcurrency?: { readonly limit: number; readonly leaseTtlMs: number };
}

export interface GatewayConfig {
  readonly auth: AuthConfig;
  readonly state: StateConfig;
  readonly rateLimits: RateLimitConfig;
  readonly unleash?: UnleashConfig;
  readonly server: ServerConfig;
  readonly logging: { readonly level: string; readonly accessLog: boolean };
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
    const algs = k.algorithms as string[];
    if (symmetric && algs.some((a) => !a.startsWith('HS'))) problems.push(`auth.keys.${i}.algorithms: a secret can only be used with HS256/HS384/HS512`);
    if (!symmetric && algs.some((a) => a.startsWith('HS'))) problems.push(`auth.keys.${i}.algorithms: HS* needs a secret, never a public key (algorithm confusion)`);
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
 * The one algorithm a PEM public key given by flag is pinned to, from its type (RSA → RS256,
 * P-256 → ES256, P-384 → ES384, Ed25519 → EdDSA). An unreadable file is reported by validation.
 */
function algorithmsForKey(file: string): string[] {
  try {
    const key = createPublicKey(readFileSync(file));
    const type = key.asymmetricKeyType;
    if (type === 'rsa') return ['RS256'];
    if (type === 'ed25519') return ['EdDSA'];
    if (type === 'ec') return key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? ['ES384'] : ['ES256'];
    return ['unsupported-key-type'];
  } catch {
    return ['unreadable-key-file'];
  }
}

function asRecord(x: unknown): Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Record<string, unknown>) : {};
}

/** Applies overrides to a parsed (not yet validated) configuration object. */
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
