/**
 * Which candidate squeezers a model's profile keeps, and each one's threshold, from clean data alone
 * (Xu et al. choose squeezers per dataset; this chooses them per model, at profile time).
 *
 * A squeezer detects an attack by undoing it: the squeezed copy's answer goes back to the original
 * class, and the probability that moves (an L1 distance of about 1 or more between the answers) is
 * the evidence. A squeezer that itself moves clean inputs' answers that far, on more than targetFpr
 * of them, would need a threshold above that evidence: it destroys natural inputs (a 2×2 median on
 * thin pen strokes) and is left out. The rule: a candidate whose own threshold at targetFpr on the
 * clean scores (calibrate.ts) is `MAX_CLEAN_SCORE` or more is dropped; if every one is, the least
 * disruptive is kept so the guard still works at its false-positive rate.
 *
 * The kept squeezers share the false-positive budget: each one's threshold is set by the rule of
 * calibrate.ts at a common rate q, the largest q ≤ targetFpr for which (f + 1)/(n + 1) ≤ targetFpr,
 * f being the clean rows any of them flags out of n. That bound is the split-conformal one: a new
 * clean row, exchangeable with the n, is flagged with probability at most about (f + 1)/(n + 1)
 * (exactly, for one threshold that is an order statistic), where f/n alone runs low. When the
 * squeezers flag different clean rows q comes out near targetFpr / m (m kept), when they flag the
 * same ones nearer targetFpr; both beat one threshold on the largest score, which the squeezer with
 * the heaviest clean tail would set for all. With fewer than 1/targetFpr − 1 rows no threshold can
 * promise the bound; each squeezer then gets targetFpr / m (the union bound, in-sample).
 */
import { calibrateThreshold } from '../../policies/guards/calibrate.js';
import type { Squeezer } from '../../policies/guards/profile.js';

/** A squeezer whose clean scores reach this at the target rate moves natural answers as an attack's reversal does. */
export const MAX_CLEAN_SCORE = 1;

export interface SqueezerChoice {
  /** Indices of the kept candidates, in candidate order. */
  readonly kept: readonly number[];
  /** The common rate each kept squeezer's threshold is set at. */
  readonly rate: number;
  /** Each kept squeezer's threshold, at `rate`. */
  readonly thresholds: readonly number[];
  /** Each candidate's threshold at targetFpr alone: what the rule compared with MAX_CLEAN_SCORE. */
  readonly alone: readonly number[];
}

/** The choice for the clean `scores` of each candidate (`scores[k]`: candidate k's score of every clean row). */
export function selectSqueezers(scores: readonly (readonly number[])[], targetFpr: number): SqueezerChoice {
  if (scores.length === 0) throw new RangeError('no candidate squeezers');
  const alone = scores.map((s) => calibrateThreshold(s, targetFpr));
  let kept = alone.flatMap((t, k) => (t < MAX_CLEAN_SCORE ? [k] : []));
  if (kept.length === 0) kept = [alone.indexOf(Math.min(...alone))];
  const { rate, thresholds } = sharedThresholds(kept.map((k) => scores[k] as number[]), targetFpr);
  return { kept, rate, thresholds, alone };
}

/** Bisection steps for the common rate (its interval halves each step). */
const RATE_STEPS = 40;

/** The kept squeezers' thresholds at the common rate described above. */
export function sharedThresholds(scores: readonly (readonly number[])[], targetFpr: number): { rate: number; thresholds: number[] } {
  const n = scores[0]?.length ?? 0;
  const at = (q: number): number[] => scores.map((s) => calibrateThreshold(s, q));
  const keeps = (t: readonly number[]): boolean => {
    let flagged = 0;
    for (let r = 0; r < n; r++) if (scores.some((s, k) => s[r] > t[k])) flagged++;
    return (flagged + 1) / (n + 1) <= targetFpr;
  };
  if (keeps(at(targetFpr))) return { rate: targetFpr, thresholds: at(targetFpr) };
  let lo = 0;
  let hi = targetFpr;
  for (let i = 0; i < RATE_STEPS; i++) {
    const mid = (lo + hi) / 2;
    if (keeps(at(mid))) lo = mid;
    else hi = mid;
  }
  const rate = lo > 0 ? lo : targetFpr / scores.length;
  return { rate, thresholds: at(rate) };
}

/** A squeezer as people name it: "1-bit Input3", "median 2x2 Input3". */
export function squeezerName(s: Squeezer): string {
  return `${s.kind === 'median' ? `median ${s.size}x${s.size}` : `${s.bits}-bit`} ${s.input}`;
}

/** The rule as applied, in words, for the profile's `calibration.method`. */
export function selectionMethod(candidates: readonly Squeezer[], choice: SqueezerChoice, rows: number, targetFpr: number): string {
  const dropped = candidates.flatMap((s, k) => (choice.kept.includes(k) ? [] : [`${squeezerName(s)} (${choice.alone[k].toPrecision(3)})`]));
  return `squeeze: every one of the ${rows} rows scored (the scores fit nothing) by each candidate squeezer (${candidates.map(squeezerName).join(', ')}); `
    + `a candidate whose threshold alone at targetFpr reaches ${MAX_CLEAN_SCORE} (it moves clean answers as far as an attack's reversal) is left out`
    + `${dropped.length === 0 ? ' (none was)' : `: ${dropped.join(', ')}`}; `
    + `each kept squeezer's own threshold is set by the rule above at a common rate q = ${choice.rate.toPrecision(3)}, the largest with `
    + '(f + 1)/(n + 1) <= targetFpr for the f of the n rows any kept squeezer flags (split-conformal), else targetFpr/m for m kept; '
    + 'a row is flagged when any squeezer\'s score is above its own threshold';
}
