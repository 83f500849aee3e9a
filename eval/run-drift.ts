/**
 * The drift evaluation (issue 11):
 *
 *   npm run eval:drift [-- --streams DIR] [-- --reference DIR] [-- --quick] [-- --poll-every N]
 *     (defaults: eval/drift-streams, eval/reference, a poll every 200 requests)
 *
 * 1. Reads DIR/manifest.json (format: eval/drift-streams/README.md) and checks every stream file's
 *    length and SHA-256; a missing stream marked `onDemand` is built first (seeded, byte-identical:
 *    the million-request control, kept in DIR/cache/, which git ignores).
 * 2. Builds each model's profile with the real command line, `breakwater profile`, from the
 *    reference data (the profile holds the drift reference: the bins and their counts).
 * 3. Starts a real gateway child process serving the models with `drift: { sampleRate: 1 }`: every
 *    request sampled, everything else (window, thresholds) the gateway's defaults (docs/drift.md).
 * 4. For each stream: `POST /admin/models/{m}/drift/reset`, then replays it over HTTP (keep-alive,
 *    16 requests in flight), and after every 200 requests answered awaits one
 *    `GET /admin/models/{m}/drift` before sending more, logging the overall status.
 * 5. Prints the table (eval/lib/drift-report.ts): per stream the true PSI of its shift (the runner's
 *    own count of the shifted requests and their answers in the profile's bins), the detection
 *    delay after the change point, false alarms and warnings on unshifted requests; then the
 *    targets, ending with `targets met: N of M`; exits 1 if one is missed.
 * Thresholds are the gateway's defaults; nothing is tuned on these streams.
 *
 * Development flags: `--quick` replays at most 100,000 requests of each control (the false-alarm
 * target then asks for 100,000 unshifted requests, and says so); `--only TEXT` replays the streams
 * whose file name contains TEXT; `--no-drift-check` serves the models without `drift` and polls the
 * readiness endpoint instead (the same request pattern), to measure the replay rate of a gateway
 * that has no drift monitor.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { stringify } from 'yaml';
import type { Profile } from '../policies/guards/profile.js';
import { runCli } from '../test/helpers/gateway.js';
import { DriftClient, DriftUnavailable } from './lib/drift-client.js';
import { pollOf, summarisePolls, type Poll } from './lib/drift-polls.js';
import { replayStream } from './lib/drift-replay.js';
import { driftTable, driftTargets, targetLines, UNSHIFTED_TARGET, type StreamOutcome } from './lib/drift-report.js';
import { buildRecipe, recipeOf } from './lib/drift-stream-build.js';
import { readManifest, streamDigest, streamLines, type StreamEntry, type StreamManifest } from './lib/drift-streams.js';
import { featureNames, modelSpec, rowsOf, type ModelSpec } from './lib/models.js';
import { referenceFile } from './lib/reference-data.js';
import { gatewayConfig, serveGateway, type ServedGateway } from './lib/served-models.js';
import type { OipRequest } from './lib/sets.js';
import { maxPsi, StreamBins } from './lib/stream-psi.js';

const EVAL_DIR = fileURLToPath(new URL('../../eval/', import.meta.url));
const QUICK_CONTROL = 100_000;
/** Past this the whole run stops: a million requests replay in minutes. */
const RUN_DEADLINE_MS = 90 * 60_000;

interface Options {
  readonly streamsDir: string;
  readonly referenceDir: string;
  readonly quick: boolean;
  readonly pollEvery: number;
  readonly concurrency: number;
  readonly only: string | undefined;
  readonly driftCheck: boolean;
}

const USAGE = 'usage: npm run eval:drift [-- --streams DIR] [-- --reference DIR] [-- --quick] [-- --poll-every N] [-- --concurrency N] [-- --only TEXT] [-- --no-drift-check]\n';

function options(): Options | undefined {
  const { values } = parseArgs({
    options: {
      streams: { type: 'string' }, reference: { type: 'string' }, quick: { type: 'boolean' }, 'poll-every': { type: 'string' },
      concurrency: { type: 'string' }, only: { type: 'string' }, 'no-drift-check': { type: 'boolean' }, help: { type: 'boolean' },
    },
  });
  if (values.help) return undefined;
  const count = (name: string, v: string | undefined, fallback: number, max: number): number => {
    const n = v === undefined ? fallback : Number(v);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`--${name} must be an integer from 1 to ${max}`);
    return n;
  };
  return {
    streamsDir: resolve(values.streams ?? join(EVAL_DIR, 'drift-streams')),
    referenceDir: resolve(values.reference ?? join(EVAL_DIR, 'reference')),
    quick: values.quick === true,
    pollEvery: count('poll-every', values['poll-every'], 200, 1_000_000),
    concurrency: count('concurrency', values.concurrency, 16, 256),
    only: values.only,
    driftCheck: values['no-drift-check'] !== true,
  };
}

const log = (msg: string): void => void process.stdout.write(`${msg}\n`);

/** Builds missing on-demand streams and checks every file against the manifest. */
async function checkStreams(dir: string, manifest: StreamManifest, streams: readonly StreamEntry[], referenceDir: string): Promise<void> {
  for (const s of streams) {
    const path = join(dir, s.file);
    if (!existsSync(path)) {
      const recipe = s.onDemand === true ? recipeOf(s.file) : undefined;
      if (recipe === undefined) throw new Error(`${path} is missing${s.onDemand === true ? ' and is no stream the builder knows (eval/lib/drift-recipes.ts)' : ''}`);
      const started = Date.now();
      await buildRecipe(recipe, dir, referenceDir, manifest.seed);
      log(`built ${s.file} on demand (seed ${manifest.seed}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
    const digest = await streamDigest(path);
    if (digest.requests !== s.requests) throw new Error(`${s.file}: ${digest.requests} lines, but the manifest says ${s.requests}`);
    if (s.sha256 !== undefined && digest.sha256 !== s.sha256) {
      throw new Error(`${s.file}: its text's SHA-256 is ${digest.sha256}, not the manifest's ${s.sha256}${s.onDemand === true ? ' (delete it to have it rebuilt)' : ''}`);
    }
  }
}

async function buildProfile(spec: ModelSpec, referenceDir: string, config: string, out: string): Promise<Profile> {
  const data = join(referenceDir, referenceFile(spec));
  const run = await runCli(['profile', '--model', spec.name, '--version', '1', '--data', data, '--config', config, '--out', out], { timeoutMs: 600_000 });
  if (run.code !== 0) throw new Error(`breakwater profile --model ${spec.name} failed (exit ${run.code}):\n${run.stderr}${run.stdout}`);
  return JSON.parse(readFileSync(out, 'utf8')) as Profile;
}

async function startGateway(specs: readonly ModelSpec[], work: string, driftCheck: boolean): Promise<ServedGateway> {
  const config = gatewayConfig(specs, {
    version: (s) => ({ profile: join(work, `${s.name}.profile.json`) }),
    model: () => (driftCheck ? { drift: { sampleRate: 1 } } : {}),
  });
  try {
    return await serveGateway(config);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    if (!driftCheck || !/\bdrift\b/.test(why)) throw e;
    throw new DriftUnavailable(`the gateway did not start with models.<m>.drift enabled; a gateway without issue 11's drift monitor refuses that setting (run with --no-drift-check to replay without it):\n${why}`);
  }
}

/** Replays one stream; its outcome and replay figures. */
async function runStream(entry: StreamEntry, spec: ModelSpec, profile: Profile, pool: Pool, drift: DriftClient | undefined, opts: Options): Promise<{ outcome: StreamOutcome; seconds: number; requests: number }> {
  const limit = opts.quick && entry.kind === 'control' ? Math.min(entry.requests, QUICK_CONTROL) : entry.requests;
  // The true PSI counts the fully shifted part (from the last change point; a control: all of it).
  const from = entry.changeAt.at(-1) ?? 0;
  const bins = profile.drift === undefined ? undefined : new StreamBins(profile.drift, featureNames(spec));
  const polls: Poll[] = [];
  if (drift !== undefined) await drift.reset(entry.model, 'next stream');
  const readiness = async (): Promise<void> => {
    const res = await pool.request({ path: '/v2/health/ready', method: 'GET' });
    await res.body.dump();
  };
  const result = await replayStream(streamLines(join(opts.streamsDir, entry.file)), {
    pool,
    model: entry.model,
    concurrency: opts.concurrency,
    pollEvery: opts.pollEvery,
    limit,
    deadline: Date.now() + 120_000 + limit * 2,
    poll: drift === undefined ? readiness : async (answered) => void polls.push(pollOf(answered, await drift.status(entry.model))),
    ...(bins === undefined ? {} : {
      onRequest: (i: number, line: Buffer) => {
        if (i >= from) for (const row of rowsOf(spec, JSON.parse(line.toString('utf8')) as OipRequest)) bins.addRow(row);
      },
      answersFrom: from,
      onAnswer: (_i: number, body: string) => void bins.addResponse(JSON.parse(body) as unknown),
    }),
  });
  const summary = summarisePolls(polls, result.requests, entry.changeAt);
  const truePsi = bins === undefined ? undefined : maxPsi(bins.psi());
  const name = entry.file.replace(/^.*\//, '').replace(/\.jsonl(\.gz)?$/, '');
  const rate = Math.round(result.requests / result.seconds);
  log(`${name}: ${result.requests} requests in ${result.seconds.toFixed(1)} s (${rate}/s; polls ${result.pollSeconds.toFixed(1)} s)`
    + (truePsi === undefined ? '' : `, true PSI ${truePsi.psi.toFixed(3)} on ${truePsi.name}`)
    + (drift === undefined ? '' : `, final status ${summary.finalStatus ?? '—'}, drift after ${summary.delay ?? (summary.changeAt === undefined ? '—' : 'never')}, false alarms ${summary.falseAlarms}`));
  return { outcome: { name, model: entry.model, kind: entry.kind, summary, ...(truePsi !== undefined ? { truePsi } : {}) }, seconds: result.seconds, requests: result.requests };
}

async function main(): Promise<void> {
  const opts = options();
  if (opts === undefined) return void process.stdout.write(USAGE);
  const deadline = setTimeout(() => {
    process.stderr.write(`eval:drift: still running after ${RUN_DEADLINE_MS / 60_000} min; stopped\n`);
    process.exit(1);
  }, RUN_DEADLINE_MS);
  deadline.unref();

  const manifestPath = join(opts.streamsDir, 'manifest.json');
  const manifest = readManifest(manifestPath);
  const streams = manifest.streams.filter((s) => opts.only === undefined || s.file.includes(opts.only));
  if (streams.length === 0) throw new Error(`no stream of ${manifestPath} to replay${opts.only === undefined ? '' : ` (--only ${opts.only})`}`);
  await checkStreams(opts.streamsDir, manifest, streams, opts.referenceDir);
  const specs = [...new Set(streams.map((s) => s.model))].map(modelSpec);

  const work = mkdtempSync(join(tmpdir(), 'bw-eval-drift-'));
  const outcomes: StreamOutcome[] = [];
  let replayed = 0;
  let replaySeconds = 0;
  try {
    const baseFile = join(work, 'breakwater.yaml');
    writeFileSync(baseFile, stringify(gatewayConfig(specs)));
    const profiles = new Map<string, Profile>();
    for (const spec of specs) {
      const profile = await buildProfile(spec, opts.referenceDir, baseFile, join(work, `${spec.name}.profile.json`));
      if (profile.drift === undefined && opts.driftCheck) throw new DriftUnavailable(`the profile \`breakwater profile\` built for ${spec.name} has no drift reference (profile.drift): this build predates issue 11's profile part`);
      profiles.set(spec.name, profile);
    }
    const gateway = await startGateway(specs, work, opts.driftCheck);
    const pool = new Pool(gateway.url, { connections: opts.concurrency, pipelining: 1 });
    try {
      const drift = opts.driftCheck ? new DriftClient(pool) : undefined;
      for (const spec of specs) await drift?.status(spec.name);
      log(`gateway ${gateway.url}: ${specs.map((s) => s.name).join(', ')}${opts.driftCheck ? `, drift with the default window and thresholds, a poll every ${opts.pollEvery} requests` : ' without drift (--no-drift-check)'}, ${opts.concurrency} in flight`);
      for (const entry of streams) {
        const spec = specs.find((s) => s.name === entry.model) as ModelSpec;
        const r = await runStream(entry, spec, profiles.get(spec.name) as Profile, pool, drift, opts);
        outcomes.push(r.outcome);
        replayed += r.requests;
        replaySeconds += r.seconds;
      }
    } finally {
      await pool.close();
      await gateway.stop();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  log(`\nreplayed ${replayed} requests in ${replaySeconds.toFixed(1)} s (${Math.round(replayed / replaySeconds)} requests/s, polls included)`);
  if (!opts.driftCheck) return void log('--no-drift-check: no drift statuses, so no table of detections and no targets');
  log(`\n${driftTable(outcomes)}\n`);
  const targets = driftTargets(outcomes, opts.quick ? QUICK_CONTROL : UNSHIFTED_TARGET);
  log(targetLines(targets));
  if (targets.some((t) => !t.met)) process.exitCode = 1;
}

main().catch((e: unknown) => {
  // A gateway (or profile) without the monitor is a finding, not a crash: its message says it all.
  const text = e instanceof DriftUnavailable ? e.message : e instanceof Error ? e.stack ?? e.message : String(e);
  process.stderr.write(`eval:drift: ${text}\n`);
  process.exit(1);
});
