/**
 * Real Redis servers for tests: private `redis-server` children on free ports, never a daemon and
 * never the machine's own Redis, so a test run leaves nothing running and touches nothing it did not
 * start. A test may kill, pause and restart its own to show how a store behaves when Redis fails;
 * `sharedTestRedis()` is one per test process for tests that only need a Redis. Children are
 * killed when the test process exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const START_TIMEOUT_MS = 5_000;

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** A port nothing listens on right now (the OS's pick for port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** True when a Redis on `port` answers PING within `timeoutMs`. */
export function ping(port: number, timeoutMs = 200): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

async function untilAnswering(port: number, want: boolean, timeoutMs = START_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await ping(port)) !== want) {
    if (Date.now() > deadline) throw new Error(`redis on port ${port} did not ${want ? 'start' : 'stop'} within ${timeoutMs} ms`);
    await sleep(20);
  }
}

let shared: Promise<RedisServer> | undefined;

/**
 * The URL of this test process's own Redis, started on first use. It does not hold the process
 * open (the exit handler above kills it); `stopSharedTestRedis()` stops it sooner.
 */
export async function sharedTestRedis(): Promise<string> {
  shared ??= RedisServer.start().then((server) => {
    server.unref();
    return server;
  });
  return (await shared).url;
}

export async function stopSharedTestRedis(): Promise<void> {
  const server = await shared;
  shared = undefined;
  await server?.stop();
}

/** A private redis-server child on a fixed port, which a test may kill, pause and start again. */
export class RedisServer {
  readonly port: number;
  #child: ChildProcess | undefined;

  private constructor(port: number) {
    this.port = port;
  }

  /** Starts one on `port` (default: a free port) and waits until it answers. */
  static async start(port?: number): Promise<RedisServer> {
    const server = new RedisServer(port ?? (await freePort()));
    await server.start();
    return server;
  }

  /** A server on a free port that is not running yet (for "Redis is down at start" tests). */
  static async stopped(): Promise<RedisServer> {
    return new RedisServer(await freePort());
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Starts (again) on the same port, empty, and waits until it answers. */
  async start(): Promise<void> {
    if (this.#child !== undefined) return;
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    children.add(child);
    child.once('exit', () => {
      children.delete(child);
      if (this.#child === child) this.#child = undefined;
    });
    this.#child = child;
    await untilAnswering(this.port, true);
  }

  /** SIGKILL: the server vanishes at once, as in a crash (its sockets are closed by the kernel). */
  async kill(): Promise<void> {
    await this.#stop('SIGKILL');
  }

  /** SIGTERM and wait for exit: a clean shutdown. */
  async stop(): Promise<void> {
    await this.#stop('SIGTERM');
  }

  /** Lets this process exit while the server runs (it is still killed at exit). */
  unref(): void {
    this.#child?.unref();
  }

  /** SIGSTOP: the server stays connected but answers nothing (a stall, like a partition). */
  pause(): void {
    this.#child?.kill('SIGSTOP');
  }

  resume(): void {
    this.#child?.kill('SIGCONT');
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }

  async #stop(signal: NodeJS.Signals): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // A paused server would not act on SIGTERM; SIGKILL works regardless.
    if (signal !== 'SIGKILL') child.kill('SIGCONT');
    child.kill(signal);
    await exited;
    this.#child = undefined;
  }
}
