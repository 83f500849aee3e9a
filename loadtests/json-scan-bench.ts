/**
 * Micro benchmark of the ambiguity scan (adapters/json-scan.ts) against the JSON.parse it follows:
 * ns per byte of each, and their ratio, on the load test's body and on tensor bodies of about 1 MB.
 * The scan's cost is the UTF-8 check of the bytes plus the scan of the decoded text; the last
 * column is the whole parse of a body as the gateway does it now (decode, check, parse, scan) over
 * what it did before (decode, parse).
 *
 *   npx tsc -p tsconfig.json && node dist/loadtests/json-scan-bench.js
 */
import { checkUtf8, parseUnambiguousJson, scanJson } from '../adapters/json-scan.js';
import { INFER_BODY } from './lib/measure.js';

const DEPTH = 64;
const MIN_MS = 400;

function fp32Values(count: number): number[] {
  // A fixed sequence (no randomness) whose values print like FP32 data from a client: 7–9 digits.
  const out = new Array<number>(count);
  let x = 0.5;
  for (let i = 0; i < count; i++) {
    x = (x * 9301 + 0.49297) % 1;
    out[i] = Math.fround(x * 4 - 2);
  }
  return out;
}

/** An FP32 request of about `targetBytes`, its data flat or in rows of `rowLength`. */
function tensorBody(targetBytes: number, rowLength: number): string {
  const make = (rows: number): string => {
    const flat = fp32Values(rows * rowLength);
    const data = rowLength === 1 ? flat : Array.from({ length: rows }, (_, r) => flat.slice(r * rowLength, (r + 1) * rowLength));
    const shape = rowLength === 1 ? [1, rows] : [rows, rowLength];
    return JSON.stringify({ id: 'big', inputs: [{ name: 'input', shape, datatype: 'FP32', data }], outputs: [{ name: 'y' }] });
  };
  const probe = 1000;
  return make(Math.round((probe * targetBytes) / make(probe).length));
}

/** Nanoseconds per call of `fn`, over at least MIN_MS of calls after a warm-up. */
function time(fn: () => void): number {
  const start = performance.now();
  let calls = 0;
  while (performance.now() - start < MIN_MS / 4) { fn(); calls++; }
  const batch = Math.max(1, calls);
  let total = 0;
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < MIN_MS) {
    const s = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) fn();
    total += Number(process.hrtime.bigint() - s);
    n += batch;
  }
  return total / n;
}

let sink: unknown;
const rows: string[][] = [['body', 'bytes', 'JSON.parse ns/byte', 'scan ns/byte', 'scan / JSON.parse', 'scan µs', 'now / before']];
for (const [label, text] of [
  ['bench body (loadtests/lib/measure.ts)', INFER_BODY],
  ['FP32 ~1 MB, flat data', tensorBody(1 << 20, 1)],
  ['FP32 ~1 MB, rows of 224', tensorBody(1 << 20, 224)],
] as const) {
  const bytes = Buffer.from(text, 'utf8');
  const parse = time(() => { sink = JSON.parse(text); });
  const scan = time(() => { checkUtf8(bytes, text, 'the body'); scanJson(text, DEPTH); });
  const before = time(() => { sink = JSON.parse(bytes.toString('utf8')); });
  const now = time(() => { sink = parseUnambiguousJson(bytes, DEPTH, 'the body'); });
  rows.push([
    label, String(bytes.length), (parse / bytes.length).toFixed(3), (scan / bytes.length).toFixed(3), (scan / parse).toFixed(3),
    (scan / 1000).toFixed(3), (now / before).toFixed(3),
  ]);
}
void sink;
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
for (const r of rows) console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
