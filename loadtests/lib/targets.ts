/**
 * The four processes of the benchmark, each a child bound to 127.0.0.1 on its own free port:
 *   B  breakwater serving iris in-process from a temp model repository (the backend);
 *   P  the bare fastify pass-through proxy to B (the baseline);
 *   G  breakwater proxying to B (backend kind oip-http);
 *   O  breakwater serving iris in-process (a second process, independent of B).
 * and the four load targets built from them: (a) B, (b) P→B, (c) G→B, (d) O.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { HOST, freePort, spawnNode, waitReady, type Child } from './processes.js';

export type TargetId = 'a' | 'b' | 'c' | 'd';

export interface Target {
  readonly id: TargetId;
  readonly label: string;
  /** The process the load hits, whose CPU is "the process under test". */
  readonly front: Child;
  /** The backend behind it, for the proxied targets. */
  readonly backend?: Child;
}

const GATEWAY_CLI = fileURLToPath(new URL('../../gateway/cli/main.js', import.meta.url));
const BARE_PROXY = fileURLToPath(new URL('./bare-proxy.js', import.meta.url));
export const IRIS_ONNX = fileURLToPath(new URL('../../../demo/models/iris.onnx', import.meta.url));

/** The gateway's default oip-http pool size (config-schema.ts, oipHttpBackendSchema.connections). */
const PROXY_CONNECTIONS = 64;

export interface TargetOptions {
  readonly workDir: string;
  /** Log level of the breakwater children (their stdout goes to a file in workDir). */
  readonly logLevel: string;
  readonly readyTimeoutMs: number;
  /** `server.workers` of every breakwater child (B, G and O alike). */
  readonly workers: number | 'auto';
}

function gatewayConfig(port: number, logLevel: string, workers: number | 'auto', backend: Record<string, unknown>): string {
  return stringify({
    server: { host: HOST, port, workers },
    // accessLog stays at its default (true): it is part of the gateway's real cost.
    logging: { level: logLevel },
    models: { iris: { versions: { '1': { backend } } } },
  });
}

function startGateway(name: string, dir: string, port: number, o: TargetOptions, backend: Record<string, unknown>): Child {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, gatewayConfig(port, o.logLevel, o.workers, backend));
  return spawnNode(name, [GATEWAY_CLI, 'serve', '--config', file], port, join(dir, `${name}.log`));
}

export async function startTargets(o: TargetOptions): Promise<Target[]> {
  const repoModel = join(o.workDir, 'repository', 'iris', '1', 'model.onnx');
  mkdirSync(join(o.workDir, 'repository', 'iris', '1'), { recursive: true });
  copyFileSync(IRIS_ONNX, repoModel);
  const onnx = { kind: 'onnx', path: repoModel };

  const [pB, pP, pG, pO] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const B = startGateway('B-backend', o.workDir, pB, o, onnx);
  await waitReady(B, o.readyTimeoutMs);

  const P = spawnNode(
    'P-bare-proxy',
    [BARE_PROXY, '--upstream', B.url, '--host', HOST, '--port', String(pP), '--connections', String(PROXY_CONNECTIONS)],
    pP,
    join(o.workDir, 'P-bare-proxy.log'),
  );
  const G = startGateway('G-gateway-proxy', o.workDir, pG, o, { kind: 'oip-http', url: B.url, model: 'iris' });
  const O = startGateway('O-gateway-onnx', o.workDir, pO, o, onnx);
  await Promise.all([P, G, O].map((c) => waitReady(c, o.readyTimeoutMs)));

  return [
    { id: 'a', label: '(a) B direct', front: B },
    { id: 'b', label: '(b) P→B bare proxy', front: P, backend: B },
    { id: 'c', label: '(c) G→B gateway proxy', front: G, backend: B },
    { id: 'd', label: '(d) O gateway ONNX', front: O },
  ];
}
