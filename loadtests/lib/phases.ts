/**
 * The benchmark's two phases: which children each starts and which targets it loads.
 *
 * Phase 1, "one process each": every breakwater child runs `server.workers: 1`, like the bare proxy,
 * so processes are compared like with like (the CPU-per-request checks live here). It also starts a
 * private redis-server for (f), the gateway with JWT auth and rate limits charged to that Redis, and
 * two gateways with JWT auth only (in-memory store, no rate limits): (g0), whose model has no split,
 * and (g), whose model has a split with rules and whose opt-out registry holds BENCH_OPT_OUTS.subjects
 * subjects (filled through the admin API before the smoke test), so that (g)/(g0) is what routing costs,
 * and three in-process gateways serving iris with its reference profile (built once per run by
 * `breakwater profile`): (n0) without guards, (n) with the contract and out-of-distribution guards,
 * (s) with the squeezing guard too, so that (n)/(n0) is what those guards cost and (s) − (n) what a
 * sampled squeeze costs; (r), (n0) plus drift monitoring; and (o0) and (o), iris with the same profile
 * and drift monitoring as two versions split stable 90 / canary 10, by the configuration in (o0), by a
 * rollout of version 2 with every criterion on in (o) (lib/rollout.ts), so that (o)/(o0) is what a
 * rollout costs over the same split; and (t0) and (t), iris in-process with (g0)'s JWT auth, without
 * and with an audit trail writing a decision record per prediction (lib/audit.ts), so that (t)/(t0)
 * is what the audit trail costs a request.
 * Phase 2, "one worker per core": B, G and O again, as new processes with `server.workers: "auto"`,
 * so that both deployments compared by the throughput check can use every core (P is not needed).
 * The phases run one after the other, never at the same time: they would compete for the cores.
 */
import { prepareAudit } from './audit.js';
import { BENCH_DRIFT, BENCH_GUARDS, prepareProfile } from './guards.js';
import type { Child } from './processes.js';
import { BENCH_ROLLOUT, BENCH_SPLIT, BENCH_SPLIT_REASONS } from './rollout.js';
import { startRedis } from './redis.js';
import {
  BENCH_ARMS, BENCH_IDENTITY, BENCH_KILL_SWITCH, BENCH_OPT_OUTS, BENCH_ROUTING, identityConfig, jwtOnlyConfig, LABELS, mintBenchToken, optOutSubject, populateOptOuts,
  prepareIdentity, prepareModel, proxyBackend, startBareProxy, startGateway,
  type ChildOptions, type Target, type TargetId, type Workers,
} from './targets.js';

export type PhaseNumber = 1 | 2;

export interface PhaseSpec {
  readonly phase: PhaseNumber;
  readonly title: string;
  /** `server.workers` of every breakwater child of the phase. */
  readonly workers: Workers;
  /** Load order within a round. */
  readonly targets: readonly TargetId[];
}

export const PHASES: readonly PhaseSpec[] = [
  { phase: 1, title: 'Phase 1: one process each', workers: 1, targets: ['a', 'b', 'c', 'd', 'e', 'f', 'g0', 'g', 'k0', 'k', 'n0', 'n', 's', 'r', 'o0', 'o', 't0', 't'] },
  { phase: 2, title: 'Phase 2: one worker per core', workers: 'auto', targets: ['c*', 'd*'] },
];

const target = (id: TargetId, front: Child, backend?: Child, extra?: Pick<Target, 'headers' | 'redis' | 'rateLimited' | 'route' | 'killSwitch' | 'guards' | 'drift' | 'rollout' | 'audit'>): Target =>
  ({ id, label: LABELS[id], front, ...(backend ? { backend } : {}), ...extra });

/**
 * Starts the children of a phase, pushing each onto `started` as soon as it is spawned (so that the
 * caller can stop them all even when a later one fails to start), and returns the phase's targets.
 */
export async function startPhase(spec: PhaseSpec, o: ChildOptions, started: Child[]): Promise<Target[]> {
  const onnx = prepareModel(o.workDir);
  const w = spec.workers;
  // Only the children the phase's targets need (BENCH_TARGETS may select some): B always.
  const want = (...ids: TargetId[]): boolean => ids.some((id) => spec.targets.includes(id));
  const skip = Promise.resolve(undefined);
  if (spec.phase === 1) {
    const identity = prepareIdentity(o.workDir);
    const R = want('f') ? await startRedis('p1-R-redis', o.workDir, o.readyTimeoutMs, started) : undefined;
    const B = await startGateway({ name: 'p1-B-backend', workers: w, backend: onnx }, o, started);
    const [P, G, O, E, F] = await Promise.all([
      want('b') ? startBareProxy('p1-P-bare-proxy', B, o, started) : skip,
      want('c') ? startGateway({ name: 'p1-G-gateway-proxy', workers: w, backend: proxyBackend(B) }, o, started) : skip,
      want('d') ? startGateway({ name: 'p1-O-gateway-onnx', workers: w, backend: onnx }, o, started) : skip,
      want('e') ? startGateway({ name: 'p1-E-gateway-proxy-accesslog', workers: w, accessLog: true, backend: proxyBackend(B) }, o, started) : skip,
      want('f') && R !== undefined ? startGateway({ name: 'p1-F-gateway-proxy-auth-ratelimit', workers: w, backend: proxyBackend(B), identity: identityConfig(identity, R) }, o, started) : skip,
    ]);
    // Further batches: seven node processes loading at once on a small, busy machine can miss the
    // readiness bound.
    const jwt = jwtOnlyConfig(identity);
    const [G0, GR] = await Promise.all([
      want('g0') ? startGateway({ name: 'p1-G0-gateway-proxy-jwt', workers: w, backend: proxyBackend(B), identity: jwt }, o, started) : skip,
      want('g') ? startGateway({ name: 'p1-G-gateway-proxy-jwt-routing', workers: w, backend: proxyBackend(B), identity: jwt, routing: BENCH_ROUTING }, o, started) : skip,
    ]);
    // (k0) and (k): the same gateway as (g0) but for two versions and killSwitch.rollbackTo, the
    // kill switch off in (k0), on in (k) (nothing killed): what having it costs a request.
    const [K0, K] = await Promise.all([
      want('k0') ? startGateway({ name: 'p1-K0-gateway-proxy-jwt-killswitch-off', workers: w, backend: proxyBackend(B), identity: jwt, killSwitch: 'off' }, o, started) : skip,
      want('k') ? startGateway({ name: 'p1-K-gateway-proxy-jwt-killswitch-on', workers: w, backend: proxyBackend(B), identity: jwt, killSwitch: 'on' }, o, started) : skip,
    ]);
    // (n0), (n) and (s): (d) with the iris profile, built once here by the real command, and each
    // its guards section (none on (n0)): what the input guards cost in-process serving.
    const profile = want('n0', 'n', 's', 'r', 'o0', 'o') ? await prepareProfile(o.workDir, onnx) : undefined;
    if (profile !== undefined) console.log(profile.summary.replace(/\n\s*/g, '; '));
    const guarded = (id: TargetId, name: string, guards?: Record<string, unknown>, drift?: Record<string, unknown>, canary?: { traffic?: Record<string, unknown>; rollout?: Record<string, unknown> }) => (profile === undefined || !want(id) ? skip
      : startGateway({ name, workers: w, backend: onnx, guarded: { profile: profile.file, ...(guards === undefined ? {} : { guards }), ...(drift === undefined ? {} : { drift }), ...(canary === undefined ? {} : { canary }) } }, o, started));
    // (r): (n0) plus a drift section: what counting every answered request into the drift window costs.
    const [N0, N, S, R0] = await Promise.all([
      guarded('n0', 'p1-N0-gateway-onnx-profile'),
      guarded('n', 'p1-N-gateway-onnx-guards', BENCH_GUARDS.n),
      guarded('s', 'p1-S-gateway-onnx-guards-squeeze', BENCH_GUARDS.s),
      guarded('r', 'p1-R-gateway-onnx-drift', undefined, BENCH_DRIFT),
    ]);
    // (o0) and (o): two versions of the model (both iris, the same profile), drift monitored as in
    // (r), split 90 / 10 by the configuration (o0) or by a rollout the configuration declares (o),
    // which sets the same split itself: what a rollout with every criterion on costs over the split.
    const [O0, OR] = await Promise.all([
      guarded('o0', 'p1-O0-gateway-onnx-split', undefined, BENCH_DRIFT, { traffic: BENCH_SPLIT }),
      guarded('o', 'p1-O-gateway-onnx-rollout', undefined, BENCH_DRIFT, { rollout: BENCH_ROLLOUT }),
    ]);
    // (t0) and (t): (d) with (g0)'s JWT auth (the same key and token, the memory store, no rate
    // limits), without and with an audit section: what a decision record per prediction costs.
    const audit = prepareAudit(o.workDir, o.auditMaxLossMs);
    const [T0, T] = await Promise.all([
      want('t0') ? startGateway({ name: 'p1-T0-gateway-onnx-jwt', workers: w, backend: onnx, identity: jwt }, o, started) : skip,
      want('t') ? startGateway({ name: 'p1-T-gateway-onnx-jwt-audit', workers: w, backend: onnx, identity: jwt, audit: audit.section }, o, started) : skip,
    ]);
    const n = BENCH_OPT_OUTS.subjects;
    if (n > 0 && GR !== undefined) {
      const t0 = Date.now();
      await populateOptOuts(GR, identity, n);
      console.log(`${GR.name}: ${n} subjects opted out of ${BENCH_OPT_OUTS.kinds.join(', ')} through PUT /admin/opt-outs/{subject} in ${Date.now() - t0} ms`);
    }
    // The last subject set: opted out, so the smoke test sees it sent back to the stable version.
    const probe = optOutSubject(n - 1);
    const auth = { authorization: identity.authorization };
    const ruleHeader = BENCH_ROUTING.traffic.rules[0].header;
    const oncall = `Bearer ${mintBenchToken(identity, BENCH_KILL_SWITCH.adminSubject, BENCH_KILL_SWITCH.adminScopes)}`;
    const all: (Target | undefined)[] = [
      target('a', B), P && target('b', P, B), G && target('c', G, B), O && target('d', O), E && target('e', E, B),
      F && target('f', F, B, { headers: auth, redis: R, rateLimited: true }),
      G0 && target('g0', G0, B, { headers: auth, route: { reasons: ['stable'] } }),
      GR && target('g', GR, B, {
        headers: auth,
        route: {
          reasons: BENCH_ARMS,
          optOutSubjects: n,
          rule: { headers: { [ruleHeader.name]: ruleHeader.equals }, reason: `rule:${BENCH_ROUTING.traffic.rules[0].name}` },
          ...(n > 0
            ? {
                optedOut: {
                  subject: probe,
                  authorization: `Bearer ${mintBenchToken(identity, probe, BENCH_IDENTITY.scopes)}`,
                  reason: BENCH_OPT_OUTS.reason,
                  version: BENCH_ROUTING.stable,
                },
              }
            : {}),
        },
      }),
      K0 && target('k0', K0, B, { headers: auth, route: { reasons: ['stable'] }, killSwitch: { on: false, authorization: oncall } }),
      K && target('k', K, B, { headers: auth, route: { reasons: ['stable'] }, killSwitch: { on: true, authorization: oncall } }),
      N0 && target('n0', N0, undefined, { guards: { on: [] }, drift: { on: false } }),
      N && target('n', N, undefined, { guards: { on: ['contract', 'ood'] } }),
      S && target('s', S, undefined, { guards: { on: ['contract', 'ood', 'squeeze'] } }),
      R0 && target('r', R0, undefined, { guards: { on: [] }, drift: { on: true } }),
      O0 && target('o0', O0, undefined, { route: { reasons: BENCH_SPLIT_REASONS }, drift: { on: true }, rollout: { on: false } }),
      OR && target('o', OR, undefined, { route: { reasons: BENCH_SPLIT_REASONS }, drift: { on: true }, rollout: { on: true } }),
      T0 && target('t0', T0, undefined, { headers: auth, route: { reasons: ['stable'] }, audit: { on: false, dir: audit.dir } }),
      T && target('t', T, undefined, { headers: auth, route: { reasons: ['stable'] }, audit: { on: true, dir: audit.dir } }),
    ];
    return all.filter((t): t is Target => t !== undefined && want(t.id));
  }
  const B = await startGateway({ name: 'p2-B-backend', workers: w, backend: onnx }, o, started);
  const [G, O] = await Promise.all([
    want('c*') ? startGateway({ name: 'p2-G-gateway-proxy', workers: w, backend: proxyBackend(B) }, o, started) : skip,
    want('d*') ? startGateway({ name: 'p2-O-gateway-onnx', workers: w, backend: onnx }, o, started) : skip,
  ]);
  return [G && target('c*', G, B), O && target('d*', O)].filter((t): t is Target => t !== undefined);
}
