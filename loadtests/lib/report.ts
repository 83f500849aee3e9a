/**
 * Turns the per-round cells into the result: medians per cell, ratios, the two acceptance checks
 * (informational), and the text / Markdown / JSON renderings.
 */
import type { Cell } from './measure.js';
import type { TargetId } from './targets.js';

export interface Summary {
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

export interface Ratio { readonly name: string; readonly connections: number; readonly value: number }
export interface Check { readonly name: string; readonly value: number; readonly limit: string; readonly pass: boolean }

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

export function summarise(cells: readonly Cell[], labels: Record<TargetId, string>): Summary[] {
  const groups = new Map<string, Cell[]>();
  for (const c of cells) {
    const key = `${c.target}/${c.connections}`;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  return [...groups.values()].map((g) => {
    const first = g[0];
    const back = g.filter((c) => c.backendCpuMsPerReq !== undefined);
    return {
      target: first.target,
      label: labels[first.target],
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
          }
        : {}),
      totalCpuUsPerReq: median(g.map((c) => c.totalCpuMsPerReq * 1000)),
      loadgenCpuUsPerReq: median(g.map((c) => c.loadgenCpuMsPerReq * 1000)),
      ...(g.every((c) => c.otherCores !== undefined) ? { otherCores: median(g.map((c) => c.otherCores ?? 0)) } : {}),
      completed: sum(g.map((c) => c.completed)),
      non2xx: sum(g.map((c) => c.non2xx)),
      errors: sum(g.map((c) => c.errors)),
      timeouts: sum(g.map((c) => c.timeouts)),
    };
  }).sort((x, y) => x.target.localeCompare(y.target) || x.connections - y.connections);
}

function find(s: readonly Summary[], t: TargetId, conns: number): Summary | undefined {
  return s.find((x) => x.target === t && x.connections === conns);
}

export function ratios(s: readonly Summary[], connections: readonly number[]): Ratio[] {
  const out: Ratio[] = [];
  for (const n of connections) {
    const [a, b, c, d] = (['a', 'b', 'c', 'd'] as const).map((t) => find(s, t, n));
    const add = (name: string, x: number | undefined, y: number | undefined) => {
      if (x !== undefined && y !== undefined && y > 0) out.push({ name, connections: n, value: x / y });
    };
    add('req/s (c)/(b)  gateway proxy vs bare proxy', c?.rps, b?.rps);
    add('req/s (c)/(a)  gateway proxy vs backend direct', c?.rps, a?.rps);
    add('req/s (d)/(c)  in-process ONNX vs gateway proxy', d?.rps, c?.rps);
    add('CPU/req proxy process (c)/(b)  G vs P', c?.frontCpuUsPerReq, b?.frontCpuUsPerReq);
    add('CPU/req proxy process (c)/(a)  G vs B serving directly', c?.frontCpuUsPerReq, a?.frontCpuUsPerReq);
    add('CPU/req total (c)/(b)  G+B vs P+B', c?.totalCpuUsPerReq, b?.totalCpuUsPerReq);
    add('CPU/req total (c)/(a)  G+B vs B alone', c?.totalCpuUsPerReq, a?.totalCpuUsPerReq);
    add('p50 (c)/(b)', c?.p50Ms, b?.p50Ms);
    add('p50 (c)/(a)', c?.p50Ms, a?.p50Ms);
    add('p50 (d)/(c)', d?.p50Ms, c?.p50Ms);
    add('p99 (c)/(b)', c?.p99Ms, b?.p99Ms);
    add('p99 (c)/(a)', c?.p99Ms, a?.p99Ms);
    add('p99 (d)/(c)', d?.p99Ms, c?.p99Ms);
  }
  return out;
}

export function checks(s: readonly Summary[]): Check[] {
  const out: Check[] = [];
  for (const n of [32, 1]) {
    const b = find(s, 'b', n);
    const c = find(s, 'c', n);
    if (b && c && b.frontCpuUsPerReq > 0) {
      const v = c.frontCpuUsPerReq / b.frontCpuUsPerReq;
      out.push({ name: `gateway proxy CPU per request ≤ 1.2× bare pass-through (proxy process only, ${n} connection${n === 1 ? '' : 's'})`, value: v, limit: '≤ 1.20', pass: v <= 1.2 });
    }
  }
  const c32 = find(s, 'c', 32);
  const d32 = find(s, 'd', 32);
  if (c32 && d32 && c32.rps > 0) {
    const v = d32.rps / c32.rps;
    out.push({ name: 'in-process ONNX ≥ 2× requests/s of the proxied path (32 connections)', value: v, limit: '≥ 2.00', pass: v >= 2 });
  }
  return out;
}

const f = (x: number | undefined, digits = 0) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits));

const HEADER = ['target', 'conns', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'cores', 'backend CPU µs/req', 'backend cores', 'sum CPU µs/req', 'loadgen CPU µs/req', 'other cores', 'non-2xx', 'errors'];

function rows(s: readonly Summary[]): string[][] {
  return s.map((x) => [
    x.label, String(x.connections), f(x.rps), f(x.p50Ms, 2), f(x.p99Ms, 2), f(x.frontCpuUsPerReq, 1), f(x.frontCores, 2),
    f(x.backendCpuUsPerReq, 1), f(x.backendCores, 2), f(x.totalCpuUsPerReq, 1), f(x.loadgenCpuUsPerReq, 1), f(x.otherCores, 2),
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

export function ratioLines(r: readonly Ratio[]): string[] {
  return r.map((x) => `${x.name} @${x.connections}: ${x.value.toFixed(2)}×`);
}

export function checkLines(c: readonly Check[]): string[] {
  return c.map((x) => `${x.pass ? 'PASS' : 'FAIL'}: ${x.name}: ${x.value.toFixed(2)}× (limit ${x.limit})`);
}
