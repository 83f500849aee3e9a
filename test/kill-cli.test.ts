/**
 * `breakwater kill`, `restore` and `kill status` through the real command line. Against a fake admin
 * API on 127.0.0.1 (a scripted fleet whose replicas apply a change after a given number of polls, or
 * never): the calls made, the wait, the report, --json, and the exit codes 0 (every replica applied),
 * 1 (refused or out of reach) and 2 (a replica did not follow in time; a usage mistake). Then end to
 * end: three gateway processes sharing a private Redis, killed, inspected and restored through the
 * CLI, and one of them stopped (SIGSTOP) while still listed in the fleet.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { request } from 'undici';
import { REPO_ROOT, runCli, spawnGateway, writeTempFile, type ChildGateway, type CliRun } from './helpers/gateway.js';
import { AUDIENCE, ISSUER, stopAll, testIssuer } from './helpers/load.js';
import { freePort, RedisServer } from './helpers/redis.js';

interface FakeReplica {
  readonly id: string;
  /** Polls of GET /admin/kill after a change before this replica reports it; Infinity: never. */
  readonly appliesAfterPolls: number;
  /** appliedAt - the change's `at`. */
  readonly applyMs: number;
  /** A stopped replica's heartbeat stays where it was; a live one's is always `ageMs` old. */
  readonly stopped?: boolean;
  /** Drops out of the list after this many polls of the change. */
  readonly leavesAfterPolls?: number;
}

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly authorization: string | undefined;
  readonly body: unknown;
}

type Refusal = { status: number; code: string; error: string };

/** A gateway's admin API as far as the kill CLI uses it, with a scripted fleet. */
class FakeAdmin {
  readonly seen: Seen[] = [];
  revision = 6;
  kills: Record<string, unknown>[] = [];
  fleet: FakeReplica[] = [];
  refuse: Refusal | undefined;
  /** GET /admin/kill answers 503 this many times before it answers again. */
  failPolls = 0;
  stale = false;
  #server: Server | undefined;
  #state = new Map<string, { revision: number; appliedAt: string | null; heartbeatAt: number; pollsLeft: number; pending: number; gone: boolean; leaveIn: number }>();
  #at = '';

  async start(): Promise<string> {
    this.#server = createServer((req, res) => {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (text += c));
      req.on('end', () => {
        const body = text === '' ? undefined : (JSON.parse(text) as unknown);
        this.seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization, body });
        const [status, answer] = this.#answer(req.method ?? '', req.url ?? '', body);
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      });
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#server?.close(() => resolve()) ?? resolve());
  }

  reset(fleet: FakeReplica[]): void {
    this.seen.length = 0;
    this.revision = 6;
    this.kills = [];
    this.refuse = undefined;
    this.failPolls = 0;
    this.stale = false;
    this.fleet = fleet;
    this.#state.clear();
    const now = Date.now();
    for (const r of fleet) this.#state.set(r.id, { revision: 6, appliedAt: new Date(now - 60_000).toISOString(), heartbeatAt: now - 1500, pollsLeft: 0, pending: 6, gone: false, leaveIn: Infinity });
  }

  #answer(method: string, url: string, body: unknown): [number, unknown] {
    if (method === 'GET' && url === '/admin/kill') return this.#status();
    if (this.refuse !== undefined) return [this.refuse.status, { code: this.refuse.code, error: this.refuse.error }];
    const reason = (body as { reason?: string } | undefined)?.reason ?? '';
    const m = /^\/admin(?:\/models\/([^/]+)(?:\/versions\/([^/]+))?)?\/kill$/.exec(url);
    if (m === null || (method !== 'POST' && method !== 'DELETE')) return [404, { code: 'NOT_FOUND', error: 'route not found' }];
    const [, model, version] = m;
    const b = (body ?? {}) as { mode?: string; target?: string };
    const entry = {
      scope: model === undefined ? 'all' : version === undefined ? 'model' : 'version',
      ...(model === undefined ? {} : { model: decodeURIComponent(model) }),
      ...(version === undefined ? {} : { version: decodeURIComponent(version) }),
      mode: b.mode ?? (model === undefined ? 'deny' : 'rollback'),
      ...(model !== undefined && b.mode !== 'deny' ? { target: b.target ?? '1' } : {}),
      by: 'oncall-olga', at: '', reason, revision: 0,
    };
    this.revision++;
    this.#at = new Date().toISOString();
    Object.assign(entry, { at: this.#at, revision: this.revision });
    this.kills = method === 'POST' ? [...this.kills, entry] : [];
    for (const r of this.fleet) {
      const s = this.#state.get(r.id);
      if (s !== undefined) Object.assign(s, { pending: this.revision, pollsLeft: r.appliesAfterPolls, leaveIn: r.leavesAfterPolls ?? Infinity });
    }
    const action = method === 'POST' ? 'kill' : 'restore';
    return [200, { revision: this.revision, action, kill: entry, at: this.#at, by: 'oncall-olga', reason, audit: { seq: this.revision } }];
  }

  #status(): [number, unknown] {
    if (this.failPolls > 0) {
      this.failPolls--;
      return [503, { code: 'STATE_STORE_UNAVAILABLE', error: 'the shared store did not answer' }];
    }
    const now = Date.now();
    const replicas = [];
    for (const r of this.fleet) {
      const s = this.#state.get(r.id);
      if (s === undefined) continue;
      if (s.pending > s.revision && s.pollsLeft-- <= 0) {
        s.revision = s.pending;
        s.appliedAt = new Date(Date.parse(this.#at) + r.applyMs).toISOString();
      }
      if (s.leaveIn-- <= 0) s.gone = true;
      if (s.gone) continue;
      if (r.stopped !== true) s.heartbeatAt = now - 100;
      replicas.push({
        id: r.id, host: r.id.split(':')[0], pid: Number(r.id.split(':')[1]), gatewayVersion: '0.1.0', configHash: 'ab'.repeat(32),
        startedAt: new Date(now - 3_600_000).toISOString(), heartbeatAt: new Date(s.heartbeatAt).toISOString(),
        kill: { revision: s.revision, appliedAt: s.appliedAt },
      });
    }
    return [200, { revision: this.revision, stale: this.stale, kills: this.kills, replicas }];
  }
}

const TOKEN = 'header.payload.signature';
const fake = new FakeAdmin();
let url = '';

const THREE: FakeReplica[] = [
  { id: 'host-a:101', appliesAfterPolls: 0, applyMs: 4 },
  { id: 'host-b:202', appliesAfterPolls: 3, applyMs: 31 },
  { id: 'host-c:303', appliesAfterPolls: 1, applyMs: 12 },
];
const STUCK: FakeReplica[] = [...THREE.slice(0, 2), { id: 'host-c:303', appliesAfterPolls: Infinity, applyMs: 0, stopped: true }];

function breakwater(...args: string[]): Promise<CliRun> {
  return runCli(args, { env: { BREAKWATER_URL: url, BREAKWATER_TOKEN: TOKEN } });
}

const changes = (): Seen[] => fake.seen.filter((s) => s.method !== 'GET');

describe('breakwater kill against a fake admin API', { timeout: 120_000 }, () => {
  before(async () => {
    url = await fake.start();
  });
  after(() => fake.close());
  beforeEach(() => fake.reset(THREE));

  test('kill MODEL posts the reason, waits for every replica and prints the time each took; exit 0', async () => {
    const r = await breakwater('kill', 'titanic', '--reason', 'refuses everyone since the retrain');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(changes(), [{ method: 'POST', url: '/admin/models/titanic/kill', authorization: `Bearer ${TOKEN}`, body: { reason: 'refuses everyone since the retrain' } }]);
    assert.match(r.stdout, /^killed model titanic \(mode rollback, target 1\): revision 7 at \S+Z by oncall-olga\nreason: refuses everyone since the retrain\n/);
    assert.match(r.stdout, /\n {2}host-a:101 {2}applied in 4 ms\n {2}host-b:202 {2}applied in 31 ms\n {2}host-c:303 {2}applied in 12 ms\n/);
    assert.match(r.stdout, /all 3 replicas applied revision 7 \(slowest 31 ms; waited \d+ ms\)\n$/);
    assert.ok(fake.seen.filter((s) => s.method === 'GET').length >= 4, 'polled until the slowest replica reported the revision');
    assert.equal(r.stderr, '');
  });

  test('the options become the body of the call the contract names', async () => {
    const cases: [string[], string, string, unknown][] = [
      [['kill', 'titanic', '--mode', 'deny'], 'POST', '/admin/models/titanic/kill', { mode: 'deny' }],
      [['kill', 'titanic', '--mode', 'rollback', '--target', '1'], 'POST', '/admin/models/titanic/kill', { mode: 'rollback', target: '1' }],
      [['kill', 'titanic', '--version', '3'], 'POST', '/admin/models/titanic/versions/3/kill', {}],
      [['kill', 'titanic', '--version', '3', '--target', '1'], 'POST', '/admin/models/titanic/versions/3/kill', { target: '1' }],
      [['kill', '--all'], 'POST', '/admin/kill', { mode: 'deny' }],
      [['kill', '--all', '--mode', 'rollback'], 'POST', '/admin/kill', { mode: 'rollback' }],
      [['kill', '--model', 'status'], 'POST', '/admin/models/status/kill', {}],
      [['kill', 'a b/c'], 'POST', '/admin/models/a%20b%2Fc/kill', {}],
      [['restore', 'titanic'], 'DELETE', '/admin/models/titanic/kill', {}],
      [['restore', 'titanic', '--version', '3'], 'DELETE', '/admin/models/titanic/versions/3/kill', {}],
      [['restore', '--all'], 'DELETE', '/admin/kill', {}],
    ];
    for (const [args, method, path, body] of cases) {
      fake.reset(THREE);
      const r = await breakwater(...args, '--reason', 'why not');
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.deepEqual(changes().map((s) => [s.method, s.url, s.body]), [[method, path, { ...(body as object), reason: 'why not' }]], args.join(' '));
    }
  });

  test('restore reports like kill', async () => {
    const r = await breakwater('restore', 'titanic', '--version', '3', '--reason', 'fixed');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^restored titanic version 3 \(traffic to 1\): revision 7 /);
    assert.match(r.stdout, /all 3 replicas applied revision 7/);
  });

  test('a replica that does not apply in time is named with its last heartbeat; exit 2', async () => {
    fake.reset(STUCK);
    const r = await breakwater('kill', 'titanic', '--reason', 'x', '--wait-ms', '300');
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stdout, /host-a:101 {2}applied in 4 ms\n {2}host-b:202 {2}applied in 31 ms\n {2}host-c:303 {2}NOT applied: at revision 6, last heartbeat (\d+) ms ago\n/);
    const line = /^breakwater: 1 of 3 replicas did not apply revision 7 within 300 ms: host-c:303 \(at revision 6, last heartbeat (\d+) ms ago\)\n$/.exec(r.stderr);
    assert.ok(line !== null, r.stderr);
    assert.ok(Number(line[1]) >= 1500, 'the heartbeat age is the stopped replica\'s');
  });

  test('--json prints one document with the change, each replica and an ok flag', async () => {
    const good = await breakwater('kill', 'titanic', '--reason', 'x', '--json');
    assert.equal(good.code, 0, good.stderr);
    const doc = JSON.parse(good.stdout) as { ok: boolean; change: { revision: number; kill: { scope: string } }; waitMs: number; replicas: { id: string; status: string; applyMs: number; revision: number; heartbeatAgeMs: number }[]; notApplied: string[] };
    assert.equal(doc.ok, true);
    assert.equal(doc.change.revision, 7);
    assert.equal(doc.change.kill.scope, 'model');
    assert.equal(doc.waitMs, 2000);
    assert.deepEqual(doc.replicas.map((x) => [x.id, x.status, x.applyMs, x.revision]), [['host-a:101', 'applied', 4, 7], ['host-b:202', 'applied', 31, 7], ['host-c:303', 'applied', 12, 7]]);
    assert.deepEqual(doc.notApplied, []);

    fake.reset(STUCK);
    const bad = await breakwater('kill', 'titanic', '--reason', 'x', '--json', '--wait-ms', '200');
    assert.equal(bad.code, 2);
    const failed = JSON.parse(bad.stdout) as typeof doc;
    assert.equal(failed.ok, false);
    assert.deepEqual(failed.notApplied, ['host-c:303']);
    const stuck = failed.replicas.find((x) => x.id === 'host-c:303');
    assert.equal(stuck?.status, 'pending');
    assert.equal(stuck?.applyMs, null);
    assert.ok((stuck?.heartbeatAgeMs ?? 0) >= 1500);
    assert.match(bad.stderr, /did not apply revision 7 within 200 ms: host-c:303/);
  });

  test('a refusal prints the code and message; exit 1 (and JSON with --json)', async () => {
    fake.refuse = { status: 409, code: 'ROLLBACK_TARGET_UNAVAILABLE', error: 'version 1 of titanic is not ready; use mode deny' };
    const r = await breakwater('kill', 'titanic', '--reason', 'x');
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'breakwater: 409 ROLLBACK_TARGET_UNAVAILABLE: version 1 of titanic is not ready; use mode deny\n');
    assert.equal(fake.seen.filter((s) => s.method === 'GET').length, 0, 'nothing to wait for');

    const j = await breakwater('restore', 'titanic', '--reason', 'x', '--json');
    assert.equal(j.code, 1);
    assert.deepEqual(JSON.parse(j.stdout), { ok: false, error: { status: 409, code: 'ROLLBACK_TARGET_UNAVAILABLE', message: 'version 1 of titanic is not ready; use mode deny' } });
  });

  test('a gateway out of reach: exit 1, saying where', async () => {
    const nobody = `http://127.0.0.1:${await freePort()}`;
    const r = await runCli(['kill', 'titanic', '--reason', 'x', '--url', nobody], { env: { BREAKWATER_URL: url } });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `breakwater: cannot reach the gateway at ${nobody}: ECONNREFUSED\n`);
    assert.equal(fake.seen.length, 0, '--url wins over BREAKWATER_URL');
  });

  test('a poll that fails is retried within the wait', async () => {
    fake.failPolls = 2;
    const r = await breakwater('kill', 'titanic', '--reason', 'x');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /all 3 replicas applied revision 7/);
  });

  test('a replica that leaves the fleet during the wait is reported, not waited for', async () => {
    fake.reset([THREE[0] as FakeReplica, { id: 'host-d:404', appliesAfterPolls: Infinity, applyMs: 0, leavesAfterPolls: 2 }]);
    const r = await breakwater('kill', 'titanic', '--reason', 'x');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /host-d:404 {2}left the fleet before applying it/);
  });

  test('kill status lists the kills in force and each replica\'s revision and heartbeat', async () => {
    fake.reset(STUCK);
    await breakwater('kill', 'titanic', '--version', '3', '--reason', 'offensive items', '--wait-ms', '0');
    const r = await breakwater('kill', 'status');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^kill state: revision 7\nkills in force \(1\):\n {2}titanic version 3 \(traffic to 1\): revision 7, by oncall-olga at \S+: offensive items\nreplicas \(3\):\n/);
    assert.match(r.stdout, /host-a:101 {2}revision 7 applied at \S+, last heartbeat \d+ ms ago\n/);
    assert.match(r.stdout, /host-c:303 {2}revision 6 \(behind\) applied at \S+, last heartbeat \d+ ms ago\n$/);
    assert.deepEqual(fake.seen.at(-1), { method: 'GET', url: '/admin/kill', authorization: `Bearer ${TOKEN}`, body: undefined });

    const j = await breakwater('kill', 'status', '--json');
    const doc = JSON.parse(j.stdout) as { revision: number; kills: unknown[]; replicas: unknown[] };
    assert.equal(doc.revision, 7);
    assert.equal(doc.kills.length, 1);
    assert.equal(doc.replicas.length, 3);
  });

  test('no kill in force; a stale answer says so', async () => {
    const r = await breakwater('kill', 'status');
    assert.match(r.stdout, /^kill state: revision 6\nno kill in force\nreplicas \(3\):/);
    fake.stale = true;
    const s = await breakwater('kill', 'status');
    assert.match(s.stdout, /^kill state: revision 6\nSTALE: the gateway asked has not confirmed this state with the store lately/);
  });

  const MISTAKES: [string[], RegExp][] = [
    [['kill', 'titanic'], /--reason is required/],
    [['kill', 'titanic', '--reason', '   '], /--reason is required/],
    [['restore', '--all'], /--reason is required/],
    [['kill', '--reason', 'x'], /name a MODEL, or give --all/],
    [['kill', 'titanic', 'iris', '--reason', 'x'], /name one model, not titanic, iris/],
    [['kill', '--all', 'titanic', '--reason', 'x'], /--all and a model \(titanic\) exclude each other/],
    [['kill', '--all', '--version', '3', '--reason', 'x'], /--version names a version of one model/],
    [['kill', '--all', '--target', '1', '--reason', 'x'], /--all rolls each model back to its own target/],
    [['kill', 'titanic', '--mode', 'maybe', '--reason', 'x'], /--mode must be rollback or deny, got "maybe"/],
    [['kill', 'titanic', '--mode', 'deny', '--target', '1', '--reason', 'x'], /--target is where rollback sends traffic/],
    [['kill', 'titanic', '--version', '3', '--mode', 'deny', '--reason', 'x'], /a killed version always sends its traffic to the target/],
    [['kill', 'titanic', '--reason', 'x', '--wait-ms', 'soon'], /--wait-ms must be 0-600000, got "soon"/],
    [['restore', 'titanic', '--mode', 'deny', '--reason', 'x'], /Unknown option '--mode'/],
    [['kill', 'status', '--reason', 'x'], /to kill a model named "status", give --model status/],
    [['kill', 'status', 'titanic'], /takes only --json, --url, --token \(got titanic\)/],
  ];
  for (const [args, message] of MISTAKES) {
    test(`\`breakwater ${args.join(' ')}\`: a usage mistake, exit 2, nothing sent`, async () => {
      const r = await breakwater(...args);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /breakwater kill MODEL \[--mode rollback\|deny\]/, 'with the usage');
      assert.equal(r.stdout, '');
      assert.equal(fake.seen.length, 0);
    });
  }
});

describe('breakwater kill against three gateway processes sharing one Redis', { timeout: 240_000 }, () => {
  const issuer = testIssuer();
  const sign = (sub: string, scope: string) => issuer.sign({ sub, tenant: 'acme', scope, exp: Math.floor(Date.now() / 1000) + 900 });
  const ONCALL = sign('oncall-omar', 'admin:kill-switch');
  const IRIS = join(REPO_ROOT, 'demo/models/iris.onnx');
  const BODY = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [[5.1, 3.5, 1.4, 0.2]] }] });
  let redis: RedisServer | undefined;
  let gateways: ChildGateway[] = [];
  let paused: ChildGateway | undefined;

  const cli = (gw: ChildGateway, ...args: string[]) => runCli(args, { env: { BREAKWATER_URL: gw.url, BREAKWATER_TOKEN: ONCALL }, timeoutMs: 30_000 });
  const fleetIds = async (gw: ChildGateway): Promise<string[]> => {
    const res = await request(`${gw.url}/admin/fleet`, { headers: { authorization: `Bearer ${ONCALL}` }, signal: AbortSignal.timeout(10_000) });
    return ((await res.body.json()) as { replicas: { id: string }[] }).replicas.map((r) => r.id).sort();
  };
  /** `id → ms` from the lines `  ID  applied in N ms`. */
  const applyTimes = (stdout: string): Map<string, number> => new Map([...stdout.matchAll(/^ {2}(\S+) +applied in (-?\d+) ms$/gm)].map((m) => [m[1] as string, Number(m[2])]));

  before(async () => {
    redis = await RedisServer.start();
    const onnx = { kind: 'onnx', path: IRIS };
    const file = await writeTempFile('gateway.yaml', JSON.stringify({
      server: { host: '127.0.0.1', port: 0, shutdownGraceMs: 2000 },
      auth: { issuer: ISSUER, audience: AUDIENCE, keys: [issuer.keyConfig] },
      state: { redisUrl: redis.url, keyPrefix: 'bw:' },
      // A stopped replica stays listed for 30 s: long enough for the test to catch it still listed.
      fleet: { heartbeatMs: 500, expireAfterMs: 30_000 },
      models: { iris: { versions: { '1': { backend: onnx }, '2': { backend: onnx } }, stable: '2', killSwitch: { rollbackTo: '1' } } },
    }));
    gateways = await Promise.all([0, 1, 2].map(() => spawnGateway(['serve', '--config', file], { timeoutMs: 60_000 })));
    const deadline = Date.now() + 20_000;
    while ((await fleetIds(gateways[0] as ChildGateway)).length < 3) {
      if (Date.now() > deadline) throw new Error('the three replicas never all appeared in the fleet');
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  after(async () => {
    paused?.process.kill('SIGCONT');
    await stopAll(gateways);
    await redis?.stop();
  });

  test('kill, status and restore through the CLI; every replica\'s apply time is reported and true', async (t) => {
    const [a, b, c] = gateways as [ChildGateway, ChildGateway, ChildGateway];
    const ids = await fleetIds(a);
    assert.equal(ids.length, 3);

    const killed = await cli(a, 'kill', 'iris', '--reason', 'v2 refuses every applicant');
    assert.equal(killed.code, 0, killed.stdout + killed.stderr);
    assert.match(killed.stdout, /^killed model iris \(mode rollback, target 1\): revision \d+ at \S+ by oncall-omar\n/);
    t.diagnostic(killed.stdout);
    const times = applyTimes(killed.stdout);
    assert.deepEqual([...times.keys()].sort(), ids, killed.stdout);
    assert.match(killed.stdout, /all 3 replicas applied revision \d+/);
    // Applied means applied: each replica now answers from the target, saying why.
    for (const gw of [a, b, c]) {
      const res = await request(`${gw.url}/v2/models/iris/infer`, { method: 'POST', headers: { authorization: `Bearer ${sign('u', 'predict:*')}`, 'content-type': 'application/json' }, body: BODY, signal: AbortSignal.timeout(10_000) });
      await res.body.text();
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['x-model-version'], '1');
      assert.equal(res.headers['x-route-reason'], 'kill-switch');
    }

    const status = await cli(b, 'kill', 'status');
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /kills in force \(1\):\n {2}model iris \(mode rollback, target 1\): revision \d+, by oncall-omar at \S+: v2 refuses every applicant\n/);
    assert.match(status.stdout, /replicas \(3\):\n/);
    for (const id of ids) assert.ok(status.stdout.includes(id), `status lists ${id}`);
    assert.doesNotMatch(status.stdout, /behind/);

    const restored = await cli(c, 'restore', 'iris', '--reason', 'v2.1 deployed', '--json');
    assert.equal(restored.code, 0, restored.stdout + restored.stderr);
    const doc = JSON.parse(restored.stdout) as { ok: boolean; change: { action: string }; replicas: { id: string; status: string; applyMs: number | null }[] };
    assert.equal(doc.ok, true);
    assert.equal(doc.change.action, 'restore');
    assert.deepEqual(doc.replicas.map((r) => [r.id, r.status, typeof r.applyMs]), ids.map((id) => [id, 'applied', 'number']));
    assert.match((await cli(a, 'kill', 'status')).stdout, /no kill in force/);
  });

  test('a replica stopped (SIGSTOP) but still listed is named, exit 2; it catches up once resumed', async (t) => {
    const [a, , c] = gateways as [ChildGateway, ChildGateway, ChildGateway];
    const stoppedId = (await fleetIds(a)).find((id) => id.endsWith(`:${c.process.pid}`));
    assert.ok(stoppedId !== undefined, 'the third gateway is in the fleet');
    c.process.kill('SIGSTOP');
    paused = c;
    const r = await cli(a, 'kill', 'iris', '--version', '2', '--reason', 'offensive items', '--wait-ms', '1500');
    t.diagnostic(r.stdout + r.stderr);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.equal(applyTimes(r.stdout).size, 2, 'the two running replicas applied it');
    assert.match(r.stdout, new RegExp(`${stoppedId} +NOT applied: at revision \\d+, last heartbeat \\d+ ms ago`));
    assert.match(r.stderr, new RegExp(`^breakwater: 1 of 3 replicas did not apply revision \\d+ within 1500 ms: ${stoppedId} \\(at revision \\d+, last heartbeat \\d+ ms ago\\)\\n$`));

    c.process.kill('SIGCONT');
    paused = undefined;
    const deadline = Date.now() + 15_000;
    let status = '';
    do {
      status = (await cli(a, 'kill', 'status')).stdout;
      if (!status.includes('behind')) break;
      await new Promise((res) => setTimeout(res, 200));
    } while (Date.now() < deadline);
    assert.doesNotMatch(status, /behind/, 'the resumed replica applied the kill');
    const restored = await cli(a, 'restore', 'iris', '--version', '2', '--reason', 'fixed');
    assert.equal(restored.code, 0, restored.stdout + restored.stderr);
    assert.equal(applyTimes(restored.stdout).size, 3);
  });
});
