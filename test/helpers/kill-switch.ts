/**
 * The kill switch's admin API as tests drive it (docs: the kill switch contract): typed answers of
 * POST/DELETE kill and GET /admin/kill, a wait for every live replica to have applied a revision,
 * and one tagged inference call that tells which version computed its answer and when it was sent
 * and received. Shared by the propagation and replica tests so both read the API the same way.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { request, type Dispatcher } from 'undici';
import { TAGGED_BODY, versionOf, type RecordingBackend } from './recording-backend.js';

/**
 * The model of the kill switch tests, `m`: versions 1, 2 and 3, each on its recording backend; stable
 * 2 with rollback target 1; a canary split 2=80 / 3=20, a rule sending `x-lane: qa` to 3, and a
 * shadow of `shadowPercent` of the unpinned traffic to 3 (sent after the primary has answered).
 */
export function canaryModel(backends: ReadonlyMap<string, RecordingBackend>, shadowPercent = 25): Record<string, unknown> {
  const version = (v: string) => {
    const b = backends.get(v);
    if (b === undefined) throw new Error(`no backend for version ${v}`);
    return b.versionConfig();
  };
  return {
    stable: '2',
    killSwitch: { rollbackTo: '1' },
    versions: { '1': version('1'), '2': version('2'), '3': version('3') },
    traffic: {
      routes: [{ version: '2', weight: 80 }, { version: '3', weight: 20, name: 'canary' }],
      rules: [{ name: 'qa', version: '3', header: { name: 'x-lane', equals: 'qa' } }],
      shadow: { version: '3', percent: shadowPercent, mode: 'after' },
    },
  };
}

// The wire shapes are the gateway's own types (JSON keeps them as they are).
export type { KillEntry } from '../../gateway/control/kill-state.js';
export type { ReplicaRecord } from '../../gateway/control/fleet.js';

import type { KillEntry } from '../../gateway/control/kill-state.js';
import type { ReplicaRecord } from '../../gateway/control/fleet.js';

/** The answer of every kill and restore. */
export interface KillChange {
  readonly revision: number;
  readonly action: 'kill' | 'restore';
  readonly kill: KillEntry;
  readonly at: string;
  readonly by: string;
  readonly reason: string;
  readonly audit: unknown;
}

export interface KillState {
  readonly revision: number;
  readonly kills: readonly KillEntry[];
  readonly replicas: readonly ReplicaRecord[];
}

export interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly json: Record<string, unknown>;
}

/** Any admin call with a JSON body (a string is sent as it is), bounded to 10 s. */
export async function adminCall(base: string, method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, token: string | undefined, body?: unknown): Promise<Reply> {
  const res = await request(`${base}${path}`, {
    method,
    headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.body.text();
  let json: Record<string, unknown> = {};
  try {
    json = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
  } catch {
    json = { unparsed: text };
  }
  return { status: res.statusCode, headers: res.headers, json };
}

/** A kill or restore that must succeed: POST (kill) or DELETE (restore) on `path`, e.g. `/admin/models/m/versions/3/kill`. */
export async function change(base: string, token: string, method: 'POST' | 'DELETE', path: string, body: Record<string, unknown>): Promise<KillChange> {
  const r = await adminCall(base, method, path, token, body);
  if (r.status !== 200) throw new Error(`${method} ${path} answered ${r.status}: ${JSON.stringify(r.json)}`);
  return r.json as unknown as KillChange;
}

export async function killState(base: string, token: string): Promise<KillState> {
  const r = await adminCall(base, 'GET', '/admin/kill', token);
  if (r.status !== 200) throw new Error(`GET /admin/kill answered ${r.status}: ${JSON.stringify(r.json)}`);
  return r.json as unknown as KillState;
}

/**
 * Polls GET /admin/kill on `base` (every `everyMs`) until each process in `pids` is listed with
 * `kill.revision >= revision`; returns their records by pid. Throws after `timeoutMs`, naming the
 * replicas that had not applied it.
 */
export async function waitApplied(base: string, token: string, revision: number, pids: readonly number[], timeoutMs = 3000, everyMs = 10): Promise<Map<number, ReplicaRecord>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await killState(base, token);
    const byPid = new Map(state.replicas.map((r) => [r.pid, r]));
    const missing = pids.filter((p) => (byPid.get(p)?.kill.revision ?? -1) < revision);
    if (missing.length === 0) return byPid;
    if (Date.now() > deadline) {
      throw new Error(`revision ${revision} not applied within ${timeoutMs} ms by pids ${missing.join(', ')}: ${JSON.stringify(state.replicas)}`);
    }
    await sleep(everyMs);
  }
}

/** When a replica applied a revision, ms since the epoch on its clock (throws when it says none). */
export function appliedAtMs(record: ReplicaRecord | undefined): number {
  const at = record?.kill.appliedAt;
  if (at === undefined || at === null) throw new Error(`no appliedAt in ${JSON.stringify(record)}`);
  return Date.parse(at);
}

/** One inference as the client saw it. */
export interface Answer {
  readonly id: string;
  /** Date.now() before the request was handed to undici, and after its whole answer was read. */
  readonly sentAt: number;
  readonly receivedAt: number;
  /** 0 when no answer came (a timeout or a socket error: `error` says which). */
  readonly status: number;
  readonly code: string | undefined;
  /** The version whose backend computed the answer (its `version` output), if it names one. */
  readonly tag: string | undefined;
  /** x-model-version and x-route-reason. */
  readonly version: string | undefined;
  readonly reason: string | undefined;
  readonly retryAfter: string | undefined;
  readonly error?: string;
}

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

/** POST /v2/models/{model}[/versions/{pin}]/infer of the tagged model, with request id `id`; never throws. */
export async function taggedInfer(opts: {
  base: string;
  model: string;
  token: string;
  id: string;
  pin?: string;
  headers?: Record<string, string>;
  dispatcher?: Dispatcher;
  timeoutMs?: number;
}): Promise<Answer> {
  const path = `/v2/models/${opts.model}${opts.pin === undefined ? '' : `/versions/${opts.pin}`}/infer`;
  const sentAt = Date.now();
  try {
    const res = await request(`${opts.base}${path}`, {
      method: 'POST',
      body: TAGGED_BODY,
      headers: { authorization: `Bearer ${opts.token}`, 'content-type': 'application/json', 'x-request-id': opts.id, ...opts.headers },
      dispatcher: opts.dispatcher,
      signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
    });
    const text = await res.body.text();
    const receivedAt = Date.now();
    let code: string | undefined;
    if (res.statusCode !== 200) {
      try {
        code = (JSON.parse(text) as { code?: string }).code;
      } catch {
        code = undefined;
      }
    }
    return {
      id: opts.id,
      sentAt,
      receivedAt,
      status: res.statusCode,
      code,
      tag: res.statusCode === 200 ? versionOf(text) : undefined,
      version: one(res.headers['x-model-version']),
      reason: one(res.headers['x-route-reason']),
      retryAfter: one(res.headers['retry-after']),
    };
  } catch (e) {
    return { id: opts.id, sentAt, receivedAt: Date.now(), status: 0, code: undefined, tag: undefined, version: undefined, reason: undefined, retryAfter: undefined, error: (e as Error).message };
  }
}

/** Nearest-rank percentile of `values` (p in 0..100); NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
