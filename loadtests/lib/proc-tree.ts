/**
 * A process and its descendants, read from /proc (Linux only). A gateway started with
 * `server.workers` > 1 is a node:cluster primary plus worker processes: measuring it means summing
 * the whole tree, and stopping it means making sure no worker outlives the primary.
 *
 * A process is identified by pid and start time (field 22 of /proc/<pid>/stat), so that a pid the
 * kernel has meanwhile reused for another program is never taken for one of ours.
 */
import { readFileSync, readdirSync } from 'node:fs';

export interface ProcId {
  readonly pid: number;
  /** Start time in clock ticks after boot. */
  readonly startTime: number;
}

/** State letter and start time of a process, or undefined when it does not exist (any more). */
export function procInfo(pid: number): { state: string; startTime: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); start time is field 22.
    return { state: rest[0], startTime: Number(rest[19]) };
  } catch {
    return undefined;
  }
}

/** `pid` followed by all its descendants (breadth first); processes that exit meanwhile are skipped. */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length && i < 10_000; i++) {
    try {
      for (const tid of readdirSync(`/proc/${out[i]}/task`)) {
        const kids = readFileSync(`/proc/${out[i]}/task/${tid}/children`, 'utf8').trim();
        if (kids !== '') out.push(...kids.split(' ').map(Number));
      }
    } catch {
      // The process exited meanwhile; what was read stands.
    }
  }
  return out;
}

/** The tree of `pid` with start times, for a later isAlive() that pid reuse cannot fool. */
export function snapshotTree(pid: number): ProcId[] {
  const out: ProcId[] = [];
  for (const p of processTree(pid)) {
    const info = procInfo(p);
    if (info !== undefined) out.push({ pid: p, startTime: info.startTime });
  }
  return out;
}

/** True while the process runs (a zombie waiting to be reaped counts as gone: it uses no CPU). */
export function isAlive(p: ProcId): boolean {
  const info = procInfo(p.pid);
  return info !== undefined && info.startTime === p.startTime && info.state !== 'Z' && info.state !== 'X';
}
