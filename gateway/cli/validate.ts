/**
 * `breakwater validate`: checks a configuration file or a model repository the way `serve` would
 * start it, without listening. The configuration goes through the same validation, every model
 * version is loaded into the same model table (adapters/registry.ts), with its reference profile
 * when it names one, and closed again, and the
 * configured verification keys are read. It fails on everything `serve` would refuse, and on
 * repository entries `serve` would leave out: whoever put them there meant them to be served.
 *
 * Two things `serve` tolerates are warnings, not failures: a remote (oip-http) backend that does not
 * answer (serve retries it in the background), and a configuration that names no identity provider
 * at all (serve takes it from its flags; a repository never has one). Identity that is given is
 * checked in full.
 */
import { pino } from 'pino';
import { backendSource, buildModelTable, retireTable, TableLoadError, type ModelTable } from '../../adapters/registry.js';
import { loadConfiguredKeys } from '../../policies/auth/keys.js';
import { profileLoader } from '../profile/loader.js';
import { ConfigError, namesNoIdentity, type ConfigOverrides, type GatewayConfig } from '../config.js';
import { resolveSource, type ConfigSource } from './source.js';

export interface ValidationReport {
  /** Empty when `serve` would start and serve everything the source holds. */
  readonly problems: readonly string[];
  /** What serve tolerates but an operator should know. */
  readonly warnings: readonly string[];
  /** What serve would serve, for a valid source. */
  readonly summary: string;
}

const IDENTITY_NOTE = 'no identity provider is configured here; serve will need --jwt-public-key FILE or --jwks-url URL, '
  + 'with --jwt-issuer and --jwt-audience (or --insecure-no-auth, for local experiments only)';

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** An error's message and, when it has one, its cause's code (ECONNREFUSED, UND_ERR_…). */
function reasonOf(e: Error): string {
  const code = (e.cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && !e.message.includes(code) ? `${e.message} (${code})` : e.message;
}

/** Remote versions that did not answer: serve would start and keep retrying them. */
function unreachable(table: ModelTable, config: GatewayConfig): string[] {
  const lines: string[] = [];
  for (const sv of table.allVersions()) {
    if (sv.metadata !== undefined) continue;
    const backend = config.models[sv.model]?.versions[sv.version]?.backend;
    const where = backend === undefined ? '' : ` at ${backendSource(backend)}`;
    const why = sv.loadError === undefined ? 'it did not answer' : reasonOf(sv.loadError);
    lines.push(`model ${sv.model} version ${sv.version}: the backend${where} is not reachable (${why}); `
      + 'serve starts anyway, answers MODEL_NOT_READY for it and keeps retrying in the background');
  }
  return lines;
}

function summarise(path: string, config: GatewayConfig): string {
  const names = Object.keys(config.models);
  const lines = Object.entries(config.models).map(([name, m]) => {
    const versions = Object.keys(m.versions);
    return `  ${name}: version${versions.length === 1 ? '' : 's'} ${versions.join(', ')} (stable ${m.stable})`;
  });
  return [`${path}: valid (${names.length} models: ${names.join(', ')})`, ...lines].join('\n');
}

export async function validateSource(source: ConfigSource, overrides: ConfigOverrides): Promise<ValidationReport> {
  let resolved;
  try {
    resolved = await resolveSource(source, overrides, { requireIdentity: false });
  } catch (e) {
    return { problems: e instanceof ConfigError ? e.problems : [messageOf(e)], warnings: [], summary: '' };
  }
  const { config } = resolved;
  // Every scan warning is an entry serve would skip: not served is not what its author meant.
  const problems = resolved.warnings.map((w) => `${w} (serve would start without it)`);
  const warnings: string[] = [];
  if (namesNoIdentity(config.auth)) warnings.push(IDENTITY_NOTE);
  else if (!config.auth.insecureNoAuth) {
    await loadConfiguredKeys(config.auth.keys).catch((e: unknown) => problems.push(messageOf(e)));
  }
  try {
    const table = await buildModelTable(config, { log: pino({ level: 'silent' }), tolerateUnreachable: true, artifacts: [profileLoader()] });
    warnings.push(...unreachable(table, config));
    await retireTable(table, undefined);
  } catch (e) {
    problems.push(...(e instanceof TableLoadError ? e.failures : [messageOf(e)]));
  }
  return { problems, warnings, summary: summarise(source.path, config) };
}
