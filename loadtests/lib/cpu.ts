/**
 * CPU time of another process and its descendants (worker processes), read from /proc (Linux only).
 *
 * Two sources, both over every thread of the process:
 *  - the sum of /proc/<pid>/task/<tid>/schedstat first fields: nanoseconds on CPU, fine-grained, but
 *    a thread that exits takes its time with it;
 *  - /proc/<pid>/stat utime+stime: all threads including exited ones, but in clock ticks (10 ms at
 *    the usual CLK_TCK of 100).
 * cpuDelta() prefers schedstat and falls back to stat when the thread set changed in between or
 * schedstat is unavailable. (/proc/<pid>/schedstat alone counts the main thread only.)
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { processTree } from './proc-tree.js';

export interface CpuSample {
  readonly pid: number;
  /** ns on CPU summed over live threads, or undefined when schedstat cannot be read. */
  readonly schedNs: number | undefined;
  /** Thread ids that contributed to schedNs. */
  readonly tids: readonly string[];
  /** utime + stime in clock ticks (all threads, including exited ones). */
  readonly ticks: number;
}

export interface CpuDelta {
  /** Milliseconds of CPU time in the window. */
  readonly ms: number;
  readonly source: 'schedstat' | 'stat';
}

let clockTicks: number | undefined;

/** `getconf CLK_TCK`, 100 if it cannot be asked. */
export function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 }).trim());
      clockTicks = Number.isFinite(n) && n > 0 ? n : 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

function statTicks(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
  return Number(rest[11]) + Number(rest[12]);
}

function schedNs(pid: number): { ns: number; tids: string[] } | undefined {
  try {
    const tids = readdirSync(`/proc/${pid}/task`).sort();
    let ns = 0;
    const seen: string[] = [];
    for (const tid of tids) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
        seen.push(tid);
      } catch {
        // The thread exited between readdir and read; the tid set check below catches it.
      }
    }
    return { ns, tids: seen };
  } catch {
    return undefined;
  }
}

/** CPU of `pid` and its descendants, summed. */
export function sampleCpu(pid: number): CpuSample {
  let ns: number | undefined = 0;
  const tids: string[] = [];
  let ticks = 0;
  for (const p of processTree(pid)) {
    const s = schedNs(p);
    if (s === undefined || ns === undefined) ns = undefined;
    else ns += s.ns;
    tids.push(...(s?.tids ?? []).map((t) => `${p}/${t}`));
    try {
      ticks += statTicks(p);
    } catch {
      // Exited between listing and reading; the tid check sends the delta to the stat fallback.
    }
  }
  return { pid, schedNs: ns, tids: tids.sort(), ticks };
}

export function cpuDelta(before: CpuSample, after: CpuSample): CpuDelta {
  const sameThreads = before.tids.length === after.tids.length && before.tids.every((t, i) => t === after.tids[i]);
  if (before.schedNs !== undefined && after.schedNs !== undefined && sameThreads) {
    return { ms: (after.schedNs - before.schedNs) / 1e6, source: 'schedstat' };
  }
  return { ms: ((after.ticks - before.ticks) * 1000) / clkTck(), source: 'stat' };
}

export interface MachineSample {
  /** Non-idle clock ticks over all CPUs (/proc/stat "cpu" line, idle and iowait excluded). */
  readonly busyTicks: number;
}

/** The whole machine's busy time, to tell how much of it other programs took during a window. */
export function sampleMachine(): MachineSample | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already inside user).
    const busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
    return Number.isFinite(busy) ? { busyTicks: busy } : undefined;
  } catch {
    return undefined;
  }
}

/** Busy milliseconds of the whole machine between two samples. */
export function machineBusyMs(before: MachineSample | undefined, after: MachineSample | undefined): number | undefined {
  if (before === undefined || after === undefined) return undefined;
  return ((after.busyTicks - before.busyTicks) * 1000) / clkTck();
}
