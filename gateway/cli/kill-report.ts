/**
 * What `breakwater kill`, `restore` and `kill status` print: for a person, the change (what, which
 * revision, who, why), one line per replica with the time it took to apply it, and a summary that
 * names every replica that did not; for a script (--json), one JSON document with the same facts and
 * an `ok` flag. Kept apart from the argument handling so the wording is in one place.
 */
import { actionVerb, describeKill } from '../kill-describe.js';
import type { ChangeAnswer, KillState, WaitResult } from './kill-wait.js';

const ms = (n: number | null): string => (n === null ? '?' : `${Math.round(n)} ms`);

/** `host-c:3 (last heartbeat 2150 ms ago)` */
function straggler(r: WaitResult['replicas'][number]): string {
  return `${r.id} (at revision ${r.revision ?? '?'}, last heartbeat ${r.heartbeatAgeMs === null ? 'unknown' : `${ms(r.heartbeatAgeMs)} ago`})`;
}

/** The line for stderr when the change did not reach every replica in time; undefined when it did. */
export function failureLine(change: ChangeAnswer, wait: WaitResult, waitMs: number): string | undefined {
  if (wait.ok) return undefined;
  const pending = wait.replicas.filter((r) => r.status === 'pending');
  if (pending.length === 0) {
    return `revision ${change.revision} was stored, but the fleet could not be read to confirm it: ${wait.pollError ?? 'no replica listed'}`;
  }
  return `${pending.length} of ${wait.replicas.filter((r) => r.status !== 'gone').length} replicas did not apply revision ${change.revision} within ${waitMs} ms: ${pending.map(straggler).join(', ')}`;
}

/** The human report of a kill or restore and of the wait that followed it (stdout). */
export function humanChange(change: ChangeAnswer, wait: WaitResult, waitMs: number): string {
  const verb = actionVerb(change.action);
  const what = change.kill === undefined ? '(no entry in the answer)' : describeKill(change.kill);
  const lines = [`${verb} ${what}: revision ${change.revision} at ${change.at}${change.by === undefined ? '' : ` by ${change.by}`}`];
  if (change.reason !== undefined) lines.push(`reason: ${change.reason}`);
  const width = Math.max(0, ...wait.replicas.map((r) => r.id.length));
  for (const r of wait.replicas) {
    const id = r.id.padEnd(width);
    if (r.status === 'applied') lines.push(`  ${id}  applied in ${ms(r.applyMs)}`);
    else if (r.status === 'gone') lines.push(`  ${id}  left the fleet before applying it (last heartbeat ${ms(r.heartbeatAgeMs)} ago)`);
    else lines.push(`  ${id}  NOT applied: at revision ${r.revision ?? '?'}, last heartbeat ${ms(r.heartbeatAgeMs)} ago`);
  }
  // A failed wait is summed up by failureLine() on stderr (kill.ts), so a terminal shows it once.
  if (wait.ok && wait.replicas.length === 0) {
    lines.push('no replica is listed in the fleet: nothing to wait for');
  } else if (wait.ok) {
    const applied = wait.replicas.filter((r) => r.status === 'applied');
    const slowest = Math.max(...applied.map((r) => r.applyMs ?? 0));
    lines.push(`all ${applied.length} replicas applied revision ${change.revision} (slowest ${ms(slowest)}; waited ${ms(wait.waitedMs)})`);
  }
  return `${lines.join('\n')}\n`;
}

/** The --json document of a kill or restore. */
export function jsonChange(change: ChangeAnswer, wait: WaitResult, waitMs: number): string {
  return `${JSON.stringify({
    ok: wait.ok,
    change: change.raw,
    waitMs,
    waitedMs: wait.waitedMs,
    replicas: wait.replicas,
    notApplied: wait.replicas.filter((r) => r.status === 'pending').map((r) => r.id),
    ...(wait.pollError === undefined ? {} : { pollError: wait.pollError }),
  }, null, 2)}\n`;
}

/** The human report of `GET /admin/kill`. */
export function humanStatus(state: KillState, now = Date.now()): string {
  const lines = [`kill state: revision ${state.revision ?? '?'}`];
  if (state.stale) lines.push('STALE: the gateway asked has not confirmed this state with the store lately (killSwitch.staleAfterMs)');
  if (state.kills.length === 0) lines.push('no kill in force');
  else lines.push(`kills in force (${state.kills.length}):`);
  for (const k of state.kills) {
    lines.push(`  ${describeKill(k)}: revision ${k.revision ?? '?'}, by ${k.by ?? '?'} at ${k.at ?? '?'}${k.reason === undefined ? '' : `: ${k.reason}`}`);
  }
  lines.push(`replicas (${state.replicas.length}):`);
  const width = Math.max(0, ...state.replicas.map((r) => r.id.length));
  for (const r of state.replicas) {
    const beat = r.heartbeatAt === undefined ? Number.NaN : now - Date.parse(r.heartbeatAt);
    const behind = state.revision !== undefined && (r.revision ?? -1) < state.revision ? ' (behind)' : '';
    const applied = typeof r.appliedAt === 'string' ? ` applied at ${r.appliedAt}` : '';
    lines.push(`  ${r.id.padEnd(width)}  revision ${r.revision ?? '?'}${behind}${applied}, last heartbeat ${Number.isNaN(beat) ? '?' : `${Math.max(0, Math.round(beat))} ms`} ago`);
  }
  return `${lines.join('\n')}\n`;
}
