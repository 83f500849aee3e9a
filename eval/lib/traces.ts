/**
 * One model's extraction trace: the 50 benign callers and the attackers, each under a neutral
 * subject name (`caller-00`…, assigned by a seeded shuffle so that nothing in a name or its position
 * gives the role away), merged in time order, and who each subject is.
 */
import { ATTACKER_KINDS, attackerEvents } from './attackers.js';
import { BENIGN_KINDS, benignEvents, type TraceEvent } from './benign-callers.js';
import type { Example } from './datasets.js';
import { requestOf, type ModelSpec } from './models.js';
import { Rng } from './random.js';
import type { FeatureStats } from './reference-stats.js';
import type { ModelClient } from './served-models.js';
import type { Subjects, TraceLine } from './sets.js';

/** The simulated span the benign callers are active in: three hours. */
export const TRACE_HORIZON_MS = 3 * 3_600_000;

/** `seed`: random.ts Rng's (the committed sets' BUILD_SEED when not given). */
export async function buildTrace(
  spec: ModelSpec, stats: readonly FeatureStats[], pool: readonly Example[], client: ModelClient, seed?: string,
): Promise<{ lines: TraceLine[]; subjects: Subjects }> {
  const rng = new Rng(`${spec.name}/trace/subjects`, seed);
  const roles = [
    ...BENIGN_KINDS.map((kind, n) => ({ role: 'benign' as const, kind, n })),
    ...ATTACKER_KINDS.map((kind, n) => ({ role: 'attacker' as const, kind, n })),
  ];
  const names = rng.shuffle(roles.map((_, i) => `caller-${String(i).padStart(2, '0')}`));
  const subjects: Subjects = {};
  const events: TraceEvent[] = [];
  for (let i = 0; i < roles.length; i++) {
    const { role, kind, n } = roles[i];
    subjects[names[i]] = { role, kind };
    if (role === 'benign') {
      events.push(...benignEvents(spec, n, names[i], pool, TRACE_HORIZON_MS, seed));
    } else {
      const start = Math.round(rng.uniform(0, TRACE_HORIZON_MS / (kind === 'mimic' ? 4 : 2)));
      events.push(...await attackerEvents(kind as (typeof ATTACKER_KINDS)[number], names[i], spec, stats, client, pool, start, seed));
    }
  }
  const ordered = events.map((e, i) => ({ e, i })).sort((a, b) => a.e.t - b.e.t || a.i - b.i);
  const sortedSubjects = Object.fromEntries(Object.entries(subjects).sort(([a], [b]) => a.localeCompare(b)));
  return { lines: ordered.map(({ e }) => ({ subject: e.subject, t: e.t, request: requestOf(spec, e.rows) })), subjects: sortedSubjects };
}
