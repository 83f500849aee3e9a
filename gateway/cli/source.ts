/**
 * Where the configuration comes from: a YAML file, or a model repository folder rescanned on every
 * reload. Either way the result goes through the same validation (config.ts).
 */
import { resolve } from 'node:path';
import { applyOverrides, buildConfig, loadConfigFile, type BuildConfigOptions, type ConfigOverrides, type GatewayConfig } from '../config.js';
import { scanModelRepository } from '../model-repository.js';
import { repositoryToConfig } from '../repository-config.js';

export type ConfigSource = { readonly kind: 'file' | 'repository'; readonly path: string };

export async function resolveSource(
  source: ConfigSource,
  overrides: ConfigOverrides,
  options: BuildConfigOptions = {},
): Promise<{ config: GatewayConfig; warnings: readonly string[] }> {
  if (source.kind === 'file') return { config: await loadConfigFile(source.path, overrides, options), warnings: [] };
  const dir = resolve(source.path);
  const scan = await scanModelRepository(dir);
  return { config: buildConfig(applyOverrides(repositoryToConfig(scan), overrides), dir, dir, options), warnings: scan.warnings };
}
