/**
 * How the hostile-input suite runs its properties: one seed for the whole run (env
 * BREAKWATER_PROPERTY_SEED, else the committed default), a fixed number of runs per property
 * (env BREAKWATER_PROPERTY_RUNS multiplies them), a time limit per property as a safety net, and
 * the seed, runs and outcome counts printed as test diagnostics. A failure throws fast-check's own
 * report: the counterexample (shrunk) and the seed and path that replay it.
 */
import type { TestContext } from 'node:test';
import fc from 'fast-check';

/** The committed default seed; the closing note of issue 8 quotes runs made with it. */
export const DEFAULT_SEED = 20_260_808;

function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got ${JSON.stringify(raw)}`);
  return n;
}

export const SEED = intFromEnv('BREAKWATER_PROPERTY_SEED', DEFAULT_SEED);
export const RUNS_FACTOR = Math.max(1, intFromEnv('BREAKWATER_PROPERTY_RUNS', 1));

/** Counts of outcomes a property saw (e.g. `200`, `400 BAD_JSON`), for the diagnostics. */
export class Outcomes {
  readonly #counts = new Map<string, number>();
  add(what: string): void {
    this.#counts.set(what, (this.#counts.get(what) ?? 0) + 1);
  }
  toString(): string {
    return [...this.#counts].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k}×${n}`).join(' ');
  }
}

export interface RunOptions {
  /** Runs with the default factor; BREAKWATER_PROPERTY_RUNS multiplies it. */
  readonly numRuns: number;
  /** Safety net per property (scaled with the runs); a property cut short is reported, not passed silently. */
  readonly timeLimitMs?: number;
}

/**
 * Checks `property` and reports seed, runs and outcomes with `t.diagnostic`. Interruption by the
 * time limit before any failure is reported as a diagnostic (the runs done are counted); a failure
 * (shrunk as far as the time limit allows) throws.
 */
export async function runProperty<T>(
  t: TestContext,
  arbitrary: fc.Arbitrary<T>,
  predicate: (value: T) => Promise<void>,
  opts: RunOptions,
  outcomes?: Outcomes,
): Promise<void> {
  const numRuns = opts.numRuns * RUNS_FACTOR;
  const timeLimit = (opts.timeLimitMs ?? 15_000) * RUNS_FACTOR;
  const started = performance.now();
  const details = await fc.check(fc.asyncProperty(arbitrary, predicate), {
    seed: SEED,
    numRuns,
    interruptAfterTimeLimit: timeLimit,
    markInterruptAsFailure: false,
  });
  const ms = Math.round(performance.now() - started);
  t.diagnostic(`seed=${details.seed} runs=${details.numRuns}/${numRuns} shrinks=${details.numShrinks} ` +
    `interrupted=${details.interrupted} ${ms} ms${outcomes === undefined ? '' : ` answers (shrinking included): ${outcomes}`}`);
  if (details.failed) {
    const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    throw new Error(`${cause}\n\n${fc.defaultReportMessage(details) ?? 'property failed'}`);
  }
}
