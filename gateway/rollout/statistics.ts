/**
 * The statistics a rollout's criteria are judged with (criteria.ts). Pure: no I/O, no clock.
 *
 * - Rates (errors, guard verdicts, disagreement) are compared with one-sided confidence bounds:
 *   a criterion fails only when the data say, at the configured confidence, that the canary is
 *   worse than allowed, so a canary is not aborted on the noise of a small sample, and it is not
 *   promoted before its minimum sample either.
 * - Two independent proportions (canary against stable): the Agresti–Caffo interval for a
 *   difference (Agresti & Caffo, The American Statistician, 2000: one success and one failure
 *   added to each group), which keeps its coverage with few events and rates near 0, where the
 *   plain Wald interval claims certainty from zero errors.
 * - One proportion (disagreement): the exact (Clopper–Pearson) bound with few events, the Wilson
 *   score bound with many.
 * - A paired difference (a class's share among the canary's and stable's answers to the same
 *   rows): the bound of the mean of per-row differences, whose variance follows from the rows
 *   where exactly one of the two answered that class (as in McNemar's test).
 * - Looks: the controller judges a step every interval, on growing counts, and one failing look
 *   aborts. At a fixed confidence, 200 looks at a canary exactly at its limit abort it 7–23 % of the
 *   time, not 1 %. `lookConfidence` spends the error rate over the sample's growth instead: the
 *   sample sizes are cut into epochs growing LOOK_GROWTH× from minSamples, and a look in epoch j is
 *   judged at α / (j (j + 1)), which sums to α over every epoch (a stitched boundary, after Howard
 *   et al., Annals of Statistics, 2021). Measured (statistics.test.ts): at most 1.5 % false aborts
 *   over 200 looks; the price is power: a canary failing 5 % against stable's 1 % (limit +1 point)
 *   is caught after about 1,100 requests instead of 300. A canary that fails outright is caught at
 *   its first look either way.
 */

/** Growth of the sample from one look epoch to the next. */
export const LOOK_GROWTH = 1.1;

/**
 * The confidence one look needs so that `confidence` holds over every look of a step: a look at
 * sample size n ≥ minSamples falls in epoch j = 1 + ⌊log(n / minSamples) / log LOOK_GROWTH⌋ and
 * gets α / (j (j + 1)) of the error rate α = 1 − confidence.
 */
export function lookConfidence(confidence: number, n: number, minSamples: number): number {
  const j = 1 + Math.max(0, Math.floor(Math.log(Math.max(n, minSamples) / minSamples) / Math.log(LOOK_GROWTH)));
  return 1 - (1 - confidence) / (j * (j + 1));
}

/**
 * The standard normal quantile Φ⁻¹(p), 0 < p < 1 (Acklam's rational approximation, relative error
 * below 1.2·10⁻⁹, one Newton step would not change a verdict).
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`normalQuantile: p must be in (0, 1), got ${p}`);
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - low) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

/**
 * The lower one-sided bound, at `confidence`, of p₁ − p₂ for x₁ events in n₁ trials against x₂ in
 * n₂ (Agresti–Caffo). n₂ = 0 (nothing to compare with) bounds p₁ alone (Wilson).
 */
export function differenceLowerBound(x1: number, n1: number, x2: number, n2: number, confidence: number): number {
  if (n2 === 0) return proportionLowerBound(x1, n1, confidence);
  const z = normalQuantile(confidence);
  const p1 = (x1 + 1) / (n1 + 2);
  const p2 = (x2 + 1) / (n2 + 2);
  const se = Math.sqrt((p1 * (1 - p1)) / (n1 + 2) + (p2 * (1 - p2)) / (n2 + 2));
  return p1 - p2 - z * se;
}

/**
 * Events up to which a proportion's lower bound is the exact one: with few events Wilson's lower
 * bound is too high (Brown, Cai & DasGupta, Statistical Science, 2001): 1 of 13 at 0.99 gives
 * 0.0106, so a true rate of 1 % "surely exceeds 1 %" in 12 % of samples, not 1 %.
 */
const EXACT_EVENTS = 100;

/**
 * The lower bound, at `confidence` (one-sided), of a proportion x / n: the exact (Clopper–Pearson)
 * bound for up to EXACT_EVENTS events, the Wilson score bound above (where it holds its level).
 */
export function proportionLowerBound(x: number, n: number, confidence: number): number {
  if (n === 0 || x <= 0) return 0;
  if (x <= EXACT_EVENTS) return exactLowerBound(Math.min(x, n), n, confidence);
  const z = normalQuantile(confidence);
  const p = x / n;
  const z2 = z * z;
  const centre = p + z2 / (2 * n);
  const spread = z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return Math.max(0, (centre - spread) / (1 + z2 / n));
}

/** The p at which x or more events of n have probability 1 − confidence (bisection; O(x) a step, x small). */
function exactLowerBound(x: number, n: number, confidence: number): number {
  const alpha = 1 - confidence;
  if (x === n) return alpha ** (1 / n);
  let lo = 0;
  let hi = x / n;
  for (let i = 0; i < 60; i++) {
    const p = (lo + hi) / 2;
    // P(X < x), term by term from (1 − p)ⁿ.
    let term = Math.exp(n * Math.log1p(-p));
    let below = 0;
    for (let k = 0; k < x; k++) {
      below += term;
      term *= ((n - k) / (k + 1)) * (p / (1 - p));
    }
    if (1 - below > alpha) hi = p;
    else lo = p;
  }
  return lo;
}

/**
 * The lower one-sided bound, at `confidence`, of |share₁ − share₂| for one class over n paired
 * rows, where `up` rows were that class for the first answer only and `down` for the second only.
 * The per-row difference is +1 (up), −1 (down) or 0; its mean is (up − down) / n.
 */
export function pairedShiftLowerBound(up: number, down: number, n: number, confidence: number): number {
  if (n === 0) return 0;
  const z = normalQuantile(confidence);
  const mean = (up - down) / n;
  const variance = Math.max(0, (up + down) / n - mean * mean);
  // One discordant row added to each side's variance, as Agresti–Caffo does for proportions: no certainty from zero.
  const se = Math.sqrt((variance + 1 / n) / n);
  return Math.max(0, Math.abs(mean) - z * se);
}
