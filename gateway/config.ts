/**
 * Configuration: parsed from YAML, validated once against the JSON Schema in config-schema.ts,
 * defaults filled, relative paths resolved, then deep-frozen. Nothing downstream re-checks it.
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parse as parseYaml } from 'yaml';
import type { OnnxBackendOptions } from '../adapters/onnx.js';
import type { OipHttpBackendOptions } from '../adapters/oip-http.js';
import { configSchema, oipHttpBackendSchema, onnxBackendSchema } from './config-schema.js';

export type BackendConfig = OnnxBackendOptions | OipHttpBackendOptions;

export interface VersionConfig {
  readonly backend: BackendConfig;
}

export interface ModelConfig {
  readonly versions: Readonly<Record<string, VersionConfig>>;
  readonly stable: string;
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

export interface GatewayConfig {
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

/**
 * Validates a parsed configuration object. `baseDir` resolves relative model paths. Throws
 * ConfigError listing every problem (path and reason), or returns the frozen configuration.
 */
export function buildConfig(input: unknown, baseDir: string, source = 'configuration'): GatewayConfig {
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
  }
  if (problems.length > 0) throw new ConfigError(source, problems);
  return deepFreeze(raw as GatewayConfig);
}

/** Settings given on the command line or in the environment; they win over the file. */
export interface ConfigOverrides {
  readonly host?: string;
  readonly port?: number;
  readonly workers?: number | 'auto';
}

/** Applies overrides to a parsed (not yet validated) configuration object. */
export function applyOverrides(raw: unknown, overrides: ConfigOverrides): unknown {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const obj = raw as Record<string, unknown>;
  const server = { ...(typeof obj.server === 'object' && obj.server !== null ? obj.server : {}) } as Record<string, unknown>;
  if (overrides.host !== undefined) server.host = overrides.host;
  if (overrides.port !== undefined) server.port = overrides.port;
  if (overrides.workers !== undefined) server.workers = overrides.workers;
  return { ...obj, server };
}

/** Reads, parses and validates a YAML (or JSON) configuration file. */
export async function loadConfigFile(file: string, overrides: ConfigOverrides = {}): Promise<GatewayConfig> {
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
  return buildConfig(applyOverrides(parsed, overrides), dirname(path), path);
}
