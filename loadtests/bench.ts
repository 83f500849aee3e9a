/**
 * The gateway benchmark (not a test: it never fails on a timing; it prints and writes results).
 *
 *   npm run bench        (env: BENCH_DURATION_S=5 BENCH_ROUNDS=3 BENCH_WARMUP_S=1 BENCH_PRIME_S=2
 *                         BENCH_MAX_REQUESTS=300000 BENCH_LOG_LEVEL=(gateway default, info) BENCH_KEEP_TMP=0
 *                         BENCH_TARGETS=(every target; e.g. k0,k for a focused run)
 *                         BENCH_AUDIT_MAX_LOSS_MS=1000 (target (t)'s audit.maxLossMs; 0: synchronous records))
 *
 * A focused run (BENCH_TARGETS, comma-separated target ids) loads only those targets, skips the phases
 * holding none, starts only the children they need, and writes loadtests/results/focused-<ids>.{md,json}
 * (lib/settings.ts resultsBase), never over latest.*.
 *
 * Two fixed phases, one after the other (lib/phases.ts; BENCH_WORKERS is gone, setting it is an error):
 *   Phase 1 "one process each": every breakwater child with `server.workers: 1`. Targets (a) B direct,
 *     (b) P→B bare proxy, (c) G→B gateway proxy, (d) O gateway ONNX, (e) G→B with the access log on,
 *     (f) G→B with JWT auth (a fresh Ed25519 key, one bearer token for every request) and two rate-limit
 *     rules charged to a private redis-server the phase starts (needs `redis-server` on the PATH),
 *     (g0) G→B + JWT: JWT auth like (f) (same key, same token) but no rate limits and the in-memory
 *     store, on a model without a traffic split, and (g) G→B + JWT + routing: (g0) plus, on the
 *     benchmarked model, a 3-arm split (stable 80 / canary 10 / b 10, three versions all pointing at B)
 *     with a header rule and a claim rule that the benchmark's requests never match (so each is hashed
 *     into an arm), and an opt-out registry of 1,000 subjects (set through PUT /admin/opt-outs/{subject}
 *     after the child starts) that does not hold the benchmark's subject (every request looks it up
 *     and misses: the common path), then (k0) and (k): (g0) with two versions of the model (both
 *     pointing at B, stable 1) and `killSwitch.rollbackTo: "2"`, `killSwitch.enabled: false` in (k0),
 *     `true` in (k) (nothing killed; the smoke test checks GET /admin/kill answers 404 on (k0), 200 on (k)),
 *     then (n0), (n) and (s): (d) with the iris model's reference profile (built once per run in the work
 *     directory by `breakwater profile` from iris.csv in the shared assets folder, BREAKWATER_TEST_ASSETS
 *     or ../shared/assets; lib/guards.ts) named by its version, no guards in (n0), the contract and ood
 *     guards in flag mode in (n), and the squeezing guard too in (s), flag mode, sampleRate 1 (every
 *     request sampled). The benchmark's row is a clean iris row: no guard fires, the answers are (d)'s;
 *     the smoke test checks that (no x-guard), that an out-of-range row gets x-guard contract on (n) and
 *     (s) and nothing on (n0), that on (s) a row near the decision boundary is flagged by the squeezing
 *     guard, and that GET /admin/models/iris counts one verdict per request of each guard that is on.
 *     Then (r): (n0) plus `models.iris.drift: { sampleRate: 1 }` (every answered request counted into
 *     the drift window, the drift reference coming from the same profile; the memory store, as in
 *     (n0): with Redis a version adds one batched flush a second, not a command per request); the
 *     smoke test checks GET /admin/models/iris/drift answers a window with samples on (r) and 404
 *     DRIFT_NOT_MONITORED on (n0).
 *     Then (o0) and (o) (lib/rollout.ts): (r)'s iris, profile and drift section, but as two versions
 *     (the same ONNX file and profile under version 1, stable, and 2) split stable 90 / canary 10, by
 *     `models.iris.traffic` in (o0) (no rollout), by a rollout of version 2 declared in
 *     `models.iris.rollout` in (o), which sets the same two arms itself: every criterion on (errorRate,
 *     latencyP99, guards, drift, disagreement at its default budget 0.01, i.e. one canary request in
 *     ten copied to stable and compared), a first step at weight 10 that outlasts the run
 *     (minDurationMs 30 days, minRequests and every minSamples far above what a run sends), so it
 *     never moves. Anonymous callers (auth.insecureNoAuth) get a random bucket per request, so about
 *     one request in ten goes to version 2; the memory store, as in (r) (the rollout's figures are
 *     added to it every 500 ms, the controller judges every second). The smoke test checks GET
 *     /admin/models/iris/rollout: running at weight 10, no criterion failing, on (o), 404
 *     ROLLOUT_NOT_FOUND on (o0); answers from version 1 (stable) and 2 (canary) with the same outputs;
 *     and on (o) figures counting both versions and a compared row.
 *     Then (t0) and (t) (lib/audit.ts): (d), iris in-process, with (g0)'s JWT auth (the same key and
 *     token, the memory store, no rate limits: every prediction has a subject, whose pseudonym key is
 *     made in the store on the first request and cached after it), without an `audit` section in
 *     (t0), with one in (t): the trail in the work directory, a fresh Ed25519 key pair (PEM files in
 *     the work directory, the public key in publicKeyFiles), every other setting at its default
 *     (maxLossMs 1000, checkpointMs 10000, predictions on), so one decision record per prediction.
 *     The smoke test checks that after a few requests (t)'s replica folder holds a .jsonl file with a
 *     `prediction` entry for each (waiting up to 2.5 s for the batch), and that (t0) has none and logs
 *     that audit is not configured.
 *     The CPU check, gateway proxy vs bare proxy per request, is (c)/(b) here: both one process; the
 *     identity-and-quotas check, (f)/(c) ≤ 1.25 at 32 connections, and the routing check, (g)/(g0) ≤ 1.10
 *     at 32 connections ((g)/(c) printed as information), and the kill switch check, (k)/(k0) ≤ 1.02 at 32
 *     connections, and the input guards check, (n)/(n0) ≤ 1.10 at 32 connections ((s)/(n) and the
 *     squeezing guard's CPU per sampled request, (s) − (n), printed as information), and the drift
 *     monitoring check, (r)/(n0) ≤ 1.05 at 32 connections (`BENCH_TARGETS=n0,r` runs just those two), and
 *     the rollout check, (o)/(o0) ≤ 1.10 at 32 connections (`BENCH_TARGETS=o0,o` runs just those two), and
 *     the audit trail check, (t)/(t0) ≤ 1.10 at 32 connections (`BENCH_TARGETS=t0,t` runs just those two), too.
 *   Phase 2 "one worker per core": new B, G and O with `server.workers: "auto"` (P is not needed).
 *     Targets (c*) G→B and (d*) O. The throughput check, in-process ONNX vs the proxied path, is
 *     (d*)/(c*) at 32 connections here: both deployments use every core. Phase 1's (d)/(c) is
 *     printed as information only (a single process is bound to one core).
 * Every phase-1 process is stopped, and checked gone, before phase 2 starts.
 *
 * Within a phase, each target is smoke-tested, primed (BENCH_PRIME_S at 32 connections, discarded, so
 * round 1 does not measure a cold JIT), then loaded with autocannon at 1 and 32 connections, in rounds
 * (targets in order, every other round reversed, repeated BENCH_ROUNDS times; medians per cell),
 * measuring from /proc the CPU time of the process under test (with its workers), of its backend, of (f)'s Redis and of the load
 * generator. The breakwater children run with the gateway's defaults (log level info, access log off)
 * except (e); all but (f), (g0), (g), (k0), (k), (t0) and (t) with `auth.insecureNoAuth: true` ((n0), (n), (s), (r), (o0), (o) like (d)); all but (f) with no rate
 * limits. The smoke test checks every answer (200, the same outputs everywhere), and for (g) that the
 * split routed it (x-route-reason one of the arms), that the header rule routes, and that an opted-out
 * subject is sent to the stable version (the opt-out policy reads the registry the run filled).
 * Prints tables, ratios and the acceptance checks, and writes loadtests/results/latest.{md,json} (a focused
 * run: focused-<ids>.{md,json}).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { markdown } from './lib/markdown.js';
import { INFER_BODY, INFER_PATH } from './lib/measure.js';
import { PHASES } from './lib/phases.js';
import { redisVersion } from './lib/redis.js';
import { HOST, killAll, killAllSync } from './lib/processes.js';
import { checkLines, checks, ratioLines, ratios } from './lib/ratios.js';
import { noisy, problems, summarise, textTable, type Summary } from './lib/report.js';
import { runPhase, type PhaseResult } from './lib/run-phase.js';
import { command, readSettings, resultsBase } from './lib/settings.js';
import type { SmokeReference } from './lib/smoke.js';
import { ASSETS, BENCH_DRIFT, BENCH_GUARD_PROBES, BENCH_GUARDS, BENCH_PROFILE } from './lib/guards.js';
import { BENCH_CANARY, BENCH_ROLLOUT, BENCH_SPLIT, DEFAULT_DISAGREEMENT_BUDGET } from './lib/rollout.js';
import { AUDIT_DEFAULTS } from './lib/audit.js';
import { BENCH_IDENTITY, BENCH_KILL_SWITCH, BENCH_OPT_OUTS, BENCH_RATE_RULES, BENCH_ROUTING, optOutSubject } from './lib/targets.js';

const RESULTS_DIR = fileURLToPath(new URL('../../loadtests/results/', import.meta.url));
const CONNECTIONS = [1, 32] as const;

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch { /* not Linux */ }
  return cpus()[0]?.model ?? 'unknown';
}

const loadAverage = () => loadavg().map((x) => x.toFixed(2)).join(' ');

/** The temp folder (configs, model copy, child logs), removed at the end unless kept. */
let workDir: string | undefined;

async function main(): Promise<void> {
  const settings = readSettings();
  const started = new Date();
  const loadAtStart = loadAverage();
  const cores = availableParallelism();
  workDir = mkdtempSync(join(tmpdir(), 'breakwater-bench-'));
  let keep = settings.keepTmp;
  try {
    console.log(`benchmark: 2 phases, ${settings.rounds} round(s) each, ${settings.warmupS} s warm-up + ${settings.durationS} s measured per cell, ` +
      `connections ${CONNECTIONS.join(' and ')}; ${cores} cores; work dir ${workDir}`);

    const results: PhaseResult[] = [];
    let reference: SmokeReference | undefined;
    const selected = settings.targets;
    const phaseSpecs = PHASES
      .map((p) => (selected === undefined ? p : { ...p, targets: p.targets.filter((t) => selected.includes(t)) }))
      .filter((p) => p.targets.length > 0);
    for (const spec of phaseSpecs) {
      // runPhase stops every child of the phase (and checks they are gone) before it returns or throws.
      const r = await runPhase(spec, settings, workDir, CONNECTIONS, reference);
      reference = r.smoke;
      results.push(r);
    }

    const phases = results.map((r) => ({ result: r, summary: summarise(r.spec.phase, r.cells, r.labels) }));
    const all: Summary[] = phases.flatMap((p) => p.summary);
    const ratioList = ratios(all, CONNECTIONS);
    const checkList = checks(all, cores, settings.auditMaxLossMs);
    const bad = problems(all);
    const noise = noisy(all);
    const ratioText = ratioLines(ratioList);
    const checkText = checkLines(checkList);

    for (const p of phases) {
      console.log(`\n${p.result.spec.title} (server.workers: ${JSON.stringify(p.result.spec.workers)} = ${p.result.workersPerChild})\n${textTable(p.summary)}`);
    }
    console.log('');
    if (bad.length > 0) {
      keep = true;
      console.log(`!!!!!!!! FAILED REQUESTS (must be 0) !!!!!!!!\n${bad.map((b) => `!!! ${b}`).join('\n')}\n(child logs kept in ${workDir})\n`);
    }
    if (noise.length > 0) console.log(`!!! NOISY: other programs were busy; rerun on a quiet machine:\n${noise.map((b) => `!!! ${b}`).join('\n')}\n`);
    console.log(`Ratios:\n  ${ratioText.join('\n  ')}\n`);
    console.log(`Acceptance checks (informational):\n  ${checkText.join('\n  ')}\n`);

    const cmd = command();
    const meta: Record<string, string> = {
      date: started.toISOString(),
      node: process.version,
      'cpu model': cpuModel(),
      cores: String(cores),
      'load average at start / end': `${loadAtStart} / ${loadAverage()}`,
      phases: phaseSpecs.map((p) => `${p.title} (server.workers ${JSON.stringify(p.workers)}: ${p.targets.map((t) => `(${t})`).join(' ')})`).join('; then '),
      durations: `per phase, ${settings.primeS} s priming per target at 32 connections, then per cell ${settings.warmupS} s warm-up (discarded) + ` +
        `${settings.durationS} s measured, at most ${settings.maxRequests} requests per run; ${settings.rounds} round(s), targets in the order listed, every other round reversed`,
      connections: CONNECTIONS.join(', '),
      'breakwater child logging': `level ${settings.logLevel ?? 'info (the gateway\'s default)'}; access log off (the gateway's default) ` +
        'in every breakwater child except (e), whose configuration sets logging.accessLog: true',
      'identity and quotas': `every breakwater child except (f), (g0), (g), (k0), (k), (t0) and (t) runs with auth.insecureNoAuth: true, every one except (f) with no ` +
        `rate limits; (f), (g0), (g), (k0), (k), (t0) and (t) verify ` +
        `EdDSA JWTs (issuer ${BENCH_IDENTITY.issuer}, audience ${BENCH_IDENTITY.audience}, a fresh Ed25519 key pair per run) and every ` +
        `request carries the same bearer token (sub ${BENCH_IDENTITY.subject}, tenant ${BENCH_IDENTITY.tenant}, scope ` +
        `${BENCH_IDENTITY.scopes.join(' ')}); (f): rateLimits.rules ${BENCH_RATE_RULES.map((r) => `${r.name} (by ${r.by}, ${r.limit} rows per ${r.windowMs} ms)`).join(' and ')}, ` +
        `failMode closed, state.redisUrl a private redis-server (${redisVersion()}; --save "" --appendonly no, loopback, its own port); ` +
        '(g0), (g), (k0), (k), (t0) and (t): the in-memory store (no state.redisUrl), no rate limits',
      routing: `(g0): model iris with one version and no traffic split (x-route-reason stable); (g): versions ` +
        `${BENCH_ROUTING.versions.join(', ')} (stable ${BENCH_ROUTING.stable}), each an oip-http backend pointing at the same B, traffic.routes ` +
        `${BENCH_ROUTING.traffic.routes.map((r) => `${r.name} (version ${r.version}, weight ${r.weight})`).join(', ')}, traffic.rules ` +
        `${BENCH_ROUTING.traffic.rules.map((r) => `${r.name} (${'header' in r ? `header ${r.header.name} = ${r.header.equals}` : `claim ${r.claim.name} = ${r.claim.equals}`} → version ${r.version})`).join(' and ')} ` +
        `(the benchmark's requests match neither, so each is hashed into an arm by its subject); opt-out registry: ` +
        `${BENCH_OPT_OUTS.subjects} subjects (${optOutSubject(0)} … ${optOutSubject(BENCH_OPT_OUTS.subjects - 1)}) opted out of ` +
        `${BENCH_OPT_OUTS.kinds.join(', ')}, set through PUT /admin/opt-outs/{subject} (a token of scope ${BENCH_OPT_OUTS.adminScopes.join(' ')} ` +
        `signed with the same key) before the smoke test; ${BENCH_IDENTITY.subject} is not among them, so every request looks its subject up and misses`,
      'kill switch': `on (the default) in every breakwater child but (k0); (k0) and (k): model iris with versions ` +
        `${BENCH_KILL_SWITCH.stable} and ${BENCH_KILL_SWITCH.rollbackTo} (stable ${BENCH_KILL_SWITCH.stable}, both oip-http to the same B), ` +
        `models.iris.killSwitch.rollbackTo ${JSON.stringify(BENCH_KILL_SWITCH.rollbackTo)}, killSwitch.enabled false in (k0) and true in (k), ` +
        `nothing killed; smoke-checked through GET /admin/kill (a token of scope ${BENCH_KILL_SWITCH.adminScopes.join(' ')}): 404 on (k0), 200 on (k)`,
      'input guards': `(n0), (n) and (s): one process serving iris in-process (like (d)), auth.insecureNoAuth, version ${BENCH_PROFILE.version} ` +
        `with the profile \`breakwater profile --model ${BENCH_PROFILE.model} --version ${BENCH_PROFILE.version} --data ${ASSETS}/${BENCH_PROFILE.data} ` +
        `--map ${BENCH_PROFILE.map}\` built in the run's work directory; models.iris.guards: none in (n0), ${JSON.stringify(BENCH_GUARDS.n)} in (n), ` +
        `${JSON.stringify(BENCH_GUARDS.s)} in (s). The benchmark's row fires no guard; smoke-checked: no x-guard on it, x-guard contract on ` +
        `[${BENCH_GUARD_PROBES.outOfRange.join(', ')}] in (n) and (s) (none in (n0)), the squeezing guard flags a row near the decision boundary in (s), ` +
        'and GET /admin/models/iris counts a verdict per request of each guard that is on, none of one that is off',
      'drift monitoring': `(r): (n0) plus models.iris.drift: ${JSON.stringify(BENCH_DRIFT)} (the other drift settings at their defaults; ` +
        'the reference from the same profile; the memory store, as in (n0): with Redis a version adds one batched flush a second, ' +
        'not a command per request); smoke-checked: GET /admin/models/iris/drift reports a window that counted the smoke requests on (r), ' +
        '404 DRIFT_NOT_MONITORED on (n0)',
      rollout: `(o0) and (o): (r)'s configuration but for two versions of iris (${BENCH_CANARY.stable}, stable, and ${BENCH_CANARY.canary}, ` +
        `the same model file and profile), split ${BENCH_SPLIT.routes.map((r) => `${r.name} (version ${r.version}) ${r.weight}`).join(' / ')}: ` +
        `by models.iris.traffic in (o0), no rollout; by models.iris.rollout ${JSON.stringify(BENCH_ROLLOUT)} in (o), which sets the same routes ` +
        `itself (the disagreement budget at its default, ${DEFAULT_DISAGREEMENT_BUDGET}: one canary request in ${Math.round(BENCH_CANARY.weight / 100 / DEFAULT_DISAGREEMENT_BUDGET)} copied to stable and compared); ` +
        'anonymous callers (auth.insecureNoAuth) get a random bucket per request; the memory store; smoke-checked: GET /admin/models/iris/rollout ' +
        'running at weight 10 with no criterion failing on (o), 404 ROLLOUT_NOT_FOUND on (o0), answers from both versions, on (o) figures with a compared row',
      'audit trail': '(t0) and (t): one process serving iris in-process (like (d)) with the JWT auth of (g0); no audit section in (t0); ' +
        'in (t) audit.dir in the run\'s work directory, audit.signingKeyFile a fresh Ed25519 key (PEM) and its public key in audit.publicKeyFiles, ' +
        `maxLossMs ${settings.auditMaxLossMs} (BENCH_AUDIT_MAX_LOSS_MS; the default is ${AUDIT_DEFAULTS.maxLossMs}), the rest at the defaults (${Object.entries(AUDIT_DEFAULTS).filter(([k]) => k !== 'maxLossMs').map(([k, v]) => `${k} ${String(v)}`).join(', ')}): a decision record per prediction, ` +
        'the one subject\'s pseudonym key made in the memory store on its first request and cached; smoke-checked: (t)\'s replica folder holds ' +
        'a .jsonl file with a prediction entry per request (pseudonymised subject, input and output digests), (t0) none and its start-up warning',
      request: `POST ${INFER_PATH} ${INFER_BODY}`,
      host: HOST,
      command: `\`${cmd}\``,
    };
    mkdirSync(RESULTS_DIR, { recursive: true });
    // A focused run (BENCH_TARGETS) is written beside the full run's results, never over them.
    const base = resultsBase(selected);
    writeFileSync(join(RESULTS_DIR, `${base}.md`), markdown({
      meta, command: cmd, cores, ratioLines: ratioText, checkLines: checkText, failed: bad, noisy: noise,
      ...(selected === undefined ? {} : { focused: selected }),
      phases: phases.map((p) => ({ title: p.result.spec.title, workers: JSON.stringify(p.result.spec.workers), summary: p.summary })),
    }));
    writeFileSync(join(RESULTS_DIR, `${base}.json`), JSON.stringify({
      meta: { ...meta, command: cmd },
      settings: { ...settings, logLevel: settings.logLevel ?? 'info (gateway default, not set)' },
      phases: phases.map((p) => ({
        phase: p.result.spec.phase,
        title: p.result.spec.title,
        workers: p.result.spec.workers,
        workersPerChild: p.result.workersPerChild,
        processes: p.result.processes,
        summary: p.summary,
        cells: p.result.cells,
      })),
      ratios: ratioList,
      checks: checkList,
      failedRequests: bad,
      noisyCells: noise,
    }, null, 2) + '\n');
    console.log(`wrote ${join(RESULTS_DIR, `${base}.md`)} and ${base}.json`);
  } catch (e) {
    keep = true;
    throw e;
  } finally {
    await killAll();
    if (keep) console.log(`child logs and configs kept in ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  }
}

process.on('exit', killAllSync);
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping the children`);
    // killAll is bounded (SIGKILL after a grace time); the timer is a last resort.
    setTimeout(() => process.exit(SIGNAL_EXIT[sig]), 10_000).unref();
    void killAll().finally(() => {
      if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true });
      process.exit(SIGNAL_EXIT[sig]);
    });
  });
}

main().catch((e: unknown) => {
  console.error(`benchmark failed: ${(e as Error).stack ?? String(e)}`);
  process.exitCode = 1;
});
