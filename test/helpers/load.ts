/**
 * Load and rate-limit helpers for gateway tests: gateway configurations with real JWT auth and a
 * shared Redis, a fake backend that counts requests in flight, timed requests that never hang,
 * bursts (all requests in flight together) and time-bounded load loops.
 */
import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { rowStatsHandler, ROW_STATS_METADATA, startFakeOipBackend, type FakeOipBackend } from './backends.js';
import { spawnGateway, stopWithin, writeTempFile, type ChildGateway } from './gateway.js';
import { makeIssuer, type Issuer } from './tokens.js';

export const ISSUER = 'https://issuer.test/';
export const AUDIENCE = 'breakwater-test';

/** An ES256 issuer whose tokens the gateways of `gatewayConfig` accept. */
export function testIssuer(): Issuer {
  return makeIssuer({ alg: 'ES256', claims: { iss: ISSUER, aud: AUDIENCE, scope: 'predict:*' } });
}

/** A token for `sub` of `tenant`, valid 10 minutes. */
export function tokenFor(issuer: Issuer, sub: string, tenant: string): string {
  return issuer.sign({ sub, tenant, exp: Math.floor(Date.now() / 1000) + 600 });
}

/** A full configuration: real JWT auth, every model in `models` proxied to the row-stats backend. */
export function gatewayConfig(opts: {
  issuer: Issuer;
  backendUrl: string;
  models: readonly string[];
  state?: Record<string, unknown>;
  rateLimits: Record<string, unknown>;
  /** Backend settings over the defaults (its admission: connections, queue, queueTimeoutMs). */
  backend?: Record<string, unknown>;
}): Record<string, unknown> {
  const backend = { kind: 'oip-http', url: opts.backendUrl, model: ROW_STATS_METADATA.name, connections: 64, ...opts.backend };
  return {
    server: { host: '127.0.0.1', port: 0, shutdownGraceMs: 2000 },
    logging: { level: 'info' },
    auth: { issuer: ISSUER, audience: AUDIENCE, keys: [opts.issuer.keyConfig] },
    state: opts.state ?? {},
    rateLimits: opts.rateLimits,
    models: Object.fromEntries(opts.models.map((m) => [m, { versions: { '1': { backend } } }])),
  };
}

/** Starts `n` gateway child processes from one configuration (YAML is a superset of JSON). */
export async function spawnGateways(config: Record<string, unknown>, n: number): Promise<ChildGateway[]> {
  const file = await writeTempFile('gateway.yaml', JSON.stringify(config, null, 2));
  return Promise.all(Array.from({ length: n }, () => spawnGateway(['serve', '--config', file])));
}

/** Stops every gateway still running (SIGTERM, then SIGKILL past the grace). */
export async function stopAll(gateways: readonly (ChildGateway | undefined)[]): Promise<void> {
  await Promise.all(gateways.map((g) => (g !== undefined && g.process.exitCode === null && g.process.signalCode === null ? stopWithin(g, 5000) : undefined)));
}

/** The row-stats backend, answering after `delayMs`, counting the infer requests it holds at once. */
export async function countingBackend(delayMs = 0): Promise<FakeOipBackend & { maxInFlight(): number; resetMax(): void }> {
  let inFlight = 0;
  let max = 0;
  const backend = await startFakeOipBackend(ROW_STATS_METADATA, async (req, call) => {
    inFlight++;
    max = Math.max(max, inFlight);
    try {
      if (delayMs > 0) await sleep(delayMs);
      return rowStatsHandler(req, call);
    } finally {
      inFlight--;
    }
  });
  return Object.assign(backend, { maxInFlight: () => max, resetMax: () => void (max = inFlight) });
}

/** A client allowed many connections, so every request of a burst is on the wire at once. */
export function bigAgent(connections = 2500): Agent {
  return new Agent({ connections, pipelining: 1, keepAliveTimeout: 10_000, connectTimeout: 5000 });
}

export function rowsBody(rows: number): string {
  return JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [rows, 3], data: Array.from({ length: rows * 3 }, (_, i) => i % 7) }] });
}

export interface Outcome {
  /** 0 when the request failed without an answer (e.g. it timed out: a hang). */
  readonly status: number;
  readonly code: string | undefined;
  readonly headers: Record<string, string | string[] | undefined>;
  /** ms since the epoch when it was sent, and how long it took. */
  readonly startedAt: number;
  readonly ms: number;
  readonly error?: string;
}

/** One infer request that never takes more than `timeoutMs`; failures become status 0. */
export async function infer(agent: Agent, url: string, model: string, token: string, rows = 1, timeoutMs = 10_000): Promise<Outcome> {
  const startedAt = Date.now();
  const t0 = performance.now();
  try {
    const res = await request(`${url}/v2/models/${model}/infer`, {
      method: 'POST',
      body: rowsBody(rows),
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      dispatcher: agent,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.body.text();
    let code: string | undefined;
    if (res.statusCode !== 200) code = (JSON.parse(text) as { code?: string }).code;
    return { status: res.statusCode, code, headers: res.headers, startedAt, ms: performance.now() - t0 };
  } catch (e) {
    return { status: 0, code: undefined, headers: {}, startedAt, ms: performance.now() - t0, error: (e as Error).message };
  }
}

/** Runs `n` calls all at once and waits for every one. */
export function burst<T>(n: number, call: (i: number) => Promise<T>): Promise<T[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => call(i)));
}

/**
 * `workers` loops sending one request after another (pausing `pauseMs`) until `durationMs` has
 * passed or `maxRequests` were sent in all. `events` run at their offsets (ms) meanwhile and are
 * awaited. Returns the outcomes in completion order and when the run started.
 */
export async function loadFor(opts: {
  durationMs: number;
  workers: number;
  pauseMs: number;
  maxRequests: number;
  send: () => Promise<Outcome>;
  events?: readonly { atMs: number; run: () => Promise<void> }[];
}): Promise<{ outcomes: Outcome[]; startedAt: number }> {
  const startedAt = Date.now();
  const outcomes: Outcome[] = [];
  let sent = 0;
  const worker = async () => {
    while (Date.now() - startedAt < opts.durationMs && sent < opts.maxRequests) {
      sent++;
      outcomes.push(await opts.send());
      await sleep(opts.pauseMs);
    }
  };
  const events = (opts.events ?? []).map(async (e) => {
    await sleep(Math.max(0, e.atMs - (Date.now() - startedAt)));
    await e.run();
  });
  await Promise.all([...Array.from({ length: opts.workers }, worker), ...events]);
  return { outcomes, startedAt };
}

/** "status code" → count, e.g. {"200": 20, "429 RATE_LIMITED": 5}. */
export function tally(outcomes: readonly Pick<Outcome, 'status' | 'code' | 'error'>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const o of outcomes) {
    const k = o.status === 200 ? '200' : `${o.status} ${o.code ?? o.error ?? ''}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

export function maxMs(outcomes: readonly Outcome[]): number {
  return Math.round(outcomes.reduce((m, o) => Math.max(m, o.ms), 0));
}

/** Polls `cond` every 20 ms; throws after `timeoutMs`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** The Redis key of a subject rule's counter (see policies/rate-limit.ts and RedisStore#key). */
export function subjectCounterKey(prefix: string, tenant: string, sub: string, model: string, rule: string): string {
  const enc = encodeURIComponent;
  return `${prefix}{t:${enc(tenant)}}:c:sub:${enc(sub)}:${enc(model)}:${enc(rule)}`;
}

/** One command on a short-lived raw client, e.g. `redisCall(url, 'get', key)`. */
export async function redisCall(url: string, command: string, ...args: (string | number)[]): Promise<unknown> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 1000 });
  try {
    await redis.connect();
    return await redis.call(command, ...args);
  } finally {
    redis.disconnect();
  }
}

export async function readRedis(url: string, key: string): Promise<string | null> {
  return (await redisCall(url, 'get', key)) as string | null;
}
