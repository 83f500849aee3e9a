/**
 * Real audit trails for the verifier's tests: replicas writing hash chains through FileTrailSink
 * (several files each), checkpointing with their own Ed25519 keys and countersigning each other's
 * checkpoints, on a virtual clock; and the edits an attacker would make to the files.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  countersign, entryHash, GENESIS, nextEntry, signClaim,
  type Checkpoint, type FileStart, type TrailEntry, type TrailKind,
} from '../../gateway/audit/trail-format.js';
import { FileTrailSink, replicaDirName, trailFileName } from '../../gateway/audit/trail-sink.js';

export const T0 = Date.parse('2025-03-01T10:00:00.000Z');
/** The virtual time between rounds. */
export const STEP_MS = 100;
/** The replicas checkpoint every CHECKPOINT_EVERY rounds. */
export const CHECKPOINT_EVERY = 5;
export const CHECKPOINT_MS = STEP_MS * CHECKPOINT_EVERY;

export interface Keys {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

export const newKeys = (): Keys => generateKeyPairSync('ed25519');

export interface BuiltTrail {
  readonly dir: string;
  readonly replicas: readonly string[];
  readonly keys: ReadonlyMap<string, Keys>;
  readonly publicKeys: readonly KeyObject[];
  /** Each replica's latest checkpoint (what the shared store holds). */
  readonly store: ReadonlyMap<string, Checkpoint>;
  /** Entries written, per replica. */
  readonly written: ReadonlyMap<string, readonly TrailEntry[]>;
}

export interface BuildOptions {
  readonly replicas?: readonly string[];
  readonly rounds?: number;
  readonly maxFileBytes?: number;
  /** Rounds at which the replicas checkpoint (default every CHECKPOINT_EVERY, and the last). */
  readonly checkpointAt?: (round: number, rounds: number) => boolean;
}

/**
 * Writes a trail: each round, every replica appends a prediction (and every third round an admin
 * record); at checkpoint rounds every replica checkpoints (durably), then countersigns the others'
 * new checkpoints. The last round checkpoints, so the newest checkpoint of each replica is
 * countersigned by the others.
 */
export async function buildTrail(opts: BuildOptions = {}): Promise<BuiltTrail> {
  const dir = await mkdtemp(join(tmpdir(), 'bw-trail-'));
  const replicas = opts.replicas ?? ['alpha:8080', 'beta:8081', 'gamma:8082'];
  const rounds = opts.rounds ?? 20;
  const checkpointAt = opts.checkpointAt ?? ((r: number, n: number) => r % CHECKPOINT_EVERY === CHECKPOINT_EVERY - 1 || r === n - 1);
  let now = T0;
  const clock = (): number => now;
  const keys = new Map(replicas.map((r) => [r, newKeys()] as const));
  const sinks = new Map(replicas.map((r) => [r, new FileTrailSink({ dir, replica: r, maxFileBytes: opts.maxFileBytes ?? 1500, now: clock })] as const));
  const heads = new Map<string, { seq: number; hash: string }>(replicas.map((r) => [r, { seq: 0, hash: GENESIS }]));
  const written = new Map(replicas.map((r) => [r, [] as TrailEntry[]] as const));
  const store = new Map<string, Checkpoint>();
  const iso = (): string => new Date(now).toISOString();
  const write = async (replica: string, items: readonly { kind: TrailKind; body: unknown }[], durable: boolean): Promise<TrailEntry[]> => {
    const batch: TrailEntry[] = [];
    for (const { kind, body } of items) {
      const e = nextEntry(heads.get(replica) as { seq: number; hash: string }, replica, kind, body, iso());
      heads.set(replica, { seq: e.seq, hash: e.hash });
      batch.push(e);
    }
    await (sinks.get(replica) as FileTrailSink).append(batch, durable);
    (written.get(replica) as TrailEntry[]).push(...batch);
    return batch;
  };
  for (const r of replicas) await write(r, [{ kind: 'config', body: { sha256: 'c'.repeat(64) } }, { kind: 'model', body: { model: 'iris', version: '1', sha256: 'd'.repeat(64) } }], true);
  for (let round = 0; round < rounds; round++) {
    now += STEP_MS;
    for (const [i, r] of replicas.entries()) {
      const items: { kind: TrailKind; body: unknown }[] = [{ kind: 'prediction', body: { model: 'iris', version: '1', request: `req-${i}-${round}`, outcome: 'ok', class: round % 3 } }];
      if (round % 3 === 1) items.push({ kind: 'admin', body: { action: 'traffic.set', actor: 'ops@example', reason: `round ${round}` } });
      await write(r, items, false);
    }
    if (!checkpointAt(round, rounds)) continue;
    const fresh: Checkpoint[] = [];
    for (const r of replicas) {
      const head = heads.get(r) as { seq: number; hash: string };
      const cp = signClaim({ replica: r, seq: head.seq, hash: head.hash, at: iso() }, (keys.get(r) as Keys).privateKey);
      await write(r, [{ kind: 'checkpoint', body: cp }], true);
      store.set(r, cp);
      fresh.push(cp);
    }
    for (const r of replicas) {
      const others = fresh.filter((cp) => cp.replica !== r);
      await write(r, others.map((cp) => ({ kind: 'countersign' as const, body: countersign(cp, (keys.get(r) as Keys).privateKey) })), true);
    }
  }
  for (const s of sinks.values()) await s.close();
  return { dir, replicas, keys, publicKeys: replicas.map((r) => (keys.get(r) as Keys).publicKey), store, written };
}

export function removeTrail(t: { dir: string }): void {
  rmSync(t.dir, { recursive: true, force: true });
}

/** One line of a replica's files. */
export interface Line {
  /** Relative to the trail directory. */
  readonly file: string;
  readonly path: string;
  /** 1-based; line 1 is the file-start line. */
  readonly line: number;
  readonly text: string;
  readonly entry?: TrailEntry;
}

/** A replica's files, in order. */
export function filesOf(dir: string, replica: string): string[] {
  const d = replicaDirName(replica);
  return readdirSync(join(dir, d)).filter((f) => f.endsWith('.jsonl')).sort().map((f) => `${d}/${f}`);
}

/** Every line of a replica's chain. */
export function linesOf(dir: string, replica: string): Line[] {
  const out: Line[] = [];
  for (const file of filesOf(dir, replica)) {
    const path = join(dir, file);
    const texts = readFileSync(path, 'utf8').split('\n').filter((l) => l !== '');
    for (const [i, text] of texts.entries()) {
      const x = JSON.parse(text) as TrailEntry & { type?: string };
      out.push({ file, path, line: i + 1, text, ...(x.type === 'file-start' ? {} : { entry: x }) });
    }
  }
  return out;
}

/** The line holding entry `seq` (the first, if several). */
export function lineOfSeq(dir: string, replica: string, seq: number): Line {
  const l = linesOf(dir, replica).find((x) => x.entry?.seq === seq);
  if (l === undefined) throw new Error(`no seq ${seq} in ${replica}'s trail`);
  return l;
}

/** Replaces a file's lines. */
export function writeLines(path: string, texts: readonly string[]): void {
  writeFileSync(path, texts.map((t) => `${t}\n`).join(''));
}

/** Edits one file's lines in place. */
export function editFile(path: string, edit: (texts: string[]) => void): void {
  const texts = readFileSync(path, 'utf8').split('\n').filter((l) => l !== '');
  edit(texts);
  writeLines(path, texts);
}

/**
 * What an attacker who can write the files but holds no key does to hide a change: `mutate` edits
 * the chain's entries (grouped by file, file-start lines aside); then every entry is re-numbered
 * and re-hashed from the start, each file's file-start line is made to match and each file renamed
 * after its first seq. Checkpoint bodies (signed) are kept as they are.
 */
export function rewriteChain(dir: string, replica: string, mutate: (files: TrailEntry[][]) => void): void {
  const files = filesOf(dir, replica);
  const groups: TrailEntry[][] = [];
  const starts: FileStart[] = [];
  for (const f of files) {
    const texts = readFileSync(join(dir, f), 'utf8').split('\n').filter((l) => l !== '');
    starts.push(JSON.parse(texts[0] as string) as FileStart);
    groups.push(texts.slice(1).map((t) => JSON.parse(t) as TrailEntry));
  }
  mutate(groups);
  for (const f of files) rmSync(join(dir, f));
  let head = { seq: 0, hash: GENESIS };
  for (const [i, group] of groups.entries()) {
    if (group.length === 0) continue;
    const start: FileStart = { ...(starts[i] as FileStart), seq: head.seq + 1, prev: head.hash };
    const out = [JSON.stringify(start)];
    for (const e of group) {
      const { hash: _old, ...rest } = e;
      const fixed = { ...rest, seq: head.seq + 1, prev: head.hash };
      const hash = entryHash(fixed);
      out.push(JSON.stringify({ ...fixed, hash }));
      head = { seq: fixed.seq, hash };
    }
    writeLines(join(dir, replicaDirName(replica), trailFileName(start.seq)), out);
  }
}

/** Re-hashes an entry after an edit (the attacker who edits one entry and fixes its hash). */
export function rehash(e: Omit<TrailEntry, 'hash'> & { hash?: string }): TrailEntry {
  const { hash: _old, ...rest } = e;
  return { ...rest, hash: entryHash(rest) } as TrailEntry;
}
