/**
 * The reference data `breakwater profile` reads: a CSV file whose header names the model's inputs,
 * or a JSONL file of OIP v2 infer request bodies (one per line), as feature rows (policies/guards/
 * features.ts). A JSONL body is parsed and checked against the model's metadata exactly as the
 * gateway checks a request, so the profile sees what the guards will see.
 *
 * CSV: a column per feature. An input with one element per row reads the column named after it
 * (titanic's `pclass`, `sex`, …); a wider input reads `name[0]`, `name[1]`, … (row-major), or the
 * columns a map names (`--map input=SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm`). Other
 * columns are ignored. An empty cell is missing: NaN in a float input, "" in a BYTES input.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import type { ModelMetadata } from '../../adapters/adapter.js';
import { featureRows, rowsFromCsv, type ColumnMap, type RowValues } from '../../policies/guards/features.js';
import type { ProfileInput } from '../../policies/guards/profile.js';
import { parseInferRequest } from '../infer-request.js';
import { validateAgainstMetadata } from '../validate-request.js';

export type DataFormat = 'csv' | 'jsonl';

export interface ReferenceData {
  readonly format: DataFormat;
  /** SHA-256 (hex) of the file's bytes. */
  readonly sha256: string;
  /** One per data row (a JSONL line's batch contributes each of its rows), in file order. */
  readonly rows: RowValues[];
}

/**
 * RFC 4180 records: fields separated by commas, quoted fields may hold commas, quotes ("" inside)
 * and line breaks; CRLF or LF; a UTF-8 byte order mark is dropped; blank lines are skipped.
 */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let field = '';
  let record: string[] = [];
  let quoted = false;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const endRecord = () => {
    record.push(field);
    if (record.length > 1 || record[0] !== '') records.push(record);
    record = [];
    field = '';
  };
  for (; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch !== '"') field += ch;
      else if (text[i + 1] === '"') {
        field += '"';
        i++;
      } else quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      record.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      endRecord();
    } else field += ch;
  }
  if (quoted) throw new Error('the CSV ends inside a quoted field');
  if (field !== '' || record.length > 0) endRecord();
  return records;
}

/**
 * `input=col1,col2,…` options → a column map (an input named twice is a mistake). Column names
 * cannot contain a comma here; rename such a column in the header.
 */
export function parseColumnMap(options: readonly string[]): ColumnMap {
  const map: Record<string, string[]> = {};
  for (const o of options) {
    const eq = o.indexOf('=');
    if (eq <= 0 || eq === o.length - 1) throw new Error(`--map "${o}" is not INPUT=COLUMN[,COLUMN…]`);
    const input = o.slice(0, eq);
    if (Object.hasOwn(map, input)) throw new Error(`--map names input "${input}" twice`);
    map[input] = o.slice(eq + 1).split(',').map((c) => c.trim());
  }
  return map;
}

/** CSV unless the file is named .jsonl/.ndjson, or (another extension) its first character opens a JSON object. */
export function dataFormat(file: string, text: string): DataFormat {
  const ext = extname(file).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.csv') return 'csv';
  return text.trimStart().startsWith('{') ? 'jsonl' : 'csv';
}

function jsonlRows(text: string, inputs: readonly ProfileInput[], metadata: ModelMetadata): RowValues[] {
  const rows: RowValues[] = [];
  const lines = text.split('\n');
  for (const [i, line] of lines.entries()) {
    if (line.trim() === '') continue;
    try {
      // The data file is the operator's own: read leniently (missing values as NaN, members the
      // protocol does not define dropped), then checked against the model as a request would be.
      const request = parseInferRequest(Buffer.from(line), undefined, { maxElements: 1e9, nonFinite: 'allow', maxJsonDepth: 1000, unknownMembers: 'drop' });
      validateAgainstMetadata(request, metadata, true);
      for (const row of featureRows({ inputs }, request)) rows.push(row);
    } catch (e) {
      throw new Error(`line ${i + 1}: ${(e as Error).message}`, { cause: e });
    }
  }
  return rows;
}

/** Reads `file` as feature rows of `inputs` (the model's, features.ts profileInputs). */
export async function readReferenceData(file: string, inputs: readonly ProfileInput[], metadata: ModelMetadata, map: ColumnMap = {}): Promise<ReferenceData> {
  const bytes = await readFile(file);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const text = bytes.toString('utf8');
  const format = dataFormat(file, text);
  if (format === 'jsonl') {
    if (Object.keys(map).length > 0) throw new Error('--map applies to CSV data only');
    return { format, sha256, rows: jsonlRows(text, inputs, metadata) };
  }
  const [header, ...records] = parseCsv(text);
  if (header === undefined) throw new Error('the CSV is empty: it needs a header naming the model\'s inputs');
  for (const name of Object.keys(map)) {
    if (!inputs.some((i) => i.name === name)) throw new Error(`--map names "${name}", which is not an input of the model (${inputs.map((i) => i.name).join(', ')})`);
  }
  return { format, sha256, rows: rowsFromCsv(inputs, header.map((h) => h.trim()), records, map) };
}
