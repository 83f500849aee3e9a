/**
 * A "retrained" Titanic model: the shared assets' scikit-learn pipeline with the two coefficients
 * of `sex` swapped between female and male, written to a new file. Same inputs, outputs, shapes
 * and graph; a different file (another SHA-256) whose decisions differ for most passengers (the
 * original favours women; this one men), with perfect latency and no errors: what a retraining on
 * mislabelled data ships. Only the sign bits of four float32 values change: the LinearClassifier's
 * `coefficients` attribute holds 2 classes × 11 features ([age, fare, 4 embarked, 2 sex, 3 pclass]),
 * stored as repeated fixed32 (tag 0x3d) after the attribute's name.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { TITANIC_FILE } from './titanic-backend.js';

/** The sex features' positions among the 22 coefficients (class 0 then class 1). */
const SEX = [6, 7, 17, 18];

export async function writeRetrainedTitanic(to: string): Promise<string> {
  const bytes = Buffer.from(await readFile(TITANIC_FILE));
  const name = Buffer.from('coefficients');
  let at = bytes.indexOf(name);
  if (at < 0) throw new Error('no coefficients attribute in the Titanic model');
  at += name.length;
  const offsets: number[] = [];
  while (bytes[at] === 0x3d) {
    offsets.push(at + 1);
    at += 5;
  }
  if (offsets.length !== 22) throw new Error(`expected 22 coefficients, found ${offsets.length}`);
  for (const i of SEX) {
    const o = offsets[i] as number;
    bytes.writeFloatLE(-bytes.readFloatLE(o), o);
  }
  await writeFile(to, bytes);
  return to;
}
