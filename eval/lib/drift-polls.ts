/**
 * What a stream's poll log says about the drift monitor (issue 11): the runner polls
 * `GET /admin/models/{m}/drift` after every block of requests has been answered and logs the
 * overall status with the number of requests answered. From the log and the stream's change point:
 *
 * - **false alarms**: transitions into `drift` (from any other status; the first poll after the reset
 *   counts as coming from `insufficient`) on polls whose window held unshifted requests only: every
 *   poll of a control, and the polls at or before the change point of a shifted stream;
 * - **false warnings**: the same for transitions into `warning` or `drift` from `ok`/`insufficient`;
 * - **detection delay**: requests answered at the first poll after the change point whose status is
 *   `drift`, minus the change point (so its resolution is the poll interval); likewise for the
 *   first `warning` or `drift`.
 * Pure: it judges logs, so the same rules apply to a user's streams.
 */
export type DriftStatus = 'insufficient' | 'ok' | 'warning' | 'drift';
export const DRIFT_STATUSES: readonly DriftStatus[] = ['insufficient', 'ok', 'warning', 'drift'];

/** One poll: the requests of the stream answered before it, and what the endpoint said. */
export interface Poll {
  readonly at: number;
  readonly status: DriftStatus;
  /** The live window's sample count (`window.samples`). */
  readonly samples?: number;
  /** The feature or output with the largest PSI in the answer, for the table's "at detection" column. */
  readonly worst?: { readonly name: string; readonly psi: number; readonly status?: string };
}

export interface PollSummary {
  readonly requests: number;
  /** The first change point; undefined for a control. */
  readonly changeAt: number | undefined;
  /** Requests before the change point (all of a control's). */
  readonly unshifted: number;
  readonly falseAlarms: number;
  readonly falseWarnings: number;
  /** The first poll after the change point with status `drift` (undefined: never). */
  readonly detected?: Poll;
  readonly delay?: number;
  /** The first poll after the change point with status `warning` or `drift`. */
  readonly warned?: Poll;
  readonly warningDelay?: number;
  readonly polls: number;
  readonly finalStatus: DriftStatus | undefined;
}

const alarming = (s: DriftStatus): boolean => s === 'warning' || s === 'drift';

/** The summary of one stream's poll log (polls in the order made). */
export function summarisePolls(polls: readonly Poll[], requests: number, changeAt: readonly number[]): PollSummary {
  const change = changeAt[0];
  const unshiftedUpTo = change ?? requests;
  let falseAlarms = 0;
  let falseWarnings = 0;
  let previous: DriftStatus = 'insufficient';
  let detected: Poll | undefined;
  let warned: Poll | undefined;
  for (const p of polls) {
    if (p.at <= unshiftedUpTo) {
      if (p.status === 'drift' && previous !== 'drift') falseAlarms++;
      if (alarming(p.status) && !alarming(previous)) falseWarnings++;
    } else {
      if (detected === undefined && p.status === 'drift') detected = p;
      if (warned === undefined && alarming(p.status)) warned = p;
    }
    previous = p.status;
  }
  return {
    requests,
    changeAt: change,
    unshifted: Math.min(unshiftedUpTo, requests),
    falseAlarms,
    falseWarnings,
    ...(detected !== undefined && change !== undefined ? { detected, delay: detected.at - change } : {}),
    ...(warned !== undefined && change !== undefined ? { warned, warningDelay: warned.at - change } : {}),
    polls: polls.length,
    finalStatus: polls.at(-1)?.status,
  };
}

/** Checks a drift endpoint's JSON answer and makes a poll of it; throws naming what is wrong. */
export function pollOf(at: number, body: unknown): Poll {
  const b = body as { status?: unknown; window?: { samples?: unknown }; features?: unknown; outputs?: unknown } | null;
  if (typeof b !== 'object' || b === null || !DRIFT_STATUSES.includes(b.status as DriftStatus)) {
    throw new Error(`the drift endpoint answered without a status of ${DRIFT_STATUSES.join('/')}: ${JSON.stringify(body).slice(0, 300)}`);
  }
  let worst: Poll['worst'];
  for (const list of [b.features, b.outputs]) {
    if (!Array.isArray(list)) continue;
    for (const f of list as { name?: unknown; psi?: unknown; status?: unknown }[]) {
      if (typeof f?.name !== 'string' || typeof f.psi !== 'number' || !Number.isFinite(f.psi)) continue;
      if (worst === undefined || f.psi > worst.psi) worst = { name: f.name, psi: f.psi, ...(typeof f.status === 'string' ? { status: f.status } : {}) };
    }
  }
  const samples = b.window?.samples;
  return { at, status: b.status as DriftStatus, ...(typeof samples === 'number' ? { samples } : {}), ...(worst !== undefined ? { worst } : {}) };
}
