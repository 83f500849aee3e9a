/**
 * What `npm run eval:drift` prints (issue 11): a table with a line per stream (its kind, the true PSI
 * of its shift, the detection delay in requests after the change point, false alarms and warnings
 * on its unshifted requests), the totals per million unshifted requests, and the issue's targets:
 *
 * - 0 false alarms over at least 1,000,000 unshifted requests (controls and the requests before
 *   each change point, all streams together);
 * - every sudden shift whose true PSI (on some feature or output) is ≥ 0.2 detected within 2,000
 *   requests after its change point;
 * - every gradual shift whose true PSI is ≥ 0.2 detected (its delay reported; the same floor as the
 *   sudden shifts', so a user's "gradual" stream that hardly moves is not counted against the monitor).
 * Pure: it judges outcomes, so the same rules apply to a user's streams.
 */
import type { Target } from './guard-report.js';
import type { PollSummary } from './drift-polls.js';
import type { StreamKind } from './drift-streams.js';
import type { NamedPsi } from './stream-psi.js';

export const FALSE_ALARMS_TARGET = 0;
export const UNSHIFTED_TARGET = 1_000_000;
export const PSI_FLOOR = 0.2;
export const SUDDEN_DELAY_TARGET = 2_000;

/** One replayed stream. */
export interface StreamOutcome {
  readonly name: string;
  readonly model: string;
  readonly kind: StreamKind;
  readonly summary: PollSummary;
  /** The largest PSI of the shifted part (from the last change point; a control: all of it); undefined when unknown. */
  readonly truePsi?: NamedPsi;
}

const fmt = (x: number | undefined, digits = 3): string => (x === undefined ? '—' : x >= 100 ? x.toFixed(0) : x.toFixed(digits));
const perMillion = (n: number, of: number): string => (of === 0 ? '—' : ((n / of) * 1e6).toFixed(1));

function table(header: readonly string[], rows: readonly (readonly string[])[], right: ReadonlySet<number>): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

/** Requests before detection, or `never` / `—` (a control has no change). */
function delay(o: StreamOutcome, which: 'delay' | 'warningDelay'): string {
  if (o.summary.changeAt === undefined) return '—';
  const d = o.summary[which];
  return d === undefined ? 'never' : String(d);
}

export function driftTable(outcomes: readonly StreamOutcome[]): string {
  const rows = outcomes.map((o) => {
    const s = o.summary;
    const atDetection = s.detected?.worst === undefined ? '—' : `${s.detected.worst.name} ${fmt(s.detected.worst.psi)}`;
    return [
      o.name, o.kind, String(s.requests), s.changeAt === undefined ? '—' : String(s.changeAt),
      o.truePsi === undefined ? '—' : fmt(o.truePsi.psi), o.truePsi?.name ?? '—',
      delay(o, 'delay'), delay(o, 'warningDelay'), String(s.unshifted), String(s.falseAlarms), String(s.falseWarnings),
      atDetection, s.finalStatus ?? '—',
    ];
  });
  const header = ['stream', 'kind', 'requests', 'change at', 'true PSI', 'on', 'drift after', 'warning after', 'unshifted', 'false alarms', 'false warnings', 'at detection (PSI)', 'final'];
  const out = table(header, rows, new Set([2, 3, 4, 6, 7, 8, 9, 10]));
  const t = totals(outcomes);
  out.push(`unshifted requests: ${t.unshifted}; false alarms: ${t.falseAlarms} (${perMillion(t.falseAlarms, t.unshifted)} per million); false warnings: ${t.falseWarnings} (${perMillion(t.falseWarnings, t.unshifted)} per million)`);
  return out.join('\n');
}

export function totals(outcomes: readonly StreamOutcome[]): { unshifted: number; falseAlarms: number; falseWarnings: number } {
  return outcomes.reduce((a, o) => ({
    unshifted: a.unshifted + o.summary.unshifted,
    falseAlarms: a.falseAlarms + o.summary.falseAlarms,
    falseWarnings: a.falseWarnings + o.summary.falseWarnings,
  }), { unshifted: 0, falseAlarms: 0, falseWarnings: 0 });
}

/** The issue's targets; `unshiftedNeeded` is 1,000,000 except in a --quick development run (which says so). */
export function driftTargets(outcomes: readonly StreamOutcome[], unshiftedNeeded = UNSHIFTED_TARGET): Target[] {
  const t = totals(outcomes);
  const quick = unshiftedNeeded < UNSHIFTED_TARGET ? ` (--quick: ${unshiftedNeeded} needed; the full run needs ${UNSHIFTED_TARGET})` : '';
  const targets: Target[] = [{
    name: `${FALSE_ALARMS_TARGET} false alarms over ≥ ${unshiftedNeeded} unshifted requests${quick}`,
    value: `${t.falseAlarms} false alarms over ${t.unshifted} unshifted requests`,
    met: t.falseAlarms <= FALSE_ALARMS_TARGET && t.unshifted >= unshiftedNeeded,
  }];
  for (const o of outcomes) {
    if (o.kind === 'control') continue;
    const psi = o.truePsi === undefined ? 'true PSI unknown' : `true PSI ${fmt(o.truePsi.psi)} on ${o.truePsi.name}`;
    const judged = o.truePsi === undefined || o.truePsi.psi >= PSI_FLOOR;
    if (!judged) continue;
    const d = o.summary.delay;
    if (o.kind === 'sudden') {
      targets.push({
        name: `${o.name}: sudden shift detected within ${SUDDEN_DELAY_TARGET} requests`,
        value: `${d === undefined ? 'never detected' : `drift after ${d} requests`} (${psi})`,
        met: o.truePsi !== undefined && d !== undefined && d <= SUDDEN_DELAY_TARGET,
      });
    } else {
      targets.push({
        name: `${o.name}: gradual shift detected`,
        value: `${d === undefined ? 'never detected' : `drift after ${d} requests from the ramp's start`} (${psi})`,
        met: o.truePsi !== undefined && d !== undefined,
      });
    }
  }
  return targets;
}

/** The targets' lines and the last line, `targets met: N of M`. */
export function targetLines(targets: readonly Target[]): string {
  const lines = ['targets', ...targets.map((t) => `  ${t.met ? 'met   ' : 'MISSED'}  ${t.name}: ${t.value}`)];
  lines.push(`targets met: ${targets.filter((t) => t.met).length} of ${targets.length}`);
  return lines.join('\n');
}
