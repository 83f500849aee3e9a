/**
 * The reference data each model's profile is built from (`breakwater profile --data`), as the
 * generator writes it into eval/reference/: a CSV whose header names the model's features (the
 * tabular models; an empty cell is a missing value) or JSON Lines of OIP v2 infer request bodies
 * (MNIST, one image per line). Read back by the test that checks the sets are disjoint from it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCsv, toCsv } from './csv.js';
import { featureNames, requestOf, rowsOf, type ModelSpec, type Row } from './models.js';
import { readJsonLines, type OipRequest } from './sets.js';

/** The file name of a model's reference data in eval/reference/. */
export function referenceFile(spec: ModelSpec): string {
  return spec.name === 'mnist' ? `${spec.name}.jsonl` : `${spec.name}.csv`;
}

export function writeReference(spec: ModelSpec, rows: readonly Row[], dir: string): void {
  const path = join(dir, referenceFile(spec));
  if (spec.name === 'mnist') writeFileSync(path, rows.map((r) => JSON.stringify(requestOf(spec, [r]))).join('\n') + '\n');
  else writeFileSync(path, toCsv(featureNames(spec), rows));
}

/** The reference rows, typed as the model's features (numbers for numeric inputs, null for empty cells). */
export function readReference(spec: ModelSpec, dir: string): Row[] {
  const path = join(dir, referenceFile(spec));
  if (spec.name === 'mnist') return readJsonLines<OipRequest>(path).flatMap((r) => rowsOf(spec, r));
  const [header, ...lines] = parseCsv(readFileSync(path, 'utf8'));
  const names = featureNames(spec);
  if (header.join(',') !== names.join(',')) throw new Error(`${path}: header ${header.join(',')} is not ${names.join(',')}`);
  const numeric = spec.inputs.flatMap((i) => i.features.map(() => i.datatype !== 'BYTES'));
  return lines.map((fields) => fields.map((f, k) => (!numeric[k] ? f : f === '' ? null : Number(f))));
}
