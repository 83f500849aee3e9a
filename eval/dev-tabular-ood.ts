/**
 * Development figures for the tabular out-of-distribution detector, from the reference data alone
 * (eval/reference/{titanic,iris}.csv, never the evaluation's sets):
 *
 *   npm run build && node dist/eval/dev-tabular-ood.js [--reps 20] [--share 0.7] [--target-fpr 0.01] [--models iris,titanic]
 *
 * Each repetition deals the reference rows at random (a stream of its own, `dev/<model>/<rep>`) into
 * `--share` (70 %) that a profile is built from and the rest that play new clean traffic. Each candidate detector
 * is fitted and its threshold set from the 70 % only; it then scores the 30 % (false positives) and
 * probes made from them the way eval/lib/ood-tabular.ts makes its kinds, on streams of their own:
 * rows whose every value is in range but whose combination never occurs (iris: one species' sepals
 * with another's petals, the species told apart by petal length, since the reference has no labels;
 * Titanic: a third-class ticket at a first-class fare) and iris's corrupted rows (columns in the
 * wrong order, a value copied into its neighbour). Only the OOD score is judged (not the contract).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { featureProfiles } from '../gateway/profile/build.js';
import { calibrateThreshold, confidentThreshold } from '../policies/guards/calibrate.js';
import { encode, fitEncoder } from '../policies/guards/encoder.js';
import { profileInputs, rowsFromCsv, type RowValues } from '../policies/guards/features.js';
import { compileMixture, fitMixture, mixtureScore } from '../policies/guards/mixture.js';
import { encodeRows, fitOodForCalibration, oodScore } from '../policies/guards/ood.js';
import type { EncoderSpec } from '../policies/guards/profile.js';
import { parseCsv } from './lib/csv.js';
import { IRIS, TITANIC, type ModelSpec } from './lib/models.js';
import { Rng } from './lib/random.js';

const { values } = parseArgs({ options: { reps: { type: 'string', default: '20' }, 'target-fpr': { type: 'string', default: '0.01' }, models: { type: 'string', default: 'iris,titanic' }, share: { type: 'string', default: '0.7' } } });
const REPS = Number(values.reps);
const TARGET = Number(values['target-fpr']);
const FOLDS = 10;

type Scorer = (row: RowValues) => number;
interface Candidate {
  readonly name: string;
  /** A scorer fitted on `rows` and its threshold, set from `rows` only. */
  build(rows: readonly RowValues[], features: ReturnType<typeof featureProfiles>, inputs: ReturnType<typeof profileInputs>): { score: Scorer; threshold: number; note?: string };
}

function mixtureScorer(encoder: EncoderSpec, rows: readonly RowValues[]): { score: Scorer; k: number } {
  const d = encoder.columns;
  const fit = fitMixture(encodeRows(encoder, rows), rows.length, d);
  const m = compileMixture(fit.components, d);
  const x = new Float64Array(d);
  return { score: (row) => (encode(encoder, row, x), mixtureScore(m, x)), k: fit.components.length };
}

/** Scores of every row from a scorer fitted without its fold (folds by position: rows arrive shuffled). */
function crossFitted(rows: readonly RowValues[], fit: (rows: readonly RowValues[]) => Scorer): number[] {
  const scores = new Array<number>(rows.length);
  for (let f = 0; f < FOLDS; f++) {
    const inFold = (i: number) => i % FOLDS === f;
    const s = fit(rows.filter((_, i) => !inFold(i)));
    rows.forEach((r, i) => { if (inFold(i)) scores[i] = s(r); });
  }
  return scores;
}

function gaussScorer(encoder: EncoderSpec, rows: readonly RowValues[]): Scorer {
  const d = encoder.columns;
  const m = compileMixture(fitMixture(encodeRows(encoder, rows), rows.length, d, 1).components, d);
  const x = new Float64Array(d);
  return (row) => (encode(encoder, row, x), mixtureScore(m, x));
}

const CANDIDATES: Candidate[] = [
  {
    // The detector before the mixture: one Gaussian fitted on 70 %, the quantile rule on the other 30 %.
    name: 'gauss held-out quantile (before)',
    build(rows, features, inputs) {
      const encoder = fitEncoder(features, inputs);
      const cut = Math.round(0.7 * rows.length);
      const score = gaussScorer(encoder, rows.slice(0, cut));
      return { score, threshold: calibrateThreshold(rows.slice(cut).map(score), TARGET) };
    },
  },
  {
    name: 'gauss cross-fitted confident',
    build(rows, features, inputs) {
      const encoder = fitEncoder(features, inputs);
      return { score: gaussScorer(encoder, rows), threshold: confidentThreshold(crossFitted(rows, (part) => gaussScorer(encoder, part)), TARGET) };
    },
  },
  {
    // What `breakwater profile` builds (fitOodForCalibration, the confident rule).
    name: 'mixture cross-fitted confident (landed)',
    build(rows, features, inputs) {
      const cut = Math.round(0.7 * rows.length);
      const fitted = fitOodForCalibration(features, rows.slice(0, cut), rows.slice(cut), inputs);
      const k = fitted.model.method === 'mixture' ? fitted.model.components.length : 0;
      return { score: (r) => oodScore(fitted.model, r), threshold: confidentThreshold(fitted.scores, TARGET), note: `K=${k}` };
    },
  },
  {
    name: 'mixture cross-fitted quantile',
    build(rows, features, inputs) {
      const encoder = fitEncoder(features, inputs);
      const { score, k } = mixtureScorer(encoder, rows);
      return { score, threshold: calibrateThreshold(crossFitted(rows, (part) => mixtureScorer(encoder, part).score), TARGET), note: `K=${k}` };
    },
  },
];

function readRows(spec: ModelSpec): { rows: RowValues[]; inputs: ReturnType<typeof profileInputs> } {
  const text = readFileSync(fileURLToPath(new URL(`../../eval/reference/${spec.name}.csv`, import.meta.url)), 'utf8');
  const [header, ...records] = parseCsv(text).filter((r) => r.length > 1);
  const inputs = profileInputs(spec.inputs.map((i) => ({ name: i.name, datatype: i.datatype, shape: [-1, ...i.rowShape] })));
  return { rows: rowsFromCsv(inputs, header, records), inputs };
}

const species = (row: RowValues): number => ((row[2] as number) < 2.5 ? 0 : (row[2] as number) < 4.85 ? 1 : 2);

function probes(spec: ModelSpec, test: readonly RowValues[], rng: Rng): Map<string, RowValues[]> {
  const out = new Map<string, RowValues[]>();
  if (spec.name === 'iris') {
    const by = [0, 1, 2].map((s) => test.filter((r) => species(r) === s));
    const combos: RowValues[] = [];
    for (let i = 0; i < 40; i++) {
      const [a, b] = rng.pick([[0, 2], [2, 0], [0, 1], [1, 0]]);
      if (by[a].length === 0 || by[b].length === 0) continue;
      const s = rng.pick(by[a]);
      const p = rng.pick(by[b]);
      combos.push([s[0], s[1], p[2], p[3]]);
    }
    out.set('combination', combos);
    const corrupted: RowValues[] = [];
    for (let i = 0; i < 40; i++) {
      const row = rng.pick(test).slice();
      const which = rng.int(3);
      if (which === 0) corrupted.push([row[2], row[3], row[0], row[1]]);
      else if (which === 1) corrupted.push([row[1], row[2], row[3], row[0]]);
      else {
        const j = rng.int(3);
        row[j + 1] = row[j];
        corrupted.push(row);
      }
    }
    out.set('corrupted', corrupted);
  } else {
    const third = test.filter((r) => r[0] === 3);
    out.set('combination', Array.from({ length: 40 }, () => {
      const row = rng.pick(third).slice();
      row[3] = Number(rng.uniform(200, 500).toFixed(2));
      return row;
    }));
  }
  return out;
}

for (const spec of [TITANIC, IRIS].filter((s) => values.models.split(',').includes(s.name))) {
  const { rows, inputs } = readRows(spec);
  const tally = CANDIDATES.map(() => ({ clean: 0, fp: 0, kinds: new Map<string, { n: number; hit: number }>(), notes: new Map<string, number>() }));
  for (let rep = 0; rep < REPS; rep++) {
    const rng = new Rng(`dev/${spec.name}/${rep}`, 'breakwater-dev');
    const order = rows.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    const cut = Math.round(Number(values.share) * rows.length);
    const train = order.slice(0, cut).map((i) => rows[i]);
    const test = order.slice(cut).map((i) => rows[i]);
    const features = featureProfiles(inputs, train);
    const probeSets = probes(spec, test, new Rng(`dev/${spec.name}/${rep}/probes`, 'breakwater-dev'));
    CANDIDATES.forEach((c, ci) => {
      const { score, threshold, note } = c.build(train, features, inputs);
      const t = tally[ci];
      if (note !== undefined) t.notes.set(note, (t.notes.get(note) ?? 0) + 1);
      for (const r of test) {
        t.clean++;
        if (score(r) > threshold) t.fp++;
      }
      for (const [kind, items] of probeSets) {
        const k = t.kinds.get(kind) ?? { n: 0, hit: 0 };
        for (const r of items) {
          k.n++;
          if (score(r) > threshold) k.hit++;
        }
        t.kinds.set(kind, k);
      }
    });
  }
  console.log(`\n${spec.name}: ${rows.length} reference rows, ${REPS} repetitions, target ${TARGET}`);
  CANDIDATES.forEach((c, ci) => {
    const t = tally[ci];
    const kinds = [...t.kinds].map(([k, v]) => `${k} ${((100 * v.hit) / v.n).toFixed(1)} %`).join(', ');
    const notes = [...t.notes].map(([k, v]) => `${k}×${v}`).join(' ');
    console.log(`  ${c.name.padEnd(34)} fp ${((100 * t.fp) / t.clean).toFixed(2)} % | ${kinds} ${notes}`);
  });
}
