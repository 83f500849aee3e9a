/**
 * The input-guard evaluation (issue 10):
 *
 *   npm run eval:guards [-- --sets DIR] [-- --reference DIR]   (defaults: eval/sets, eval/reference)
 *
 * 1. Builds each model's profile with the real command line, `breakwater profile`, from the
 *    reference data only (DIR/<model>.csv or .jsonl; the profile holds part of it out to calibrate).
 * 2. Starts a real gateway child process serving the models with every input guard in `flag` mode,
 *    and another without guards.
 * 3. Sends every clean, OOD and adversarial record over HTTP and reads the status and `x-guard`.
 * 4. Replays each model's extraction trace (sets/extraction/) against the extraction detector with a
 *    simulated clock, not through HTTP (lib/extraction-replay.ts): the detector is the gateway's,
 *    with the signals of the profile built in step 1 and the configuration's default windows.
 * 5. Prints a table per model (the share of records each guard flagged, per set, OOD kind and
 *    adversarial budget; clean: the false positives), the median answer time with and without the
 *    guards, the queries each attacker sent before it was flagged and the benign callers flagged,
 *    and the targets, ending with `targets met: N of M`; exits 1 if one is missed.
 * Thresholds come from the profiles alone; nothing is tuned on the records reported.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Agent } from 'undici';
import { stringify } from 'yaml';
import type { Profile } from '../policies/guards/profile.js';
import { runCli } from '../test/helpers/gateway.js';
import { DEFAULT_WINDOWS, readTrace, replayTrace } from './lib/extraction-replay.js';
import { extractionTable, extractionTargets } from './lib/extraction-report.js';
import { breaksContract, modelTable, modelTargets, type Outcome, type Target } from './lib/guard-report.js';
import { MODELS, rowsOf, type ModelSpec } from './lib/models.js';
import { referenceFile } from './lib/reference-data.js';
import { sendRecords } from './lib/send-records.js';
import { gatewayConfig, serveGateway } from './lib/served-models.js';
import { readJsonLines, type SetName, type SetRecord } from './lib/sets.js';

const EVAL_DIR = fileURLToPath(new URL('../../eval/', import.meta.url));
/** The contract's margin beyond the reference range, as a share of the range (the config's `tolerance`). */
const TOLERANCE = 0.05;
const CONCURRENCY = 8;

/** Every guard in flag mode; extraction is judged on the traces instead (replayed, below). */
const FLAG_ALL = {
  targetFpr: 0.01,
  contract: { mode: 'flag', tolerance: TOLERANCE },
  ood: { mode: 'flag' },
  squeeze: { mode: 'flag', sampleRate: 1 },
  extraction: { mode: 'off' },
};

/** A set's file for a model: .jsonl.gz or .jsonl; undefined when there is none. */
function setFile(dir: string, set: SetName, model: string): string | undefined {
  return [`${model}.jsonl.gz`, `${model}.jsonl`].map((f) => join(dir, set, f)).find((p) => existsSync(p));
}

function readSets(dir: string, spec: ModelSpec): SetRecord[] {
  const out: SetRecord[] = [];
  for (const set of ['clean', 'ood', 'adversarial'] as const) {
    const file = setFile(dir, set, spec.name);
    if (file !== undefined) out.push(...readJsonLines<SetRecord>(file));
  }
  return out;
}

/**
 * The model's extraction trace replayed against the detector: its table and targets; nothing when
 * the sets have no trace for it.
 */
function replayExtraction(dir: string, spec: ModelSpec, profile: Profile): { table: string; targets: Target[] } | undefined {
  const trace = readTrace(dir, spec.name);
  if (trace === undefined) return undefined;
  const outcomes = replayTrace(profile, spec, trace.lines, trace.subjects, DEFAULT_WINDOWS);
  const note = `the trace replayed against the extraction detector with a simulated clock (each line at its t), not through HTTP; `
    + `windows ${DEFAULT_WINDOWS.windows} × ${DEFAULT_WINDOWS.windowMs / 1000} s; a query is a row`;
  return { table: extractionTable(spec.name, outcomes, note), targets: extractionTargets(spec.name, outcomes) };
}

async function buildProfile(spec: ModelSpec, referenceDir: string, config: string, out: string): Promise<Profile> {
  const data = join(referenceDir, referenceFile(spec));
  const run = await runCli(['profile', '--model', spec.name, '--version', '1', '--data', data, '--config', config, '--out', out], { timeoutMs: 600_000 });
  if (run.code !== 0) throw new Error(`breakwater profile --model ${spec.name} failed (exit ${run.code}):\n${run.stderr}${run.stdout}`);
  process.stdout.write(run.stdout);
  return JSON.parse(readFileSync(out, 'utf8')) as Profile;
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { sets: { type: 'string' }, reference: { type: 'string' }, help: { type: 'boolean' } } });
  if (values.help) {
    process.stdout.write('usage: npm run eval:guards [-- --sets DIR] [-- --reference DIR]   (defaults: eval/sets, eval/reference)\n');
    return;
  }
  const setsDir = resolve(values.sets ?? join(EVAL_DIR, 'sets'));
  const referenceDir = resolve(values.reference ?? join(EVAL_DIR, 'reference'));
  const specs = MODELS.filter((s) => setFile(setsDir, 'clean', s.name) !== undefined);
  if (specs.length === 0) throw new Error(`no clean/<model>.jsonl[.gz] for ${MODELS.map((m) => m.name).join(', ')} in ${setsDir}`);

  const work = mkdtempSync(join(tmpdir(), 'bw-eval-guards-'));
  const agent = new Agent({ connections: CONCURRENCY });
  const targets: Target[] = [];
  try {
    const baseConfig = gatewayConfig(specs);
    const baseFile = join(work, 'breakwater.yaml');
    writeFileSync(baseFile, stringify(baseConfig));
    const profiles = new Map<string, Profile>();
    for (const spec of specs) profiles.set(spec.name, await buildProfile(spec, referenceDir, baseFile, join(work, `${spec.name}.profile.json`)));

    const guarded = await serveGateway(gatewayConfig(specs, {
      version: (s) => ({ profile: join(work, `${s.name}.profile.json`) }),
      model: () => ({ guards: FLAG_ALL }),
    }));
    const plain = await serveGateway(baseConfig);
    try {
      for (const spec of specs) {
        const records = readSets(setsDir, spec);
        const profile = profiles.get(spec.name) as Profile;
        const answers = await sendRecords(guarded.url, records, agent, CONCURRENCY);
        const outcomes: Outcome[] = records.map((r, i) => ({
          id: r.id,
          set: r.set,
          group: r.kind ?? r.attack ?? '',
          status: answers[i].status,
          guards: answers[i].guards,
          breaksContract: rowsOf(spec, r.request).some((row) => breaksContract(profile, row, TOLERANCE)),
        }));
        // Answer times one request at a time, the same clean records with and without the guards.
        const clean = records.filter((r) => r.set === 'clean');
        const withGuards = median((await sendRecords(guarded.url, clean, agent, 1)).map((a) => a.ms));
        const without = median((await sendRecords(plain.url, clean, agent, 1)).map((a) => a.ms));
        process.stdout.write(`\n${modelTable(spec.name, outcomes)}\n`);
        process.stdout.write(`${spec.name}: median answer time ${withGuards.toFixed(3)} ms with the guards (squeeze on every request), ${without.toFixed(3)} ms without\n`);
        targets.push(...modelTargets(spec.name, outcomes));
        const extraction = replayExtraction(setsDir, spec, profile);
        if (extraction === undefined) process.stdout.write(`${spec.name}: no extraction trace in ${join(setsDir, 'extraction')}\n`);
        else {
          process.stdout.write(`\n${extraction.table}\n`);
          targets.push(...extraction.targets);
        }
      }
    } finally {
      await Promise.all([guarded.stop(), plain.stop()]);
    }
  } finally {
    await agent.close();
    rmSync(work, { recursive: true, force: true });
  }
  process.stdout.write('\ntargets\n');
  for (const t of targets) process.stdout.write(`  ${t.met ? 'met   ' : 'MISSED'}  ${t.name}: ${t.value}\n`);
  const met = targets.filter((t) => t.met).length;
  process.stdout.write(`targets met: ${met} of ${targets.length}\n`);
  if (met < targets.length) process.exitCode = 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`eval:guards: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
