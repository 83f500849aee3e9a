import assert from 'node:assert/strict';
import { test } from 'node:test';
import { uniform } from '../../test/helpers/seeded-normal.js';
import { differenceLowerBound, lookConfidence, normalQuantile, pairedShiftLowerBound, proportionLowerBound } from './statistics.js';

const close = (actual: number, expected: number, tolerance: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} is not within ${tolerance} of ${expected}`);

/** One Binomial(n, p) draw by inversion: walks the probabilities from 0 up (about n·p steps). */
function binomial(next: () => number, n: number, p: number): number {
  if (p <= 0) return 0;
  if (p >= 1) return n;
  const ratio = p / (1 - p);
  let prob = Math.exp(n * Math.log1p(-p));
  let cdf = prob;
  const u = next();
  let x = 0;
  while (u > cdf && x < n) {
    prob *= (ratio * (n - x)) / (x + 1);
    x++;
    cdf += prob;
  }
  return x;
}

test('normalQuantile: known values of Φ⁻¹, in both tails and the centre', () => {
  assert.equal(normalQuantile(0.5), 0);
  close(normalQuantile(0.975), 1.959964, 1e-6, 'Φ⁻¹(0.975)');
  close(normalQuantile(0.99), 2.326348, 1e-6, 'Φ⁻¹(0.99)');
  close(normalQuantile(0.95), 1.644854, 1e-6, 'Φ⁻¹(0.95)');
  close(normalQuantile(0.001), -3.090232, 1e-6, 'Φ⁻¹(0.001)');
  close(normalQuantile(0.9999), 3.719016, 1e-6, 'Φ⁻¹(0.9999)');
  close(normalQuantile(0.8413447460685429), 1, 1e-8, 'Φ⁻¹(Φ(1))');
  // Both sides of the breakpoints between the central and the tail approximations.
  close(normalQuantile(0.02425), -1.972961, 1e-6, 'Φ⁻¹(0.02425)');
  close(normalQuantile(0.0242), -1.973839, 1e-6, 'Φ⁻¹(0.0242)');
});

test('normalQuantile is antisymmetric and increasing', () => {
  let before = -Infinity;
  for (const p of [1e-9, 1e-4, 0.001, 0.01, 0.02, 0.0242, 0.0243, 0.1, 0.3, 0.5, 0.7, 0.9, 0.97, 0.9757, 0.99, 0.999, 1 - 1e-9]) {
    const q = normalQuantile(p);
    close(q, -normalQuantile(1 - p), 1e-7, `symmetry at ${p}`);
    assert.ok(q > before, `increasing at ${p}: ${q} after ${before}`);
    before = q;
  }
});

test('normalQuantile refuses p outside (0, 1)', () => {
  for (const p of [0, 1, -0.1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) assert.throws(() => normalQuantile(p), RangeError, `p = ${p}`);
});

/** P(X ≥ x) for X ~ Binomial(n, p), summed term by term (an independent check of the bounds). */
function upperTail(x: number, n: number, p: number): number {
  let term = Math.exp(n * Math.log1p(-p));
  let below = 0;
  for (let k = 0; k < x; k++) {
    below += term;
    term *= ((n - k) / (k + 1)) * (p / (1 - p));
  }
  return 1 - below;
}

test('proportionLowerBound with many events: the Wilson score bound', () => {
  assert.equal(proportionLowerBound(0, 100, 0.99), 0, 'no events: 0');
  assert.equal(proportionLowerBound(0, 0, 0.99), 0, 'no trials: 0');
  const wilson = (x: number, n: number, z: number) => {
    const p = x / n;
    return (p + (z * z) / (2 * n) - z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / (1 + (z * z) / n);
  };
  // 500 of 1000 at 0.975 (z = 1.959964): 0.469070.
  close(proportionLowerBound(500, 1000, 0.975), wilson(500, 1000, 1.959964), 1e-6, '500 of 1000 at 0.975');
  close(proportionLowerBound(500, 1000, 0.975), 0.469070, 1e-6, '500 of 1000 at 0.975, the value');
  close(proportionLowerBound(101, 1000, 0.95), wilson(101, 1000, 1.644854), 1e-6, '101 of 1000 at 0.95');
  // x = n: n / (n + z²).
  close(proportionLowerBound(1000, 1000, 0.99), 1000 / (1000 + 2.326348 ** 2), 1e-6, '1000 of 1000 at 0.99');
  // Below the observed share, and closer to it with more trials.
  assert.ok(proportionLowerBound(1000, 10_000, 0.99) < 0.1);
  assert.ok(proportionLowerBound(10_000, 100_000, 0.99) > proportionLowerBound(1000, 10_000, 0.99));
});

test('proportionLowerBound with few events: the exact (Clopper–Pearson) bound', () => {
  // 50 of 100 at 0.975: the lower end of the textbook 95 % Clopper–Pearson interval [0.3983, 0.6017].
  close(proportionLowerBound(50, 100, 0.975), 0.398321, 1e-6, '50 of 100 at 0.975');
  // One event: 1 − confidence^(1/n). All events: (1 − confidence)^(1/n).
  close(proportionLowerBound(1, 13, 0.99), 1 - 0.99 ** (1 / 13), 1e-9, '1 of 13 at 0.99');
  close(proportionLowerBound(100, 100, 0.99), 0.01 ** (1 / 100), 1e-9, '100 of 100 at 0.99');
  // By definition: x or more events are 1 − confidence likely at the bound.
  for (const [x, n, c] of [[10, 100, 0.95], [3, 40, 0.99], [60, 5000, 0.99], [100, 10_000_000, 0.999]] as const) {
    const lb = proportionLowerBound(x, n, c);
    assert.ok(lb < x / n);
    close(upperTail(x, n, lb), 1 - c, 1e-9, `P(X ≥ ${x} | ${n}, ${lb})`);
  }
});

test('a proportion\'s bound fails a rate no higher than allowed at most about 1 − confidence of the time, exactly computed', () => {
  // Bug shown: Wilson's bound of 1 of 13 at 0.99 is 0.0106, so a disagreement rate of exactly 1 %
  // was judged "surely above 1 %" whenever one of 13 rows disagreed: 12 % of the time, not 1 %.
  assert.ok(proportionLowerBound(1, 13, 0.99) < 0.01);
  // For every n from 10 to 400 and a few true rates p, the smallest count k whose bound exceeds p,
  // and the exact probability P(X ≥ k | n, p) of a false fail.
  for (const p of [0.001, 0.01, 0.05, 0.1, 0.3]) {
    let worst = 0;
    let at = 0;
    for (let n = 10; n <= 400; n++) {
      let lo = 0;
      let hi = n + 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (proportionLowerBound(mid, n, 0.99) > p) hi = mid;
        else lo = mid + 1;
      }
      const rate = lo > n ? 0 : upperTail(lo, n, p);
      if (rate > worst) [worst, at] = [rate, n];
    }
    assert.ok(worst <= 0.015, `p = ${p}: a false fail ${worst} of the time at n = ${at}`);
  }
});

test('differenceLowerBound: equal rates are not a difference, a large one is', () => {
  // 10 of 1000 against 10 of 1000: Agresti–Caffo p̃ = 11/1002 on both sides, bound −z·√(2·p̃(1−p̃)/1002).
  const equal = differenceLowerBound(10, 1000, 10, 1000, 0.99);
  const p = 11 / 1002;
  close(equal, -2.326348 * Math.sqrt((2 * p * (1 - p)) / 1002), 1e-6, 'equal rates');
  assert.ok(equal < 0);
  // 10 % against 1 %: the bound (≈ 0.0664) is well above a 1 % margin.
  const large = differenceLowerBound(100, 1000, 10, 1000, 0.99);
  close(large, 0.066407, 1e-6, '100 of 1000 against 10 of 1000');
  assert.ok(large > 0.01);
  // Zero errors on both sides proves nothing either way.
  assert.ok(differenceLowerBound(0, 1000, 0, 1000, 0.99) < 0);
});

test('differenceLowerBound: a small sample is not certain of anything', () => {
  // 1 error in 10 against 0 in 10: p̃ 2/12 against 1/12, far from a 1 % certainty.
  const one = differenceLowerBound(1, 10, 0, 10, 0.99);
  close(one, 2 / 12 - 1 / 12 - 2.326348 * Math.sqrt(((2 / 12) * (10 / 12) + (1 / 12) * (11 / 12)) / 12), 1e-6, '1 of 10 against 0 of 10');
  assert.ok(one < 0.01, `${one}`);
  assert.ok(one < 0, 'not even a positive difference');
  // Even 5 of 10 against 0 of 10 is only just above 1 % (≈ 0.033): ten requests are little evidence.
  const five = differenceLowerBound(5, 10, 0, 10, 0.99);
  assert.ok(five > 0.01 && five < 0.05, `${five}`);
  // More confidence asks for more evidence.
  assert.ok(differenceLowerBound(30, 1000, 10, 1000, 0.999) < differenceLowerBound(30, 1000, 10, 1000, 0.95));
});

test('differenceLowerBound with nothing to compare with bounds the canary alone (Wilson)', () => {
  assert.equal(differenceLowerBound(50, 100, 0, 0, 0.975), proportionLowerBound(50, 100, 0.975));
  assert.equal(differenceLowerBound(500, 1000, 0, 0, 0.975), proportionLowerBound(500, 1000, 0.975));
  close(differenceLowerBound(500, 1000, 0, 0, 0.975), 0.469070, 1e-6, 'the Wilson value');
  assert.equal(differenceLowerBound(0, 0, 0, 0, 0.99), 0);
});

test('pairedShiftLowerBound: no discordant rows is no shift; every row shifted is nearly certain', () => {
  assert.equal(pairedShiftLowerBound(0, 0, 1000, 0.99), 0);
  assert.equal(pairedShiftLowerBound(0, 0, 0, 0.99), 0, 'no rows');
  assert.equal(pairedShiftLowerBound(50, 50, 1000, 0.99), 0, 'as many up as down: no net shift');
  // Every row up: mean 1, variance 0, plus the one added discordant row: se = √(1/n / n) = 1/n.
  close(pairedShiftLowerBound(1000, 0, 1000, 0.99), 1 - 2.326348 / 1000, 1e-6, 'all rows up');
  assert.equal(pairedShiftLowerBound(0, 1000, 1000, 0.99), pairedShiftLowerBound(1000, 0, 1000, 0.99), 'a shift down is as large as up');
  // 200 up of 1000: mean 0.2, variance 0.2 − 0.04 = 0.16, se = √(0.161 / 1000).
  close(pairedShiftLowerBound(200, 0, 1000, 0.99), 0.2 - 2.326348 * Math.sqrt(0.161 / 1000), 1e-6, '200 up of 1000');
  // A few shifted rows of many is no evidence of a 5 % shift.
  assert.ok(pairedShiftLowerBound(10, 0, 100, 0.99) < 0.05);
});

test('simulation: canaries exactly at the allowed error-rate increase are aborted at most about 1 % of the time at 0.99', () => {
  // Under the null (the canary's rate = stable's + margin exactly), a fail (lower bound > margin)
  // is a false abort. Per scenario 2000 seeded comparisons; at most 1.5 % may fail (1 % nominal,
  // with room for the approximation and the sampling error of 2000 trials, ±0.45 % at 2 σ).
  const trials = 2000;
  const scenarios = [
    { stable: 0.01, margin: 0.01, nc: 1000, ns: 1000 },
    { stable: 0.01, margin: 0, nc: 1000, ns: 1000 },
    { stable: 0.01, margin: 0.01, nc: 500, ns: 5000 },
    { stable: 0.001, margin: 0.01, nc: 1000, ns: 1000 },
    { stable: 0.05, margin: 0.01, nc: 2000, ns: 2000 },
    { stable: 0.02, margin: 0, nc: 200, ns: 200 },
    { stable: 0, margin: 0.01, nc: 200, ns: 2000 },
  ];
  let seed = 1;
  for (const s of scenarios) {
    const next = uniform(seed++);
    let fails = 0;
    for (let i = 0; i < trials; i++) {
      const xc = binomial(next, s.nc, s.stable + s.margin);
      const xs = binomial(next, s.ns, s.stable);
      if (differenceLowerBound(xc, s.nc, xs, s.ns, 0.99) > s.margin) fails++;
    }
    assert.ok(fails / trials <= 0.015, `${JSON.stringify(s)}: ${fails} of ${trials} aborted`);
  }
});

test('simulation: the test has power: a canary 3 points worse than a 1 % margin allows is caught', () => {
  const next = uniform(99);
  let fails = 0;
  for (let i = 0; i < 500; i++) {
    const xc = binomial(next, 2000, 0.05);
    const xs = binomial(next, 2000, 0.01);
    if (differenceLowerBound(xc, 2000, xs, 2000, 0.99) > 0.01) fails++;
  }
  assert.ok(fails / 500 >= 0.95, `${fails} of 500 caught`);
});

test('the binomial sampler of these tests draws with the right mean', () => {
  const next = uniform(5);
  let sum = 0;
  for (let i = 0; i < 2000; i++) sum += binomial(next, 1000, 0.02);
  close(sum / 2000, 20, 0.3, 'mean of Binomial(1000, 0.02)'); // sd of the mean: √(19.6 / 2000) ≈ 0.1
});

/**
 * A step judged every interval: `looks` looks, `per` new canary requests (and as many stable ones)
 * between looks, the canary exactly at its allowed limit. The share of steps in which any look fails.
 */
function sequentialFalseAborts(confidenceAt: (n: number) => number, seed: number, trials = 1000, looks = 200, per = 10): { difference: number; disagreement: number } {
  const next = uniform(seed);
  const minSamples = 30;
  let difference = 0;
  let disagreement = 0;
  for (let t = 0; t < trials; t++) {
    let xc = 0;
    let xs = 0;
    let n = 0;
    let dx = 0;
    let failedD = false;
    let failedP = false;
    for (let look = 0; look < looks && !(failedD && failedP); look++) {
      xc += binomial(next, per, 0.06);
      xs += binomial(next, per, 0.05);
      dx += binomial(next, per, 0.05);
      n += per;
      if (n < minSamples) continue;
      if (!failedD && differenceLowerBound(xc, n, xs, n, confidenceAt(n)) > 0.01) failedD = true;
      if (!failedP && proportionLowerBound(dx, n, confidenceAt(n)) > 0.05) failedP = true;
    }
    if (failedD) difference++;
    if (failedP) disagreement++;
  }
  return { difference: difference / trials, disagreement: disagreement / trials };
}

test('judged every interval at a fixed confidence, a canary at its limit is aborted far more often than 1 %; lookConfidence holds it', () => {
  const fixed = sequentialFalseAborts(() => 0.99, 7);
  assert.ok(fixed.difference > 0.04 && fixed.disagreement > 0.04, `200 looks at 0.99 each: ${JSON.stringify(fixed)} (the problem lookConfidence solves)`);
  const spent = sequentialFalseAborts((n) => lookConfidence(0.99, n, 30), 7);
  assert.ok(spent.difference <= 0.015, `error rate: ${spent.difference}`);
  assert.ok(spent.disagreement <= 0.015, `disagreement: ${spent.disagreement}`);
});

test('lookConfidence: the first epoch gets α/2, later epochs less, and the whole sums to α', () => {
  close(lookConfidence(0.99, 30, 30), 1 - 0.01 / 2, 1e-12, 'epoch 1');
  close(lookConfidence(0.99, 32, 30), 1 - 0.01 / 2, 1e-12, 'still epoch 1 (under 1.1×)');
  close(lookConfidence(0.99, 34, 30), 1 - 0.01 / 6, 1e-12, 'epoch 2');
  close(lookConfidence(0.99, 10, 30), 1 - 0.01 / 2, 1e-12, 'below the minimum: epoch 1');
  let total = 0;
  for (let j = 1; j < 100_000; j++) total += 0.01 / (j * (j + 1));
  close(total, 0.01, 1e-6, 'α spent over every epoch');
});
