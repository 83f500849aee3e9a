/**
 * The two tail probabilities the drift statistics (gateway/drift/statistics.ts) turn their test
 * statistics into p-values with: the chi-square survival function and the asymptotic Kolmogorov
 * distribution. Pure numerics, no dependencies, every loop bounded.
 *
 * - Chi-square: P(X ≥ x) for X ~ χ²(df) is the regularised upper incomplete gamma Q(df/2, x/2),
 *   computed as in Numerical Recipes §6.2: the series for P when x < a + 1, the continued fraction
 *   (modified Lentz) for Q otherwise, each where it converges fast and without cancellation.
 * - Kolmogorov: P(K > λ) = 2 Σ_{j≥1} (−1)^(j−1) exp(−2 j² λ²). The alternating series converges in
 *   a few terms for λ ≳ 1 but slowly and with cancellation near 0, so below λ = 1.18 the
 *   equivalent theta-function form P(K ≤ λ) = (√(2π)/λ) Σ_{j≥1} exp(−(2j−1)² π² / (8 λ²)) is used.
 */

const EPS = 1e-15;
const MAX_ITERATIONS = 10_000;
const TINY = 1e-300;

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9: about 15 significant digits). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x); // reflection
  const z = x - 1;
  let sum = LANCZOS[0];
  for (let i = 1; i < LANCZOS.length; i++) sum += LANCZOS[i] / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

/** P(a, x) by its series; converges quickly for x < a + 1. */
function lowerGammaSeries(a: number, x: number): number {
  let term = 1 / a;
  let sum = term;
  for (let n = 1; n < MAX_ITERATIONS; n++) {
    term *= x / (a + n);
    sum += term;
    if (Math.abs(term) < Math.abs(sum) * EPS) break;
  }
  return sum * Math.exp(-x + a * Math.log(x) - logGamma(a));
}

/** Q(a, x) by its continued fraction (modified Lentz); converges quickly for x ≥ a + 1. */
function upperGammaFraction(a: number, x: number): number {
  let b = x + 1 - a;
  let c = 1 / TINY;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < MAX_ITERATIONS; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < TINY) d = TINY;
    c = b + an / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < EPS) break;
  }
  return Math.exp(-x + a * Math.log(x) - logGamma(a)) * h;
}

/** The regularised upper incomplete gamma Q(a, x) = Γ(a, x) / Γ(a), a > 0, x ≥ 0. */
export function upperRegularizedGamma(a: number, x: number): number {
  if (!(a > 0) || !(x >= 0)) return Number.NaN;
  if (x === 0) return 1;
  if (x === Infinity) return 0;
  const q = x < a + 1 ? 1 - lowerGammaSeries(a, x) : upperGammaFraction(a, x);
  return Math.min(1, Math.max(0, q));
}

/** P(X ≥ x) for X ~ χ²(df): the p-value of a chi-square statistic. */
export function chiSquareSurvival(x: number, df: number): number {
  if (!(df > 0)) return Number.NaN;
  if (!(x > 0)) return 1;
  return upperRegularizedGamma(df / 2, x / 2);
}

/** P(K > λ) for the Kolmogorov distribution: the asymptotic p-value of √n·D. */
export function kolmogorovSurvival(lambda: number): number {
  if (!(lambda > 0)) return 1;
  if (lambda < 1.18) {
    // For λ below ~0.1 the sum is < 1e-300 and the survival is 1 to double precision.
    const k = (-Math.PI * Math.PI) / (8 * lambda * lambda);
    let cdf = 0;
    for (let j = 1; j <= 20; j++) {
      const term = Math.exp(k * (2 * j - 1) * (2 * j - 1));
      cdf += term;
      if (term < EPS * cdf) break;
    }
    return Math.min(1, Math.max(0, 1 - (Math.sqrt(2 * Math.PI) / lambda) * cdf));
  }
  let sum = 0;
  for (let j = 1; j <= 100; j++) {
    const term = Math.exp(-2 * j * j * lambda * lambda);
    sum += j % 2 === 1 ? term : -term;
    if (term < EPS * sum) break;
  }
  return Math.min(1, Math.max(0, 2 * sum));
}
