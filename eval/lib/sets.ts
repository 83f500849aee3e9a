/**
 * The evaluation's set format (issue 10, documented in eval/sets/README.md), shared by the
 * generator, the runner and the test that checks the committed sets: JSON Lines files, optionally
 * gzipped, one record per line.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';

/** An OIP v2 infer request body, as sent over HTTP. */
export interface OipRequest {
  readonly id?: string;
  readonly inputs: readonly OipTensor[];
  readonly outputs?: readonly { readonly name: string; readonly parameters?: Record<string, unknown> }[];
  readonly parameters?: Record<string, unknown>;
}

export interface OipTensor {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
  readonly data: readonly (number | string | boolean)[];
}

export type SetName = 'clean' | 'ood' | 'adversarial';

/** One record of `clean/`, `ood/` or `adversarial/<model>.jsonl[.gz]`. */
export interface SetRecord {
  readonly id: string;
  readonly model: string;
  readonly set: SetName;
  /** The true class, when known (clean records and the adversarial records made from them). */
  readonly label?: number;
  readonly request: OipRequest;
  /** ood only: what made the input out of distribution. */
  readonly kind?: string;
  /** adversarial only: the attack and its budget, e.g. "simba-linf-0.2". */
  readonly attack?: string;
  /** adversarial only: the id of the clean record it was made from. */
  readonly source?: string;
}

/** One line of `extraction/<model>.trace.jsonl[.gz]`, in time order. */
export interface TraceLine {
  readonly subject: string;
  /** Milliseconds since the trace's start. */
  readonly t: number;
  readonly request: OipRequest;
}

/** `extraction/<model>.subjects.json`: who each subject of a trace is. */
export type Subjects = Record<string, { readonly role: 'benign' | 'attacker'; readonly kind: string }>;

/** Reads a JSON Lines file (gunzipped first when its name ends in .gz). */
export function readJsonLines<T>(path: string): T[] {
  const raw = readFileSync(path);
  const text = (path.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8');
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as T);
}

/** Writes a JSON Lines file, gzipped when its name ends in .gz (byte-identical for identical items). */
export function writeJsonLines(path: string, items: readonly unknown[]): void {
  const text = items.map((i) => JSON.stringify(i)).join('\n') + (items.length > 0 ? '\n' : '');
  writeFileSync(path, path.endsWith('.gz') ? gzipSync(text, { level: 9 }) : text);
}
