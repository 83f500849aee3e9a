/**
 * A model's split driven by an Unleash flag, against the client API responses recorded from a real
 * Unleash 7.5.1 (test/fixtures/unleash/README.md), replayed by a loopback server on 127.0.0.1:
 * each subject gets the version unleash-client itself picks for its userId, on every request; the
 * split stands while Unleash is away; a disabled flag falls back to the configured routes; a
 * bootstrap file alone serves the flag when Unleash was never reachable.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { request } from 'undici';
import { InMemStorageProvider, Unleash } from 'unleash-client';
import { buildConfig } from '../gateway/config.js';
import type { RunningGateway } from '../gateway/main.js';
import { createUnleashSource } from '../policies/unleash.js';
import { ROW_STATS_METADATA, rowStatsHandler, startFakeOipBackend, type FakeOipBackend } from './helpers/backends.js';
import { REPO_ROOT, startInProcess, writeTempFile } from './helpers/gateway.js';
import { AUDIENCE, ISSUER, testIssuer, tokenFor } from './helpers/load.js';
import type { Issuer } from './helpers/tokens.js';

const FIXTURES = join(REPO_ROOT, 'test/fixtures/unleash');
const ENABLED = join(FIXTURES, 'client-features.json');
const DISABLED = join(FIXTURES, 'client-features-disabled.json');
const FLAG = 'titanic-split';
const TOKEN_ENV = 'BW_TEST_UNLEASH_TOKEN';
const TOKEN = 'default:development.0123456789abcdef0123456789abcdef0123456789abcdef01234567';
const REFRESH_MS = 1000;
const BODY = JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] });
const SUBJECTS = Array.from({ length: 500 }, (_, i) => `passenger-${i}`);
const tenantOf = (sub: string): string => `line-${sub.length % 3}`;

/** A stand-in for Unleash's client API that answers with a recorded response (or fails). */
interface FakeUnleash {
  /** The client API root, as `unleash.url` takes it. */
  readonly url: string;
  /** What GET /api/client/features answers from now on: a recording, or a status with no flags. */
  serve(what: string | number): void;
  /** Feature fetches answered so far, by status. */
  fetches(status: number): number;
  /** Goes away: the port refuses connections from now on. */
  close(): Promise<void>;
}

async function startFakeUnleash(file: string): Promise<FakeUnleash> {
  let answer: { body: Buffer; etag: string } | number = 0;
  const counts = new Map<number, number>();
  const serve = (what: string | number): void => {
    if (typeof what === 'number') {
      answer = what;
      return;
    }
    const body = readFileSync(what);
    // The recording carries the ETag the real server sent with it.
    const etag = (JSON.parse(body.toString('utf8')) as { meta: { etag: string } }).meta.etag;
    answer = { body, etag };
  };
  serve(file);
  const sockets = new Set<Socket>();
  const reply = (res: ServerResponse, status: number, body?: Buffer, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(body.length) }) });
    res.end(body);
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      const path = (req.url ?? '').split('?')[0];
      if (req.method === 'POST' && (path === '/api/client/register' || path === '/api/client/metrics')) return reply(res, 202);
      if (req.method !== 'GET' || path !== '/api/client/features') return reply(res, 404, Buffer.from('{"error":"not found"}'));
      const count = (status: number): void => void counts.set(status, (counts.get(status) ?? 0) + 1);
      if (req.headers.authorization !== TOKEN) {
        count(401);
        return reply(res, 401, Buffer.from('{"error":"invalid token"}'));
      }
      const a = answer;
      if (typeof a === 'number') {
        count(a);
        return reply(res, a, Buffer.from('{"error":"unavailable"}'));
      }
      if (req.headers['if-none-match'] === a.etag) {
        count(304);
        return reply(res, 304, undefined, { etag: a.etag });
      }
      count(200);
      reply(res, 200, a.body, { etag: a.etag });
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}/api`,
    serve,
    fetches: (status) => counts.get(status) ?? 0,
    close: () =>
      (closing ??= new Promise<void>((res) => {
        server.close(() => res());
        for (const s of sockets) s.destroy();
      })),
  };
}

/** A port on 127.0.0.1 that nobody listens on (listened on, then closed). */
async function deadUrl(): Promise<string> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  await new Promise((res) => s.close(res));
  return `http://127.0.0.1:${port}/api`;
}

/**
 * What unleash-client itself says each subject gets, from a second client loaded with the same
 * recording and nothing else (no polling, no metrics): the gateway must agree with it.
 */
async function expectedVersions(file: string, subjects: readonly string[]): Promise<Map<string, string>> {
  const client = new Unleash({
    appName: 'breakwater-test-oracle',
    url: 'http://127.0.0.1:9/api', // never contacted: refreshInterval 0 never polls
    refreshInterval: 0,
    disableMetrics: true,
    disableAutoStart: true,
    bootstrap: { filePath: file },
    storageProvider: new InMemStorageProvider(),
  });
  try {
    const ready = once(client, 'ready');
    await client.start();
    await ready;
    const out = new Map<string, string>();
    for (const sub of subjects) {
      const v = client.getVariant(FLAG, { userId: sub, properties: { tenant: tenantOf(sub) } });
      assert.equal(v.enabled, true, `the recorded flag gives ${sub} a variant`);
      out.set(sub, v.payload?.type === 'string' ? v.payload.value : v.name);
    }
    return out;
  } finally {
    client.destroy();
  }
}

let issuer: Issuer;
let backends: FakeOipBackend[];
const tokens = new Map<string, string>();

before(async () => {
  process.env[TOKEN_ENV] = TOKEN;
  issuer = testIssuer();
  for (const sub of SUBJECTS) tokens.set(sub, tokenFor(issuer, sub, tenantOf(sub)));
  backends = await Promise.all(['1', '2'].map(() => startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler)));
});

after(async () => {
  await Promise.all(backends.map((b) => b.close()));
});

function gatewayConfig(unleash: Record<string, unknown>): Record<string, unknown> {
  const backend = (b: FakeOipBackend) => ({ backend: { kind: 'oip-http', url: b.url, model: ROW_STATS_METADATA.name } });
  return {
    auth: { issuer: ISSUER, audience: AUDIENCE, keys: [issuer.keyConfig] },
    unleash: { apiTokenEnv: TOKEN_ENV, refreshIntervalMs: REFRESH_MS, ...unleash },
    models: {
      titanic: {
        stable: '1',
        versions: { '1': backend(backends[0]), '2': backend(backends[1]) },
        traffic: { routes: [{ version: '1', weight: 100 }], unleash: { flag: FLAG } },
      },
    },
  };
}

async function infer(gw: RunningGateway, sub: string): Promise<{ version: string; reason: string }> {
  const res = await request(`${gw.url}/v2/models/titanic/infer`, {
    method: 'POST',
    body: BODY,
    headers: { authorization: `Bearer ${tokens.get(sub)}`, 'content-type': 'application/json' },
  });
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, text);
  return { version: String(res.headers['x-model-version']), reason: String(res.headers['x-route-reason']) };
}

/** Every subject's route, asked in parallel batches. */
async function routesOf(gw: RunningGateway, subjects: readonly string[]): Promise<Map<string, { version: string; reason: string }>> {
  const out = new Map<string, { version: string; reason: string }>();
  for (let i = 0; i < subjects.length; i += 50) {
    const batch = subjects.slice(i, i + 50);
    const got = await Promise.all(batch.map((s) => infer(gw, s)));
    batch.forEach((s, k) => out.set(s, got[k]));
  }
  return out;
}

function assertFlagRoutes(got: Map<string, { version: string; reason: string }>, expected: Map<string, string>): void {
  for (const [sub, r] of got) assert.deepEqual(r, { version: expected.get(sub), reason: `unleash:${expected.get(sub)}` }, sub);
}

/** Polls `check` until it holds, at most `timeoutMs`. */
async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

test('each subject is served the version unleash-client picks for its userId, on every request, both versions used', async () => {
  const expected = await expectedVersions(ENABLED, SUBJECTS);
  const unleash = await startFakeUnleash(ENABLED);
  const gw = await startInProcess(gatewayConfig({ url: unleash.url }));
  const before = backends.map((b) => b.inferCalls().length);
  try {
    assert.ok(unleash.fetches(200) >= 1, 'the gateway fetched the flags at start-up');
    const first = await routesOf(gw, SUBJECTS);
    assertFlagRoutes(first, expected);
    const counts = { '1': 0, '2': 0 } as Record<string, number>;
    for (const r of first.values()) counts[r.version]++;
    // 50/50 variants over 500 subjects: each well inside 35–65 %.
    assert.ok(counts['1'] > 175 && counts['2'] > 175, JSON.stringify(counts));
    // Sticky: the same answer again, after at least one refresh has come and gone.
    const fetched = unleash.fetches(304) + unleash.fetches(200);
    await waitFor('a refresh', () => unleash.fetches(304) + unleash.fetches(200) > fetched);
    assert.deepEqual(await routesOf(gw, SUBJECTS), first);
    // The version named is the one that served: each backend saw exactly its subjects' requests.
    assert.deepEqual(backends.map((b, i) => b.inferCalls().length - before[i]), [counts['1'] * 2, counts['2'] * 2]);
  } finally {
    await gw.close();
    await unleash.close();
  }
});

test('when Unleash goes away (errors, then gone), the split stands for the same subjects', async () => {
  const subjects = SUBJECTS.slice(0, 200);
  const expected = await expectedVersions(ENABLED, subjects);
  const unleash = await startFakeUnleash(ENABLED);
  const gw = await startInProcess(gatewayConfig({ url: unleash.url }));
  try {
    assertFlagRoutes(await routesOf(gw, subjects), expected);
    unleash.serve(500);
    await waitFor('a refresh answered 500', () => unleash.fetches(500) >= 1);
    assertFlagRoutes(await routesOf(gw, subjects), expected);
    await unleash.close();
    // Nothing to observe on a closed port: the refresh under way retries (about 1 s, then 2 s
    // later) into it and fails; give it that long, and a little more.
    await sleep(3 * REFRESH_MS + 500);
    assertFlagRoutes(await routesOf(gw, subjects), expected);
  } finally {
    await gw.close();
    await unleash.close();
  }
});

test('when the flag is disabled in Unleash, requests fall back to the configured routes', async () => {
  const subjects = SUBJECTS.slice(0, 200);
  const expected = await expectedVersions(ENABLED, subjects);
  const onTwo = subjects.find((s) => expected.get(s) === '2');
  assert.ok(onTwo !== undefined);
  const unleash = await startFakeUnleash(ENABLED);
  const gw = await startInProcess(gatewayConfig({ url: unleash.url }));
  try {
    assert.deepEqual(await infer(gw, onTwo), { version: '2', reason: 'unleash:2' });
    unleash.serve(DISABLED);
    await waitFor('the disabled flag to arrive', async () => (await infer(gw, onTwo)).version === '1');
    for (const r of (await routesOf(gw, subjects)).values()) assert.deepEqual(r, { version: '1', reason: 'stable' });
  } finally {
    await gw.close();
    await unleash.close();
  }
});

test('started with Unleash unreachable and a bootstrap file, the bootstrap variants serve', async () => {
  const subjects = SUBJECTS.slice(0, 200);
  const expected = await expectedVersions(ENABLED, subjects);
  const gw = await startInProcess(gatewayConfig({ url: await deadUrl(), bootstrapFile: ENABLED }));
  try {
    const got = await routesOf(gw, subjects);
    assertFlagRoutes(got, expected);
    assert.deepEqual(new Set([...got.values()].map((r) => r.version)), new Set(['1', '2']));
  } finally {
    await gw.close();
  }
});

test('started with Unleash unreachable and no bootstrap, the configured routes serve', async () => {
  const gw = await startInProcess(gatewayConfig({ url: await deadUrl() }));
  try {
    for (const r of (await routesOf(gw, SUBJECTS.slice(0, 50))).values()) assert.deepEqual(r, { version: '1', reason: 'stable' });
  } finally {
    await gw.close();
  }
});

test('a bootstrap file that cannot be read, or is not a client API answer, stops the start', async () => {
  const url = await deadUrl();
  await assert.rejects(startInProcess(gatewayConfig({ url, bootstrapFile: join(FIXTURES, 'no-such-file.json') })), /unleash\.bootstrapFile .*ENOENT/);
  const notFeatures = await writeTempFile('not-features.json', '{"flags": []}');
  await assert.rejects(startInProcess(gatewayConfig({ url, bootstrapFile: notFeatures })), /no "features" array/);
});

test('a variant with a string payload names its version by the payload', async () => {
  // Derived from the recording (not itself recorded): the variants renamed, the versions moved
  // into string payloads, as a product owner may prefer names like "control" in the Unleash UI.
  const recorded = JSON.parse(readFileSync(ENABLED, 'utf8')) as {
    features: { strategies: { variants: { name: string; payload?: { type: string; value: string } }[] }[] }[];
  };
  for (const v of recorded.features[0].strategies[0].variants) {
    v.payload = { type: 'string', value: v.name };
    v.name = v.name === '1' ? 'control' : 'treatment';
  }
  const file = await writeTempFile('client-features-payload.json', JSON.stringify(recorded));
  const subjects = SUBJECTS.slice(0, 100);
  const expected = await expectedVersions(file, subjects);
  assert.deepEqual(new Set(expected.values()), new Set(['1', '2']));
  const unleash = await startFakeUnleash(file);
  const gw = await startInProcess(gatewayConfig({ url: unleash.url }));
  try {
    assertFlagRoutes(await routesOf(gw, subjects), expected);
  } finally {
    await gw.close();
    await unleash.close();
  }
});

test('an outage is logged once, and its end once; answers never wait for the network', async () => {
  const lines: { level: number; msg: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as { level: number; msg: string });
      cb();
    },
  });
  const log = pino({ level: 'info' }, sink);
  const unleash = await startFakeUnleash(ENABLED);
  const cfg = buildConfig(gatewayConfig({ url: unleash.url }), REPO_ROOT, 'test').unleash;
  assert.ok(cfg !== undefined);
  const source = await createUnleashSource(cfg, log);
  const principal = { subject: 'passenger-1', tenant: tenantOf('passenger-1'), scopes: new Set<string>(), expiresAt: Date.now() + 60_000 };
  const [want] = (await expectedVersions(ENABLED, ['passenger-1'])).values();
  try {
    assert.equal(source.variant(FLAG, principal), want);
    assert.equal(source.variant('no-such-flag', principal), undefined);
    unleash.serve(503);
    await waitFor('the outage warning', () => lines.some((l) => /unreachable/.test(l.msg)), 20_000);
    // The client retries each refresh itself (3 calls); wait for a whole further refresh to fail.
    const failed = unleash.fetches(503);
    await waitFor('another failed refresh', () => unleash.fetches(503) >= failed + 3, 20_000);
    await sleep(100);
    const unreachable = lines.filter((l) => /unreachable/.test(l.msg));
    assert.equal(unreachable.length, 1, JSON.stringify(lines));
    assert.equal(unreachable[0].level, 40);
    const t0 = performance.now();
    assert.equal(source.variant(FLAG, principal), want);
    assert.ok(performance.now() - t0 < 50);
    unleash.serve(ENABLED);
    await waitFor('the recovery line', () => lines.some((l) => /answers again/.test(l.msg)), 30_000);
    assert.equal(lines.filter((l) => /answers again/.test(l.msg)).length, 1);
    assert.equal(source.variant(FLAG, principal), want);
  } finally {
    await source.close();
    await unleash.close();
  }
});

test('closing while a refresh is still retrying leaves nothing behind to fail later', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown): void => void unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  const unleash = await startFakeUnleash(ENABLED);
  const cfg = buildConfig(gatewayConfig({ url: unleash.url }), REPO_ROOT, 'test').unleash;
  assert.ok(cfg !== undefined);
  const source = await createUnleashSource(cfg, pino({ level: 'silent' }));
  try {
    unleash.serve(503);
    // The first 503 of a refresh: its retries are still to come when the source closes.
    await waitFor('a refresh under way', () => unleash.fetches(503) >= 1);
    await source.close();
    await unleash.close();
    // The client's retries back off about 1 s, then 2 s: let them run into the closed port.
    await sleep(3500);
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    await source.close();
    await unleash.close();
  }
});
