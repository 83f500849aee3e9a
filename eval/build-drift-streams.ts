/**
 * Builds the drift evaluation's streams (issue 11), seeded and deterministic:
 *
 *   npm run eval:build-drift-streams [-- --out DIR] [-- --reference DIR] [-- --seed S]
 *     (defaults: eval/drift-streams, eval/reference, the committed seed)
 *
 * From the reference rows the profiles are built from (DIR/reference/<model>.csv) it writes every
 * stream of eval/lib/drift-recipes.ts: the small ones as DIR/<name>.jsonl.gz (committed), the
 * large controls as DIR/cache/<name>.jsonl.gz (gitignored; `npm run eval:drift` rebuilds them when
 * missing), and DIR/manifest.json with each stream's model, kind, change points, length and the
 * SHA-256 of its text, in the format of eval/drift-streams/README.md. No model runs: a stream is
 * requests only. A second run writes byte-identical files.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { RECIPES } from './lib/drift-recipes.js';
import { buildRecipe, DRIFT_SEED } from './lib/drift-stream-build.js';
import type { StreamEntry, StreamManifest } from './lib/drift-streams.js';

const EVAL_DIR = fileURLToPath(new URL('../../eval/', import.meta.url));
/** Building is a matter of seconds; past this it stops rather than run on. */
const BUILD_DEADLINE_MS = 10 * 60_000;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string' }, reference: { type: 'string' }, seed: { type: 'string' }, help: { type: 'boolean' } } });
  if (values.help) {
    process.stdout.write('usage: npm run eval:build-drift-streams [-- --out DIR] [-- --reference DIR] [-- --seed S]   (defaults: eval/drift-streams, eval/reference)\n');
    return;
  }
  const out = resolve(values.out ?? join(EVAL_DIR, 'drift-streams'));
  const referenceDir = resolve(values.reference ?? join(EVAL_DIR, 'reference'));
  const seed = values.seed ?? DRIFT_SEED;
  const deadline = setTimeout(() => {
    process.stderr.write(`eval:build-drift-streams: still running after ${BUILD_DEADLINE_MS / 60_000} min; stopped\n`);
    process.exit(1);
  }, BUILD_DEADLINE_MS);
  deadline.unref();
  mkdirSync(out, { recursive: true });
  const started = Date.now();
  const streams: StreamEntry[] = [];
  for (const recipe of RECIPES) {
    const entry = await buildRecipe(recipe, out, referenceDir, seed);
    streams.push(entry);
    process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${entry.file}: ${entry.requests} requests (${entry.kind}${entry.changeAt.length > 0 ? `, change at ${entry.changeAt.join('–')}` : ''})\n`);
  }
  const manifest: StreamManifest = { seed, streams };
  writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  process.stdout.write(`done: ${join(out, 'manifest.json')}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`eval:build-drift-streams: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
