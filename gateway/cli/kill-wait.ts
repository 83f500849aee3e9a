/**
 * What `breakwater kill` and `restore` wait for: every live replica having applied the change. The
 * answer of a change carries the kill state's `revision`; `GET /admin/kill` lists each replica of the
 * fleet (shared through the store, so any one gateway lists them all) with the revision it has
 * applied and when. A replica whose revision reached the change's has applied it. The wait polls
 * (every 25 ms by default) until all have, or until --wait-ms has passed; whatever stands then is the
 * result, so an on-call engineer learns which replica did not follow and how long ago it last spoke.
 *
 * The wire shapes are read defensively (the CLI may talk to another gateway version): what is not
 * what the contract says is left out of the figures rather than trusted.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { WireKillEntry } from '../kill-describe.js';
import { AdminApiError, adminCall, type AdminTarget } from './admin-call.js';

/** A kill in force, as the gateway describes it (fields beyond these are kept for --json). */
export type { WireKillEntry } from '../kill-describe.js';

/** The answer of a kill or restore (POST or DELETE). */
export interface ChangeAnswer {
  readonly revision: number;
  readonly action: string;
  readonly kill: WireKillEntry | undefined;
  readonly at: string;
  readonly by: string | undefined;
  readonly reason: string | undefined;
  /** The answer as received, for --json. */
  readonly raw: unknown;
}

export interface WireReplica {
  readonly id: string;
  readonly heartbeatAt: string | undefined;
  readonly revision: number | undefined;
  readonly appliedAt: string | null | undefined;
}

/** `GET /admin/kill`. */
export interface KillState {
  readonly revision: number | undefined;
  /** The answering replica has not confirmed the state with the store for killSwitch.staleAfterMs. */
  readonly stale: boolean;
  readonly kills: readonly WireKillEntry[];
  readonly replicas: readonly WireReplica[];
  readonly raw: unknown;
}

const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const str = (x: unknown): string | undefined => (typeof x === 'string' ? x : undefined);
const num = (x: unknown): number | undefined => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);

function readEntry(x: unknown): WireKillEntry | undefined {
  return isRecord(x) ? (x as WireKillEntry) : undefined;
}

/** The answer of a change; throws when it lacks what the wait needs (a revision and a time). */
export function readChange(x: unknown): ChangeAnswer {
  const r = isRecord(x) ? x : {};
  const revision = num(r.revision);
  const at = str(r.at);
  if (revision === undefined || at === undefined || Number.isNaN(Date.parse(at))) {
    throw new Error(`the gateway's answer has no revision and time to wait for: ${JSON.stringify(x).slice(0, 200)}`);
  }
  return { revision, action: str(r.action) ?? '', kill: readEntry(r.kill), at, by: str(r.by), reason: str(r.reason), raw: x };
}

export function readKillState(x: unknown): KillState {
  const r = isRecord(x) ? x : {};
  const kills = Array.isArray(r.kills) ? r.kills.flatMap((k) => readEntry(k) ?? []) : [];
  const replicas: WireReplica[] = [];
  for (const rep of Array.isArray(r.replicas) ? r.replicas : []) {
    if (!isRecord(rep) || str(rep.id) === undefined) continue;
    const kill = isRecord(rep.kill) ? rep.kill : {};
    const appliedAt = kill.appliedAt === null ? null : str(kill.appliedAt);
    replicas.push({ id: rep.id as string, heartbeatAt: str(rep.heartbeatAt), revision: num(kill.revision), appliedAt });
  }
  replicas.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { revision: num(r.revision), stale: r.stale === true, kills, replicas, raw: x };
}

/** `applied`: at or past the change's revision; `pending`: listed, not there yet; `gone`: left the list meanwhile. */
export type ReplicaStatus = 'applied' | 'pending' | 'gone';

export interface ReplicaResult {
  readonly id: string;
  readonly status: ReplicaStatus;
  readonly revision: number | null;
  readonly appliedAt: string | null;
  /** appliedAt - the change's `at` (the replica's clock against the answering gateway's). */
  readonly applyMs: number | null;
  /** How long before the last poll (by this machine's clock) the replica last wrote its record. */
  readonly heartbeatAgeMs: number | null;
}

export interface WaitResult {
  /** Every replica listed at the end applied the change (one that left the list does not count against it). */
  readonly ok: boolean;
  readonly waitedMs: number;
  readonly polls: number;
  readonly replicas: readonly ReplicaResult[];
  /** The last poll's failure, when no poll after it succeeded. */
  readonly pollError: string | undefined;
}

export interface WaitOptions {
  readonly waitMs: number;
  readonly pollMs?: number;
}

function resultOf(rep: WireReplica, change: ChangeAnswer, status: ReplicaStatus, polledAt: number): ReplicaResult {
  const applied = status !== 'pending' && rep.revision !== undefined && rep.revision >= change.revision;
  const appliedAt = applied && typeof rep.appliedAt === 'string' ? rep.appliedAt : null;
  const applyMs = appliedAt === null ? null : Date.parse(appliedAt) - Date.parse(change.at);
  const beat = rep.heartbeatAt === undefined ? Number.NaN : Date.parse(rep.heartbeatAt);
  return {
    id: rep.id,
    status,
    revision: rep.revision ?? null,
    appliedAt,
    applyMs: Number.isNaN(applyMs) ? null : applyMs,
    heartbeatAgeMs: Number.isNaN(beat) ? null : Math.max(0, polledAt - beat),
  };
}

/** Polls `GET /admin/kill` until every listed replica reached `change.revision`, at most `waitMs`. */
export async function waitForFleet(target: AdminTarget, change: ChangeAnswer, opts: WaitOptions): Promise<WaitResult> {
  const pollMs = opts.pollMs ?? 25;
  const started = Date.now();
  const deadline = started + opts.waitMs;
  // Bounded in count as well as time: one poll per period, plus the first and a last one.
  const maxPolls = Math.ceil(opts.waitMs / pollMs) + 2;
  const seen = new Map<string, WireReplica>();
  let listed: readonly WireReplica[] | undefined;
  let polledAt = started;
  let pollError: string | undefined;
  let polls = 0;
  while (polls < maxPolls) {
    polls++;
    try {
      // A poll may outlive the deadline by its own bound, so a slow answer is still read once.
      const state = readKillState(await adminCall(target, { method: 'GET', path: '/admin/kill', timeoutMs: Math.min(5_000, Math.max(500, deadline - Date.now())) }));
      polledAt = Date.now();
      listed = state.replicas;
      for (const rep of listed) seen.set(rep.id, rep);
      pollError = undefined;
      if (listed.every((rep) => rep.revision !== undefined && rep.revision >= change.revision)) break;
    } catch (e) {
      // A refusal will not change by asking again; a blip (5xx, timeout, reset) may.
      if (e instanceof AdminApiError && e.status < 500) throw e;
      pollError = (e as Error).message;
    }
    const left = deadline - Date.now();
    if (left <= 0) break;
    await sleep(Math.min(pollMs, left));
  }
  const current = new Set((listed ?? []).map((r) => r.id));
  const replicas = [...seen.values()]
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((rep) => {
      const reached = rep.revision !== undefined && rep.revision >= change.revision;
      return resultOf(rep, change, reached ? 'applied' : current.has(rep.id) ? 'pending' : 'gone', polledAt);
    });
  const ok = listed !== undefined && pollError === undefined && replicas.every((r) => r.status !== 'pending');
  return { ok, waitedMs: Date.now() - started, polls, replicas, pollError };
}
