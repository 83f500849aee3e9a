/**
 * Turns a scanned Triton-style model repository into a configuration object, so that both ways of
 * starting the gateway go through the same validation. A model's `config.yaml` may hold the
 * model-level settings of the configuration file (stable, nonFinite, maxBodyBytes, maxElements,
 * maxJsonDepth, unknownMembers, allowEmptyBatch, inferTimeoutMs) and a `backend` mapping of onnx
 * options applied to every version.
 */
import type { RepositoryScan } from './model-repository.js';

export function repositoryToConfig(scan: RepositoryScan): Record<string, unknown> {
  const models: Record<string, unknown> = {};
  for (const m of scan.models) {
    const { backend, ...modelSettings } = m.settings;
    const extra = typeof backend === 'object' && backend !== null ? backend : {};
    const versions: Record<string, unknown> = {};
    for (const v of m.versions) versions[v.version] = { backend: { ...extra, kind: 'onnx', path: v.path } };
    models[m.name] = { ...modelSettings, stable: m.stable, versions };
  }
  return { models };
}
