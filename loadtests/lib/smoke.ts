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
 * requests (samples > 0) and a status; on (n0) 404 DRIFT_NOT_MONITORED.
 */
import { BENCH_GUARD_PROBES, boundaryRow, irisBody, type BenchGuard } from './guards.js';
import { INFER_BODY, INFER_MODEL, INFER_PATH } from './measure.js';
import { dbSize } from './redis.js';
import type { Target } from './targets.js';

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
    await smokeDrift(t);
  }
  return ref;
}
