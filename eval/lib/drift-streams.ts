/**
 * The drift evaluation's stream format (issue 11, documented in eval/drift-streams/README.md),
 * shared by the builder (eval/build-drift-streams.ts), the runner (eval/run-drift.ts) and the test
 * of the committed streams: a folder with `manifest.json` and one JSON Lines file (optionally
 * gzipped) per stream, each line an OIP v2 infer request body. Streams are read line by line
 * (streamed, not whole) so a user's stream of any length replays in bounded memory.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { createGunzip, createGzip } from 'node:zlib';

export const STREAM_KINDS = ['control', 'sudden', 'gradual'] as const;
export type StreamKind = (typeof STREAM_KINDS)[number];

/** One stream of the manifest. */
export interface StreamEntry {
  /** The file, relative to the manifest's folder (.jsonl or .jsonl.gz). */
  readonly file: string;
  /** The served model the requests go to (POST /v2/models/<model>/infer). */
  readonly model: string;
  readonly kind: StreamKind;
  /**
   * Request indices (0-based) where the stream changes, ascending: a control has none; a sudden shift
   * one (its first shifted request); a gradual shift two, where the shifted share starts rising from
   * 0 and where it reaches 100 %. Requests before changeAt[0] are unshifted.
   */
  readonly changeAt: readonly number[];
  /** Lines in the file (checked before the run). */
  readonly requests: number;
  /** SHA-256 (hex) of the file's decompressed text; checked before the run when present. */
  readonly sha256?: string;
  /** Not committed: `npm run eval:drift` builds it (seeded, byte-identical) when the file is missing. */
  readonly onDemand?: boolean;
  readonly description: string;
}

export interface StreamManifest {
  /** The seed the team's streams were drawn with (free text for a user's own). */
  readonly seed: string;
  readonly streams: readonly StreamEntry[];
}

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;

/** Checks a parsed manifest; throws naming the stream and the problem. */
export function checkManifest(raw: unknown): StreamManifest {
  if (typeof raw !== 'object' || raw === null || !Array.isArray((raw as { streams?: unknown }).streams)) throw new Error('manifest.json: needs {"streams": [...]}');
  const m = raw as { seed?: unknown; streams: unknown[] };
  const files = new Set<string>();
  const streams = m.streams.map((s, i): StreamEntry => {
    const e = s as Partial<Record<keyof StreamEntry, unknown>>;
    const where = `manifest.json: streams[${i}]${typeof e.file === 'string' ? ` (${e.file})` : ''}`;
    if (typeof e.file !== 'string' || !/\.jsonl(\.gz)?$/.test(e.file) || e.file.includes('..')) throw new Error(`${where}: file must be a relative .jsonl or .jsonl.gz path`);
    if (files.has(e.file)) throw new Error(`${where}: listed twice`);
    files.add(e.file);
    if (typeof e.model !== 'string' || e.model === '') throw new Error(`${where}: model must be a model name`);
    if (!STREAM_KINDS.includes(e.kind as StreamKind)) throw new Error(`${where}: kind must be one of ${STREAM_KINDS.join(', ')}`);
    if (!isCount(e.requests) || e.requests === 0) throw new Error(`${where}: requests must be the number of lines (> 0)`);
    const changeAt = e.changeAt ?? [];
    if (!Array.isArray(changeAt) || !changeAt.every(isCount)) throw new Error(`${where}: changeAt must be a list of request indices`);
    const expected = e.kind === 'control' ? 0 : e.kind === 'sudden' ? 1 : 2;
    if (changeAt.length !== expected) throw new Error(`${where}: a ${String(e.kind)} stream has ${expected} change point${expected === 1 ? '' : 's'} in changeAt, not ${changeAt.length}`);
    for (let k = 0; k < changeAt.length; k++) {
      if (changeAt[k] <= (k === 0 ? 0 : changeAt[k - 1]) || changeAt[k] >= e.requests) throw new Error(`${where}: changeAt must ascend within (0, requests)`);
    }
    if (e.sha256 !== undefined && (typeof e.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(e.sha256))) throw new Error(`${where}: sha256 must be 64 hex digits`);
    if (e.onDemand !== undefined && typeof e.onDemand !== 'boolean') throw new Error(`${where}: onDemand must be true or false`);
    return {
      file: e.file, model: e.model, kind: e.kind as StreamKind, changeAt: changeAt as number[], requests: e.requests,
      ...(e.sha256 !== undefined ? { sha256: e.sha256 as string } : {}),
      ...(e.onDemand === true ? { onDemand: true } : {}),
      description: typeof e.description === 'string' ? e.description : '',
    };
  });
  return { seed: typeof m.seed === 'string' ? m.seed : '', streams };
}

export function readManifest(path: string): StreamManifest {
  return checkManifest(JSON.parse(readFileSync(path, 'utf8')) as unknown);
}

/** The lines of a stream file (gunzipped when its name ends in .gz), each a Buffer without its newline; empty lines skipped. */
export async function* streamLines(path: string): AsyncGenerator<Buffer> {
  const source = createReadStream(path, { highWaterMark: 1 << 20 });
  const input = path.endsWith('.gz') ? source.pipe(createGunzip({ chunkSize: 1 << 20 })) : source;
  let rest: Buffer | undefined;
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      const buf = rest === undefined ? chunk : Buffer.concat([rest, chunk]);
      let start = 0;
      for (let nl = buf.indexOf(10, start); nl !== -1; nl = buf.indexOf(10, start)) {
        if (nl > start) yield buf.subarray(start, nl);
        start = nl + 1;
      }
      rest = start < buf.length ? Buffer.from(buf.subarray(start)) : undefined;
    }
    if (rest !== undefined && rest.length > 0) yield rest;
  } finally {
    source.destroy();
  }
}

/** The line count and SHA-256 of a stream file's decompressed text. */
export async function streamDigest(path: string): Promise<{ requests: number; sha256: string }> {
  const hash = createHash('sha256');
  let requests = 0;
  for await (const line of streamLines(path)) {
    hash.update(line);
    hash.update('\n');
    requests++;
  }
  return { requests, sha256: hash.digest('hex') };
}

/**
 * Writes lines as a stream file (gzipped when the name ends in .gz) and returns their count and the
 * SHA-256 of the text. Lines come in chunks (arrays of lines) so a million-line stream never sits in
 * memory whole; the same lines always give the same bytes (no gzip timestamp or name is written).
 */
export async function writeStreamFile(path: string, chunks: Iterable<readonly string[]>): Promise<{ requests: number; sha256: string }> {
  const hash = createHash('sha256');
  const file = createWriteStream(path);
  const gzip = path.endsWith('.gz') ? createGzip({ level: 9 }) : undefined;
  const sink = gzip ?? file;
  if (gzip !== undefined) gzip.pipe(file);
  const closed = new Promise<void>((res, rej) => {
    file.once('close', res);
    file.once('error', rej);
    gzip?.once('error', rej);
  });
  let requests = 0;
  for (const lines of chunks) {
    if (lines.length === 0) continue;
    const text = lines.join('\n') + '\n';
    hash.update(text);
    requests += lines.length;
    if (!sink.write(text)) await new Promise<void>((res) => sink.once('drain', res));
  }
  sink.end();
  await closed;
  return { requests, sha256: hash.digest('hex') };
}
