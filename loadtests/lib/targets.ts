/**
 * What the benchmark loads: the target ids and labels, and how its child processes are started,
 * each bound to 127.0.0.1 on its own free port, output to a log file in the work directory:
 *   - a breakwater child (B, G, O and the like) from a generated YAML configuration, with
 *     `server.workers` fixed by the phase and logging at the gateway's defaults unless told otherwise;
 *   - the bare fastify pass-through proxy P (lib/bare-proxy.ts).
 * Which children a phase starts and which targets it builds from them is in lib/phases.ts.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { HOST, freePort, spawnNode, waitReady, waitServing, type Child } from './processes.js';

export type TargetId = 'a' | 'b' | 'c' | 'd' | 'e' | 'c*' | 'd*';

export const LABELS: Record<TargetId, string> = {
  a: '(a) B direct',
  b: '(b) P→B bare proxy',
  c: '(c) G→B gateway proxy',
  d: '(d) O gateway ONNX',
  e: '(e) G→B gateway proxy, access log on',
  'c*': '(c*) G→B gateway proxy, worker per core',
  'd*': '(d*) O gateway ONNX, worker per core',
};

export interface Target {
  readonly id: TargetId;
  readonly label: string;
  /** The process the load hits (with its workers), whose CPU is "the process under test". */
  readonly front: Child;
  /** The backend behind it, for the proxied targets. */
  readonly backend?: Child;
}

const GATEWAY_CLI = fileURLToPath(new URL('../../gateway/cli/main.js', import.meta.url));
const BARE_PROXY = fileURLToPath(new URL('./bare-proxy.js', import.meta.url));
export const IRIS_ONNX = fileURLToPath(new URL('../../../demo/models/iris.onnx', import.meta.url));

/** The gateway's default oip-http pool size (config-schema.ts, oipHttpBackendSchema.connections). */
const PROXY_CONNECTIONS = 64;

export type Workers = 1 | 'auto';

export interface ChildOptions {
  readonly workDir: string;
  /** logging.level of the breakwater children; undefined leaves the gateway's default (info). */
  readonly logLevel: string | undefined;
  readonly readyTimeoutMs: number;
}

export interface GatewaySpec {
  readonly name: string;
  readonly workers: Workers;
  /** Set logging.accessLog: true; otherwise the key is left out and the gateway's default (off) applies. */
  readonly accessLog?: boolean;
  readonly backend: Record<string, unknown>;
}

/** Worker processes a breakwater child runs for `workers` (the gateway resolves "auto" the same way). */
export function workerCount(workers: Workers): number {
  return workers === 'auto' ? availableParallelism() : workers;
}

/** Copies the iris model into <workDir>/repository and returns the onnx backend entry that serves it. */
export function prepareModel(workDir: string): Record<string, unknown> {
  const dir = join(workDir, 'repository', 'iris', '1');
  mkdirSync(dir, { recursive: true });
  copyFileSync(IRIS_ONNX, join(dir, 'model.onnx'));
  return { kind: 'onnx', path: join(dir, 'model.onnx') };
}

export function proxyBackend(upstream: Child): Record<string, unknown> {
  return { kind: 'oip-http', url: upstream.url, model: 'iris' };
}

function gatewayConfig(port: number, spec: GatewaySpec, logLevel: string | undefined): string {
  const logging = {
    ...(logLevel === undefined ? {} : { level: logLevel }),
    ...(spec.accessLog ? { accessLog: true } : {}),
  };
  return stringify({
    // The issue-2 targets measure the protocol path; identity and quotas have their own targets.
    auth: { insecureNoAuth: true },
    server: { host: HOST, port, workers: spec.workers },
    ...(Object.keys(logging).length > 0 ? { logging } : {}),
    models: { iris: { versions: { '1': { backend: spec.backend } } } },
  });
}

/** Starts a breakwater child; resolves once it answers ready and every worker of it serves. */
export async function startGateway(spec: GatewaySpec, o: ChildOptions, started: Child[]): Promise<Child> {
  const port = await freePort();
  const file = join(o.workDir, `${spec.name}.yaml`);
  writeFileSync(file, gatewayConfig(port, spec, o.logLevel));
  const child = spawnNode(spec.name, [GATEWAY_CLI, 'serve', '--config', file], port, join(o.workDir, `${spec.name}.log`));
  started.push(child);
  await waitReady(child, o.readyTimeoutMs);
  if (o.logLevel === undefined || ['info', 'debug', 'trace'].includes(o.logLevel)) {
    await waitServing(child, workerCount(spec.workers), o.readyTimeoutMs);
  }
  return child;
}

/** Starts the bare pass-through proxy P in front of `upstream`; resolves once it answers ready. */
export async function startBareProxy(name: string, upstream: Child, o: ChildOptions, started: Child[]): Promise<Child> {
  const port = await freePort();
  const child = spawnNode(
    name,
    [BARE_PROXY, '--upstream', upstream.url, '--host', HOST, '--port', String(port), '--connections', String(PROXY_CONNECTIONS)],
    port,
    join(o.workDir, `${name}.log`),
  );
  started.push(child);
  await waitReady(child, o.readyTimeoutMs);
  return child;
}
