/**
 * The disjoint splits of the real data (GUARDS-SPEC "Evaluation"). Tabular: 70 % reference (the
 * profile's data), 30 % test, by a seeded hash of each row's content, so that identical rows (the
 * Titanic list has families with one ticket) always fall on the same side and no test row equals a
 * reference row. MNIST: reference = sample indices 0–49 of each class, test = 50–149.
 */
import { mnistExamples, type Example } from './datasets.js';
import { rowKey } from './models.js';
import { BUILD_SEED, hashUnit } from './random.js';

export const REFERENCE_SHARE = 0.7;
export const MNIST_REFERENCE = { from: 0, to: 50 } as const;
export const MNIST_TEST = { from: 50, to: 150 } as const;

export interface Split {
  readonly reference: Example[];
  readonly test: Example[];
}

/**
 * Rows ordered by the hash of their content; the first groups of equal rows up to 70 % of all rows
 * are the reference. Both parts keep the data's own order. Another `seed` splits differently (the
 * committed sets use BUILD_SEED).
 */
export function splitTabular(model: string, examples: readonly Example[], seed: string = BUILD_SEED): Split {
  const hashOf = (e: Example): number => hashUnit(`${seed}:split:${model}:${rowKey(e.row)}`);
  const order = examples.map((e, i) => ({ i, h: hashOf(e) })).sort((a, b) => a.h - b.h || a.i - b.i);
  const inReference = new Set<number>();
  let cut = -1;
  for (const { i, h } of order) {
    if (inReference.size >= REFERENCE_SHARE * examples.length && h !== cut) break;
    inReference.add(i);
    cut = h;
  }
  return {
    reference: examples.filter((_, i) => inReference.has(i)),
    test: examples.filter((_, i) => !inReference.has(i)),
  };
}

export function splitMnist(): Split {
  return { reference: mnistExamples(MNIST_REFERENCE.from, MNIST_REFERENCE.to), test: mnistExamples(MNIST_TEST.from, MNIST_TEST.to) };
}
