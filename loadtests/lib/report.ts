/**
 * Turns the per-round cells of a phase into its summary (medians per target and connection count)
 * and renders summaries as text and Markdown tables. Ratios and checks are in lib/ratios.ts.
 */
import type { Cell } from './measure.js';
import type { TargetId } from './targets.js';

export interface Summary {
  readonly phase: number;
  readonly target: TargetId;
  readonly label: string;
  readonly connections: number;
  readonly rounds: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly frontCpuUsPerReq: number;
  readonly frontCores: number;
  readonly backendCpuUsPerReq?: number;
  readonly backendCores?: number;
  /**
   * The front's CPU per request in units of its backend's, measured in the same window (median
   * over rounds). Every proxied target has the same B doing the same work per request, so B's CPU
   * per request is a speed gauge of the machine during that window: a ratio of two targets in these
   * units cancels the machine's drift between their windows (on a shared host B's own figure was
   * seen to move by 80 % between cells of one run).
   */
  readonly frontPerBackend?: number;
  /** The Redis server's CPU, for (f). */
  readonly redisCpuUsPerReq?: number;
  readonly redisCores?: number;
  /** Scripts Redis ran per completed request (1: every request charged in Redis once). */
  readonly redisScriptsPerReq?: number;
  /** front + backend + Redis. */
  readonly totalCpuUsPerReq: number;
  readonly loadgenCpuUsPerReq: number;
  /** Cores busy with other programs during the window (median); see Cell.otherCores. */
  readonly otherCores?: number;
  /** Summed over rounds. */
  readonly completed: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
}

/** Above this many cores busy with other programs (median of a cell), a run is too noisy to trust. */
export const NOISE_LIMIT_CORES = 0.3;

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

/** One summary per (target, connections), in the order the cells were measured. */
export function summarise(phase: number, cells: readonly Cell[], labels: Partial<Record<TargetId, string>>): Summary[] {
  const groups = new Map<string, Cell[]>();
  for (const c of cells) {
    const key = `${c.target}/${c.connections}`;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  return [...groups.values()].map((g) => {
    const first = g[0];
    const back = g.filter((c) => c.backendCpuMsPerReq !== undefined);
    const redis = g.filter((c) => c.redisCpuMsPerReq !== undefined);
    const scripts = g.filter((c) => c.redisScriptsPerReq !== undefined);
    return {
      phase,
      target: first.target,
      label: labels[first.target] ?? first.target,
      connections: first.connections,
      rounds: g.length,
      rps: median(g.map((c) => c.rps)),
      p50Ms: median(g.map((c) => c.p50Ms)),
      p99Ms: median(g.map((c) => c.p99Ms)),
      frontCpuUsPerReq: median(g.map((c) => c.frontCpuMsPerReq * 1000)),
      frontCores: median(g.map((c) => c.frontCores)),
      ...(back.length > 0
        ? {
            backendCpuUsPerReq: median(back.map((c) => (c.backendCpuMsPerReq ?? 0) * 1000)),
            backendCores: median(back.map((c) => c.backendCores ?? 0)),
            frontPerBackend: median(back.map((c) => c.frontCpuMsPerReq / (c.backendCpuMsPerReq ?? NaN))),
          }
        : {}),
      ...(redis.length > 0
        ? {
            redisCpuUsPerReq: median(redis.map((c) => (c.redisCpuMsPerReq ?? 0) * 1000)),
            redisCores: median(redis.map((c) => c.redisCores ?? 0)),
          }
        : {}),
      ...(scripts.length > 0 ? { redisScriptsPerReq: median(scripts.map((c) => c.redisScriptsPerReq ?? 0)) } : {}),
      totalCpuUsPerReq: median(g.map((c) => c.totalCpuMsPerReq * 1000)),
      loadgenCpuUsPerReq: median(g.map((c) => c.loadgenCpuMsPerReq * 1000)),
      ...(g.every((c) => c.otherCores !== undefined) ? { otherCores: median(g.map((c) => c.otherCores ?? 0)) } : {}),
      completed: sum(g.map((c) => c.completed)),
      non2xx: sum(g.map((c) => c.non2xx)),
      errors: sum(g.map((c) => c.errors)),
      timeouts: sum(g.map((c) => c.timeouts)),
    };
  });
}

/** Cells with failed requests (there must be none). */
export function problems(s: readonly Summary[]): string[] {
  return s
    .filter((x) => x.non2xx > 0 || x.errors > 0 || x.timeouts > 0)
    .map((x) => `${x.label} @${x.connections}: ${x.non2xx} non-2xx, ${x.errors} errors, ${x.timeouts} timeouts`);
}

/** Cells measured while other programs kept more than NOISE_LIMIT_CORES busy. */
export function noisy(s: readonly Summary[]): string[] {
  return s
    .filter((x) => x.otherCores !== undefined && x.otherCores > NOISE_LIMIT_CORES)
    .map((x) => `${x.label} @${x.connections}: other programs used ${f(x.otherCores, 2)} cores (limit ${NOISE_LIMIT_CORES})`);
}

function f(x: number | undefined, digits = 0): string {
  return x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits);
}

const HEADER = [
  'target', 'conns', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'cores', 'backend CPU µs/req', 'backend cores',
  'Redis CPU µs/req', 'Redis cores', 'sum CPU µs/req', 'loadgen CPU µs/req', 'other cores', 'non-2xx', 'errors',
];

function rows(s: readonly Summary[]): string[][] {
  return s.map((x) => [
    x.label, String(x.connections), f(x.rps), f(x.p50Ms, 2), f(x.p99Ms, 2), f(x.frontCpuUsPerReq, 1), f(x.frontCores, 2),
    f(x.backendCpuUsPerReq, 1), f(x.backendCores, 2), f(x.redisCpuUsPerReq, 1), f(x.redisCores, 2), f(x.totalCpuUsPerReq, 1), f(x.loadgenCpuUsPerReq, 1), f(x.otherCores, 2),
    String(x.non2xx), String(x.errors + x.timeouts),
  ]);
}

export function textTable(s: readonly Summary[]): string {
  const all = [HEADER, ...rows(s)];
  const widths = HEADER.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  return all.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')).join('\n');
}

export function markdownTable(s: readonly Summary[]): string {
  const line = (r: readonly string[]) => `| ${r.join(' | ')} |`;
  return [line(HEADER), line(HEADER.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows(s).map(line)].join('\n');
}
