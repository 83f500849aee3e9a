/**
 * Triton-style model repository scan. Layout:
 *
 *   DIR/<model>/config.yaml          optional per-model settings (a YAML mapping)
 *   DIR/<model>/<version>/model.onnx one folder per version, named by a positive integer
 *
 * Entries that cannot be served (bad model names, non-numeric version folders, version folders
 * without model.onnx, an unreadable config.yaml, a `stable` naming no version folder) are skipped and described in `warnings`, so one stray
 * folder never stops the gateway; the caller logs them. A repository with no usable model at all
 * is an error. Symlinked model folders, version folders and model files are followed.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';

export interface RepositoryVersion {
  /** The version folder's name: a positive integer without leading zeros. */
  readonly version: string;
  /** Absolute path of the version's model.onnx. */
  readonly path: string;
}

export interface RepositoryModel {
  readonly name: string;
  /** Sorted by ascending version number. */
  readonly versions: readonly RepositoryVersion[];
  /** config.yaml's `stable` (which must name a version folder), else the highest version. */
  readonly stable: string;
  /** config.yaml's keys, unchanged (`{}` without a file); validated by the configuration layer. */
  readonly settings: Readonly<Record<string, unknown>>;
}

export interface RepositoryScan {
  /** Sorted by name. */
  readonly models: readonly RepositoryModel[];
  /** One line per skipped entry or ignored setting, naming it and the reason. */
  readonly warnings: readonly string[];
}

export const MODEL_FILE = 'model.onnx';
export const SETTINGS_FILE = 'config.yaml';
const MODEL_NAME = /^[A-Za-z0-9_.-]{1,128}$/;
const VERSION_NAME = /^[1-9][0-9]*$/;

async function kindOf(path: string): Promise<'dir' | 'file' | 'other' | 'missing'> {
  try {
    const s = await stat(path);
    return s.isDirectory() ? 'dir' : s.isFile() ? 'file' : 'other';
  } catch {
    return 'missing';
  }
}

/** Compares canonical positive integers of any size. */
function compareVersions(a: string, b: string): number {
  return a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads config.yaml; `undefined` settings means the file exists but is unusable (see warning). */
async function readSettings(
  modelDir: string, name: string,
): Promise<{ settings?: Record<string, unknown>; warning?: string }> {
  const file = join(modelDir, SETTINGS_FILE);
  const kind = await kindOf(file);
  if (kind === 'missing') return { settings: {} };
  if (kind !== 'file') return { warning: `model "${name}": ${SETTINGS_FILE} is not a file; model skipped` };
  let parsed: unknown;
  try {
    parsed = parseYaml(await readFile(file, 'utf8'));
  } catch (e) {
    const reason = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    return { warning: `model "${name}": ${SETTINGS_FILE} cannot be read or parsed (${reason}); model skipped` };
  }
  if (parsed === null || parsed === undefined) return { settings: {} };
  if (!isRecord(parsed)) {
    return { warning: `model "${name}": ${SETTINGS_FILE} is not a YAML mapping; model skipped` };
  }
  return { settings: parsed };
}

async function scanModel(dir: string, name: string, warnings: string[]): Promise<RepositoryModel | undefined> {
  const modelDir = join(dir, name);
  const versions: RepositoryVersion[] = [];
  for (const entry of (await readdir(modelDir)).sort()) {
    const path = join(modelDir, entry);
    if ((await kindOf(path)) !== 'dir') continue; // config.yaml, READMEs and the like
    if (!VERSION_NAME.test(entry)) {
      warnings.push(`model "${name}": folder "${entry}" is not a positive integer version; ignored`);
      continue;
    }
    const file = join(path, MODEL_FILE);
    if ((await kindOf(file)) !== 'file') {
      warnings.push(`model "${name}" version ${entry}: no ${MODEL_FILE}; ignored`);
      continue;
    }
    versions.push({ version: entry, path: file });
  }
  if (versions.length === 0) {
    warnings.push(`model "${name}": no version folder with a ${MODEL_FILE}; model skipped`);
    return undefined;
  }
  versions.sort((a, b) => compareVersions(a.version, b.version));
  const { settings, warning } = await readSettings(modelDir, name);
  if (settings === undefined) {
    warnings.push(warning ?? `model "${name}": unusable ${SETTINGS_FILE}; model skipped`);
    return undefined;
  }
  let stable = versions[versions.length - 1].version;
  if (settings.stable !== undefined) {
    // A pinned stable version usually keeps traffic off a newer one: never fall back to the highest.
    stable = String(settings.stable);
    if (!versions.some((v) => v.version === stable)) {
      warnings.push(`model "${name}": ${SETTINGS_FILE} stable version "${stable}" has no version folder; model skipped`);
      return undefined;
    }
  }
  return { name, versions, stable, settings };
}

/**
 * Scans a model repository. Throws an Error naming `dir` when it cannot be read or holds no
 * usable model; everything else that is wrong is skipped and reported in `warnings`.
 */
export async function scanModelRepository(dir: string): Promise<RepositoryScan> {
  const root = resolve(dir);
  let entries: string[];
  try {
    entries = (await readdir(root)).sort();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new Error(`model repository ${root} cannot be read (${code})`, { cause: e });
  }
  const warnings: string[] = [];
  const models: RepositoryModel[] = [];
  for (const name of entries) {
    if ((await kindOf(join(root, name))) !== 'dir') continue; // loose files are not models
    if (!MODEL_NAME.test(name) || name.startsWith('.')) {
      warnings.push(`folder "${name}" is not a valid model name (letters, digits, _ . -, at most 128, not starting with "."); skipped`);
      continue;
    }
    const model = await scanModel(root, name, warnings);
    if (model !== undefined) models.push(model);
  }
  if (models.length === 0) {
    const why = warnings.length > 0 ? `; skipped: ${warnings.join('; ')}` : '';
    throw new Error(`model repository ${root} holds no model (expected ${root}/<model>/<version>/${MODEL_FILE})${why}`);
  }
  return { models, warnings };
}
