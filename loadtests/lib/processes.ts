/**
 * Child processes for the benchmark (node children and the private redis-server): free loopback
 * ports, spawning with output to a log file, bounded readiness waits, and stopping that always ends
 * in SIGKILL of the whole process tree (a breakwater child with workers is a cluster primary plus
 * its workers). Every child spawned here is
 * tracked so that killAll() (and the synchronous exit hook) can reach it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { isAlive, snapshotTree, type ProcId } from './proc-tree.js';

export const HOST = '127.0.0.1';

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly url: string;
  readonly logFile: string;
}

const live = new Set<Child>();

export function exited(child: Child): boolean {
  return child.proc.exitCode !== null || child.proc.signalCode !== null;
}

/** The process tree of each child as last seen, so that workers are found even after their primary died. */
const trees = new Map<Child, ProcId[]>();

export function rememberTree(child: Child): void {
  // Once the child has exited its pid may belong to another program: only what was seen before counts.
  if (exited(child)) return;
  const known = trees.get(child) ?? [];
  const now = snapshotTree(child.pid).filter((p) => !known.some((k) => k.pid === p.pid && k.startTime === p.startTime));
  trees.set(child, [...known, ...now]);
}

/** A port that was free a moment ago (the kernel picks it; a small race with other programs remains). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/**
 * Spawns `node args...` with stdout and stderr appended to logFile. WORKERS is removed from the
 * child's environment: the gateway CLI would let it override the configuration's server.workers,
 * which each benchmark phase fixes.
 */
export function spawnNode(name: string, args: readonly string[], port: number, logFile: string): Child {
  const env: NodeJS.ProcessEnv = { ...process.env, HOST, PORT: String(port) };
  delete env.WORKERS;
  return spawnProgram(name, process.execPath, args, `http://${HOST}:${port}`, logFile, env);
}

/**
 * Spawns any program (the benchmark's private Redis, for one) with stdout and stderr appended to
 * logFile, tracked like the node children so that stopChildren(), killAll() and the exit hook reach it.
 */
export function spawnProgram(
  name: string, file: string, args: readonly string[], url: string, logFile: string, env: NodeJS.ProcessEnv = process.env,
): Child {
  const fd = openSync(logFile, 'a');
  let proc: ChildProcess;
  try {
    proc = spawn(file, args, { stdio: ['ignore', fd, fd], env });
  } finally {
    closeSync(fd);
  }
  if (proc.pid === undefined) {
    // ENOENT and the like arrive as an 'error' event; without a listener it would crash the benchmark.
    proc.once('error', () => undefined);
    throw new Error(`${name}: could not spawn ${file}`);
  }
  const child: Child = { name, proc, pid: proc.pid, url, logFile };
  live.add(child);
  proc.once('exit', () => live.delete(child));
  return child;
}

export function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls GET <url>/v2/health/ready until 200, the child exits, or timeoutMs passes. */
export async function waitReady(child: Child, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < until) {
    if (exited(child)) {
      throw new Error(`${child.name} exited (${child.proc.exitCode ?? child.proc.signalCode}) before it was ready:\n${tail(child.logFile)}`);
    }
    try {
      const res = await fetch(`${child.url}/v2/health/ready`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return rememberTree(child);
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`${child.name} not ready within ${timeoutMs} ms (last: ${last}):\n${tail(child.logFile)}`);
}

/**
 * Waits until `count` distinct processes of a breakwater child have logged "breakwater is serving"
 * (each cluster worker logs it once it listens), so that no load run starts while some workers are
 * still loading the model: the cluster hands connections only to listening workers, and a keep-alive
 * connection stays with the worker it was given to. Needs the info level (the gateway's default).
 */
export async function waitServing(child: Child, count: number, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let pids = new Set<number>();
  while (Date.now() < until) {
    if (exited(child)) throw new Error(`${child.name} exited while its workers started:\n${tail(child.logFile)}`);
    pids = new Set<number>();
    let text = '';
    try {
      text = readFileSync(child.logFile, 'utf8');
    } catch { /* not written yet */ }
    for (const line of text.split('\n')) {
      if (!line.includes('breakwater is serving')) continue;
      try {
        const pid = (JSON.parse(line) as { pid?: unknown }).pid;
        if (typeof pid === 'number') pids.add(pid);
      } catch { /* a partly written line: read again next time */ }
    }
    if (pids.size >= count) return rememberTree(child);
    await sleep(100);
  }
  throw new Error(`${child.name}: ${pids.size} of ${count} worker(s) serving after ${timeoutMs} ms:\n${tail(child.logFile)}`);
}

async function waitGone(procs: readonly ProcId[], ms: number): Promise<ProcId[]> {
  const until = Date.now() + ms;
  let left = procs.filter(isAlive);
  while (left.length > 0 && Date.now() < until) {
    await sleep(50);
    left = left.filter(isAlive);
  }
  return left;
}

function sigkill(procs: readonly ProcId[]): void {
  for (const p of procs) {
    if (!isAlive(p)) continue;
    try { process.kill(p.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}

/**
 * SIGTERM to the child (a cluster primary drains and stops its workers), SIGKILL to it after graceMs,
 * then SIGKILL to any of its descendants still running. Bounded; resolves with the processes of the
 * tree that are still alive at the end (normally none).
 */
export async function kill(child: Child, graceMs = 3000): Promise<ProcId[]> {
  rememberTree(child);
  const tree = trees.get(child) ?? [];
  if (!exited(child)) {
    await new Promise<void>((resolve) => {
      const p = child.proc;
      const hard = setTimeout(() => {
        try { p.kill('SIGKILL'); } catch { /* already gone */ }
      }, graceMs);
      const giveUp = setTimeout(done, graceMs + 2000);
      function done() {
        clearTimeout(hard);
        clearTimeout(giveUp);
        resolve();
      }
      p.once('exit', done);
      try { p.kill('SIGTERM'); } catch { done(); }
      if (exited(child)) done();
    });
  }
  // Workers normally exit with their primary; any that did not (or was orphaned by the SIGKILL) goes now.
  let left = await waitGone(tree, 500);
  if (left.length > 0) {
    sigkill(left);
    left = await waitGone(left, 2000);
  }
  if (left.length === 0) trees.delete(child);
  return left;
}

/** Stops the given children and their descendants; throws if any process of theirs still runs. */
export async function stopChildren(children: readonly Child[]): Promise<void> {
  const left = (await Promise.all(children.map((c) => kill(c)))).flat();
  if (left.length > 0) throw new Error(`processes still running after SIGKILL: ${left.map((p) => p.pid).join(', ')}`);
}

/** Every child still running or with a descendant still known (bounded, never throws). */
export async function killAll(): Promise<void> {
  await Promise.all([...new Set([...live, ...trees.keys()])].map((c) => kill(c)));
}

/** Last resort on process exit: synchronous SIGKILL of whatever is still running, trees included. */
export function killAllSync(): void {
  for (const c of new Set([...live, ...trees.keys()])) {
    rememberTree(c);
    sigkill(trees.get(c) ?? []);
    try { c.proc.kill('SIGKILL'); } catch { /* already gone */ }
  }
}
