/**
 * The benchmark's environment knobs (see the header of loadtests/bench.ts) and the command line that
 * reproduces a run.
 */

import { TARGET_IDS, type TargetId } from './targets.js';

function envNumber(name: string, def: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`${name} must be a number in [${min}, ${max}], got "${raw}"`);
  return n;
}

export interface Settings {
  readonly durationS: number;
  readonly rounds: number;
  readonly warmupS: number;
  readonly primeS: number;
  readonly maxRequests: number;
  /** logging.level for the breakwater children; undefined = the gateway's default (info). */
  readonly logLevel: string | undefined;
  readonly keepTmp: boolean;
  readonly readyTimeoutMs: number;
  /** BENCH_TARGETS: only these targets (a focused run, written beside latest.*, never over it); undefined: all. */
  readonly targets: readonly TargetId[] | undefined;
  /** BENCH_AUDIT_MAX_LOSS_MS: (t)'s audit.maxLossMs (default 1000, the gateway's default). */
  readonly auditMaxLossMs: number;
}

/** BENCH_TARGETS parsed: ids in the order given, each known (else an error naming the known ones). */
export function targetsOf(raw: string | undefined): readonly TargetId[] | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  const ids = raw.split(',').map((x) => x.trim()).filter((x) => x !== '');
  for (const id of ids) if (!(TARGET_IDS as readonly string[]).includes(id)) throw new Error(`BENCH_TARGETS: unknown target "${id}"; the targets are ${TARGET_IDS.join(', ')}`);
  return ids as TargetId[];
}

export function readSettings(): Settings {
  if (process.env.BENCH_WORKERS !== undefined && process.env.BENCH_WORKERS !== '') {
    throw new Error('BENCH_WORKERS is gone: the benchmark runs two fixed phases (server.workers 1, then "auto"); unset it');
  }
  return {
    durationS: envNumber('BENCH_DURATION_S', 5, 1, 120),
    rounds: Math.round(envNumber('BENCH_ROUNDS', 3, 1, 20)),
    warmupS: envNumber('BENCH_WARMUP_S', 1, 0, 30),
    primeS: envNumber('BENCH_PRIME_S', 2, 0, 60),
    maxRequests: Math.round(envNumber('BENCH_MAX_REQUESTS', 300_000, 100, 10_000_000)),
    logLevel: process.env.BENCH_LOG_LEVEL || undefined,
    keepTmp: process.env.BENCH_KEEP_TMP === '1',
    // A bound, not the usual time (a child is ready in about a second): generous for a busy machine.
    readyTimeoutMs: 60_000,
    targets: targetsOf(process.env.BENCH_TARGETS),
    // (t)'s audit.maxLossMs: 1000 (the default) for the check; 0 measures synchronous decision records.
    auditMaxLossMs: Math.round(envNumber('BENCH_AUDIT_MAX_LOSS_MS', 1000, 0, 60_000)),
  };
}

/**
 * The base name of the results files in loadtests/results: `latest` for a full run; a focused run
 * (BENCH_TARGETS) is written beside it as `focused-<ids>` (`*` spelled `star`), never over it.
 */
export function resultsBase(targets: readonly TargetId[] | undefined): string {
  return targets === undefined ? 'latest' : `focused-${targets.map((t) => t.replace('*', 'star')).join('-')}`;
}

/** The exact command of this run: every BENCH_* variable that was set, then `npm run bench`. */
export function command(): string {
  const env = Object.entries(process.env)
    .filter(([k, v]) => k.startsWith('BENCH_') && v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${v}`);
  return [...env, 'npm run bench'].join(' ');
}
