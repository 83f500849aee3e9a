/**
 * Development figures for the image out-of-distribution detector, from the MNIST reference data
 * alone (never the evaluation's sets):
 *
 *   npm run build && node dist/eval/dev-image-ood.js [--reps 2,3,4,5] [--target-fpr 0.01] [--rule confident|expected]
 *
 * For each repetition, the 500 reference digits (eval/reference/mnist.jsonl) are dealt into 5 folds
 * (10 digits of each class per fold, by a seeded shuffle). For each fold the detector is built
 * exactly as `breakwater profile` builds it (the seeded 70/30 split, fitOodForCalibration, the
 * confident threshold, or with `--rule expected` calibrate.ts's quantile rule) from the other 400 digits, then it scores the fold's 100 digits (false
 * positives) and out-of-distribution probes made from them: eval/lib/ood-images.ts's generators on
 * random streams of their own (`dev/mnist/ood/...`, not the committed sets' `mnist/ood`), blank
 * images at random levels instead of the sets' fixed grid. It prints, per repetition and pooled,
 * the false-positive rate and the share of each kind detected, and the time per score.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { featureProfiles, splitRows } from '../gateway/profile/build.js';
import { calibrateThreshold, confidentThreshold } from '../policies/guards/calibrate.js';
import { profileInputs, type RowValues } from '../policies/guards/features.js';
import { fitOodForCalibration, oodScore } from '../policies/guards/ood.js';
import type { Example } from './lib/datasets.js';
import { MNIST, rowsOf } from './lib/models.js';
import { mnistOod } from './lib/ood-images.js';
import { Rng } from './lib/random.js';
import type { OipRequest } from './lib/sets.js';

const REFERENCE = fileURLToPath(new URL('../../eval/reference/mnist.jsonl', import.meta.url));
const FOLDS = 5;
const PER_CLASS = 50;
const INPUTS = profileInputs([{ name: 'Input3', datatype: 'FP32', shape: [1, 1, 28, 28] }]);
/** Kinds the contract guard catches whatever the OOD score (values outside [0, 1]): shown, not pooled. */
const CONTRACT_KINDS = new Set(['scale-x255', 'normalised']);

interface Tally {
  clean: number;
  falsePositives: number;
  readonly kinds: Map<string, { n: number; hit: number }>;
  scoreNs: number;
  scores: number;
}

function newTally(): Tally {
  return { clean: 0, falsePositives: 0, kinds: new Map(), scoreNs: 0, scores: 0 };
}

/** The fold of each reference digit in repetition `rep` (digits are stored class by class, 50 each). */
function foldsOf(rep: number, n: number): number[] {
  const out = new Array<number>(n);
  for (let c = 0; c < n / PER_CLASS; c++) {
    const order = new Rng(`dev/mnist/folds/rep${rep}/class${c}`).shuffle(Array.from({ length: PER_CLASS }, (_, i) => c * PER_CLASS + i));
    order.forEach((i, j) => (out[i] = j % FOLDS));
  }
  return out;
}

/** Probes made from the fold's digits, on this repetition's and fold's own streams. */
function probes(digits: readonly RowValues[], rep: number, fold: number): { kind: string; row: RowValues }[] {
  const examples: Example[] = digits.map((row, i) => ({ id: `dev-${i}`, row: row as number[], label: -1 }));
  const items = mnistOod(examples, `dev/mnist/ood/rep${rep}/fold${fold}`).filter((i) => i.kind !== 'blank');
  const rng = new Rng(`dev/mnist/blank/rep${rep}/fold${fold}`);
  for (let i = 0; i < 20; i++) items.push({ kind: 'blank', row: new Array(784).fill(Number(rng.next().toFixed(3))) });
  return items.map((i) => ({ kind: i.kind, row: i.row }));
}

function timed(tally: Tally, score: () => number): number {
  const start = process.hrtime.bigint();
  const s = score();
  tally.scoreNs += Number(process.hrtime.bigint() - start);
  tally.scores++;
  return s;
}

function runRepetition(reference: readonly RowValues[], rep: number, targetFpr: number, rule: string, tally: Tally): void {
  const fold = foldsOf(rep, reference.length);
  for (let f = 0; f < FOLDS; f++) {
    const train = reference.filter((_, i) => fold[i] !== f);
    const test = reference.filter((_, i) => fold[i] === f);
    // As breakwater profile does: the seeded split, every row for the image detector, the confident threshold.
    const { reference: ref, heldOut } = splitRows(train.length, 1);
    const features = featureProfiles(INPUTS, train);
    const fitted = fitOodForCalibration(features, ref.map((i) => train[i]), heldOut.map((i) => train[i]), INPUTS);
    const threshold = rule === 'expected' ? calibrateThreshold(fitted.scores, targetFpr) : confidentThreshold(fitted.scores, targetFpr);
    for (const row of test) {
      tally.clean++;
      if (timed(tally, () => oodScore(fitted.model, row)) > threshold) tally.falsePositives++;
    }
    for (const p of probes(test, rep, f)) {
      const k = tally.kinds.get(p.kind) ?? { n: 0, hit: 0 };
      k.n++;
      if (timed(tally, () => oodScore(fitted.model, p.row)) > threshold) k.hit++;
      tally.kinds.set(p.kind, k);
    }
  }
}

const pct = (x: number): string => `${(100 * x).toFixed(1)} %`;

function line(name: string, t: Tally): string {
  let n = 0;
  let hit = 0;
  const kinds = [...t.kinds].map(([kind, k]) => {
    if (!CONTRACT_KINDS.has(kind)) {
      n += k.n;
      hit += k.hit;
    }
    return `${kind} ${pct(k.hit / k.n)}`;
  });
  return `${name}: false positives ${t.falsePositives}/${t.clean} (${pct(t.falsePositives / t.clean)}); detected ${pct(hit / n)} of ${n} probes (contract kinds apart) | ${kinds.join(', ')}`;
}

function main(): void {
  const { values } = parseArgs({ options: { reps: { type: 'string', default: '2,3,4,5' }, 'target-fpr': { type: 'string', default: '0.01' }, rule: { type: 'string', default: 'confident' } } });
  const reps = values.reps.split(',').map(Number);
  const targetFpr = Number(values['target-fpr']);
  const reference = readFileSync(REFERENCE, 'utf8').trim().split('\n').flatMap((l) => rowsOf(MNIST, JSON.parse(l) as OipRequest)) as RowValues[];
  const pooled = newTally();
  for (const rep of reps) {
    const t = newTally();
    runRepetition(reference, rep, targetFpr, values.rule, t);
    process.stdout.write(`${line(`repetition ${rep}`, t)}\n`);
    pooled.clean += t.clean;
    pooled.falsePositives += t.falsePositives;
    pooled.scoreNs += t.scoreNs;
    pooled.scores += t.scores;
    for (const [kind, k] of t.kinds) {
      const p = pooled.kinds.get(kind) ?? { n: 0, hit: 0 };
      pooled.kinds.set(kind, { n: p.n + k.n, hit: p.hit + k.hit });
    }
  }
  process.stdout.write(`${line('pooled', pooled)}\nmean time per score: ${(pooled.scoreNs / pooled.scores / 1000).toFixed(0)} µs over ${pooled.scores} scores\n`);
}

main();
