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
 * The kept squeezers share the false-positive budget: each gets its own threshold at targetFpr / m
 * (m kept), and a row is flagged when any squeezer's score is above its own threshold, so the
 * clean rows flagged are at most targetFpr (the union bound). One threshold on the largest score
 * would be set by the most disruptive squeezer and blind the others.
 */
import { calibrateThreshold } from '../../policies/guards/calibrate.js';
import type { Squeezer } from '../../policies/guards/profile.js';

/** A squeezer whose clean scores reach this at the target rate moves natural answers as an attack's reversal does. */
export const MAX_CLEAN_SCORE = 1;

export interface SqueezerChoice {
  /** Indices of the kept candidates, in candidate order. */
  readonly kept: readonly number[];
  /** Each kept squeezer's threshold, at targetFpr / kept.length. */
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
  const thresholds = kept.map((k) => calibrateThreshold(scores[k] as number[], targetFpr / kept.length));
  return { kept, thresholds, alone };
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
    + `each kept squeezer gets its own threshold at targetFpr/${choice.kept.length} = ${targetFpr / choice.kept.length} by the rule above, `
    + 'and a row is flagged when any squeezer\'s score is above its own threshold';
}
