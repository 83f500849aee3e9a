/**
 * loadtests/results/latest.md (or focused-<ids>.md for a BENCH_TARGETS run): what was run (the exact command), what each target is, why there are
 * two phases, the results of each phase, the ratios and the acceptance checks.
 */
import { markdownTable, type Summary } from './report.js';

export interface MarkdownPhase {
  readonly title: string;
  readonly workers: string;
  readonly summary: readonly Summary[];
}

export interface MarkdownInput {
  readonly meta: Record<string, string>;
  readonly command: string;
  readonly cores: number;
  readonly phases: readonly MarkdownPhase[];
  readonly ratioLines: readonly string[];
  readonly checkLines: readonly string[];
  readonly failed: readonly string[];
  readonly noisy: readonly string[];
  /** BENCH_TARGETS of a focused run: named in the title; undefined for a full run. */
  readonly focused?: readonly string[];
}

function targets(cores: number): string[] {
  return [
    '## Targets',
    '',
    'Every breakwater child runs with the gateway\'s defaults except where said: log level `info`, access log off',
    '(`logging.accessLog` defaults to false), its output going to a file. Each child has its own loopback port.',
    '',
    '**Phase 1, one process each** (every breakwater child has `server.workers: 1`):',
    '',
    '- (a) B direct: breakwater serving the iris model in-process (onnx backend), loaded directly. It is the backend',
    '  of (b), (c), (e), (f), (g0), (g), (k0) and (k), and shows what serving alone costs.',
    '- (b) P→B: a bare fastify pass-through proxy in front of B (default JSON parsing, undici Pool of 64, no',
    '  validation, no logging): the baseline for what any JSON proxy costs.',
    '- (c) G→B: breakwater proxying to B (backend kind `oip-http`, default settings).',
    '- (d) O: a second breakwater process serving iris in-process (onnx backend): the deployment without a separate',
    '  model server.',
    '- (e) G→B with the access log on: a second gateway configured like G except for `logging.accessLog: true` (one',
    '  JSON line per inference). (e) against (c) is what the access log costs; (e) against (b) is the gateway',
    '  proxy with the access log against the bare proxy.',
    '- (f) G→B with JWT auth + Redis rate limiting: a gateway configured like G but with real identity and quotas',
    '  instead of `auth.insecureNoAuth: true`: `auth` verifies EdDSA tokens against a fresh Ed25519 key pair made',
    '  in the run\'s temp folder, and `rateLimits` has two rules, one by subject and one by tenant (10^9 rows per',
    '  60 s each, so nothing is refused), charged to a private `redis-server` the benchmark starts on its own',
    '  loopback port (no persistence; stopped with phase 1) through `state.redisUrl`, with `failMode: closed` (a',
    '  request Redis could not charge would fail, not fall back to per-process counters). Every request carries',
    '  the same `authorization: Bearer <token>` (subject, tenant, scope `predict:*`), as a real client\'s would',
    '  until the token expires, so the gateway checks its signature once and then answers from its verified-token',
    '  cache; every request is charged in Redis (one script for both rules: the "Redis scripts per request" in',
    '  the check below). The smoke test checks that (f) answers 200 with the token and a `RateLimit` header, 401',
    '  without it, and that the counters are in Redis. (f) against (c) is what identity and quotas through Redis',
    '  cost the gateway process; Redis\'s own CPU is in its own columns.',
    '- (g0) G→B + JWT: a gateway with the JWT auth of (f) (the same key, the same token on every request) but no',
    '  rate limits and the in-memory store (no `state.redisUrl`), whose model has one version and no traffic split.',
    '  The baseline of (g).',
    '- (g) G→B + JWT + routing: (g0) plus routing on the benchmarked model: three versions (each an `oip-http`',
    '  backend entry pointing at the same B) and `traffic.routes` of three named arms, `split-stable` 80 /',
    '  `split-canary` 10 / `split-b` 10, with two `traffic.rules`, one on a header and one on the tenant claim,',
    '  that the benchmark\'s requests never match, so every request is checked against both rules and then hashed',
    '  into an arm by its subject (the one subject always lands in the same arm). Its opt-out registry holds',
    '  1,000 subjects opted out of `experiments`, set through `PUT /admin/opt-outs/{subject}` (a token of scope',
    '  `admin:opt-outs` signed with the same key) after the child starts; the benchmark\'s subject is not one of',
    '  them, so every request looks its subject up in the registry\'s local copy and misses (the common path). The',
    '  smoke test checks that (g)\'s answer carries the `x-route-reason` of one of the arms (and (g0)\'s `stable`),',
    '  that a request with the rule\'s header is routed by the rule, and that one of the opted-out subjects is sent',
    '  to the stable version with reason `opt-out:experiments`. (g) against (g0) is what routing costs the gateway',
    '  process per request; (g) against (c) is JWT auth and routing together against the plain proxy.',
    '- (k0) G→B + JWT, kill switch off: (g0) but for the model, which has two versions (each an `oip-http` backend',
    '  entry pointing at the same B, stable `1`) and `killSwitch.rollbackTo: "2"`, and `killSwitch.enabled: false`:',
    '  no kill switch policy in the chain, no kill state, the kill switch API absent. The baseline of (k).',
    '- (k) G→B + JWT + kill switch: (k0) with `killSwitch.enabled: true` (its default, written out; the only',
    '  difference): the kill switch policy in the request chain, the kill state mirrored from the in-memory store,',
    '  the fleet heartbeat; nothing is killed, so every request goes to the stable version as in (k0). The smoke',
    '  test checks that `GET /admin/kill` (a token of scope `admin:kill-switch`) answers 200 with no kills on (k)',
    '  and 404 on (k0), so the two really differ in the kill switch. (k) against (k0) is what a configured kill',
    '  switch costs the gateway process per request.',
    '- (n0) O + iris profile, guards off: (d) with the iris model\'s reference profile, built once per run in the',
    '  work directory by `breakwater profile` from `iris.csv` (the shared assets folder), named by its version',
    '  (`models.iris.versions.1.profile`), and no `guards` section: the profile is loaded, no guard runs. The baseline',
    '  of (n).',
    '- (n) O + contract and ood guards: (n0) with `guards: { contract: { mode: flag }, ood: { mode: flag } }` (the',
    '  only difference): every request is checked against the profile\'s ranges and scored for how far it lies from',
    '  the reference data. The benchmark\'s row is a clean iris row, so no guard fires and the answers are (d)\'s.',
    '  (n) against (n0) is what the two guards cost the gateway process per request.',
    '- (s) O + squeezing guard: (n) plus `squeeze: { mode: flag, sampleRate: 1 }`: every request is run again on',
    '  its squeezed copy (one more, batched inference) and the two answers compared. (s) − (n) per request is the',
    '  squeezing guard\'s CPU per sampled request. The smoke test checks that the clean row gets no `x-guard` on all',
    '  three, that an out-of-range row gets `x-guard: contract` on (n) and (s) and nothing on (n0), that on (s) a',
    '  row near the decision boundary is flagged by the squeezing guard, and that `GET /admin/models/iris` counts one',
    '  verdict per request of each guard that is on and none of one that is off.',
    '- (r) O + drift monitoring: (n0) plus `drift: { sampleRate: 1 }` (the only difference): every answered request\'s',
    '  features and predicted class counted into the drift window (docs/drift.md), flushed once a second to the',
    '  store (the memory store here, as in (n0)). The smoke test checks that `GET /admin/models/iris/drift` reports a',
    '  window that counted the smoke test\'s requests on (r) and answers 404 DRIFT_NOT_MONITORED on (n0). (r) against',
    '  (n0) is what drift monitoring costs the gateway process per request.',
    '- (o0) O + two versions split 90 / 10: iris in-process with the same profile and `drift: { sampleRate: 1 }` as (r),',
    '  but as two versions (the same ONNX file and profile under version `1`, stable, and `2`) and',
    '  `traffic.routes` `stable` (version 1) 90 / `canary` (version 2) 10, no rollout. Anonymous callers',
    '  (`auth.insecureNoAuth`) get a random bucket per request, so about one request in ten is served by version 2.',
    '  The baseline of (o).',
    '- (o) O + a rollout: (o0) without the `traffic` section but with `models.iris.rollout`, a rollout of version 2',
    '  with every criterion on (errorRate, latencyP99, guards, drift, disagreement at its default budget, 0.01: one',
    '  canary request in ten copied to stable after the answer and the two predictions compared), whose first step',
    '  (weight 10) outlasts the run (minDurationMs 30 days, minRequests 100,000,000, every minSamples 10,000,000):',
    '  the rollout sets the routes itself, to the same arms, names and weights as (o0)\'s, counts what each version',
    '  serves (added to the memory store every 500 ms) and is judged every second. The smoke test checks that',
    '  `GET /admin/models/iris/rollout` answers a running rollout at weight 10 with no criterion failing on (o) and',
    '  404 ROLLOUT_NOT_FOUND on (o0), that answers come from version 1 (`stable`) and 2 (`canary`) with the same',
    '  outputs, and on (o) that the rollout\'s figures count both versions\' requests and a compared row. (o) against',
    '  (o0) is what a rollout costs the gateway process per request over the same split.',
    '- (t0) O + JWT: iris in-process (like (d)) with the JWT auth of (g0) (the same key, the same token on every',
    '  request, no rate limits, the in-memory store) and no `audit` section (the gateway warns at start-up that',
    '  predictions are not recorded). The baseline of (t).',
    '- (t) O + JWT + audit trail: (t0) plus an `audit` section (the only difference): the trail in the run\'s work',
    '  directory, signed with a fresh Ed25519 key pair (its public key in `publicKeyFiles`), every other setting at',
    '  its default (`maxLossMs` 1000, `checkpointMs` 10000, `predictions: true`): one decision record per',
    '  prediction (SHA-256 of the canonical input and output tensors, the subject as an HMAC under its own key,',
    '  kept in the store and cached after the first request), chained, written in batches fsynced once a second.',
    '  The smoke test checks that after a few requests (t)\'s replica folder holds a `.jsonl` file with a',
    '  `prediction` entry for each (pseudonymised subject, both digests), and that (t0) has no trail and logs the',
    '  warning. (t) against (t0) is what the audit trail costs the gateway process per request.',
    '',
    `**Phase 2, one worker per core** (new B, G and O processes with \`server.workers: "auto"\`, here ${cores} worker`,
    'processes each sharing one port, plus a node:cluster primary that serves nothing; P is not started):',
    '',
    '- (c*) G→B: the gateway proxy, its workers all proxying to B\'s port, which B\'s workers share.',
    '- (d*) O: breakwater serving iris in-process in every worker.',
    '',
    '## Why two phases',
    '',
    'One event loop can use one core. An in-process model runs its inferences on that event loop, so a',
    'single-process O is bound to one core however many the machine has, while the proxied path (c) is two',
    'processes (G and B) and can use two. Comparing (d) with (c) in phase 1 therefore measures the limit of one',
    'process, not what serving in-process gains: the throughput check compares (d*) with (c*) in phase 2, where',
    'both deployments run one worker per core and can use every core of the machine. The CPU check, on the other',
    'hand, needs like with like in the other direction: CPU time per request rises when each process is less',
    'loaded (fixed per-wake-up costs are shared by fewer requests), so a gateway spread over several workers',
    'cannot be compared with a one-process bare proxy. It compares (c) with (b) in phase 1, where G and P are both',
    'one process under the same load, and (f) with (c), (g) with (g0), (k) with (k0), (n) with (n0), (r) with (n0), (o) with (o0) and (t) with (t0), there too. The phases run one after the other; every',
    'process of phase 1 (Redis included) is stopped, and checked gone, before phase 2 starts, so they never',
    'compete for cores.',
    '',
  ];
}

const HOW_TO_READ = [
  '## How to read the tables',
  '',
  'Every number is the median over rounds. "CPU µs/req" is the CPU time of the process the load hits, with all',
  'its threads and all its worker processes (/proc schedstat), divided by completed requests; "cores" is that CPU',
  'time over wall time. "backend" is B for (b), (c), (e), (f), (g0), (g), (k0), (k) and (c*) ((d), (n0), (n), (s), (r), (o0), (o), (t0), (t) and (d*) serve the model',
  'themselves, so they have none, and no ratio in units of the backend\'s CPU). "Redis" is the private redis-server of',
  '(f) (all its threads), measured the same way; "sum" is front + backend + Redis. p50/p99 come from',
  'autocannon\'s per-response timings (its own histogram keeps whole milliseconds; those values are in',
  'latest.json). The load generator (autocannon) runs in the benchmark process on the same machine and competes',
  'for the same cores. "other cores" is the machine\'s busy time during the window not accounted for by the',
  'front, the backend, Redis or the load generator (other programs: noise; above 0.3 the run should be repeated).',
  '',
];

export function markdown(m: MarkdownInput): string {
  return [
    m.focused === undefined
      ? '# Breakwater benchmark: latest results'
      : `# Breakwater benchmark: a focused run (${m.focused.map((t) => `(${t})`).join(' ')} only; the full run is latest.md)`,
    '',
    'Reproduce with:',
    '',
    '```sh',
    m.command,
    '```',
    '',
    ...Object.entries(m.meta).map(([k, v]) => `- **${k}**: ${v}`),
    '',
    ...targets(m.cores),
    ...HOW_TO_READ,
    ...m.phases.flatMap((p) => [`## ${p.title} (\`server.workers: ${p.workers}\`)`, '', markdownTable(p.summary), '']),
    ...(m.failed.length > 0 ? ['## !!! Failed requests', '', ...m.failed.map((b) => `- ${b}`), ''] : []),
    ...(m.noisy.length > 0 ? ['## !!! Noisy cells (rerun)', '', ...m.noisy.map((b) => `- ${b}`), ''] : []),
    '## Ratios',
    '',
    ...m.ratioLines.map((r) => `- ${r}`),
    '',
    '## Acceptance checks (informational)',
    '',
    ...m.checkLines.map((c) => `- ${c}`),
    '',
  ].join('\n');
}
