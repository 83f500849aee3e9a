/**
 * Out-of-distribution inputs for the tabular models, made from held-out test rows the way real
 * integrations go wrong: extreme and corrupted values, unit errors, unknown categories, another
 * table's rows sent to the wrong model, random vectors, and rows whose every value is in range but
 * whose combination never occurs. Each kind and its rule is listed in eval/sets/README.md.
 */
import type { Example } from './datasets.js';
import { IRIS_SPECIES } from './datasets.js';
import type { Row } from './models.js';
import { Rng } from './random.js';

/** One generated input, with its kind and the test row it was made from (if any). */
export interface OodItem {
  readonly kind: string;
  readonly row: Row;
}

const round = (x: number, decimals: number): number => Number(x.toFixed(decimals));

/** `count` items of one kind from test rows drawn by `rng`; `make` returns undefined to skip a row. */
function fromRows(kind: string, count: number, test: readonly Example[], rng: Rng, make: (row: Row, rng: Rng) => Row | undefined): OodItem[] {
  const out: OodItem[] = [];
  for (let tries = 0; out.length < count && tries < count * 50; tries++) {
    const row = make(rng.pick(test).row.slice(), rng);
    if (row !== undefined) out.push({ kind, row });
  }
  return out;
}

// Titanic features: 0 pclass (INT64), 1 sex, 2 age, 3 fare, 4 embarked.
const SEXES = ['female', 'male'];
const PORTS = ['S', 'C', 'Q'];

/** Titanic's out-of-distribution inputs; `iris` supplies the wrong table's rows. */
export function titanicOod(test: readonly Example[], iris: readonly Example[]): OodItem[] {
  const rng = new Rng('titanic/ood');
  const out: OodItem[] = [];
  out.push(...fromRows('extreme', 40, test, rng, (row, r) => {
    const which = r.int(5);
    if (which === 0) row[2] = round(r.uniform(100, 1000), 1);
    else if (which === 1) row[2] = round(-r.uniform(10, 100), 1);
    else if (which === 2) row[3] = round(r.uniform(2000, 100_000), 2);
    else if (which === 3) row[3] = round(-r.uniform(50, 5000), 2);
    else row[0] = r.pick([0, 4, 5, 10, 99]);
    return row;
  }));
  out.push(...fromRows('corrupted', 40, test, rng, (row, r) => {
    const which = r.int(5);
    if (which === 0) row[r.pick([2, 3])] = r.pick([-999, 999, 9999]); // a missing value written as a sentinel
    else if (which === 1) row[r.pick([2, 3])] = r.pick([Infinity, -Infinity]);
    else if (which === 2) row[1] = row[1] === 'male' ? '1' : '0'; // sex label-encoded by the client
    else if (which === 3) row[1] = row[1] === 'male' ? 'Male' : 'FEMALE'; // case changed on the way
    else row[4] = r.pick(['', ' ', `${String(row[4])} `]); // a lost or padded port
    return row;
  }));
  out.push(...fromRows('unit-scale', 40, test, rng, (row, r) => {
    // A unit error is out of distribution only where it leaves the data's range: a 5-year-old's 60
    // months is a plausible age, so only ages from 7 years and fares from 6 pounds are converted.
    if (r.next() < 0.5) {
      if (typeof row[3] !== 'number' || row[3] < 6) return undefined;
      row[3] = round(row[3] * 100, 2); // fare in pence/cents
    } else {
      if (typeof row[2] !== 'number' || row[2] < 7) return undefined;
      row[2] = round(row[2] * 12, 2); // age in months
    }
    return row;
  }));
  out.push(...fromRows('unknown-category', 40, test, rng, (row, r) => {
    if (r.next() < 0.5) row[1] = r.pick(['unknown', 'other', 'M', 'F', 'child']);
    else row[4] = r.pick(['X', 'Southampton', 'Belfast', 'N/A', 'B']);
    return row;
  }));
  // Iris rows sent to the Titanic model: numeric columns in order into the numeric inputs; the
  // string inputs get the species (the wrong table's string column) or a real passenger's values.
  const irisRng = new Rng('titanic/ood/other-dataset');
  for (let i = 0; i < 40; i++) {
    const [sl, sw, pl] = irisRng.pick(iris).row as number[];
    const passenger = irisRng.pick(test).row;
    const species = irisRng.pick(IRIS_SPECIES);
    const strings = i % 2 === 0 ? [species, species] : [passenger[1], passenger[4]];
    out.push({ kind: 'other-dataset', row: [Math.round(sl), strings[0], sw, pl, strings[1]] });
  }
  // Every value in range, the combination never seen: a third-class ticket at a first-class fare.
  out.push(...fromRows('combination', 40, test, rng, (row, r) => {
    if (row[0] !== 3) return undefined;
    row[3] = round(r.uniform(200, 500), 2);
    return row;
  }));
  out.push(...fromRows('noise', 30, test, rng, (row, r) => {
    // Random values where the numbers go (a load-test or fuzzing client), valid categories.
    row[0] = r.pick([1, 2, 3]);
    row[1] = r.pick(SEXES);
    row[2] = round(r.uniform(-1000, 1000), 3);
    row[3] = round(r.uniform(-1000, 1000), 3);
    row[4] = r.pick(PORTS);
    return row;
  }));
  return out;
}

/** Iris's out-of-distribution inputs; `titanic` supplies the wrong table's numeric columns. */
export function irisOod(
  test: readonly Example[],
  reference: readonly Example[],
  titanic: readonly { age: number | null; fare: number | null; pclass: number; sibsp: number; parch: number }[],
): OodItem[] {
  const rng = new Rng('iris/ood');
  const out: OodItem[] = [];
  out.push(...fromRows('extreme', 40, test, rng, (row, r) => {
    const j = r.int(4);
    const which = r.int(3);
    row[j] = which === 0 ? round(r.uniform(15, 100), 1) : which === 1 ? round(-r.uniform(0.5, 10), 1) : 0;
    return row;
  }));
  out.push(...fromRows('corrupted', 40, test, rng, (row, r) => {
    const which = r.int(3);
    if (which === 0) return [row[2], row[3], row[0], row[1]]; // petal columns first: the wrong column order
    if (which === 1) return [row[1], row[2], row[3], row[0]]; // shifted by one column
    const j = r.int(3);
    row[j + 1] = row[j]; // a value copied into its neighbour
    return row;
  }));
  out.push(...fromRows('unit-scale', 40, test, rng, (row, r) => {
    const which = r.int(3);
    const f = (x: number | string | null, k: number) => round((x as number) * k, 3);
    if (which === 0) return [row[0], row[1], f(row[2], 10), f(row[3], 10)]; // petals in mm
    if (which === 1) return row.map((x) => f(x, 10)); // everything in mm
    return row.map((x) => f(x, 1 / 2.54)); // inches
  }));
  const lo = [0, 1, 2, 3].map((j) => Math.min(...reference.map((e) => e.row[j] as number)));
  const hi = [0, 1, 2, 3].map((j) => Math.max(...reference.map((e) => e.row[j] as number)));
  const passengers = titanic.filter((p) => p.age !== null && p.fare !== null);
  const colMax = { age: Math.max(...passengers.map((p) => p.age as number)), fare: Math.max(...passengers.map((p) => p.fare as number)) };
  const otherRng = new Rng('iris/ood/other-dataset');
  for (let i = 0; i < 40; i++) {
    const p = otherRng.pick(passengers);
    const cols = [p.age as number, p.fare as number, p.pclass, p.sibsp + p.parch];
    if (i % 2 === 0) {
      // The passenger's numeric columns in order.
      out.push({ kind: 'other-dataset', row: cols.map((x) => round(x, 3)) });
    } else {
      // The same columns min-max scaled into iris's box (a client that rescales whatever it gets).
      const unit = [cols[0] / colMax.age, cols[1] / colMax.fare, (cols[2] - 1) / 2, Math.min(cols[3], 10) / 10];
      out.push({ kind: 'other-dataset', row: unit.map((u, j) => round(lo[j] + u * (hi[j] - lo[j]), 2)) });
    }
  }
  // Every value in range, the combination never seen: one species' sepals with another's petals.
  const bySpecies = [0, 1, 2].map((s) => test.filter((e) => e.label === s));
  const comboRng = new Rng('iris/ood/combination');
  for (let i = 0; i < 40; i++) {
    const [a, b] = comboRng.pick([[0, 2], [2, 0], [0, 1], [1, 0]]);
    const sepals = comboRng.pick(bySpecies[a]).row;
    const petals = comboRng.pick(bySpecies[b]).row;
    out.push({ kind: 'combination', row: [sepals[0], sepals[1], petals[2], petals[3]] });
  }
  const noiseRng = new Rng('iris/ood/noise');
  for (let i = 0; i < 40; i++) {
    // Standard-normal vectors (features sent already standardised) and uniform garbage in [0, 10).
    out.push({ kind: 'noise', row: [0, 1, 2, 3].map(() => round(i % 2 === 0 ? noiseRng.normal() : noiseRng.uniform(0, 10), 3)) });
  }
  return out;
}
