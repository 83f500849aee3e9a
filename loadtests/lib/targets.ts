/**
 * What the benchmark loads: the target ids and labels, and how its child processes are started,
 * each bound to 127.0.0.1 on its own free port, output to a log file in the work directory:
 *   - a breakwater child (B, G, O and the like) from a generated YAML configuration, with
 *     `server.workers` fixed by the phase and logging at the gateway's defaults unless told otherwise;
 *   - the bare fastify pass-through proxy P (lib/bare-proxy.ts);
 *   - for target (f), a fresh Ed25519 key pair and one token (prepareIdentity) and a private Redis
 *     (lib/redis.ts).
 * Which children a phase starts and which targets it builds from them is in lib/phases.ts.
 */
import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { mintToken } from '../../gateway/cli/dev-keys.js';
import { HOST, freePort, spawnNode, waitReady, waitServing, type Child } from './processes.js';
import type { RedisChild } from './redis.js';

export type TargetId = 'a' | 'b' | 'c' | 'd' | 'e' | 'f' | 'c*' | 'd*';

export const LABELS: Record<TargetId, string> = {
  a: '(a) B direct',
  b: '(b) P→B bare proxy',
  c: '(c) G→B gateway proxy',
  d: '(d) O gateway ONNX',
  e: '(e) G→B gateway proxy, access log on',
  f: '(f) G→B with JWT auth + Redis rate limiting',
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
  /** Headers every request to this target carries (the bearer token of (f)), besides content-type. */
  readonly headers?: Readonly<Record<string, string>>;
  /** The Redis the target charges its rate limits to, measured on its own (f). */
  readonly redis?: RedisChild;
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
  /**
   * The `auth`, `state` and `rateLimits` sections of (f); without them the child runs with
   * `auth.insecureNoAuth: true` and no rate limits.
   */
  readonly identity?: IdentityConfig;
}

export interface IdentityConfig {
  readonly auth: Record<string, unknown>;
  readonly state: Record<string, unknown>;
  readonly rateLimits: Record<string, unknown>;
}

/** What (f)'s token carries and its configuration expects. */
export const BENCH_IDENTITY = {
  issuer: 'breakwater-bench',
  audience: 'breakwater',
  kid: 'bench',
  subject: 'bench-client',
  tenant: 'bench-tenant',
  scopes: ['predict:*'],
  // Longer than any run can take (20 rounds of 120 s cells): the one token is valid throughout.
  ttlSeconds: 86_400,
} as const;

/**
 * Rate limits of (f): one by subject, one by tenant, each far above what a run can send (1e9 rows
 * per 60 s), so nothing is refused and every request is charged in Redis.
 */
export const BENCH_RATE_RULES = [
  { name: 'bench-subject', by: 'subject', limit: 1_000_000_000, windowMs: 60_000 },
  { name: 'bench-tenant', by: 'tenant', limit: 1_000_000_000, windowMs: 60_000 },
] as const;

export interface Identity {
  /** The `Authorization` header value every request to (f) carries. */
  readonly authorization: string;
  readonly publicKeyFile: string;
}

/**
 * A fresh Ed25519 key pair in <workDir>/identity (the private key mode 0600) and one token signed
 * with it: subject, tenant, scope predict:*. The same token goes with every request, as a real
 * client's would until it expires (the gateway's verified-token cache is part of what is measured).
 */
export function prepareIdentity(workDir: string): Identity {
  const dir = join(workDir, 'identity');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const keyFile = join(dir, 'bench-jwt.key.pem');
  const publicKeyFile = join(dir, 'bench-jwt.pub.pem');
  writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }));
  const i = BENCH_IDENTITY;
  const token = mintToken({
    subject: i.subject, tenant: i.tenant, scopes: i.scopes, ttlSeconds: i.ttlSeconds,
    keyFile, issuer: i.issuer, audience: i.audience, kid: i.kid,
  });
  return { authorization: `Bearer ${token}`, publicKeyFile };
}

/** The configuration sections of (f): JWT auth with the bench key, rate limits charged to `redis`. */
export function identityConfig(id: Identity, redis: RedisChild): IdentityConfig {
  const i = BENCH_IDENTITY;
  return {
    auth: { issuer: i.issuer, audience: i.audience, keys: [{ kid: i.kid, publicKeyFile: id.publicKeyFile, algorithms: ['EdDSA'] }] },
    state: { redisUrl: redis.url },
    // `closed`: were Redis ever unavailable, requests would be refused (503, counted as failures)
    // rather than charged to the per-process fallback, so every 2xx of (f) was charged in Redis.
    rateLimits: { failMode: 'closed', rules: BENCH_RATE_RULES },
  };
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
    // The protocol-path targets run without identity and quotas; (f) has them (spec.identity).
    ...(spec.identity === undefined
      ? { auth: { insecureNoAuth: true } }
      : { auth: spec.identity.auth, state: spec.identity.state, rateLimits: spec.identity.rateLimits }),
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
