/**
 * A rollout's success criteria, judged on the canary's figures of the current step against the
 * stable version's over the same period (figures.ts). Pure: the controller (controller.ts) reads the
 * figures and the drift verdicts, this file says pass, fail or wait for each criterion, with the
 * figures it judged on, so every decision carries its evidence.
 *
 * - `wait` until the canary has the criterion's `minSamples` in the step: no verdict on a handful
 *   of requests, either way.
 * - `fail` only when the data say so at the configured confidence, held over every look of the step
 *   (statistics.ts one-sided bounds at lookConfidence):
 *   error and guard rates by the lower bound of (canary − stable) against `maxIncrease`;
 *   disagreement by the lower bound of its rate against `maxRate`; a class's share by the lower
 *   bound of its paired shift against `maxClassShift`. p99 latency has no such bound from a
 *   histogram; it needs `minSamples` and fails above stable's p99 × maxRatio + slackMs.
 * - Drift compares the canary's live window with stable's over the same period (not each with its
 *   reference: when what callers send moves away from the reference, both versions drift and
 *   neither is to blame), and fails once a configured part is at drift for the drift section's
 *   `confirmations` looks in a row. It waits while the windows fill and while a drift is confirmed.
 * - Stable's figures are those of the same step when it has `minSamples` there; otherwise (the
 *   last step gives the canary everything) those of the whole rollout, said in `stableScope`.
 */
import type { RolloutCriteria } from '../config.js';
import type { DriftStatus } from '../drift/statistics.js';
import { BOUNDS, percentile } from '../telemetry/arm-figures.js';
import type { SideFigures, StepFigures } from './figures.js';
import { differenceLowerBound, lookConfidence, pairedShiftLowerBound, proportionLowerBound } from './statistics.js';

export type Verdict = 'pass' | 'fail' | 'wait';
export type CriterionName = 'errorRate' | 'latencyP99' | 'guards' | 'drift' | 'disagreement' | 'classShift';

export interface CriterionResult {
  readonly criterion: CriterionName;
  readonly verdict: Verdict;
  /** The canary's value and stable's (rates 0–1, milliseconds, or drift statuses); null: none yet. */
  readonly canary: number | string | null;
  readonly stable: number | string | null;
  /** What the canary's value is held to, in words with the numbers. */
  readonly limit: string;
  /** Samples judged: the canary's in this step, and stable's in `stableScope`. */
  readonly samples: { readonly canary: number; readonly stable: number };
  readonly stableScope: 'step' | 'rollout' | 'paired';
  readonly detail: string;
  /** Whether this criterion's failure also stops the canary through the kill switch. */
  readonly killSwitch: boolean;
}

/**
 * The canary's live drift window judged against stable's live window over the same period (the
 * drift monitor's `report(model, canary, stable)`): each part's status (the worst of its features or
 * outputs), its largest PSI, and how many looks in a row have found a part at drift.
 */
export interface DriftComparison {
  readonly inputs: DriftStatus;
  readonly outputs: DriftStatus;
  readonly psi: { readonly inputs: number; readonly outputs: number };
  readonly samples: { readonly canary: number; readonly stable: number };
  /** Consecutive looks (this one included) with a configured part at drift. */
  readonly streak: number;
  /** Looks in a row a drift must hold (models.<m>.drift.thresholds.confirmations). */
  readonly confirmations: number;
}

export interface JudgeInput {
  readonly criteria: RolloutCriteria;
  readonly step: StepFigures;
  /** The whole rollout's figures (every step so far). */
  readonly rollout: StepFigures;
  /** undefined: no comparison yet; 'not-comparable': the two versions' references bin differently. */
  readonly drift?: DriftComparison | 'not-comparable';
}

const round = (x: number, digits = 4): number => Math.round(x * 10 ** digits) / 10 ** digits;
const pct = (x: number): string => `${round(100 * x, 2)} %`;

function stableOf(input: JudgeInput, minSamples: number, count: (f: SideFigures) => number): { figures: SideFigures; scope: 'step' | 'rollout' } {
  return count(input.step.stable) >= minSamples ? { figures: input.step.stable, scope: 'step' } : { figures: input.rollout.stable, scope: 'rollout' };
}

function rateCriterion(
  name: 'errorRate' | 'guards',
  c: { readonly maxIncrease: number; readonly confidence: number; readonly minSamples: number; readonly killSwitch: boolean },
  input: JudgeInput,
  events: (f: SideFigures) => number,
  trials: (f: SideFigures) => number,
  what: string,
): CriterionResult {
  const canary = input.step.canary;
  const { figures: stable, scope } = stableOf(input, c.minSamples, trials);
  const nc = trials(canary);
  const ns = trials(stable);
  const rc = nc === 0 ? null : round(events(canary) / nc);
  const rs = ns === 0 ? null : round(events(stable) / ns);
  const limit = `canary − stable ≤ ${pct(c.maxIncrease)} (failing at ${pct(c.confidence)} confidence)`;
  const base = { criterion: name, canary: rc, stable: rs, limit, samples: { canary: nc, stable: ns }, stableScope: scope, killSwitch: c.killSwitch } as const;
  if (nc < c.minSamples) return { ...base, verdict: 'wait', detail: `${nc} of ${c.minSamples} canary ${what} needed before judging` };
  const lower = differenceLowerBound(events(canary), nc, events(stable), ns, lookConfidence(c.confidence, nc, c.minSamples));
  if (lower > c.maxIncrease) {
    return { ...base, verdict: 'fail', detail: `the canary's ${what} ${name === 'errorRate' ? 'fail' : 'trip a guard'} at least ${pct(lower)} more often than stable's (${events(canary)} of ${nc} against ${events(stable)} of ${ns}), above the ${pct(c.maxIncrease)} allowed` };
  }
  return { ...base, verdict: 'pass', detail: `${events(canary)} of ${nc} against ${events(stable)} of ${ns}` };
}

function latencyCriterion(c: NonNullable<RolloutCriteria['latencyP99']>, input: JudgeInput): CriterionResult {
  const canary = input.step.canary;
  const { figures: stable, scope } = stableOf(input, c.minSamples, (f) => f.reached);
  const p99 = (f: SideFigures) => (f.reached === 0 ? null : percentile(f.latency, f.reached, 0.99));
  const pc = p99(canary);
  const ps = p99(stable);
  const limitMs = ps === null ? null : ps * c.maxRatio + c.slackMs;
  const base = {
    criterion: 'latencyP99', canary: pc, stable: ps,
    limit: `canary p99 ≤ stable p99 × ${c.maxRatio} + ${c.slackMs} ms${limitMs === null ? '' : ` = ${round(limitMs, 2)} ms`} (histogram buckets ${round(BOUNDS[1] / BOUNDS[0], 2)}× apart)`,
    samples: { canary: canary.reached, stable: stable.reached }, stableScope: scope, killSwitch: false,
  } as const;
  if (canary.reached < c.minSamples) return { ...base, verdict: 'wait', detail: `${canary.reached} of ${c.minSamples} canary answers needed before judging` };
  if (stable.reached < c.minSamples || pc === null || limitMs === null) return { ...base, verdict: 'wait', detail: `stable has ${stable.reached} of ${c.minSamples} answers to compare with` };
  if (pc > limitMs) return { ...base, verdict: 'fail', detail: `the canary's p99 is ${round(pc, 2)} ms, above ${round(limitMs, 2)} ms` };
  return { ...base, verdict: 'pass', detail: `p99 ${round(pc, 2)} ms against ${round(ps as number, 2)} ms` };
}

function driftCriterion(c: NonNullable<RolloutCriteria['drift']>, input: JudgeInput): CriterionResult {
  const d = input.drift;
  const parts = c.on;
  const cmp = d === undefined || d === 'not-comparable' ? undefined : d;
  const base = {
    criterion: 'drift',
    canary: cmp === undefined ? null : parts.map((p) => `${p} ${cmp[p]} (PSI ${round(cmp.psi[p], 3)})`).join(', '),
    stable: cmp === undefined ? null : `its live window (${cmp.samples.stable} samples)`,
    limit: `the canary's ${parts.join(' and ')} not at drift against stable's over the same window, ${cmp?.confirmations ?? 'its confirmations'} looks in a row`,
    samples: { canary: cmp?.samples.canary ?? 0, stable: cmp?.samples.stable ?? 0 }, stableScope: 'step', killSwitch: false,
  } as const;
  if (d === 'not-comparable') return { ...base, verdict: 'wait', detail: 'the two versions\' drift references bin their values differently (build their profiles from the same data)' };
  if (cmp === undefined) return { ...base, verdict: 'wait', detail: 'the drift monitor has not compared the canary with stable yet' };
  // A window still filling is no evidence either way: no step passes on it.
  const filling = parts.filter((p) => cmp[p] === 'insufficient');
  if (filling.length > 0) return { ...base, verdict: 'wait', detail: `the live windows are still filling (${cmp.samples.canary} canary, ${cmp.samples.stable} stable samples; models.<m>.drift.thresholds.minSamples)` };
  const drifting = parts.filter((p) => cmp[p] === 'drift');
  if (drifting.length === 0) return { ...base, verdict: 'pass', detail: 'the canary\'s distributions match stable\'s' };
  if (cmp.streak < cmp.confirmations) return { ...base, verdict: 'wait', detail: `the canary's ${drifting.join(' and ')} differ from stable's: ${cmp.streak} of ${cmp.confirmations} looks in a row, confirming` };
  return { ...base, verdict: 'fail', detail: `the canary's ${drifting.join(' and ')} differ from stable's over the same window (${cmp.streak} looks in a row)` };
}

function disagreementCriteria(c: NonNullable<RolloutCriteria['disagreement']>, input: JudgeInput): CriterionResult[] {
  const cmp = input.step.compared;
  const n = cmp.rows;
  const rate = n === 0 ? null : round(cmp.disagreed / n);
  const wait = n < c.minSamples;
  const samples = { canary: n, stable: n };
  const waiting = `${n} of ${c.minSamples} compared rows needed before judging`;
  const look = lookConfidence(c.confidence, n, c.minSamples);
  const lower = proportionLowerBound(cmp.disagreed, n, look);
  const disagreement: CriterionResult = {
    criterion: 'disagreement', canary: rate, stable: null, samples, stableScope: 'paired', killSwitch: false,
    limit: `share of rows answered differently from stable ≤ ${pct(c.maxRate)} (failing at ${pct(c.confidence)} confidence)`,
    verdict: wait ? 'wait' : lower > c.maxRate ? 'fail' : 'pass',
    detail: wait ? waiting : `${cmp.disagreed} of ${n} rows answered differently${lower > c.maxRate ? `: at least ${pct(lower)}, above the ${pct(c.maxRate)} allowed` : ''}`,
  };
  // The class whose share moved most, with its bound.
  let worst: { name: string; shift: number; lower: number; canary: number; stable: number } | undefined;
  for (const [name, k] of cmp.classes) {
    const shift = n === 0 ? 0 : (k.up - k.down) / n;
    const lb = pairedShiftLowerBound(k.up, k.down, n, look);
    if (worst === undefined || lb > worst.lower || (lb === worst.lower && Math.abs(shift) > Math.abs(worst.shift))) worst = { name, shift, lower: lb, canary: k.canary, stable: k.stable };
  }
  const shiftFails = !wait && worst !== undefined && worst.lower > c.maxClassShift;
  const classShift: CriterionResult = {
    criterion: 'classShift',
    canary: worst === undefined || n === 0 ? null : round(worst.canary / n),
    stable: worst === undefined || n === 0 ? null : round(worst.stable / n),
    samples, stableScope: 'paired', killSwitch: false,
    limit: `every class's share of the answers within ${pct(c.maxClassShift)} of stable's on the same rows (failing at ${pct(c.confidence)} confidence)`,
    verdict: wait ? 'wait' : shiftFails ? 'fail' : 'pass',
    detail: wait ? waiting : worst === undefined ? 'no class compared' : `class ${JSON.stringify(worst.name)}: ${pct(worst.canary / n)} of the canary's answers against ${pct(worst.stable / n)} of stable's${shiftFails ? `: moved at least ${pct(worst.lower)}, above the ${pct(c.maxClassShift)} allowed` : ''}`,
  };
  return [disagreement, classShift];
}

/** Every configured criterion's verdict, in a fixed order. */
export function judge(input: JudgeInput): CriterionResult[] {
  const c = input.criteria;
  const out: CriterionResult[] = [];
  if (c.errorRate !== undefined) out.push(rateCriterion('errorRate', c.errorRate, input, (f) => f.errors, (f) => f.reached, 'requests'));
  if (c.latencyP99 !== undefined) out.push(latencyCriterion(c.latencyP99, input));
  if (c.guards !== undefined) out.push(rateCriterion('guards', c.guards, input, (f) => f.guarded, (f) => f.requests, 'requests'));
  if (c.drift !== undefined) out.push(driftCriterion(c.drift, input));
  if (c.disagreement !== undefined) out.push(...disagreementCriteria(c.disagreement, input));
  return out;
}
