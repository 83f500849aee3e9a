/**
 * The gateway benchmark (not a test: it never fails on a timing; it prints and writes results).
 *
 *   npm run bench        (env: BENCH_DURATION_S=5 BENCH_ROUNDS=2 BENCH_WARMUP_S=1 BENCH_PRIME_S=2
 *                         BENCH_MAX_REQUESTS=300000 BENCH_LOG_LEVEL=info BENCH_WORKERS=auto BENCH_KEEP_TMP=0)
 *
 * Starts four child processes on loopback (lib/targets.ts), primes each (BENCH_PRIME_S at 32
 * connections, discarded, so round 1 does not measure a cold JIT), loads each target with autocannon at 1
 * and 32 connections (a→b→c→d, repeated BENCH_ROUNDS times; medians per cell), measures the CPU time
 * of the process under test and of the backend from /proc, then prints a table, ratios and two
 * informational acceptance checks, and writes loadtests/results/latest.{md,json}.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { INFER_BODY, INFER_PATH, measureCell, prime, type Cell } from './lib/measure.js';
import { HOST, killAll, killAllSync } from './lib/processes.js';
import { checkLines, checks, markdownTable, ratioLines, ratios, summarise, textTable, type Summary } from './lib/report.js';
import { startTargets, type Target, type TargetId } from './lib/targets.js';

const RESULTS_DIR = fileURLToPath(new URL('../../loadtests/results/', import.meta.url));
const CONNECTIONS = [1, 32] as const;

function envNumber(name: string, def: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`${name} must be a number in [${min}, ${max}], got "${raw}"`);
  return n;
}

const settings = {
  durationS: envNumber('BENCH_DURATION_S', 5, 1, 120),
  rounds: Math.round(envNumber('BENCH_ROUNDS', 2, 1, 20)),
  warmupS: envNumber('BENCH_WARMUP_S', 1, 0, 30),
  primeS: envNumber('BENCH_PRIME_S', 2, 0, 60),
  maxRequests: Math.round(envNumber('BENCH_MAX_REQUESTS', 300_000, 100, 10_000_000)),
  // The gateway's defaults: info, so its one access line per inference is part of what is measured.
  logLevel: process.env.BENCH_LOG_LEVEL || 'info',
  // One worker per core for every breakwater process: one event loop can only use one core.
  workers: process.env.BENCH_WORKERS === undefined || process.env.BENCH_WORKERS === 'auto' ? 'auto' as const : Number(process.env.BENCH_WORKERS),
  readyTimeoutMs: 20_000,
};

function command(): string {
  const env = Object.entries(process.env)
    .filter(([k, v]) => k.startsWith('BENCH_') && v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${v}`);
  return [...env, 'npm run bench'].join(' ');
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch { /* not Linux */ }
  return cpus()[0]?.model ?? 'unknown';
}

/** One request to each target before loading: a 200 with outputs, and the same outputs everywhere. */
async function smoke(targets: readonly Target[]): Promise<void> {
  let reference: string | undefined;
  for (const t of targets) {
    const res = await fetch(`${t.front.url}${INFER_PATH}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: INFER_BODY, signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${t.label}: smoke request answered HTTP ${res.status}: ${text.slice(0, 500)}`);
    const outputs = JSON.stringify((JSON.parse(text) as { outputs?: unknown }).outputs);
    if (outputs === undefined) throw new Error(`${t.label}: smoke answer has no outputs: ${text.slice(0, 500)}`);
    if (reference === undefined) {
      reference = outputs;
      console.log(`smoke ${t.label}: ${text.slice(0, 300)}`);
    } else if (outputs !== reference) {
      console.log(`!!! ${t.label}: outputs differ from (a): ${outputs.slice(0, 300)}`);
    } else {
      console.log(`smoke ${t.label}: 200, same outputs as (a)`);
    }
  }
}

function problems(s: readonly Summary[]): string[] {
  return s
    .filter((x) => x.non2xx > 0 || x.errors > 0 || x.timeouts > 0)
    .map((x) => `${x.label} @${x.connections}: ${x.non2xx} non-2xx, ${x.errors} errors, ${x.timeouts} timeouts`);
}

function markdown(meta: Record<string, string>, s: readonly Summary[], ratioText: string[], checkText: string[], bad: string[]): string {
  return [
    '# Breakwater benchmark: latest results',
    '',
    ...Object.entries(meta).map(([k, v]) => `- **${k}**: ${v}`),
    '',
    '## Targets',
    '',
    '- (a) B direct: breakwater serving iris in-process (onnx backend), loaded directly.',
    '- (b) P→B: a bare fastify pass-through proxy (default JSON parsing, undici Pool of 64) in front of B.',
    '- (c) G→B: breakwater proxying to B (backend kind oip-http, default settings).',
    '- (d) O: a second breakwater process serving iris in-process (onnx backend).',
    '',
    'Every number is the median over rounds. "CPU µs/req" is the CPU time of the process the load hits',
    '(all threads, /proc schedstat) divided by completed requests; "cores" is that CPU time over wall time.',
    '"backend" is B for (b) and (c). p50/p99 come from autocannon\'s per-response timings (its own histogram',
    'keeps whole milliseconds; those values are in latest.json). The load generator (autocannon) runs in the benchmark process on the',
    'same machine and competes for the same cores. "other cores" is the machine\'s busy time during the',
    'window not accounted for by the front, the backend or the load generator (other programs: noise).',
    '',
    '## Results',
    '',
    markdownTable(s),
    '',
    ...(bad.length > 0 ? ['## !!! Failed requests', '', ...bad.map((b) => `- ${b}`), ''] : []),
    '## Ratios',
    '',
    ...ratioText.map((r) => `- ${r}`),
    '',
    '## Acceptance checks (informational)',
    '',
    ...checkText.map((c) => `- ${c}`),
    '',
  ].join('\n');
}

/** The temp folder (configs, model copy, child logs), removed at the end unless kept. */
let workDir: string | undefined;

async function main(): Promise<void> {
  const started = new Date();
  const loadAtStart = loadavg().map((x) => x.toFixed(2)).join(' ');
  workDir = mkdtempSync(join(tmpdir(), 'breakwater-bench-'));
  let keep = process.env.BENCH_KEEP_TMP === '1';
  try {
    console.log(`benchmark: ${settings.rounds} round(s), ${settings.warmupS} s warm-up + ${settings.durationS} s measured per cell, ` +
      `connections ${CONNECTIONS.join(' and ')}; work dir ${workDir}`);
    const targets = await startTargets({ workDir, logLevel: settings.logLevel, readyTimeoutMs: settings.readyTimeoutMs, workers: settings.workers });
    for (const t of targets) console.log(`${t.label}: pid ${t.front.pid} at ${t.front.url}`);
    await smoke(targets);
    for (const t of targets) await prime(t, settings.primeS, settings.maxRequests);

    const cells: Cell[] = [];
    for (let round = 1; round <= settings.rounds; round++) {
      for (const t of targets) {
        for (const n of CONNECTIONS) {
          const c = await measureCell(t, n, settings);
          cells.push(c);
          const back = c.backendCpuMsPerReq === undefined ? '' : ` backend ${(c.backendCpuMsPerReq * 1000).toFixed(1)} µs/req`;
          const bad = c.non2xx + c.errors + c.timeouts > 0 ? `  !!! ${c.non2xx} non-2xx, ${c.errors} errors, ${c.timeouts} timeouts ${JSON.stringify(c.statusCodes)}` : '';
          console.log(`round ${round} ${t.label} @${n}: ${c.rps.toFixed(0)} req/s p50 ${c.p50Ms.toFixed(2)} ms p99 ${c.p99Ms.toFixed(2)} ms ` +
            `CPU ${(c.frontCpuMsPerReq * 1000).toFixed(1)} µs/req (${c.frontCores.toFixed(2)} cores)${back} [${c.cpuSource}]` +
            `${c.otherCores === undefined ? '' : ` other ${c.otherCores.toFixed(2)} cores`}${bad}`);
        }
      }
    }

    const labels = Object.fromEntries(targets.map((t) => [t.id, t.label])) as Record<TargetId, string>;
    const summary = summarise(cells, labels);
    const ratioList = ratios(summary, CONNECTIONS);
    const checkList = checks(summary);
    const bad = problems(summary);
    const ratioText = ratioLines(ratioList);
    const checkText = checkLines(checkList);

    console.log(`\n${textTable(summary)}\n`);
    if (bad.length > 0) {
      keep = true;
      console.log(`!!!!!!!! FAILED REQUESTS (must be 0) !!!!!!!!\n${bad.map((b) => `!!! ${b}`).join('\n')}\n(child logs kept in ${workDir})\n`);
    }
    console.log(`Ratios:\n  ${ratioText.join('\n  ')}\n`);
    console.log(`Acceptance checks (informational):\n  ${checkText.join('\n  ')}\n`);

    const meta: Record<string, string> = {
      date: started.toISOString(),
      node: process.version,
      'cpu model': cpuModel(),
      cores: String(cpus().length),
      'load average at start / end': `${loadAtStart} / ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
      durations: `${settings.primeS} s priming per target at 32 connections, then per cell ${settings.warmupS} s warm-up (discarded) + ${settings.durationS} s measured, at most ${settings.maxRequests} requests per run; ${settings.rounds} round(s), order a→b→c→d`,
      connections: CONNECTIONS.join(', '),
      'child log level': `${settings.logLevel} (access log on, its default)`,
      'breakwater workers': String(settings.workers),
      request: `POST ${INFER_PATH} ${INFER_BODY}`,
      host: HOST,
      command: `\`${command()}\``,
    };
    mkdirSync(RESULTS_DIR, { recursive: true });
    writeFileSync(join(RESULTS_DIR, 'latest.md'), markdown(meta, summary, ratioText, checkText, bad));
    writeFileSync(join(RESULTS_DIR, 'latest.json'), JSON.stringify({
      meta: { ...meta, command: command() }, settings, summary, ratios: ratioList, checks: checkList, failedRequests: bad, cells,
    }, null, 2) + '\n');
    console.log(`wrote ${join(RESULTS_DIR, 'latest.md')} and latest.json`);
  } catch (e) {
    keep = true;
    throw e;
  } finally {
    await killAll();
    if (keep) console.log(`child logs and configs kept in ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  }
}

process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping the children`);
    void killAll().finally(() => {
      if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true });
      process.exit(130);
    });
  });
}

main().catch((e: unknown) => {
  console.error(`benchmark failed: ${(e as Error).stack ?? String(e)}`);
  process.exitCode = 1;
});
