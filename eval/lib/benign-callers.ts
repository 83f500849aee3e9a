/**
 * The 50 benign callers of an extraction trace: each replays real held-out test rows with the
 * pacing of a real client: interactive users (Poisson arrivals, a session each), scheduled batch
 * jobs (a burst of rows every few minutes), backfills (walking the whole table in order, as fast as
 * they may), a health probe (one fixed row every half minute) and an analyst's notebook (bursts of
 * requests, then silence). Kinds and rates are listed in eval/sets/README.md.
 */
import type { Example } from './datasets.js';
import type { ModelSpec, Row } from './models.js';
import { Rng } from './random.js';

/** Rows one subject sent at time t (ms); split into requests of at most the model's batch. */
export interface TraceEvent {
  readonly subject: string;
  readonly t: number;
  readonly rows: readonly Row[];
}

/** Appends the rows sent at `t`: one request when the model takes the batch, else one per `maxBatch` rows `spacingMs` apart. */
export function send(events: TraceEvent[], spec: ModelSpec, subject: string, t: number, rows: readonly Row[], spacingMs: number): number {
  const per = Math.min(spec.maxBatch, 64);
  let at = t;
  for (let i = 0; i < rows.length; i += per) {
    events.push({ subject, t: Math.round(at), rows: rows.slice(i, i + per) });
    if (i + per < rows.length) at += spacingMs;
  }
  return at;
}

export const BENIGN_KINDS = [
  ...Array<string>(38).fill('interactive'),
  ...Array<string>(6).fill('batch'),
  ...Array<string>(4).fill('backfill'),
  'probe',
  'notebook',
];

/** The events of benign caller number `n` (of BENIGN_KINDS) over [0, horizonMs); `seed` as random.ts Rng's. */
export function benignEvents(spec: ModelSpec, n: number, subject: string, pool: readonly Example[], horizonMs: number, seed?: string): TraceEvent[] {
  const kind = BENIGN_KINDS[n];
  const rng = new Rng(`${spec.name}/trace/benign/${n}`, seed);
  const events: TraceEvent[] = [];
  const rows = (k: number): Row[] => Array.from({ length: k }, () => rng.pick(pool).row);
  // MNIST takes one image per request: a burst goes as back-to-back single requests.
  const burstSpacing = (): number => rng.uniform(5, 20);
  if (kind === 'interactive') {
    const start = rng.uniform(0, horizonMs * 0.7);
    const end = Math.min(horizonMs, start + rng.uniform(10 * 60_000, horizonMs));
    const meanGap = Math.exp(rng.uniform(Math.log(20_000), Math.log(300_000)));
    for (let t = start + rng.exponential(meanGap); t < end; t += rng.exponential(meanGap)) {
      const sent = rows(rng.next() < 0.8 ? 1 : 2 + rng.int(4));
      send(events, spec, subject, t, sent, burstSpacing());
      if (rng.next() < 0.02) send(events, spec, subject, t + rng.uniform(1_000, 3_000), sent, burstSpacing()); // a retry after a timeout
    }
  } else if (kind === 'batch') {
    const period = rng.uniform(10, 30) * 60_000;
    for (let t = rng.uniform(0, period); t < horizonMs; t += period * rng.uniform(0.9, 1.1)) {
      send(events, spec, subject, t, rows(16 + rng.int(113)), burstSpacing());
    }
  } else if (kind === 'backfill') {
    let t = rng.uniform(0, horizonMs * 0.6);
    const chunk = 32 + rng.int(33);
    for (let i = 0; i < pool.length && t < horizonMs; i += chunk) {
      t = send(events, spec, subject, t, pool.slice(i, i + chunk).map((e) => e.row), rng.uniform(10, 30)) + rng.uniform(200, 1000);
    }
  } else if (kind === 'probe') {
    const row = rng.pick(pool).row;
    const period = rng.pick([30_000, 60_000]);
    for (let t = rng.uniform(0, period); t < horizonMs; t += period) send(events, spec, subject, t, [row], 0);
  } else {
    let t = rng.uniform(0, horizonMs * 0.5);
    while (t < horizonMs) {
      for (let k = 10 + rng.int(41); k > 0 && t < horizonMs; k--) {
        send(events, spec, subject, t, rows(1), 0);
        t += rng.exponential(200);
      }
      t += rng.uniform(5, 40) * 60_000;
    }
  }
  return events;
}
