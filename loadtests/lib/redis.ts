/**
 * The benchmark's private Redis for target (f): a `redis-server` child on its own free loopback port,
 * with no persistence (`--save ""`, `--appendonly no`) and its working directory in the benchmark's
 * temp folder, so the run neither depends on nor disturbs any Redis the machine runs. It is tracked
 * like the other children (stopped with its phase, and by killAll() and the exit hook).
 *
 * The few commands the benchmark itself sends (PING while starting, DBSIZE after the smoke test,
 * INFO around each measured window of (f)) go through the minimal RESP client below, on a short-lived
 * connection each: no client library, and nothing of ours stays connected while the load runs.
 */
import { execFileSync } from 'node:child_process';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { exited, freePort, HOST, rememberTree, spawnProgram, tail, type Child } from './processes.js';

export const REDIS_SERVER = 'redis-server';

export interface RedisChild extends Child {
  readonly port: number;
  /** `redis-server --version`, for the results. */
  readonly version: string;
}

/** One RESP reply: a simple or bulk string, an integer, or null; an error reply rejects. */
type Reply = string | number | null;

/** Parses one complete reply from the start of buf, or returns undefined when more bytes are needed. */
function parseReply(buf: Buffer): { value: Reply } | { error: string } | undefined {
  const eol = buf.indexOf('\r\n');
  if (eol < 0) return undefined;
  const line = buf.toString('utf8', 1, eol);
  switch (buf[0]) {
    case 0x2b: return { value: line }; // '+'
    case 0x2d: return { error: line }; // '-'
    case 0x3a: return { value: Number(line) }; // ':'
    case 0x24: { // '$'
      const len = Number(line);
      if (len < 0) return { value: null };
      if (buf.length < eol + 2 + len + 2) return undefined;
      return { value: buf.toString('utf8', eol + 2, eol + 2 + len) };
    }
    default: return { error: `unexpected RESP reply type ${JSON.stringify(String.fromCharCode(buf[0]))}` };
  }
}

/** Sends one command on a new connection; bounded by timeoutMs. Arrays are not needed (nor parsed). */
export function redisCommand(port: number, args: readonly string[], timeoutMs = 1000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: HOST, port });
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (err: Error | undefined, value?: Reply) => {
      if (done) return;
      done = true;
      socket.destroy();
      if (err) reject(err);
      else resolve(value ?? null);
    };
    socket.setTimeout(timeoutMs, () => finish(new Error(`redis ${args[0]}: no answer within ${timeoutMs} ms`)));
    socket.once('error', (e) => finish(e));
    socket.once('close', () => finish(new Error(`redis ${args[0]}: connection closed before the answer`)));
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const r = parseReply(buf);
      if (r === undefined) return;
      if ('error' in r) finish(new Error(`redis ${args[0]}: ${r.error}`));
      else finish(undefined, r.value);
    });
    socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let version: string | undefined;

/** The version of `redis-server` (asked once); throws when there is no redis-server to run. */
export function redisVersion(): string {
  if (version !== undefined) return version;
  try {
    const text = execFileSync(REDIS_SERVER, ['--version'], { encoding: 'utf8', timeout: 5000 }).trim();
    // "Redis server v=7.0.15 sha=… malloc=… bits=64 build=…": the version is what matters.
    version = `redis-server ${/\bv=(\S+)/.exec(text)?.[1] ?? text}`;
    return version;
  } catch (e) {
    throw new Error(`target (f) needs ${REDIS_SERVER} on the PATH (it starts a private one): ${(e as Error).message}`);
  }
}

/**
 * Starts the private redis-server, pushing it onto `started` as soon as it is spawned; resolves once
 * it answers PING, throws if it exits first or does not answer within timeoutMs.
 */
export async function startRedis(name: string, workDir: string, timeoutMs: number, started: Child[]): Promise<RedisChild> {
  const version = redisVersion();
  const port = await freePort();
  const logFile = join(workDir, `${name}.log`);
  const child = spawnProgram(name, REDIS_SERVER, [
    '--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', workDir, '--daemonize', 'no',
  ], `redis://${HOST}:${port}`, logFile);
  started.push(child);
  const until = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < until) {
    if (exited(child)) {
      throw new Error(`${name} exited (${child.proc.exitCode ?? child.proc.signalCode}) before it answered:\n${tail(logFile)}`);
    }
    try {
      const pong = await redisCommand(port, ['PING'], 500);
      if (pong === 'PONG') {
        rememberTree(child);
        return { ...child, port, version };
      }
      last = `answered ${JSON.stringify(pong)}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`${name} did not answer PING within ${timeoutMs} ms (last: ${last}):\n${tail(logFile)}`);
}

/** Keys in the current database. */
export async function dbSize(port: number): Promise<number> {
  const n = await redisCommand(port, ['DBSIZE']);
  if (typeof n !== 'number') throw new Error(`redis DBSIZE answered ${JSON.stringify(n)}`);
  return n;
}

/**
 * Scripts run so far (EVALSHA + EVAL calls from INFO commandstats): the gateway charges every rule
 * of a request in one script, so the difference over a window, per completed request, shows that
 * every request really was charged in Redis.
 */
export async function scriptCalls(port: number): Promise<number> {
  const info = await redisCommand(port, ['INFO', 'commandstats']);
  if (typeof info !== 'string') throw new Error(`redis INFO answered ${JSON.stringify(info)}`);
  let calls = 0;
  for (const m of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) calls += Number(m[2]);
  return calls;
}
