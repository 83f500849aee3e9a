/**
 * One request to each target before any load: a 200 with outputs, and the same outputs everywhere
 * (across both phases: the first answer seen is the reference).
 *
 * A target that sends a bearer token ((f), (g0), (g)) is also checked for what it adds: the same
 * request without the token is refused with 401; for (f), the 200 answer carries the `RateLimit`
 * header (the rate-limit policy ran) and the charge went to the target's Redis (it holds counters
 * afterwards).
 *
 * A target with a route expectation ((g0), (g)) is checked for its routing: the answer's
 * x-route-reason is one of the expected reasons (for (g), one of the split's arms: the split ran and
 * hashed the request into an arm; for (g0), `stable`: no split), a request carrying the rule's header
 * is routed by the rule, and a subject the opt-out registry holds is sent back to the stable version
 * with reason `opt-out:experiments` (the opt-out policy ran and reads the registry the benchmark filled).
 *
 * A target with input guards ((n0), (n), (s)) is checked for what they do: the benchmark's clean row
 * fires none (no `x-guard`); an out-of-range row gets `x-guard: contract` (and more) where the
 * contract guard is on, nothing on (n0); on (s), a row nudged across the decision boundary is flagged
 * by the squeezing guard; and the model's figures (`GET /admin/models/iris`, `figures.guards`) count
 * one verdict per request sent of every guard that is on, none of a guard that is off.
 *
 * A target with a drift expectation ((n0), (r)) is checked through `GET /admin/models/iris/drift`
 * (no token: these targets run with `auth.insecureNoAuth`): on (r) a window that counted the smoke
 * requests (samples > 0) and a status; on (n0) 404 DRIFT_NOT_MONITORED ((o0) and (o) are checked like (r),
 * on their stable version).
 *
 * A target with a rollout expectation ((o0), (o)) is checked through `GET /admin/models/iris/rollout`:
 * on (o) a rollout of version 2 that is running at weight 10 (its first step) with no criterion
 * failing, on (o0) 404 ROLLOUT_NOT_FOUND; on both, answers come from the split's arms (x-model-version
 * 1 with x-route-reason stable, 2 with canary, both seen, the same outputs), and on (o) the rollout's
 * figures (merged through the store every rollout.flushMs) count the canary's and stable's requests
 * and at least one row compared with stable (the disagreement sample, one canary request in ten).
 *
 * A target with an audit expectation ((t0), (t)) is checked for its trail: on (t), after a few more
 * requests (with the token), the trail directory holds a folder for the target's replica (its host
 * and pid) with a `.jsonl` file holding a `prediction` entry for each of them (waited for up to
 * AUDIT_WAIT_MS: decision records are written in batches every maxLossMs, 1 s), each a 200 with a
 * pseudonymised subject (64 hex digits, not the token's subject) and input and output digests; on
 * (t0), no folder of its replica there and the start-up warning that predictions are not recorded
 * in its log.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { replicaDirName } from '../../gateway/audit/trail-sink.js';
import { AUDIT_OFF_WARNING } from './audit.js';
import { BENCH_GUARD_PROBES, boundaryRow, irisBody, type BenchGuard } from './guards.js';
import { INFER_BODY, INFER_MODEL, INFER_PATH } from './measure.js';
import { BENCH_CANARY, BENCH_ROLLOUT } from './rollout.js';
import { dbSize } from './redis.js';
import { BENCH_IDENTITY, type Target } from './targets.js';

export interface SmokeReference {
  label: string;
  outputs: string;
}

function infer(t: Target, headers: Readonly<Record<string, string>> | undefined, body = INFER_BODY): Promise<Response> {
  // Bounded: one request, 10 s at most.
  return fetch(`${t.front.url}${INFER_PATH}`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, signal: AbortSignal.timeout(10_000),
  });
}

/** The checks of a target with a bearer token ((f), (g0), (g)); throws when one fails. */
async function smokeIdentity(t: Target, res: Response): Promise<void> {
  const limit = res.headers.get('ratelimit');
  const policy = res.headers.get('ratelimit-policy');
  if (t.rateLimited === true && limit === null) throw new Error(`${t.label}: the 200 answer has no RateLimit header (the rate-limit policy did not run)`);
  if (t.rateLimited !== true && limit !== null) throw new Error(`${t.label}: the answer has a RateLimit header (${limit}) but the target has no rate limits`);
  const anonymous = await infer(t, undefined);
  const text = await anonymous.text();
  if (anonymous.status !== 401) {
    throw new Error(`${t.label}: without the token the request answered HTTP ${anonymous.status}, not 401: ${text.slice(0, 300)}`);
  }
  let keys: number | undefined;
  if (t.redis !== undefined) {
    keys = await dbSize(t.redis.port);
    if (keys === 0) throw new Error(`${t.label}: Redis holds no keys after a 200 answer (the charge did not reach it)`);
  }
  const limits = t.rateLimited === true ? `RateLimit: ${limit}; RateLimit-Policy: ${policy ?? '(none)'}` : 'no RateLimit header (no rate limits)';
  console.log(`smoke ${t.label}: with the token 200, ${limits}; ` +
    `without the token 401 (${anonymous.headers.get('www-authenticate') ?? 'no WWW-Authenticate'})` +
    `${keys === undefined ? '' : `; ${keys} key(s) in Redis`}`);
}

/** An answer's body and its outputs as JSON text; throws on a non-200 or an answer without outputs. */
async function answerOf(t: Target, what: string, res: Response): Promise<{ text: string; outputs: string }> {
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${t.label}: ${what} answered HTTP ${res.status}: ${text.slice(0, 500)}`);
  const outputs = JSON.stringify((JSON.parse(text) as { outputs?: unknown }).outputs);
  if (outputs === undefined) throw new Error(`${t.label}: ${what}: answer has no outputs: ${text.slice(0, 500)}`);
  return { text, outputs };
}

const outputsOf = async (t: Target, what: string, res: Response): Promise<string> => (await answerOf(t, what, res)).outputs;

/** The routing checks ((g0), (g)); throws when one fails. */
async function smokeRoute(t: Target, res: Response, outputs: string): Promise<void> {
  const r = t.route;
  if (r === undefined) return;
  const reason = res.headers.get('x-route-reason');
  const version = res.headers.get('x-model-version');
  if (reason === null || !r.reasons.includes(reason)) {
    throw new Error(`${t.label}: x-route-reason is ${JSON.stringify(reason)}, not one of ${r.reasons.join(', ')} (the request was not routed as configured)`);
  }
  const seen = [`x-route-reason ${reason} (version ${version ?? '?'})`];
  if (r.rule !== undefined) {
    const ruled = await infer(t, { ...t.headers, ...r.rule.headers });
    const o = await outputsOf(t, 'the request matching a rule', ruled);
    const got = ruled.headers.get('x-route-reason');
    if (got !== r.rule.reason) throw new Error(`${t.label}: a request with ${JSON.stringify(r.rule.headers)} got x-route-reason ${JSON.stringify(got)}, not ${r.rule.reason}`);
    if (o !== outputs) throw new Error(`${t.label}: the request matching a rule answered other outputs: ${o.slice(0, 300)}`);
    seen.push(`with ${Object.keys(r.rule.headers).join(', ')} ${got}`);
  }
  if (r.optedOut !== undefined) {
    const p = r.optedOut;
    const opted = await infer(t, { ...t.headers, authorization: p.authorization });
    const o = await outputsOf(t, `the request of opted-out subject ${p.subject}`, opted);
    const got = opted.headers.get('x-route-reason');
    const v = opted.headers.get('x-model-version');
    if (got !== p.reason || v !== p.version) {
      throw new Error(`${t.label}: opted-out subject ${p.subject} got x-route-reason ${JSON.stringify(got)} version ${JSON.stringify(v)}, ` +
        `not ${p.reason} version ${p.version} (the opt-out policy did not run, or the registry does not hold the subject)`);
    }
    if (o !== outputs) throw new Error(`${t.label}: the opted-out subject's request answered other outputs: ${o.slice(0, 300)}`);
    seen.push(`opted-out ${p.subject} ${got} (version ${v ?? '?'}) of ${r.optOutSubjects ?? '?'} subjects in the registry`);
  }
  console.log(`smoke ${t.label}: ${seen.join('; ')}`);
}

/**
 * (k0), (k): the kill switch API answers on (k) (GET /admin/kill, 200, nothing killed) and is absent
 * on (k0) (404): the two targets really differ in the kill switch alone.
 */
async function smokeKillSwitch(t: Target): Promise<void> {
  const k = t.killSwitch;
  if (k === undefined) return;
  const res = await fetch(`${t.front.url}/admin/kill`, { headers: { authorization: k.authorization }, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (k.on) {
    if (res.status !== 200) throw new Error(`${t.label}: GET /admin/kill answered HTTP ${res.status}, not 200 (the kill switch is not on): ${text.slice(0, 300)}`);
    const kills = (JSON.parse(text) as { kills?: unknown[] }).kills;
    if (!Array.isArray(kills) || kills.length !== 0) throw new Error(`${t.label}: the kill switch holds kills: ${text.slice(0, 300)}`);
  } else if (res.status !== 404) {
    throw new Error(`${t.label}: GET /admin/kill answered HTTP ${res.status}, not 404 (the kill switch is not off): ${text.slice(0, 300)}`);
  }
  console.log(`smoke ${t.label}: GET /admin/kill ${res.status} (kill switch ${k.on ? 'on, nothing killed' : 'off'})`);
}

/** The guards an answer's x-guard names (none: empty). */
const firedOf = (res: Response): string[] => res.headers.get('x-guard')?.split(',').map((x) => x.trim()) ?? [];

/** `figures.guards` of the benchmarked model's version 1: per guard, per outcome, how many requests. */
async function guardFigures(t: Target): Promise<Partial<Record<BenchGuard, Record<string, number>>>> {
  const model = INFER_MODEL;
  const res = await fetch(`${t.front.url}/admin/models/${model}`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${t.label}: GET /admin/models/${model} answered HTTP ${res.status}: ${text.slice(0, 300)}`);
  const guards = (JSON.parse(text) as { figures?: { guards?: Record<string, Partial<Record<BenchGuard, Record<string, number>>>> } }).figures?.guards;
  if (guards === undefined) throw new Error(`${t.label}: GET /admin/models/${model} has no figures.guards: ${text.slice(0, 300)}`);
  return guards['1'] ?? {};
}

/** (n0), (n), (s): the guards on judge every request, fire on what they should, and only there; throws when not. */
async function smokeGuards(t: Target, res: Response): Promise<void> {
  const g = t.guards;
  if (g === undefined) return;
  const on = (x: BenchGuard) => g.on.includes(x);
  if (firedOf(res).length > 0) throw new Error(`${t.label}: the benchmark's clean row got x-guard: ${res.headers.get('x-guard')} (it must fire no guard)`);
  const seen: string[] = [`clean row: no x-guard`];
  let sent = 1;

  const odd = await infer(t, t.headers, irisBody(BENCH_GUARD_PROBES.outOfRange));
  await answerOf(t, 'the out-of-range row', odd);
  sent++;
  const oddFired = firedOf(odd);
  if (on('contract') !== oddFired.includes('contract') || (g.on.length === 0 && oddFired.length > 0)) {
    throw new Error(`${t.label}: the out-of-range row [${BENCH_GUARD_PROBES.outOfRange.join(', ')}] got x-guard ${JSON.stringify(odd.headers.get('x-guard'))} ` +
      `with ${g.on.length === 0 ? 'no guards' : `guards ${g.on.join(', ')}`} on`);
  }
  seen.push(`out-of-range row [${BENCH_GUARD_PROBES.outOfRange.join(', ')}]: x-guard ${odd.headers.get('x-guard') ?? '(none)'}`);

  if (on('squeeze')) {
    let flagged: number[] | undefined;
    for (let i = 0; i <= BENCH_GUARD_PROBES.boundary.steps && flagged === undefined; i++) {
      const row = boundaryRow(i);
      const r = await infer(t, t.headers, irisBody(row));
      await answerOf(t, `the row [${row.join(', ')}] near the decision boundary`, r);
      sent++;
      if (firedOf(r).includes('squeeze')) flagged = row;
    }
    if (flagged === undefined) {
      throw new Error(`${t.label}: the squeezing guard flagged none of the ${sent - 2} rows from [${boundaryRow(0).join(', ')}] to ` +
        `[${boundaryRow(BENCH_GUARD_PROBES.boundary.steps).join(', ')}] across the decision boundary`);
    }
    seen.push(`squeeze flagged [${flagged.join(', ')}], ${sent - 2} rows along the line across the decision boundary`);
  }

  const figures = await guardFigures(t);
  for (const guard of ['contract', 'ood', 'squeeze'] as const) {
    const counts = figures[guard] ?? {};
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const want = on(guard) ? sent : 0;
    if (total !== want) {
      throw new Error(`${t.label}: figures.guards counts ${total} verdict(s) of the ${guard} guard (${JSON.stringify(counts)}) after ${sent} requests; ` +
        `expected ${want} (the guard is ${on(guard) ? 'on: one verdict per request' : 'off'})`);
    }
  }
  seen.push(`figures.guards ${JSON.stringify(figures)} after ${sent} requests`);
  console.log(`smoke ${t.label}: ${seen.join('; ')}`);
}

/**
 * (n0), (r): the drift endpoint. On (r) the window has counted the smoke test's requests (this
 * replica flushes before it answers); on (n0) the model is not monitored (404 DRIFT_NOT_MONITORED).
 */
async function smokeDrift(t: Target): Promise<void> {
  const d = t.drift;
  if (d === undefined) return;
  const res = await fetch(`${t.front.url}/admin/models/${INFER_MODEL}/drift`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (!d.on) {
    if (res.status !== 404 || !text.includes('DRIFT_NOT_MONITORED')) throw new Error(`${t.label}: GET /admin/models/${INFER_MODEL}/drift answered HTTP ${res.status} ${text.slice(0, 200)}; expected 404 DRIFT_NOT_MONITORED`);
    console.log(`smoke ${t.label}: drift not monitored (404 DRIFT_NOT_MONITORED)`);
    return;
  }
  if (res.status !== 200) throw new Error(`${t.label}: GET /admin/models/${INFER_MODEL}/drift answered HTTP ${res.status}: ${text.slice(0, 300)}`);
  const r = JSON.parse(text) as { status?: string; window?: { samples?: number } };
  if (!((r.window?.samples ?? 0) > 0) || typeof r.status !== 'string') throw new Error(`${t.label}: the drift report counted no request: ${text.slice(0, 300)}`);
  console.log(`smoke ${t.label}: drift window ${r.window?.samples} samples, status ${r.status}`);
}

/** What the smoke test reads of GET /admin/models/{m}/rollout. */
interface RolloutAnswer {
  state?: string;
  canary?: string;
  stable?: string;
  weight?: number;
  step?: { index?: number; of?: number };
  criteria?: { criterion: string; verdict: string; detail: string }[];
  figures?: { step?: { canary?: { requests?: number }; stable?: { requests?: number }; compared?: { rows?: number; disagreed?: number } } };
}

async function rolloutOf(t: Target): Promise<{ status: number; text: string }> {
  const res = await fetch(`${t.front.url}/admin/models/${INFER_MODEL}/rollout`, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, text: await res.text() };
}

/** The rollout as (o) must show it: running, at the first step's weight, no criterion failing; throws when not. */
function runningRollout(t: Target, status: number, text: string): RolloutAnswer {
  if (status !== 200) throw new Error(`${t.label}: GET /admin/models/${INFER_MODEL}/rollout answered HTTP ${status}: ${text.slice(0, 300)}`);
  const r = JSON.parse(text) as RolloutAnswer;
  const failing = (r.criteria ?? []).filter((c) => c.verdict === 'fail');
  if (r.state !== 'running' || r.weight !== BENCH_CANARY.weight || r.step?.index !== 0 || r.canary !== BENCH_CANARY.canary || r.stable !== BENCH_CANARY.stable || failing.length > 0) {
    throw new Error(`${t.label}: the rollout is ${JSON.stringify(r.state)} at weight ${String(r.weight)} (step ${String(r.step?.index)}, canary ${String(r.canary)}, stable ${String(r.stable)}` +
      `${failing.length > 0 ? `, failing ${failing.map((c) => `${c.criterion}: ${c.detail}`).join('; ')}` : ''}); expected running at ${BENCH_CANARY.weight} ` +
      `(step 0, canary ${BENCH_CANARY.canary}, stable ${BENCH_CANARY.stable}), no criterion failing: ${text.slice(0, 300)}`);
  }
  return r;
}

/** Requests of the rollout smoke test per batch, and batches at most (about one in 100 is compared with stable). */
const ROLLOUT_BATCH = 500;
const ROLLOUT_BATCHES = 8;

/**
 * (o0), (o): the rollout endpoint, and answers from both arms of the split. On (o), batches of
 * requests until the rollout's figures show the canary's and stable's requests and a compared row
 * (bounded: ROLLOUT_BATCHES batches, each followed by up to 2 s of polling, the figures being added
 * to the store every 500 ms); on (o0), one batch.
 */
async function smokeRollout(t: Target, outputs: string): Promise<void> {
  const ro = t.rollout;
  if (ro === undefined) return;
  const first = await rolloutOf(t);
  const seen: string[] = [];
  if (!ro.on) {
    if (first.status !== 404 || !first.text.includes('ROLLOUT_NOT_FOUND')) {
      throw new Error(`${t.label}: GET /admin/models/${INFER_MODEL}/rollout answered HTTP ${first.status} ${first.text.slice(0, 200)}; expected 404 ROLLOUT_NOT_FOUND`);
    }
    seen.push('no rollout (404 ROLLOUT_NOT_FOUND)');
  } else {
    const r = runningRollout(t, first.status, first.text);
    seen.push(`rollout of version ${r.canary} ${r.state} at weight ${r.weight} (step ${(r.step?.index ?? 0) + 1} of ${r.step?.of ?? '?'}), ` +
      `criteria ${(r.criteria ?? []).map((c) => `${c.criterion} ${c.verdict}`).join(', ')}`);
  }
  const armOf: Record<string, string> = { [BENCH_CANARY.stable]: 'stable', [BENCH_CANARY.canary]: 'canary' };
  const versions: Record<string, number> = {};
  let sent = 0;
  let figures: RolloutAnswer['figures'];
  for (let batch = 0; batch < (ro.on ? ROLLOUT_BATCHES : 1); batch++) {
    for (let i = 0; i < ROLLOUT_BATCH; i++) {
      const res = await infer(t, t.headers);
      const o = await outputsOf(t, 'a request of the rollout smoke test', res);
      sent++;
      const v = res.headers.get('x-model-version') ?? '';
      const reason = res.headers.get('x-route-reason');
      if (armOf[v] === undefined || reason !== armOf[v]) {
        throw new Error(`${t.label}: an answer came from version ${JSON.stringify(v)} with x-route-reason ${JSON.stringify(reason)}; ` +
          `expected version ${BENCH_CANARY.stable} (stable) or ${BENCH_CANARY.canary} (canary)`);
      }
      if (o !== outputs) throw new Error(`${t.label}: version ${v} answered other outputs: ${o.slice(0, 300)}`);
      versions[v] = (versions[v] ?? 0) + 1;
    }
    if (!ro.on) break;
    // The figures are added to the store every rollout.flushMs (500 ms): polled for up to 2 s.
    for (let k = 0; k < 8; k++) {
      await new Promise((r) => setTimeout(r, 250));
      const now = await rolloutOf(t);
      figures = runningRollout(t, now.status, now.text).figures;
      const step = figures?.step;
      if ((step?.canary?.requests ?? 0) > 0 && (step?.stable?.requests ?? 0) > 0 && (step?.compared?.rows ?? 0) > 0) break;
    }
    if ((figures?.step?.compared?.rows ?? 0) > 0) break;
  }
  if (!(versions[BENCH_CANARY.stable]! > 0) || !(versions[BENCH_CANARY.canary]! > 0)) {
    throw new Error(`${t.label}: ${sent} requests answered by versions ${JSON.stringify(versions)}; both arms of the split must answer`);
  }
  seen.push(`${sent} requests: version ${BENCH_CANARY.stable} (stable) ${versions[BENCH_CANARY.stable]}, version ${BENCH_CANARY.canary} (canary) ${versions[BENCH_CANARY.canary]}, the same outputs`);
  if (ro.on) {
    const step = figures?.step;
    if (!((step?.canary?.requests ?? 0) > 0) || !((step?.stable?.requests ?? 0) > 0) || !((step?.compared?.rows ?? 0) > 0)) {
      throw new Error(`${t.label}: after ${sent} requests the rollout's figures count ${String(step?.canary?.requests)} canary and ${String(step?.stable?.requests)} stable requests ` +
        `and ${String(step?.compared?.rows)} compared rows; expected some of each (criteria ${Object.keys(BENCH_ROLLOUT.criteria).join(', ')})`);
    }
    seen.push(`the rollout's figures: ${step?.canary?.requests} canary and ${step?.stable?.requests} stable requests, ` +
      `${step?.compared?.rows} rows compared with stable, ${step?.compared?.disagreed ?? 0} disagreed`);
  }
  console.log(`smoke ${t.label}: ${seen.join('; ')}`);
}

/** Requests the audit smoke test sends (with the target's token), and how long it waits for their records. */
const AUDIT_REQUESTS = 5;
const AUDIT_WAIT_MS = 2500;
const HEX64 = /^[0-9a-f]{64}$/;

/** What the smoke test reads of a `prediction` entry's body (gateway/audit/decisions.ts DecisionRecord). */
interface PredictionBody {
  requestId?: string;
  subject?: string | null;
  model?: string;
  status?: number;
  input?: string | null;
  output?: string | null;
}

/** The `prediction` entries of every .jsonl file in `dir` (none when it does not exist). */
async function predictionsIn(dir: string): Promise<{ files: string[]; bodies: PredictionBody[] }> {
  if (!existsSync(dir)) return { files: [], bodies: [] };
  const files = (await readdir(dir)).filter((f) => f.endsWith('.jsonl')).sort();
  const bodies: PredictionBody[] = [];
  for (const f of files) {
    for (const line of (await readFile(join(dir, f), 'utf8')).split('\n')) {
      if (line === '') continue;
      try {
        const e = JSON.parse(line) as { kind?: string; body?: PredictionBody };
        if (e.kind === 'prediction' && e.body !== undefined) bodies.push(e.body);
      } catch {
        // A line being written (torn): the next poll reads it whole.
      }
    }
  }
  return { files, bodies };
}

/**
 * (t0), (t): the audit trail. On (t), AUDIT_REQUESTS more requests, then the replica's folder is
 * polled (up to AUDIT_WAIT_MS) until its files hold a `prediction` entry for each, with a pseudonym
 * and both digests; on (t0), no folder of its replica and the start-up warning in its log.
 */
async function smokeAudit(t: Target, outputs: string): Promise<void> {
  const a = t.audit;
  if (a === undefined) return;
  // One process (server.workers 1): the replica is this host and the child's pid (gateway/replica.ts).
  const replicaDir = join(a.dir, replicaDirName(`${hostname()}:${t.front.pid}`));
  const warned = readFileSync(t.front.logFile, 'utf8').includes(AUDIT_OFF_WARNING);
  if (!a.on) {
    if (existsSync(replicaDir)) throw new Error(`${t.label}: ${replicaDir} exists, but the target has no audit section`);
    if (!warned) throw new Error(`${t.label}: its log does not say "${AUDIT_OFF_WARNING}" (does it have an audit section?)`);
    console.log(`smoke ${t.label}: no audit trail (no ${replicaDir}; the start-up warning "${AUDIT_OFF_WARNING}" logged)`);
    return;
  }
  if (warned) throw new Error(`${t.label}: its log says "${AUDIT_OFF_WARNING}", but the target has an audit section`);
  const ids: string[] = [];
  for (let i = 0; i < AUDIT_REQUESTS; i++) {
    const res = await infer(t, t.headers);
    const o = await outputsOf(t, 'a request of the audit smoke test', res);
    if (o !== outputs) throw new Error(`${t.label}: a request of the audit smoke test answered other outputs: ${o.slice(0, 300)}`);
    const id = res.headers.get('x-request-id');
    if (id !== null) ids.push(id);
  }
  const t0 = Date.now();
  let found = await predictionsIn(replicaDir);
  const enough = (f: typeof found) => (ids.length > 0 ? ids.every((id) => f.bodies.some((b) => b.requestId === id)) : f.bodies.length >= AUDIT_REQUESTS);
  while (!enough(found) && Date.now() - t0 < AUDIT_WAIT_MS) {
    await new Promise((r) => setTimeout(r, 100));
    found = await predictionsIn(replicaDir);
  }
  if (!enough(found)) {
    throw new Error(`${t.label}: ${AUDIT_WAIT_MS} ms after ${AUDIT_REQUESTS} requests, ${replicaDir} holds ${found.files.length} .jsonl file(s) with ` +
      `${found.bodies.length} prediction entries; expected one per request (${ids.length > 0 ? `request ids ${ids.join(', ')}` : 'no x-request-id seen'})`);
  }
  // The records of the requests sent here (all 200); the smoke test's refused request (401, no token) has one too, without subject or digests.
  const mine = ids.length > 0 ? found.bodies.filter((b) => b.requestId !== undefined && ids.includes(b.requestId)) : found.bodies.filter((b) => b.status === 200);
  const bad = mine.filter((b) => b.status !== 200 || b.model !== 'iris' || typeof b.subject !== 'string' || !HEX64.test(b.subject) || b.subject === BENCH_IDENTITY.subject ||
    typeof b.input !== 'string' || !HEX64.test(b.input) || typeof b.output !== 'string' || !HEX64.test(b.output));
  if (bad.length > 0) throw new Error(`${t.label}: prediction entries without a pseudonymised subject or digests: ${JSON.stringify(bad[0]).slice(0, 400)}`);
  const subjects = new Set(mine.map((b) => b.subject));
  console.log(`smoke ${t.label}: ${found.bodies.length} prediction entries in ${found.files.join(', ')} under ${replicaDir}, ` +
    `${mine.length} of them for the ${AUDIT_REQUESTS} requests sent (within ${Date.now() - t0} ms), ${subjects.size} subject pseudonym(s), input and output digests`);
}

/** Returns the reference (the first target's outputs unless one was given). Throws on a non-200. */
export async function smoke(targets: readonly Target[], reference?: SmokeReference): Promise<SmokeReference | undefined> {
  let ref = reference;
  for (const t of targets) {
    const res = await infer(t, t.headers);
    const { text, outputs } = await answerOf(t, 'smoke request', res);
    if (ref === undefined) {
      ref = { label: t.label, outputs };
      console.log(`smoke ${t.label}: ${text.slice(0, 300)}`);
    } else if (outputs !== ref.outputs) {
      console.log(`!!! ${t.label}: outputs differ from ${ref.label}: ${outputs.slice(0, 300)}`);
    } else {
      console.log(`smoke ${t.label}: 200, same outputs as ${ref.label}`);
    }
    if (t.headers?.authorization !== undefined) await smokeIdentity(t, res);
    await smokeRoute(t, res, outputs);
    await smokeKillSwitch(t);
    await smokeGuards(t, res);
    await smokeRollout(t, outputs);
    await smokeDrift(t);
    await smokeAudit(t, outputs);
  }
  return ref;
}
