/**
 * What the benchmark loads: the target ids and labels, and how its child processes are started,
 * each bound to 127.0.0.1 on its own free port, output to a log file in the work directory:
 *   - a breakwater child (B, G, O and the like) from a generated YAML configuration, with
 *     `server.workers` fixed by the phase and logging at the gateway's defaults unless told otherwise;
 *   - the bare fastify pass-through proxy P (lib/bare-proxy.ts);
 *   - for targets (f), (g0) and (g), a fresh Ed25519 key pair and one token (prepareIdentity); for (f)
 *     a private Redis (lib/redis.ts);
 *   - for target (g), a traffic split with rules on the benchmarked model (BENCH_ROUTING) and an
 *     opt-out registry holding many subjects, none of them the benchmark's (populateOptOuts, through
 *     the admin API once the child serves);
 *   - for targets (n0), (n) and (s), the model's reference profile and guards (lib/guards.ts);
 *   - for targets (o0) and (o), the same profile on two versions of the model, split 90 / 10 by the
 *     configuration (o0) or by a rollout it declares (o) (lib/rollout.ts);
 *   - for target (t), an `audit` section: a trail in the work directory signed with a fresh Ed25519
 *     key (lib/audit.ts); (t0) and (t) serve iris in-process with (g0)'s JWT auth.
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
import type { BenchGuard } from './guards.js';
import { BENCH_CANARY } from './rollout.js';
import type { RedisChild } from './redis.js';

export type TargetId = 'a' | 'b' | 'c' | 'd' | 'e' | 'f' | 'g0' | 'g' | 'k0' | 'k' | 'n0' | 'n' | 's' | 'r' | 'o0' | 'o' | 't0' | 't' | 'c*' | 'd*';

/** Every target id, in the order of the phases. */
export const TARGET_IDS: readonly TargetId[] = ['a', 'b', 'c', 'd', 'e', 'f', 'g0', 'g', 'k0', 'k', 'n0', 'n', 's', 'r', 'o0', 'o', 't0', 't', 'c*', 'd*'];

export const LABELS: Record<TargetId, string> = {
  a: '(a) B direct',
  b: '(b) P→B bare proxy',
  c: '(c) G→B gateway proxy',
  d: '(d) O gateway ONNX',
  e: '(e) G→B gateway proxy, access log on',
  f: '(f) G→B with JWT auth + Redis rate limiting',
  g0: '(g0) G→B + JWT',
  g: '(g) G→B + JWT + routing',
  k0: '(k0) G→B + JWT, kill switch off',
  k: '(k) G→B + JWT + kill switch (nothing killed)',
  n0: '(n0) O + iris profile, guards off',
  n: '(n) O + contract and ood guards (flag)',
  s: '(s) O + contract, ood and squeeze guards (flag, every request sampled)',
  r: '(r) O + iris profile + drift monitoring (every request sampled)',
  o0: '(o0) O + iris, two versions split stable 90 / canary 10, profile and drift monitoring, no rollout',
  o: '(o) O + iris, (o0) plus a rollout of version 2 at 10 % (every criterion on)',
  t0: '(t0) O + JWT, no audit trail',
  t: '(t) O + JWT + audit trail (a decision record per prediction)',
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
  /** The target has rate limits: its answers must carry the RateLimit header (f). */
  readonly rateLimited?: boolean;
  /** What the smoke test checks of the routing ((g0), (g)): see RouteExpectation. */
  readonly route?: RouteExpectation;
  /** (k0), (k): whether the kill switch API must answer (on) or be absent (off), asked with this token. */
  readonly killSwitch?: { readonly on: boolean; readonly authorization: string };
  /** (n0), (n), (s): the input guards that are on (none on (n0)), checked by the smoke test. */
  readonly guards?: { readonly on: readonly BenchGuard[] };
  /** (n0), (r): whether the drift endpoint must report a window (on) or answer DRIFT_NOT_MONITORED (off). */
  readonly drift?: { readonly on: boolean };
  /**
   * (o0), (o): whether GET /admin/models/iris/rollout must report a running rollout at the canary's
   * weight (on) or answer ROLLOUT_NOT_FOUND (off); either way answers come from the split's arms.
   */
  readonly rollout?: { readonly on: boolean };
  /**
   * (t0), (t): whether the gateway keeps an audit trail with a decision record per prediction under
   * `dir` (on), or has no `audit` section (off: no trail directory, the start-up warning in its log).
   */
  readonly audit?: { readonly on: boolean; readonly dir: string };
}

/** What a target's answers must say about their routing (checked by the smoke test). */
export interface RouteExpectation {
  /** The x-route-reason the benchmark's request must get: one of these. */
  readonly reasons: readonly string[];
  /**
   * A subject the target's opt-out registry holds (kind `experiments`): a request with its token
   * must be routed to the stable version with x-route-reason `reason`, which shows that the
   * opt-out policy runs and reads the registry the benchmark filled.
   */
  readonly optedOut?: { readonly subject: string; readonly authorization: string; readonly reason: string; readonly version: string };
  /** A request carrying `headers` must be routed by a rule, with x-route-reason `reason`. */
  readonly rule?: { readonly headers: Readonly<Record<string, string>>; readonly reason: string };
  /** Subjects the registry holds (for the log line). */
  readonly optOutSubjects?: number;
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
  /** (t)'s audit.maxLossMs. */
  readonly auditMaxLossMs: number;
}

export interface GatewaySpec {
  readonly name: string;
  readonly workers: Workers;
  /** Set logging.accessLog: true; otherwise the key is left out and the gateway's default (off) applies. */
  readonly accessLog?: boolean;
  readonly backend: Record<string, unknown>;
  /**
   * The `auth` section (and for (f) `state` and `rateLimits`) of (f), (g0) and (g); without it the
   * child runs with `auth.insecureNoAuth: true` and no rate limits.
   */
  readonly identity?: IdentityConfig;
  /**
   * Several versions of the model, every one of them `backend`, and the model's traffic split ((g));
   * without it the model has the one version `1` and no split.
   */
  readonly routing?: RoutingConfig;
  /**
   * (k0), (k): the model gets two versions (both `backend`, stable 1) and `killSwitch.rollbackTo: "2"`;
   * `on` writes `killSwitch.enabled: true` (its default, written out; nothing killed), `off`
   * `killSwitch.enabled: false`. The two configurations differ in that one value only.
   */
  readonly killSwitch?: 'on' | 'off';
  /**
   * (n0), (n), (s): the model's one version names this reference profile, and the model has this
   * `guards` section (none on (n0)). The configurations differ in `guards` alone.
   */
  readonly guarded?: {
    readonly profile: string;
    readonly guards?: Record<string, unknown>;
    readonly drift?: Record<string, unknown>;
    /**
     * (o0), (o): two versions of the model (BENCH_CANARY: the same backend and profile under each,
     * stable 1), with this traffic split ((o0)) or this rollout ((o), which sets the split itself).
     */
    readonly canary?: { readonly traffic?: Record<string, unknown>; readonly rollout?: Record<string, unknown> };
  };
  /** (t): the configuration's `audit` section (lib/audit.ts); without it, none (the gateway's default: no trail). */
  readonly audit?: Record<string, unknown>;
}

/** What (k0) and (k) are asked by the smoke test: GET /admin/kill with a token of this scope. */
export const BENCH_KILL_SWITCH = { adminSubject: 'bench-oncall', adminScopes: ['admin:kill-switch'], stable: '1', rollbackTo: '2' } as const;

export interface IdentityConfig {
  readonly auth: Record<string, unknown>;
  /** Without it, the gateway's per-process in-memory store. */
  readonly state?: Record<string, unknown>;
  /** Without it, no rate limits. */
  readonly rateLimits?: Record<string, unknown>;
}

export interface RoutingConfig {
  readonly versions: readonly string[];
  readonly stable: string;
  readonly traffic: Record<string, unknown>;
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

/**
 * The routing of (g): three arms over three versions of iris (each an oip-http entry pointing at the
 * same B, so every arm answers alike), and two rules that the benchmark's requests never match (a
 * header it does not send, a tenant it is not), so every request is checked against both rules and
 * then hashed into an arm. The arms are named (their names are the x-route-reason), so that an
 * answer from the split can be told from the `stable` reason of a model without one.
 */
export const BENCH_ROUTING = {
  versions: ['1', '2', '3'],
  stable: '1',
  traffic: {
    routes: [
      { version: '1', weight: 80, name: 'split-stable' },
      { version: '2', weight: 10, name: 'split-canary' },
      { version: '3', weight: 10, name: 'split-b' },
    ],
    rules: [
      { name: 'beta-header', version: '2', header: { name: 'x-bench-beta', equals: 'beta-tester' } },
      { name: 'qa-tenant', version: '3', claim: { name: 'tenant', equals: 'bench-qa-tenant' } },
    ],
  },
} as const;

/** The arm names of BENCH_ROUTING: one of them is the x-route-reason of every (g) answer. */
export const BENCH_ARMS: readonly string[] = BENCH_ROUTING.traffic.routes.map((r) => r.name);

/**
 * The opt-out registry of (g): `subjects` subjects opted out of experiments, `bench-opted-out-0000`
 * and on, none of them BENCH_IDENTITY.subject, so every benchmark request looks its subject up and
 * misses (the common path). Set through the admin API (PUT /admin/opt-outs/{subject}, scope
 * admin:opt-outs) once the child serves, `concurrency` requests at a time.
 */
export const BENCH_OPT_OUTS = {
  subjects: 1000,
  prefix: 'bench-opted-out-',
  kinds: ['experiments'],
  adminSubject: 'bench-admin',
  adminScopes: ['admin:opt-outs'],
  concurrency: 8,
  requestTimeoutMs: 5000,
  totalTimeoutMs: 60_000,
  /** The reason policies/opt-out.ts gives a request it sends back to the stable version. */
  reason: 'opt-out:experiments',
} as const;

export function optOutSubject(i: number): string {
  return `${BENCH_OPT_OUTS.prefix}${String(i).padStart(4, '0')}`;
}

export interface Identity {
  /** The `Authorization` header value every request to (f), (g0) and (g) carries. */
  readonly authorization: string;
  readonly publicKeyFile: string;
  /** The private key, for the other tokens (the admin's, an opted-out subject's). */
  readonly keyFile: string;
}

/** A token signed with the bench key for another subject or other scopes. */
export function mintBenchToken(id: Identity, subject: string, scopes: readonly string[]): string {
  const i = BENCH_IDENTITY;
  return mintToken({ subject, tenant: i.tenant, scopes, ttlSeconds: i.ttlSeconds, keyFile: id.keyFile, issuer: i.issuer, audience: i.audience, kid: i.kid });
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
  return { authorization: `Bearer ${token}`, publicKeyFile, keyFile };
}

/** The `auth` section of (f), (g0) and (g): EdDSA JWTs signed with the bench key. */
function jwtAuth(id: Identity): Record<string, unknown> {
  const i = BENCH_IDENTITY;
  return { issuer: i.issuer, audience: i.audience, keys: [{ kid: i.kid, publicKeyFile: id.publicKeyFile, algorithms: ['EdDSA'] }] };
}

/**
 * The request limits (rateLimits.requests, on by default): (f) counts every request per subject, far
 * above what a run sends, like its rules; (g0) and (g) have no rate limits, so no per-subject count
 * (the per-address count of failed authentications stays on: it costs a request that passes nothing).
 */
export const BENCH_REQUEST_LIMITS = { perSubject: { limit: 1_000_000_000, windowMs: 60_000 } } as const;
const NO_REQUEST_LIMITS = { perSubject: { limit: 0 } } as const;

/** The configuration of (g0) and (g): JWT auth only (in-memory store, no rate limits). */
export function jwtOnlyConfig(id: Identity): IdentityConfig {
  return { auth: jwtAuth(id), rateLimits: { requests: NO_REQUEST_LIMITS } };
}

/** The configuration sections of (f): JWT auth with the bench key, rate limits charged to `redis`. */
export function identityConfig(id: Identity, redis: RedisChild): IdentityConfig {
  return {
    auth: jwtAuth(id),
    state: { redisUrl: redis.url },
    // `closed`: were Redis ever unavailable, requests would be refused (503, counted as failures)
    // rather than charged to the per-process fallback, so every 2xx of (f) was charged in Redis.
    rateLimits: { failMode: 'closed', rules: BENCH_RATE_RULES, requests: BENCH_REQUEST_LIMITS },
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

/** The YAML configuration of a breakwater child (exported for test/bench-targets.test.ts). */
export function gatewayConfig(port: number, spec: GatewaySpec, logLevel: string | undefined): string {
  const logging = {
    ...(logLevel === undefined ? {} : { level: logLevel }),
    ...(spec.accessLog ? { accessLog: true } : {}),
  };
  const id = spec.identity;
  const r = spec.routing;
  const ks = spec.killSwitch;
  const k = BENCH_KILL_SWITCH;
  const g = spec.guarded;
  const two = g?.canary;
  const iris = ks !== undefined
    ? { versions: { [k.stable]: { backend: { ...spec.backend } }, [k.rollbackTo]: { backend: { ...spec.backend } } }, stable: k.stable, killSwitch: { rollbackTo: k.rollbackTo } }
    : r === undefined
      ? {
          // (o0), (o): the same model file and profile under both versions (a copy each: no YAML aliases).
          versions: two === undefined
            ? { '1': { backend: spec.backend, ...(g === undefined ? {} : { profile: g.profile }) } }
            : Object.fromEntries([BENCH_CANARY.stable, BENCH_CANARY.canary].map((v) => [v, { backend: { ...spec.backend }, profile: g!.profile }])),
          ...(two === undefined ? {} : { stable: BENCH_CANARY.stable }),
          ...(g?.guards === undefined ? {} : { guards: g.guards }),
          ...(g?.drift === undefined ? {} : { drift: g.drift }),
          ...(two?.traffic === undefined ? {} : { traffic: two.traffic }),
          ...(two?.rollout === undefined ? {} : { rollout: two.rollout }),
        }
      // A copy per version: the same object three times would be written as a YAML anchor and aliases.
      : { versions: Object.fromEntries(r.versions.map((v) => [v, { backend: { ...spec.backend } }])), stable: r.stable, traffic: r.traffic };
  return stringify({
    // The protocol-path targets run without identity and quotas; (f), (g0) and (g) have them (spec.identity).
    ...(id === undefined
      ? { auth: { insecureNoAuth: true } }
      : {
          auth: id.auth,
          ...(id.state === undefined ? {} : { state: id.state }),
          ...(id.rateLimits === undefined ? {} : { rateLimits: id.rateLimits }),
        }),
    server: { host: HOST, port, workers: spec.workers },
    ...(Object.keys(logging).length > 0 ? { logging } : {}),
    ...(ks === undefined ? {} : { killSwitch: { enabled: ks === 'on' } }),
    ...(spec.audit === undefined ? {} : { audit: spec.audit }),
    models: { iris },
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

/**
 * Fills (g)'s opt-out registry through its admin API: `count` subjects (optOutSubject(0…count-1)),
 * each opted out of BENCH_OPT_OUTS.kinds, a few requests at a time. Bounded: `count` requests, each
 * with its own timeout, and the whole within BENCH_OPT_OUTS.totalTimeoutMs. Throws on any answer
 * other than 2xx (the first such answer, with its body).
 */
export async function populateOptOuts(child: Child, id: Identity, count: number): Promise<void> {
  const o = BENCH_OPT_OUTS;
  const authorization = `Bearer ${mintBenchToken(id, o.adminSubject, o.adminScopes)}`;
  const body = JSON.stringify({ kinds: o.kinds });
  const until = Date.now() + o.totalTimeoutMs;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      if (Date.now() > until) throw new Error(`${child.name}: opt-out registry not filled within ${o.totalTimeoutMs} ms (${next} of ${count} sent)`);
      const subject = optOutSubject(next++);
      const res = await fetch(`${child.url}/admin/opt-outs/${encodeURIComponent(subject)}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization },
        body,
        signal: AbortSignal.timeout(o.requestTimeoutMs),
      });
      const text = await res.text();
      if (res.status < 200 || res.status > 299) {
        throw new Error(`${child.name}: PUT /admin/opt-outs/${subject} answered HTTP ${res.status}: ${text.slice(0, 300)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency, count) }, worker));
}
