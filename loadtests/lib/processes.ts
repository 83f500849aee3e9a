/**
 * Child processes for the benchmark: free loopback ports, spawning with output to a log file,
 * bounded readiness waits, and a kill that always ends in SIGKILL. Every child spawned here is
 * tracked so that killAll() (and the synchronous exit hook) can reach it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

export const HOST = '127.0.0.1';

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly url: string;
  readonly logFile: string;
}

const live = new Set<Child>();

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

/** Spawns `node args...` with stdout and stderr appended to logFile. */
export function spawnNode(name: string, args: readonly string[], port: number, logFile: string): Child {
  const fd = openSync(logFile, 'a');
  let proc: ChildProcess;
  try {
    proc = spawn(process.execPath, args, { stdio: ['ignore', fd, fd], env: { ...process.env, HOST, PORT: String(port) } });
  } finally {
    closeSync(fd);
  }
  if (proc.pid === undefined) throw new Error(`${name}: could not spawn ${process.execPath}`);
  const child: Child = { name, proc, pid: proc.pid, url: `http://${HOST}:${port}`, logFile };
  live.add(child);
  proc.once('exit', () => live.delete(child));
  return child;
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Polls GET <url>/v2/health/ready until 200, the child exits, or timeoutMs passes. */
export async function waitReady(child: Child, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < until) {
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) {
      throw new Error(`${child.name} exited (${child.proc.exitCode ?? child.proc.signalCode}) before it was ready:\n${tail(child.logFile)}`);
    }
    try {
      const res = await fetch(`${child.url}/v2/health/ready`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${child.name} not ready within ${timeoutMs} ms (last: ${last}):\n${tail(child.logFile)}`);
}

/** SIGTERM, then SIGKILL after graceMs; resolves when the child has exited (bounded). */
export function kill(child: Child, graceMs = 3000): Promise<void> {
  const p = child.proc;
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
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
  });
}

export async function killAll(): Promise<void> {
  await Promise.all([...live].map((c) => kill(c)));
}

/** Last resort on process exit: synchronous SIGKILL of whatever is still running. */
export function killAllSync(): void {
  for (const c of live) {
    try { c.proc.kill('SIGKILL'); } catch { /* already gone */ }
  }
}
