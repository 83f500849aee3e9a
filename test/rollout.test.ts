/**
 * Progressive delivery end to end (issue 12): two gateway processes sharing one private Redis,
 * real Titanic models behind OIP HTTP backends in this process (test/helpers/titanic-backend.ts)
 * and in-process, load from 300 subjects sent to both replicas in turn. Each model below is one
 * scenario, judged by the replica that holds its lease:
 * - healthy: the canary (the same model on another backend) is promoted through every step; the
 *   weights in the audit log were only ever the declared steps; no subject ever went back from the
 *   canary to stable;
 * - failing: the canary's backend starts failing at the second step; the rollout is aborted (and
 *   the canary stopped through the kill switch) within two evaluation intervals of the moment the
 *   step's minimum sample was reached;
 * - flipped: a "retrained" model file (same signature, the sex coefficients swapped:
 *   test/helpers/retrained-titanic.ts) with perfect errors and latency is aborted on prediction
 *   disagreement with stable;
 * - drifting: a canary whose outputs drift from its reference profile is aborted through the drift
 *   monitor's verdict;
 * - takeover: the replica driving a rollout is killed (SIGKILL) mid-rollout; the other takes the
 *   lease over, and the rollout goes on to its promotion without stalling or repeating a step.
 * Every abort's evidence is in GET /admin/models/{m}/rollout and in the audit log; the webhook hears
 * of every abort and promotion once.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { parseCsvRecords } from '../eval/lib/csv.js';
import { ASSETS } from './helpers/assets.js';
import { REPO_ROOT, spawnGateway, type ChildGateway } from './helpers/gateway.js';
import { AUDIENCE, ISSUER, stopAll, testIssuer, until } from './helpers/load.js';
import { RedisServer } from './helpers/redis.js';
import { writeRetrainedTitanic } from './helpers/retrained-titanic.js';
import { startTitanicBackend, type TitanicBackend } from './helpers/titanic-backend.js';

const issuer = testIssuer();
const exp = () => Math.floor(Date.now() / 1000) + 1800;
const token = (sub: string, scope = 'predict:*') => issuer.sign({ sub, tenant: 't', scope, exp: exp() });
const ADMIN = token('po-paula', 'admin:traffic admin:audit admin:kill-switch admin:drift');
const INTERVAL_MS = 1000;
const LEASE_MS = 2000;
const MIN_SAMPLES = 30;
const SUBJECTS = 300;
const STEPS = [20, 50, 100];

type Passenger = [number, string, number, number, string];

let dir: string;
let redis: RedisServer;
let gws: ChildGateway[] = [];
let stable: TitanicBackend;
let healthy: TitanicBackend;
let failing: TitanicBackend;
let drifting: TitanicBackend;
let hook: Server;
const posted: { text: string }[] = [];
let passengers: Passenger[];

interface Served {
  readonly subject: string;
  readonly version: string;
  readonly status: number;
  readonly reason: string;
  /** When the answer arrived (ms since the epoch). */
  readonly at: number;
}

async function call(gw: ChildGateway, method: 'GET' | 'POST' | 'PUT', path: string, body?: object): Promise<{ status: number; json: Record<string, any> }> {
  const res = await request(`${gw.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, any> };
}

function titanicBody(p: Passenger): string {
  const t = (name: string, datatype: string, v: unknown) => ({ name, datatype, shape: [1, 1], data: [v] });
  return JSON.stringify({ inputs: [t('pclass', 'INT64', p[0]), t('sex', 'BYTES', p[1]), t('age', 'FP32', p[2]), t('fare', 'FP32', p[3]), t('embarked', 'BYTES', p[4])] });
}

const tokens = new Map<string, string>();
function subjectToken(sub: string): string {
  let t = tokens.get(sub);
  if (t === undefined) tokens.set(sub, (t = token(sub)));
  return t;
}

/**
 * Load on `model` from SUBJECTS subjects, each request to the next live replica in turn, 6 at a
 * time, until `stop()` (bounded: at most `maxMs` and 40,000 requests).
 */
function load(model: string, targets: () => readonly ChildGateway[], maxMs = 90_000): { served: Served[]; stop: () => Promise<void> } {
  const served: Served[] = [];
  let running = true;
  let n = 0;
  const started = Date.now();
  const worker = async (w: number) => {
    while (running && Date.now() - started < maxMs && n < 40_000) {
      const i = n++;
      const subject = `s-${(i * 7 + w) % SUBJECTS}`;
      const live = targets();
      const gw = live[i % live.length]!;
      try {
        const res = await request(`${gw.url}/v2/models/${model}/infer`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${subjectToken(subject)}` },
          body: titanicBody(passengers[i % passengers.length]!),
        });
        await res.body.dump();
        served.push({ subject, version: String(res.headers['x-model-version'] ?? ''), status: res.statusCode, reason: String(res.headers['x-route-reason'] ?? ''), at: Date.now() });
      } catch {
        // A replica killed mid-request (the takeover scenario): the next request goes to a live one.
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  const workers = Array.from({ length: 6 }, (_, w) => worker(w));
  return {
    served,
    stop: async () => {
      running = false;
      await Promise.all(workers);
    },
  };
}

function spec(canary: string, criteria: Record<string, unknown>, minDurationMs = 1000): Record<string, unknown> {
  return { canary, steps: STEPS.map((weight) => ({ weight, minDurationMs, minRequests: MIN_SAMPLES })), criteria };
}

const errorRate = { minSamples: MIN_SAMPLES, maxIncrease: 0.05 };
// Generous for a shared 2-core machine running two gateways, four backends and the load.
const latencyP99 = { minSamples: MIN_SAMPLES, maxRatio: 5, slackMs: 50 };
// Every canary request compared (budget / weight ≥ 1), so the test needs no more load than the steps.
const disagreement = { minSamples: MIN_SAMPLES, maxRate: 0.05, maxClassShift: 0.05, budget: 1 };

async function rollout(model: string, gw = gws[0]!): Promise<Record<string, any>> {
  const r = await call(gw, 'GET', `/admin/models/${model}/rollout`);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json;
}

async function ended(model: string, timeoutMs: number, gw = () => gws[0]!): Promise<Record<string, any>> {
  let last: Record<string, any> = {};
  try {
    await until(`the rollout of ${model} ended`, async () => {
      last = await rollout(model, gw());
      return last.state === 'promoted' || last.state === 'aborted' || last.state === 'paused';
    }, timeoutMs);
  } catch (e) {
    throw new Error(`${(e as Error).message}; last: ${JSON.stringify({ state: last.state, step: last.step, criteria: last.criteria }).slice(0, 1500)}`);
  }
  return last;
}

async function auditOf(model: string, action: string): Promise<Record<string, any>[]> {
  const r = await call(gws[0]!, 'GET', `/admin/audit?target=model:${model}&action=${action}&limit=200`);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return (r.json.records as { record: Record<string, any> }[]).map((x) => x.record).reverse();
}

/** The canary's weight in every routes change the audit log holds for `model`: only steps or 0. */
async function assertWeightsOnSteps(model: string, canary: string): Promise<number[]> {
  const changes = await auditOf(model, 'traffic.');
  assert.ok(changes.length > 0, 'routes changes are audited');
  const weights = changes.map((c) => (c.after.routes as { version: string; weight: number }[]).find((x) => x.version === canary)?.weight ?? 0);
  for (const w of weights) assert.ok(w === 0 || STEPS.includes(w), `weight ${w} of ${weights.join(',')} is not a declared step`);
  return weights;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bw-rollout-'));
  const records = parseCsvRecords(await readFile(join(ASSETS, 'datasets/titanic3.csv'), 'utf8'));
  passengers = records
    .filter((r) => r.age !== '' && r.fare !== '' && (r.embarked ?? '') !== '')
    .map((r) => [Number(r.pclass), String(r.sex), Number(r.age), Number(r.fare), String(r.embarked)] as Passenger);
  const retrained = await writeRetrainedTitanic(join(dir, 'titanic-retrained.onnx'));
  [stable, healthy, failing, drifting] = await Promise.all([startTitanicBackend(), startTitanicBackend(), startTitanicBackend(), startTitanicBackend()]);
  drifting.setMode('drift');
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      posted.push(JSON.parse(body) as { text: string });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  redis = await RedisServer.start();
  const http = (b: TitanicBackend) => ({ kind: 'oip-http', url: b.url, model: 'titanic', breakerFailures: 0 });
  const profile = join(REPO_ROOT, 'demo/profiles/titanic.json');
  const pair = (canary: unknown, extra: Record<string, unknown> = {}) => ({ stable: '1', versions: { '1': { backend: http(stable) }, '2': { backend: canary } }, nonFinite: 'allow', ...extra });
  const file = join(dir, 'gateway.yaml');
  await writeFile(file, JSON.stringify({
    server: { host: '127.0.0.1', port: 0 },
    auth: { issuer: ISSUER, audience: AUDIENCE, keys: [issuer.keyConfig] },
    // A store command may take longer than the request path's 100 ms on a machine this loaded.
    state: { redisUrl: redis.url, keyPrefix: 'bw:', commandTimeoutMs: 1000 },
    alerts: { webhookUrl: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook` },
    rollout: { intervalMs: INTERVAL_MS, flushMs: 250, leaseMs: LEASE_MS },
    models: {
      healthy: pair(http(healthy)),
      failing: pair(http(failing)),
      flipped: pair({ kind: 'onnx', path: retrained }),
      drifting: {
        stable: '1',
        versions: { '1': { backend: http(stable), profile }, '2': { backend: http(drifting), profile } },
        nonFinite: 'allow',
        drift: { window: { samples: 200 }, thresholds: { minSamples: 100, confirmations: 2 }, flushMs: 200, evaluateMs: 500 },
      },
      takeover: pair(http(healthy)),
      quiet: pair(http(healthy)),
      handled: pair(http(healthy)),
    },
  }));
  gws = await Promise.all([0, 1].map(() => spawnGateway(['serve', '--config', file], { timeoutMs: 30_000 })));
});

after(async () => {
  await stopAll(gws);
  await Promise.all([stable, healthy, failing, drifting].map((b) => b?.close()));
  await redis?.stop();
  await new Promise<void>((r) => (hook === undefined ? r() : hook.close(() => r())));
  await rm(dir, { recursive: true, force: true });
});

describe('progressive delivery on two replicas sharing Redis', { timeout: 300_000 }, () => {
  test('a healthy canary is promoted through every step; weights only on the steps; no subject bounces back', async () => {
    const traffic = load('healthy', () => gws);
    const started = await call(gws[1]!, 'PUT', '/admin/models/healthy/rollout', { ...spec('2', { errorRate, latencyP99, guards: { minSamples: MIN_SAMPLES }, disagreement }), reason: 'ship v2' });
    assert.equal(started.status, 201, JSON.stringify(started.json));
    assert.equal(started.json.rollout.state, 'running');
    assert.equal(started.json.rollout.weight, 20);
    const r = await ended('healthy', 60_000);
    await traffic.stop();
    assert.equal(r.state, 'promoted', JSON.stringify(r.decisions.at(-1)));
    assert.deepEqual(r.decisions.map((d: { action: string; weightAfter: number }) => `${d.action}:${d.weightAfter}`), ['start:20', 'advance:50', 'advance:100', 'promote:100']);
    const promote = r.decisions.at(-1);
    for (const c of promote.evidence as { criterion: string; verdict: string }[]) assert.equal(c.verdict, 'pass', JSON.stringify(c));
    assert.deepEqual(promote.evidence.map((c: { criterion: string }) => c.criterion), ['errorRate', 'latencyP99', 'guards', 'disagreement', 'classShift']);
    // Each step lasted its minimum duration and had its minimum canary requests.
    for (let i = 1; i < r.decisions.length; i++) assert.ok(r.decisions[i].at >= r.decisions[i - 1].at, 'decisions in order');
    assert.ok(r.figures.step.canary.requests >= MIN_SAMPLES);
    assert.ok(r.figures.rollout.compared.rows >= 3 * MIN_SAMPLES, 'canary answers compared with stable\'s');
    assert.equal(r.figures.rollout.compared.disagreed, 0, 'the same model on another backend answers the same');
    // After promotion every unpinned request goes to the canary (the routes follow the record at once).
    await until('the promoted routes serve', async () => {
      const after = await request(`${gws[0]!.url}/v2/models/healthy/infer`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${subjectToken('s-1')}` }, body: titanicBody(passengers[0]!) });
      await after.body.dump();
      assert.equal(after.headers['x-model-version'], '2');
      return after.headers['x-route-reason'] === 'promoted';
    }, 2000);

    const weights = await assertWeightsOnSteps('healthy', '2');
    assert.deepEqual(weights, [20, 50, 100, 100], 'start, two advances, promotion');
    const decisions = await auditOf('healthy', 'rollout.');
    assert.deepEqual(decisions.map((d) => d.action), ['rollout.start', 'rollout.advance', 'rollout.advance', 'rollout.promote']);
    assert.ok(Array.isArray(decisions.at(-1)!.details.evidence), 'the promotion\'s evidence is audited');

    // Stickiness: a subject once served by the canary is never served by stable again.
    const bySubject = new Map<string, Served[]>();
    for (const s of traffic.served.filter((x) => x.status === 200)) bySubject.set(s.subject, [...(bySubject.get(s.subject) ?? []), s]);
    const bounced: string[] = [];
    for (const [subject, list] of bySubject) {
      list.sort((a, b) => a.at - b.at);
      const firstCanary = list.findIndex((x) => x.version === '2');
      if (firstCanary >= 0 && list.slice(firstCanary).some((x) => x.version === '1')) bounced.push(subject);
    }
    assert.deepEqual(bounced, [], 'subjects moved from stable to the canary only');
    // The check means something: subjects served by stable first, then by the canary as it grew.
    const moved = [...bySubject.values()].filter((list) => list[0]!.version === '1' && list.some((x) => x.version === '2')).length;
    assert.ok(moved >= 20, `${moved} of ${bySubject.size} subjects moved from stable to the canary`);
    await until('the promotion was posted', () => posted.some((p) => /Rollout of healthy version 2 promoted/.test(p.text)), 5000);
  });

  test('a canary whose backend starts failing is aborted within two intervals of its minimum sample, and stopped by the kill switch', async () => {
    const traffic = load('failing', () => gws);
    const started = await call(gws[0]!, 'PUT', '/admin/models/failing/rollout', { ...spec('2', { errorRate, latencyP99 }), reason: 'ship v2' });
    assert.equal(started.status, 201, JSON.stringify(started.json));
    let advancedAt = 0;
    await until('the rollout reached its second step', async () => {
      const r = await rollout('failing');
      const a = (r.decisions as { action: string; at: string }[]).find((d) => d.action === 'advance');
      if (a !== undefined) advancedAt = Date.parse(a.at);
      return a !== undefined;
    }, 30_000);
    failing.setMode('fail');
    const r = await ended('failing', 30_000);
    await traffic.stop();
    assert.equal(r.state, 'aborted', JSON.stringify(r.decisions.at(-1)));
    const abort = r.decisions.at(-1);
    assert.equal(abort.action, 'abort');
    assert.equal(abort.weightBefore, 50);
    assert.equal(abort.weightAfter, 0);
    assert.equal(abort.killed, true, 'errors stop the canary through the kill switch');
    const err = (abort.evidence as Record<string, any>[]).find((c) => c.criterion === 'errorRate')!;
    assert.equal(err.verdict, 'fail');
    assert.ok(err.canary > 0.5, JSON.stringify(err));
    assert.match(r.note, /errorRate failed/);
    // The moment the step's minimum sample was reached, as the clients saw it: the MIN_SAMPLES-th
    // canary answer of the second step.
    const canaryInStep = traffic.served.filter((s) => s.version === '2' && s.at >= advancedAt).sort((a, b) => a.at - b.at);
    const reached = canaryInStep[MIN_SAMPLES - 1];
    assert.ok(reached !== undefined, `${canaryInStep.length} canary answers in the step`);
    const abortedAt = Date.parse(abort.at);
    assert.ok(abortedAt - reached.at <= 2 * INTERVAL_MS, `aborted ${abortedAt - reached.at} ms after the minimum sample (at most ${2 * INTERVAL_MS})`);
    // The kill is in force: the canary version is stopped, its requests rolled back to stable.
    const kills = await call(gws[1]!, 'GET', '/admin/kill');
    assert.ok(JSON.stringify(kills.json).includes('"failing"'), JSON.stringify(kills.json));
    const res = await request(`${gws[1]!.url}/v2/models/failing/versions/2/infer`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${subjectToken('s-2')}` }, body: titanicBody(passengers[0]!) });
    await res.body.dump();
    assert.equal(res.headers['x-model-version'], '1', 'a request pinned to the killed canary is served by stable');
    await assertWeightsOnSteps('failing', '2');
    const audited = (await auditOf('failing', 'rollout.')).at(-1)!;
    assert.equal(audited.action, 'rollout.abort');
    assert.equal(audited.details.killed, true);
    assert.ok((audited.details.evidence as unknown[]).length === 2, 'every criterion\'s figures at the decision');
    await until('the abort was posted', () => posted.some((p) => /Rollout of failing version 2 aborted/.test(p.text)), 5000);
    failing.setMode('normal');
  });

  test('a canary that answers differently (a retrained model file) is aborted on prediction disagreement although its errors and latency are perfect', async () => {
    const traffic = load('flipped', () => gws);
    const started = await call(gws[0]!, 'PUT', '/admin/models/flipped/rollout', { ...spec('2', { errorRate, latencyP99, disagreement }), reason: 'retrained on 2026 data' });
    assert.equal(started.status, 201, JSON.stringify(started.json));
    const r = await ended('flipped', 30_000);
    await traffic.stop();
    assert.equal(r.state, 'aborted', JSON.stringify(r.decisions.at(-1)));
    const abort = r.decisions.at(-1);
    assert.equal(abort.weightBefore, 20, 'aborted at the first step');
    assert.notEqual(abort.killed, true, 'disagreement pulls the canary without the kill switch');
    const by = new Map((abort.evidence as Record<string, any>[]).map((c) => [c.criterion, c]));
    assert.equal(by.get('disagreement')!.verdict, 'fail', JSON.stringify(by.get('disagreement')));
    assert.ok(by.get('disagreement')!.canary > 0.3, 'many decisions flipped');
    assert.equal(by.get('errorRate')!.verdict, 'pass', JSON.stringify(by.get('errorRate')));
    assert.equal(by.get('errorRate')!.canary, 0);
    assert.notEqual(by.get('latencyP99')!.verdict, 'fail');
    assert.ok(traffic.served.every((s) => s.status === 200), 'every request was answered');
    await assertWeightsOnSteps('flipped', '2');
    const audited = (await auditOf('flipped', 'rollout.')).at(-1)!;
    assert.equal(audited.action, 'rollout.abort');
    assert.equal((audited.details.evidence as Record<string, any>[]).find((c) => c.criterion === 'disagreement')!.verdict, 'fail', 'the evidence is audited');
    await until('the abort was posted', () => posted.some((p) => /Rollout of flipped version 2 aborted/.test(p.text)), 5000);
  });

  test('a canary whose outputs drift is aborted through the drift signal', async () => {
    const traffic = load('drifting', () => gws);
    const started = await call(gws[0]!, 'PUT', '/admin/models/drifting/rollout', { ...spec('2', { errorRate, drift: { on: ['outputs'] } }), reason: 'new feature pipeline' });
    assert.equal(started.status, 201, JSON.stringify(started.json));
    const r = await ended('drifting', 60_000);
    await traffic.stop();
    assert.equal(r.state, 'aborted', JSON.stringify(r.decisions.at(-1)));
    const abort = r.decisions.at(-1);
    const drift = (abort.evidence as Record<string, any>[]).find((c) => c.criterion === 'drift')!;
    assert.equal(drift.verdict, 'fail', JSON.stringify(drift));
    assert.match(drift.canary, /outputs drift/);
    assert.match(drift.stable, /its live window/, 'judged against stable\'s window over the same period');
    assert.ok(r.decisions.filter((d: { action: string }) => d.action === 'advance').length === 0, `no step passed while the drift window filled: ${JSON.stringify(r.decisions.filter((d: { action: string }) => d.action === 'advance'))}`);
    await assertWeightsOnSteps('drifting', '2');
    const audited = (await auditOf('drifting', 'rollout.')).at(-1)!;
    assert.equal(audited.action, 'rollout.abort');
    assert.equal((audited.details.evidence as Record<string, any>[]).find((c) => c.criterion === 'drift')!.verdict, 'fail', 'the evidence is audited');
    await until('the abort was posted', () => posted.some((p) => /Rollout of drifting version 2 aborted/.test(p.text)), 5000);
  });

  test('a canary with too little traffic to judge is paused with the reason, not promoted; routes changed by hand pause a rollout too', async () => {
    const quiet = await call(gws[0]!, 'PUT', '/admin/models/quiet/rollout', {
      canary: '2', steps: [{ weight: 50, minDurationMs: 0, minRequests: 1000 }, { weight: 100, minDurationMs: 0, minRequests: 1000 }],
      criteria: { errorRate }, pauseAfterMs: 1000, reason: 'ship v2',
    });
    assert.equal(quiet.status, 201, JSON.stringify(quiet.json));
    const few = load('quiet', () => gws);
    await new Promise((r) => setTimeout(r, 300));
    await few.stop();
    const r = await ended('quiet', 15_000);
    assert.equal(r.state, 'paused');
    assert.equal(r.weight, 50, 'a pause holds the weight');
    assert.match(r.note, /too little traffic to judge step 1 after \d+ s: \d+ of 1000 canary requests/);
    assert.equal(r.decisions.at(-1).by, 'breakwater');
    await until('the pause was posted', () => posted.some((p) => /Rollout of quiet version 2 paused/.test(p.text)), 5000);

    const handled = await call(gws[0]!, 'PUT', '/admin/models/handled/rollout', { ...spec('2', { errorRate }), reason: 'ship v2' });
    assert.equal(handled.status, 201, JSON.stringify(handled.json));
    const manual = await call(gws[1]!, 'PUT', '/admin/models/handled/traffic', { routes: [{ version: '1', weight: 70 }, { version: '2', weight: 30 }], reason: 'ops: hold at 30' });
    assert.equal(manual.status, 200, JSON.stringify(manual.json));
    const h = await ended('handled', 10_000);
    assert.equal(h.state, 'paused');
    assert.match(h.note, /the routes were changed by po-paula \(ops: hold at 30\)/);
    // A resume hands the routes back to the rollout.
    const resumed = await call(gws[0]!, 'POST', '/admin/models/handled/rollout/resume', { reason: 'the hold is over' });
    assert.equal(resumed.status, 200, JSON.stringify(resumed.json));
    assert.equal(resumed.json.rollout.state, 'running');
    const live = await call(gws[0]!, 'GET', '/admin/models/handled');
    assert.deepEqual(live.json.traffic.traffic.routes.map((x: { version: string; weight: number }) => [x.version, x.weight]), [['1', 80], ['2', 20]]);
    assert.equal((await call(gws[0]!, 'POST', '/admin/models/handled/rollout/abort', { reason: 'enough' })).status, 200);
  });

  test('killing the replica that drives a rollout: the other takes over; the rollout neither stalls nor repeats a step', async () => {
    const live = [...gws];
    const traffic = load('takeover', () => live);
    const started = await call(gws[0]!, 'PUT', '/admin/models/takeover/rollout', { ...spec('2', { errorRate }, 3000), reason: 'ship v2' });
    assert.equal(started.status, 201, JSON.stringify(started.json));
    let driver = -1;
    await until('one replica drives it', async () => {
      const views = await Promise.all(gws.map((g) => rollout('takeover', g)));
      const driving = views.map((v) => v.drivenHere as boolean);
      assert.ok(driving.filter(Boolean).length <= 1, 'exactly one replica drives a rollout at a time');
      driver = driving.indexOf(true);
      return driver >= 0 && views[0]!.decisions.some((d: { action: string }) => d.action === 'advance');
    }, 30_000);
    const survivor = gws[1 - driver]!;
    live.splice(0, live.length, survivor);
    const killedAt = Date.now();
    gws[driver]!.process.kill('SIGKILL');
    const r = await ended('takeover', 60_000, () => survivor);
    await traffic.stop();
    assert.equal(r.state, 'promoted', JSON.stringify(r.decisions.at(-1)));
    assert.equal(r.drivenHere, true, 'the survivor drives it');
    const actions = r.decisions.map((d: { action: string; step: number }) => `${d.action}:${d.step}`);
    assert.deepEqual(actions, ['start:0', 'advance:1', 'advance:2', 'promote:2'], 'no step repeated');
    const next = r.decisions.find((d: { at: string }) => Date.parse(d.at) > killedAt);
    const gap = Date.parse(next.at) - killedAt;
    // The step's own minimum (3 s), the lease left to expire, and two intervals.
    assert.ok(gap <= 3000 + LEASE_MS + 2 * INTERVAL_MS + 1000, `the next decision came ${gap} ms after the kill`);
    gws = [survivor];
  });

  test('bad rollouts are 400 INVALID_ROLLOUT naming every problem; conflicts are 409; unknown ones 404', async () => {
    const gw = gws[0]!;
    const bad = await call(gw, 'PUT', '/admin/models/failing/rollout', { canary: '9', steps: [{ weight: 50, minRequests: 10 }, { weight: 20, minRequests: 10 }], criteria: { errorRate: {} }, reason: 'x' });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.code, 'INVALID_ROLLOUT');
    for (const problem of [/canary: version "9"/, /steps must increase/, /last step must be 100/, /minSamples/]) assert.match(bad.json.error, problem);
    const none = await call(gw, 'PUT', '/admin/models/failing/rollout', { canary: '2', steps: [{ weight: 100, minRequests: 10 }], criteria: {}, reason: 'x' });
    assert.equal(none.status, 400);
    assert.match(none.json.error, /at least one criterion/);
    const noDrift = await call(gw, 'PUT', '/admin/models/failing/rollout', { canary: '2', steps: [{ weight: 100, minRequests: 10 }], criteria: { drift: {} }, reason: 'x' });
    assert.match(noDrift.json.error, /drift is not monitored/);
    assert.equal((await call(gw, 'POST', '/admin/models/failing/rollout/resume', { reason: 'x' })).json.code, 'ROLLOUT_CONFLICT', 'an aborted rollout cannot resume');
    const missing = await call(gw, 'GET', '/admin/models/nosuch/rollout');
    assert.equal(missing.status, 404);
    assert.equal(missing.json.code, 'MODEL_NOT_FOUND');
    const noReason = await call(gw, 'POST', '/admin/models/failing/rollout/abort', {});
    assert.equal(noReason.status, 400);
  });
});
