/**
 * Starting real gateways for tests: in this process (for inject-free socket tests and metrics), or as
 * a child process through the real command line (for signals, reloads and multi-process set-ups).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { buildConfig } from '../../gateway/config.js';
import { startGateway, type RunningGateway, type StartOptions } from '../../gateway/main.js';

/** The repository root (tests run from dist/test/...). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const CLI = join(REPO_ROOT, 'dist/gateway/cli/main.js');

/** Starts a gateway in this process on 127.0.0.1:0 from a configuration object. */
export async function startInProcess(config: Record<string, unknown>, baseDir = REPO_ROOT, opts: Pick<StartOptions, 'observers'> = {}): Promise<RunningGateway> {
  // Tests that are not about identity run without it; those that are pass their own `auth`.
  const withPort = {
    auth: { insecureNoAuth: true },
    ...config,
    server: { port: 0, host: '127.0.0.1', ...(config.server as object | undefined) },
  };
  const cfg = buildConfig(withPort, baseDir, 'test');
  const log = pino({ level: 'silent' });
  return startGateway({ config: cfg, log, loadConfig: async () => cfg, ...opts });
}

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `breakwater <args>` to completion (bounded) and reports its exit code and output. */
export function runCli(args: readonly string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliRun> {
  return new Promise((resolvePromise) => {
    const options = { cwd: REPO_ROOT, env: { ...process.env, ...opts.env }, timeout: opts.timeoutMs ?? 15_000 };
    execFile(process.execPath, [CLI, ...args], options, (err, stdout, stderr) => {
      resolvePromise({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
    });
  });
}

export interface ChildGateway {
  readonly url: string;
  readonly process: ChildProcess;
  /** Everything the process wrote to stdout/stderr so far (its JSON log lines). */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Runs `breakwater <args>` as a child process and resolves once it logs that it is serving. Give
 * `--port 0`; the real port is read from the start-up log line.
 */
export function spawnGateway(args: readonly string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ChildGateway> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  return new Promise<ChildGateway>((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway did not start within ${opts.timeoutMs ?? 20_000} ms:\n${out}`));
    }, opts.timeoutMs ?? 20_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /"url":"(http:\/\/[^"]+)".*breakwater is serving/.exec(out);
      if (m?.[1] !== undefined) {
        clearTimeout(timer);
        const url = m[1];
        resolvePromise({
          url,
          process: child,
          output: () => out,
          stop: (signal = 'SIGTERM') => {
            if (child.exitCode === null) child.kill(signal);
            return exited;
          },
        });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before serving:\n${out}`));
    });
  });
}

/** A temporary Triton-style repository: `models` maps a model name to {version: source model file}. */
export async function makeRepository(models: Record<string, Record<string, string>>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bw-repo-'));
  for (const [name, versions] of Object.entries(models)) {
    for (const [v, file] of Object.entries(versions)) {
      await mkdir(join(dir, name, v), { recursive: true });
      await symlink(file, join(dir, name, v, 'model.onnx'));
    }
  }
  return dir;
}

export async function writeTempFile(name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bw-'));
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

/**
 * Like spawnGateway, but runs a shell command line with `sh -c` (e.g. package.json's `start`
 * script) in its own process group, so stop() reaches the gateway whether or not the shell execs
 * it. `node` on the command line is this test run's node. Resolves once the gateway logs that it
 * is serving (its `PORT`/`HOST` come from `opts.env`).
 */
export function spawnShellGateway(command: string, opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ChildGateway> {
  const child = spawn('sh', ['-c', command], {
    cwd: REPO_ROOT,
    env: { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  let closed = false;
  // 'close' fires once every holder of the pipes (the shell and the gateway) has exited.
  const done = new Promise<number | null>((res) => child.once('close', (code) => { closed = true; res(code); }));
  const signalGroup = (signal: NodeJS.Signals) => {
    if (closed || child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // the group is already gone
    }
  };
  const timeoutMs = opts.timeoutMs ?? 20_000;
  return new Promise<ChildGateway>((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      signalGroup('SIGKILL');
      reject(new Error(`\`${command}\` did not start serving within ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /"url":"(http:\/\/[^"]+)".*breakwater is serving/.exec(out);
      if (m?.[1] !== undefined) {
        clearTimeout(timer);
        resolvePromise({
          url: m[1],
          process: child,
          output: () => out,
          stop: (signal = 'SIGTERM') => {
            signalGroup(signal);
            return done;
          },
        });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void done.then((code) => {
      clearTimeout(timer);
      reject(new Error(`\`${command}\` exited with ${code} before serving:\n${out}`));
    });
  });
}

/** Stops a child gateway with SIGTERM, and with SIGKILL if it has not exited within `graceMs`. */
export async function stopWithin(gw: ChildGateway, graceMs = 15_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((res) => (timer = setTimeout(() => res('late'), graceMs)));
  const first = await Promise.race([gw.stop('SIGTERM'), late]);
  clearTimeout(timer);
  return first === 'late' ? gw.stop('SIGKILL') : first;
}

/**
 * Waits (polling, at most `timeoutMs`) until the child's output after character `from` satisfies
 * `match`; returns that part of the output. Rejects with the output when it never does.
 */
export async function waitForOutput(
  gw: ChildGateway,
  match: RegExp | ((text: string) => boolean),
  opts: { from?: number; timeoutMs?: number } = {},
): Promise<string> {
  const test = typeof match === 'function' ? match : (t: string) => match.test(t);
  const deadline = Date.now() + (opts.timeoutMs ?? 5_000);
  for (;;) {
    const text = gw.output().slice(opts.from ?? 0);
    if (test(text)) return text;
    if (Date.now() >= deadline) throw new Error(`the gateway never logged ${String(match)}; its output:\n${gw.output()}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

/** The child's JSON log lines (other lines, e.g. Node warnings, are left out). */
export function logLines(text: string): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line still being written
    }
  }
  return lines;
}
