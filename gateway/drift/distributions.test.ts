import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chiSquareSurvival, kolmogorovSurvival, logGamma, upperRegularizedGamma } from './distributions.js';

const close = (actual: number, expected: number, tolerance: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} is not within ${tolerance} of ${expected}`);

test('logGamma matches factorials and Γ(1/2) = √π', () => {
  close(logGamma(1), 0, 1e-13, 'ln Γ(1)');
  close(logGamma(5), Math.log(24), 1e-13, 'ln Γ(5)');
  close(logGamma(0.5), 0.5 * Math.log(Math.PI), 1e-13, 'ln Γ(1/2)');
  close(logGamma(101), 363.73937555556347, 1e-9, 'ln 100!');
});

test('chi-square p-values match the critical values of the printed tables', () => {
  // [statistic, df, upper-tail probability], from the standard chi-square table.
  const table: [number, number, number][] = [
    [3.841, 1, 0.05], [6.635, 1, 0.01], [5.991, 2, 0.05], [7.815, 3, 0.05], [11.345, 3, 0.01],
    [23.209, 10, 0.01], [50.892, 30, 0.01], [124.342, 100, 0.05], [2.706, 1, 0.10],
  ];
  for (const [x, df, p] of table) close(chiSquareSurvival(x, df), p, 2e-4, `χ²(${df}) ≥ ${x}`);
});

test('chi-square p-values: the closed forms of df = 2 and df = 1, and the edges', () => {
  // χ²(2) is exponential: P(X ≥ x) = e^(−x/2); χ²(1) is a squared normal: P(X ≥ 4) = P(|Z| ≥ 2).
  for (const x of [0.1, 1, 5, 20, 80]) close(chiSquareSurvival(x, 2), Math.exp(-x / 2), 1e-14 + 1e-12 * Math.exp(-x / 2), `χ²(2) ≥ ${x}`);
  close(chiSquareSurvival(4, 1), 0.04550026389635842, 1e-12, 'χ²(1) ≥ 4');
  assert.equal(chiSquareSurvival(0, 3), 1);
  assert.equal(chiSquareSurvival(-1, 3), 1);
  assert.ok(chiSquareSurvival(2000, 3) >= 0 && chiSquareSurvival(2000, 3) < 1e-300, 'a huge statistic: 0, not negative or NaN');
  assert.ok(Number.isNaN(chiSquareSurvival(1, 0)), 'df 0 has no distribution');
  close(upperRegularizedGamma(1, 3), Math.exp(-3), 1e-15, 'Q(1, x) = e^−x');
});

test('chi-square p-values are continuous where the series hands over to the continued fraction (x = a + 1)', () => {
  const a = 4.5; // df 9
  const below = upperRegularizedGamma(a, a + 1 - 1e-9);
  const above = upperRegularizedGamma(a, a + 1 + 1e-9);
  close(below, above, 1e-9, 'Q on either side of x = a + 1');
});

test('Kolmogorov p-values match the tabled critical values of √n·D', () => {
  close(kolmogorovSurvival(1.2238), 0.10, 1e-4, 'λ = 1.2238');
  close(kolmogorovSurvival(1.3581), 0.05, 1e-4, 'λ = 1.3581');
  close(kolmogorovSurvival(1.6276), 0.01, 1e-4, 'λ = 1.6276');
  close(kolmogorovSurvival(0.5), 0.9639452436648751, 1e-12, 'λ = 0.5');
  close(kolmogorovSurvival(2 * Math.SQRT2), 2 * Math.exp(-16) - 2 * Math.exp(-64), 1e-18, 'λ = 2√2: the first terms of the series');
  assert.equal(kolmogorovSurvival(0), 1);
  assert.equal(kolmogorovSurvival(0.05), 1);
  assert.equal(kolmogorovSurvival(40), 0);
});

test('Kolmogorov p-values are continuous and decreasing across the switch between the two series (λ = 1.18)', () => {
  close(kolmogorovSurvival(1.18 - 1e-12), kolmogorovSurvival(1.18), 1e-11, 'either side of 1.18');
  let previous = 1;
  for (let lambda = 0.2; lambda < 3; lambda += 0.01) {
    const p = kolmogorovSurvival(lambda);
    assert.ok(p <= previous, `decreasing at λ = ${lambda}`);
    previous = p;
  }
});
