/**
 * The adversarial sets: SimBA run through the served model's HTTP API from clean test records the
 * model answers correctly, one run per source and L∞ budget, keeping only the examples whose answer
 * flipped. MNIST budgets are pixel values (clipped to [0, 1]); tabular budgets are fractions of each
 * continuous feature's reference std (kept within the reference's range; categories and integer
 * inputs unchanged). Queries per example are bounded, and so the run time.
 */
import type { Example } from './datasets.js';
import { requestOf, rowsOf, type ModelSpec } from './models.js';
import { Rng } from './random.js';
import type { FeatureStats } from './reference-stats.js';
import { mapConcurrent, type ModelClient } from './served-models.js';
import type { SetRecord } from './sets.js';
import { simba } from './simba.js';

export interface Budget {
  /** The attack's name in records, e.g. "simba-linf-0.2" or "simba-linf-0.25std". */
  readonly attack: string;
  readonly eps: readonly number[];
  readonly bounds: readonly (readonly [number, number])[];
}

/** The budgets for a model: MNIST 0.1/0.2/0.3; tabular 0.1/0.25/0.5 × each continuous feature's std. */
export function budgetsOf(spec: ModelSpec, stats: readonly FeatureStats[]): Budget[] {
  if (spec.name === 'mnist') {
    return [0.1, 0.2, 0.3].map((b) => ({ attack: `simba-linf-${b}`, eps: stats.map(() => b), bounds: stats.map(() => [0, 1] as const) }));
  }
  return [0.1, 0.25, 0.5].map((f) => ({
    attack: `simba-linf-${f}std`,
    eps: stats.map((s) => (s.kind === 'continuous' ? f * s.std : 0)),
    bounds: stats.map((s) => (s.kind === 'continuous' ? [s.min, s.max] as const : [0, 0] as const)),
  }));
}

/** Limits that keep the build to minutes: sources per model and queries per example. */
export const ADVERSARIAL_LIMITS = { mnistSourcesPerClass: 30, maxQueries: { mnist: 1000, titanic: 200, iris: 200 }, concurrency: 8 } as const;

/** Figures of one budget's run, for the manifest and the build's report. */
export interface AttackFigures {
  readonly attack: string;
  readonly sources: number;
  readonly flipped: number;
  /** Queries per flipped example: median and max. */
  readonly medianQueries: number;
  readonly maxQueries: number;
}

/**
 * The clean records SimBA starts from: those the served model answers correctly (MNIST: 30 per
 * class, drawn by a seeded shuffle).
 */
export async function adversarialSources(spec: ModelSpec, test: readonly Example[], client: ModelClient): Promise<Example[]> {
  const labels = await mapConcurrent(test, ADVERSARIAL_LIMITS.concurrency, async (e) => (await client.labels([e.row]))[0]);
  const correct = test.filter((e, i) => labels[i] === e.label);
  if (spec.name !== 'mnist') return correct;
  const rng = new Rng('mnist/adversarial/sources');
  return [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].flatMap((d) => rng.shuffle(correct.filter((e) => e.label === d)).slice(0, ADVERSARIAL_LIMITS.mnistSourcesPerClass));
}

/** Runs SimBA from every source at one budget; the flipped examples as records, and the figures. */
export async function attackAtBudget(
  spec: ModelSpec, sources: readonly Example[], budget: Budget, client: ModelClient,
): Promise<{ records: SetRecord[]; figures: AttackFigures }> {
  const maxQueries = ADVERSARIAL_LIMITS.maxQueries[spec.name];
  const results = await mapConcurrent(sources, ADVERSARIAL_LIMITS.concurrency, (src) => simba(
    src.row,
    async (row) => (await client.probabilities([row]))[0],
    { eps: budget.eps, bounds: budget.bounds, maxQueries, decimals: spec.name === 'mnist' ? 3 : 4, rng: new Rng(`${spec.name}/simba/${budget.attack}/${src.id}`) },
  ));
  const records: SetRecord[] = [];
  const queries: number[] = [];
  results.forEach((r, i) => {
    if (!r.flipped) return;
    const src = sources[i];
    queries.push(r.queries);
    records.push({ id: `${src.id}-${budget.attack}`, model: spec.name, set: 'adversarial', label: src.label, attack: budget.attack, source: src.id, request: requestOf(spec, [r.row]) });
  });
  queries.sort((a, b) => a - b);
  return {
    records,
    figures: { attack: budget.attack, sources: sources.length, flipped: records.length, medianQueries: queries[Math.floor(queries.length / 2)] ?? 0, maxQueries: queries.at(-1) ?? 0 },
  };
}

/** Replays each record through the API: its answer must differ from its source's (the flip holds as stored). */
export async function confirmFlips(spec: ModelSpec, records: readonly SetRecord[], sources: ReadonlyMap<string, Example>, client: ModelClient): Promise<void> {
  await mapConcurrent(records, ADVERSARIAL_LIMITS.concurrency, async (r) => {
    const src = sources.get(r.source as string);
    if (src === undefined) throw new Error(`${r.id}: no source ${r.source}`);
    const [before] = await client.labels([src.row]);
    const [after] = await client.labels(rowsOf(spec, r.request));
    if (before === after) throw new Error(`${r.id}: the answer does not flip when replayed`);
  });
}
