/**
 * Writes the team's drift streams (drift-recipes.ts) as stream files and manifest entries: used by
 * `npm run eval:build-drift-streams` for all of them, and by `npm run eval:drift` for a stream built
 * on demand (the million-request control, too large to commit) whose file is not in the cache yet.
 * The same seed always writes the same bytes; the manifest's sha256 (of the decompressed text) is
 * how the runner knows a cached file is the one the manifest describes.
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { RECIPES, recipeLines, type Recipe } from './drift-recipes.js';
import { writeStreamFile, type StreamEntry } from './drift-streams.js';
import { modelSpec } from './models.js';
import { readReference } from './reference-data.js';

/** The seed of the committed drift streams (and of the on-demand ones the manifest describes). */
export const DRIFT_SEED = 'breakwater-drift-1';
/** The folder, under the streams' folder, that on-demand streams are built into (gitignored). */
export const CACHE_DIR = 'cache';

/** A recipe's file, relative to the streams' folder. */
export function recipeFile(recipe: Recipe): string {
  return recipe.onDemand === true ? `${CACHE_DIR}/${recipe.name}.jsonl.gz` : `${recipe.name}.jsonl.gz`;
}

/** The recipe behind a manifest entry's file, if the builder knows it. */
export function recipeOf(file: string): Recipe | undefined {
  return RECIPES.find((r) => recipeFile(r) === file);
}

/** Builds one recipe's stream into `streamsDir` from the reference rows in `referenceDir`; returns its manifest entry. */
export async function buildRecipe(recipe: Recipe, streamsDir: string, referenceDir: string, seed: string): Promise<StreamEntry> {
  const spec = modelSpec(recipe.model);
  const path = join(streamsDir, recipeFile(recipe));
  mkdirSync(dirname(path), { recursive: true });
  const digest = await writeStreamFile(path, recipeLines(recipe, spec, readReference(spec, referenceDir), seed));
  return {
    file: recipeFile(recipe),
    model: recipe.model,
    kind: recipe.kind,
    changeAt: recipe.changeAt,
    requests: digest.requests,
    sha256: digest.sha256,
    ...(recipe.onDemand === true ? { onDemand: true } : {}),
    description: recipe.description,
  };
}
