/**
 * What `npm run eval:guards` prints for a replayed extraction trace (extraction-replay.ts): per
 * attacker, the queries (rows) it had sent when first flagged; the benign callers flagged, if any;
 * and the issue's targets: every attacker flagged, within 200 queries at the median, and none of
 * the benign callers ever flagged. Pure: it judges outcomes, so the same rules apply to a user's traces.
 */
import type { SubjectOutcome } from './extraction-replay.js';
import type { Target } from './guard-report.js';

/** The median attacker must be flagged within this many queries (issue 10). */
export const MEDIAN_QUERIES_TARGET = 200;

const after = (o: SubjectOutcome): string => (o.flaggedAfter === undefined ? 'never' : String(o.flaggedAfter));

/** The highest signal score a subject reached, as `signal score` (how near it came to a flag). */
function closest(o: SubjectOutcome): { signal: string; score: number } {
  let best = { signal: '—', score: 0 };
  for (const [signal, score] of Object.entries(o.peak)) if ((score ?? 0) > best.score) best = { signal, score: score ?? 0 };
  return best;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 2 || i === 3 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

/** The median of queries-to-flag over attackers, a never-flagged one counting as infinitely many. */
export function medianQueriesToFlag(outcomes: readonly SubjectOutcome[]): number {
  const n = outcomes.filter((o) => o.role === 'attacker').map((o) => o.flaggedAfter ?? Infinity).sort((a, b) => a - b);
  if (n.length === 0) return NaN;
  const m = n.length >> 1;
  return n.length % 2 === 1 ? n[m] : (n[m - 1] + n[m]) / 2;
}

/** The table of one model's trace. */
export function extractionTable(model: string, outcomes: readonly SubjectOutcome[], note: string): string {
  const attackers = outcomes.filter((o) => o.role === 'attacker');
  const benign = outcomes.filter((o) => o.role === 'benign');
  const flagged = benign.filter((o) => o.flaggedAfter !== undefined);
  const out = [`${model} extraction: ${note}`];
  out.push(...table(['attacker', 'subject', 'rows sent', 'flagged after (rows)', 'signals (or the closest one, its peak score)'], attackers.map((o) => {
    const c = closest(o);
    return [o.kind, o.subject, String(o.rows), after(o), o.flaggedAfter === undefined ? `${c.signal} ${c.score.toFixed(2)}` : o.signals.join(', ')];
  })));
  out.push(`median queries to flag over attackers: ${medianQueriesToFlag(outcomes)}`);
  const rows = benign.reduce((a, o) => a + o.rows, 0);
  out.push(`benign callers: ${benign.length} (${rows} rows), ${flagged.length} flagged`);
  for (const o of flagged) out.push(`  flagged: ${o.kind} ${o.subject} after ${o.flaggedAfter} of ${o.rows} rows (${o.signals.join(', ')})`);
  const near = [...benign].filter((o) => o.flaggedAfter === undefined).sort((a, b) => closest(b).score - closest(a).score)[0];
  if (near !== undefined) {
    const c = closest(near);
    out.push(`  closest unflagged: ${near.kind} ${near.subject} (${near.rows} rows), ${c.signal} score ${c.score.toFixed(2)} of 1`);
  }
  return out.join('\n');
}

/** The issue's extraction targets for one model. */
export function extractionTargets(model: string, outcomes: readonly SubjectOutcome[]): Target[] {
  const attackers = outcomes.filter((o) => o.role === 'attacker');
  const benign = outcomes.filter((o) => o.role === 'benign');
  const median = medianQueriesToFlag(outcomes);
  const never = attackers.filter((o) => o.flaggedAfter === undefined);
  const flagged = benign.filter((o) => o.flaggedAfter !== undefined);
  return [
    {
      name: `${model}: every extraction attacker flagged, within ${MEDIAN_QUERIES_TARGET} queries at the median`,
      value: `${attackers.length - never.length} of ${attackers.length} flagged, median ${median} (${attackers.map((o) => `${o.kind} ${after(o)}`).join(', ')})`,
      met: attackers.length > 0 && never.length === 0 && median <= MEDIAN_QUERIES_TARGET,
    },
    {
      name: `${model}: no benign caller ever flagged as extraction`,
      value: `${flagged.length} of ${benign.length} flagged${flagged.length > 0 ? ` (${flagged.map((o) => `${o.kind} ${o.subject}`).join(', ')})` : ''}`,
      met: benign.length > 0 && flagged.length === 0,
    },
  ];
}
