/**
 * A development bench for the extraction detector that never looks at the evaluation's traces:
 *
 *   npm run eval:extraction-dev -- --seed S [--out DIR] [--models titanic,iris,mnist]
 *
 * From each model's REFERENCE rows only (the rows of eval/reference, as build-sets splits them), it
 * splits off 30 % again (seeded by S) as a development pool, writes the other 70 % as a development
 * reference, builds a profile from it with `breakwater profile`, and builds an extraction trace of
 * the same kinds as the committed ones (eval/lib/traces.ts: 50 benign callers replaying the pool,
 * the attackers running against a served gateway) with every random stream seeded by S instead of
 * the build's seed. The trace is replayed as `npm run eval:guards` replays the committed ones
 * (extraction-replay.ts), printing the same table with each signal's peak score.
 *
 * Traces are kept in DIR/<S>/ (default: the system's temporary folder) and reused: only the profile
 * is rebuilt on each run, so a change to the detector or the profile is measured on the same traffic.
 * Thresholds set by looking at the committed traces' results would be fitted to the very data the
 * evaluation reports; this is where the detector is developed instead.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent } from 'undici';
import { stringify } from 'yaml';
import type { Profile } from '../policies/guards/profile.js';
import { runCli } from '../test/helpers/gateway.js';
import { irisExamples, titanicExamples, type Example } from './lib/datasets.js';
import { DEFAULT_WINDOWS, readTrace, replayTrace } from './lib/extraction-replay.js';
import { extractionTable, extractionTargets } from './lib/extraction-report.js';
import { MODELS, type ModelSpec } from './lib/models.js';
import { BUILD_SEED } from './lib/random.js';
import { referenceFile, writeReference } from './lib/reference-data.js';
import { referenceStats } from './lib/reference-stats.js';
import { gatewayConfig, ModelClient, serveGateway } from './lib/served-models.js';
import { writeJsonLines } from './lib/sets.js';
import { splitMnist, splitTabular } from './lib/splits.js';
import { buildTrace } from './lib/traces.js';

/** The committed sets' reference rows of a model (never its test rows). */
function referenceExamples(spec: ModelSpec): Example[] {
  if (spec.name === 'mnist') return splitMnist().reference;
  return splitTabular(spec.name, spec.name === 'titanic' ? titanicExamples() : irisExamples()).reference;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seed: { type: 'string' }, out: { type: 'string' }, models: { type: 'string' } } });
  const seed = values.seed;
  if (seed === undefined || seed === '' || seed === BUILD_SEED) throw new Error(`give --seed S, a seed other than the build's (${BUILD_SEED})`);
  const dir = resolve(values.out ?? join(tmpdir(), 'bw-dev-extraction'), seed);
  const names = values.models?.split(',') ?? MODELS.map((m) => m.name);
  const specs = MODELS.filter((m) => names.includes(m.name));
  for (const d of ['reference', 'extraction', 'profiles']) mkdirSync(join(dir, d), { recursive: true });
  const configFile = join(dir, 'breakwater.yaml');
  writeFileSync(configFile, stringify(gatewayConfig(specs)));

  const missing = specs.filter((s) => !existsSync(join(dir, 'extraction', `${s.name}.trace.jsonl.gz`)));
  if (missing.length > 0) {
    const gateway = await serveGateway(gatewayConfig(missing));
    const agent = new Agent({ connections: 4 });
    try {
      for (const spec of missing) {
        const { reference, test: pool } = splitTabular(spec.name, referenceExamples(spec), seed);
        writeReference(spec, reference.map((e) => e.row), join(dir, 'reference'));
        const client = new ModelClient(gateway.url, spec, agent);
        const trace = await buildTrace(spec, referenceStats(spec, reference.map((e) => e.row)), pool, client, seed);
        writeJsonLines(join(dir, 'extraction', `${spec.name}.trace.jsonl.gz`), trace.lines);
        writeFileSync(join(dir, 'extraction', `${spec.name}.subjects.json`), JSON.stringify(trace.subjects, null, 2) + '\n');
        process.stdout.write(`${spec.name}: trace of ${trace.lines.length} requests built (${reference.length} reference rows, a pool of ${pool.length})\n`);
      }
    } finally {
      await gateway.stop();
      await agent.close();
    }
  }

  for (const spec of specs) {
    const out = join(dir, 'profiles', `${spec.name}.json`);
    const run = await runCli(['profile', '--model', spec.name, '--version', '1', '--data', join(dir, 'reference', referenceFile(spec)), '--config', configFile, '--out', out], { timeoutMs: 600_000 });
    if (run.code !== 0) throw new Error(`breakwater profile --model ${spec.name} failed (exit ${run.code}):\n${run.stderr}${run.stdout}`);
    const profile = JSON.parse(readFileSync(out, 'utf8')) as Profile;
    const trace = readTrace(dir, spec.name);
    if (trace === undefined) throw new Error(`no trace for ${spec.name} in ${dir}`);
    const outcomes = replayTrace(profile, spec, trace.lines, trace.subjects, DEFAULT_WINDOWS);
    process.stdout.write(`\n${extractionTable(spec.name, outcomes, `development trace, seed ${seed}`)}\n`);
    for (const o of outcomes.filter((x) => x.role === 'benign').sort((a, b) => Math.max(...Object.values(b.peak)) - Math.max(...Object.values(a.peak))).slice(0, 5)) {
      process.stdout.write(`  benign ${o.kind} ${o.subject} ${o.rows} rows: ${Object.entries(o.peak).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}\n`);
    }
    for (const t of extractionTargets(spec.name, outcomes)) process.stdout.write(`  ${t.met ? 'met   ' : 'MISSED'}  ${t.name}: ${t.value}\n`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`dev-extraction: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
