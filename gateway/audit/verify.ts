/**
 * `breakwater audit verify`: checks an audit trail directory (trail-sink.ts layout, trail-format.ts
 * records) and names, for each replica's chain, the first record that is not what the replica
 * wrote.
 *
 * What is checked, per chain, across its files in order:
 * - each file's `file-start` line continues the chain (the next seq, the hash before it), its file
 *   name is its first seq, and it is the replica of its directory (`bad-file-start`);
 * - every line parses as an entry (`unparseable`);
 * - every entry's hash recomputes, seq goes up by one, prev is the hash of the entry before. The
 *   break is told apart by its shape: a hash that does not recompute is an `edited` entry (so is an
 *   entry whose successor links to another hash: it was changed and re-hashed); a seq that jumps,
 *   with a prev that links to nothing before, is a `deleted` entry, unless the missing seq comes
 *   later (`reordered`); a seq that repeats is an `inserted` entry (of two entries with one seq,
 *   the one the chain does not continue from);
 * - every checkpoint entry is signed by one of the listed public keys (else `forged-checkpoint`)
 *   and claims the entry just before it, with that entry's hash. An attacker who rewrites the chain
 *   from some entry on (re-numbering and re-hashing everything after it) keeps it internally
 *   consistent, but cannot re-sign the checkpoints after it: their claims no longer match. The
 *   difference of seq tells inserted from deleted from edited; for an insertion the verifier also
 *   tries each place the inserted entries could be, undoing the re-numbering, and names the one
 *   that reproduces the signed hash;
 * - every countersignature (another replica's checkpoint, signed again by this one) verifies, and
 *   the countersigned checkpoint, like each checkpoint of `storeCheckpoints`, must be in the chain
 *   it names: a chain that ends before it was cut (`truncated`); a chain that has the entry it
 *   claims but not the checkpoint entry after it lost that checkpoint (`missing-checkpoint`); a
 *   chain whose entry has another hash was rewritten (`edited`);
 * - with `checkpointMs`, every entry must be followed by a checkpoint within 2 × checkpointMs of
 *   its time (`missing-checkpoint`, named at the first entry written after the checkpoint was
 *   due): so the start of a chain, the stretch between two checkpoints and the stretch after the
 *   last one are all covered, and a replica that is idle is not flagged for not checkpointing an
 *   unchanged head. With `now` too (for the trail of replicas still running), entries not yet
 *   covered at `now` count as well.
 *
 * Pure reading: nothing in the directory is changed.
 */
import { readFile } from 'node:fs/promises';
import type { KeyObject } from 'node:crypto';
import {
  checkpointSigned, countersignatureValid, entryHash, GENESIS, keyIdOf, publicKeyFromPem,
  type Checkpoint, type Countersign, type FileStart, type TrailEntry, type TrailKind,
} from './trail-format.js';
import { readTrail, type ReplicaFiles } from './trail-sink.js';

export type ProblemKind =
  | 'edited' | 'deleted' | 'inserted' | 'reordered' | 'truncated' | 'missing-checkpoint'
  | 'forged-checkpoint' | 'bad-file-start' | 'unparseable';

export interface TrailProblem {
  readonly kind: ProblemKind;
  readonly replica: string;
  /** The file, relative to the trail directory (absent for a chain with no file, or the store). */
  readonly file?: string;
  /** The line in `file` (1 is the file-start line; one past the last line for what is missing at the end). */
  readonly line?: number;
  /** The sequence number concerned (for deleted and truncated: the first one missing). */
  readonly seq?: number;
  readonly message: string;
}

export interface VerifyOptions {
  /** The keys checkpoints and countersignatures may be signed with: by key id, or PEMs / KeyObjects. */
  readonly publicKeys: ReadonlyMap<string, KeyObject> | readonly (string | KeyObject)[];
  /** The replicas' checkpoint period (ms): enables the missing-checkpoint check by time. */
  readonly checkpointMs?: number;
  /** The time of verification (ms), for a trail still being written (see the header). */
  readonly now?: number;
  /** Checkpoints as the shared store holds them (the latest of each replica). */
  readonly storeCheckpoints?: readonly Checkpoint[];
}

export type KindCounts = Record<TrailKind, number>;

export interface ChainReport {
  readonly replica: string;
  /** Its directory (absent for a replica known only from others' countersignatures or the store). */
  readonly dirName?: string;
  /** Its files, relative to the trail directory, in order. */
  readonly files: readonly string[];
  readonly entries: number;
  readonly kinds: KindCounts;
  readonly checkpoints: number;
  readonly countersigns: number;
  readonly firstSeq?: number;
  readonly lastSeq?: number;
  readonly ok: boolean;
  /** The first bad record of the chain. */
  readonly first?: TrailProblem;
  /** Every problem found, first first (at most MAX_PROBLEMS; later ones often follow from the first). */
  readonly problems: readonly TrailProblem[];
  /** Files of its directory that are not trail files (not verified). */
  readonly ignored: readonly string[];
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly dir: string;
  readonly replicas: number;
  readonly entries: number;
  readonly kinds: KindCounts;
  readonly checkpoints: number;
  readonly countersigns: number;
  readonly files: number;
  readonly chains: readonly ChainReport[];
  /** The first problem of each chain, then the store's. */
  readonly problems: readonly TrailProblem[];
  /** Bad checkpoints of `storeCheckpoints` (not in any chain). */
  readonly storeProblems: readonly TrailProblem[];
}

export const MAX_PROBLEMS = 50;
/** The longest stretch (entries) in which an insertion is searched for its exact place. */
export const LOCATE_LIMIT = 2000;

const KINDS: readonly TrailKind[] = ['admin', 'automatic', 'config', 'model', 'prediction', 'checkpoint', 'countersign'];
/** At one place, the problem named first. */
const PRIORITY: readonly ProblemKind[] = ['forged-checkpoint', 'bad-file-start', 'unparseable', 'edited', 'deleted', 'inserted', 'reordered', 'missing-checkpoint', 'truncated'];
const HEX64 = /^[0-9a-f]{64}$/;

export function zeroCounts(): KindCounts {
  return Object.fromEntries(KINDS.map((k) => [k, 0])) as KindCounts;
}

/** The keys by key id. */
export function keyring(keys: VerifyOptions['publicKeys']): Map<string, KeyObject> {
  if (!Array.isArray(keys)) return new Map(keys as ReadonlyMap<string, KeyObject>);
  const out = new Map<string, KeyObject>();
  for (const k of keys as readonly (string | KeyObject)[]) {
    const key = typeof k === 'string' ? publicKeyFromPem(k) : k;
    out.set(keyIdOf(key), key);
  }
  return out;
}

interface EntryRec {
  readonly type: 'entry';
  readonly entry: TrailEntry;
  readonly hashOk: boolean;
  readonly fileIndex: number;
  readonly file: string;
  readonly line: number;
}
interface BadRec {
  readonly type: 'bad';
  readonly kind: 'unparseable' | 'bad-file-start';
  readonly why: string;
  readonly fileIndex: number;
  readonly file: string;
  readonly line: number;
}
interface StartRec {
  readonly type: 'start';
  readonly start: FileStart;
  /** The seq in the file's name. */
  readonly nameSeq: number;
  readonly fileIndex: number;
  readonly file: string;
  readonly line: 1;
}
type Rec = EntryRec | BadRec | StartRec;

interface Found {
  readonly problem: TrailProblem;
  readonly fileIndex: number;
  readonly line: number;
}

interface ExternalClaim {
  readonly cp: Checkpoint;
  /** Where it was found: "replica B's countersignature (file line N)" or "the store". */
  readonly source: string;
}

interface Chain {
  readonly replica: string;
  readonly listing?: ReplicaFiles;
  readonly recs: Rec[];
  readonly entries: EntryRec[];
  /** The last line of each file. */
  readonly lastLines: number[];
  readonly found: Found[];
}

const at = (r: { file: string; line: number }): string => `${r.file} line ${r.line}`;
const short = (h: string): string => `${h.slice(0, 12)}…`;

function isObject(x: unknown): x is Record<string, unknown> {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}

const isSeq = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 1;

function asFileStart(x: unknown): FileStart | undefined {
  if (!isObject(x) || x.type !== 'file-start' || x.v !== 1 || typeof x.replica !== 'string' || !isSeq(x.seq)
    || typeof x.prev !== 'string' || !HEX64.test(x.prev) || typeof x.at !== 'string') return undefined;
  return x as unknown as FileStart;
}

function entryShapeProblem(x: unknown): string | undefined {
  if (!isObject(x)) return 'not a JSON object';
  if (x.type === 'file-start') return 'a file-start line in the middle of a file';
  if (x.v !== 1) return `not a version 1 trail entry (v: ${JSON.stringify(x.v)})`;
  if (typeof x.replica !== 'string') return 'no replica';
  if (!isSeq(x.seq)) return `no valid seq (${JSON.stringify(x.seq)})`;
  if (typeof x.prev !== 'string' || !HEX64.test(x.prev)) return 'no valid prev hash';
  if (typeof x.hash !== 'string' || !HEX64.test(x.hash)) return 'no valid hash';
  if (typeof x.at !== 'string') return 'no time (at)';
  if (typeof x.kind !== 'string' || !(KINDS as readonly string[]).includes(x.kind)) return `an unknown kind ${JSON.stringify(x.kind)}`;
  if (!('body' in x)) return 'no body';
  return undefined;
}

function asCheckpoint(x: unknown): Checkpoint | undefined {
  if (!isObject(x) || typeof x.replica !== 'string' || !isSeq(x.seq) || typeof x.hash !== 'string' || typeof x.at !== 'string'
    || typeof x.keyId !== 'string' || typeof x.signature !== 'string') return undefined;
  return x as unknown as Checkpoint;
}

function asCountersign(x: unknown): Countersign | undefined {
  if (!isObject(x) || asCheckpoint(x.checkpoint) === undefined || typeof x.keyId !== 'string' || typeof x.signature !== 'string') return undefined;
  return x as unknown as Countersign;
}

const sameClaim = (a: Checkpoint, b: Checkpoint): boolean => a.replica === b.replica && a.seq === b.seq && a.hash === b.hash && a.at === b.at;

/** Why a checkpoint is not trusted (undefined when it is signed by a listed key). */
function checkpointForgery(cp: Checkpoint, keys: ReadonlyMap<string, KeyObject>): string | undefined {
  const key = keys.get(cp.keyId);
  if (key === undefined) return `it is signed with key ${cp.keyId}, which is not one of the ${keys.size} listed public key(s)`;
  if (!checkpointSigned(cp, key)) return `its signature does not verify with key ${cp.keyId}: the claim was altered or signed with another key`;
  return undefined;
}

async function readChain(dir: string, listing: ReplicaFiles): Promise<Chain> {
  const chain: Chain = { replica: listing.replica, listing, recs: [], entries: [], lastLines: [], found: [] };
  for (const [fileIndex, ref] of listing.files.entries()) {
    const file = ref.relPath;
    const lines = (await readFile(ref.path, 'utf8')).split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    chain.lastLines.push(lines.length);
    if (lines.length === 0) chain.recs.push({ type: 'bad', kind: 'bad-file-start', why: 'the file is empty (no file-start line)', fileIndex, file, line: 1 });
    for (const [i, text] of lines.entries()) {
      const line = i + 1;
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        chain.recs.push({ type: 'bad', kind: 'unparseable', why: text.trim() === '' ? 'an empty line' : 'not JSON (a torn or altered line)', fileIndex, file, line });
        continue;
      }
      if (line === 1) {
        const start = asFileStart(parsed);
        if (start !== undefined) {
          chain.recs.push({ type: 'start', start, nameSeq: ref.seq, fileIndex, file, line: 1 });
          continue;
        }
        chain.recs.push({ type: 'bad', kind: 'bad-file-start', why: 'the first line is not a file-start line', fileIndex, file, line: 1 });
        if (entryShapeProblem(parsed) !== undefined) continue;
      }
      const why = entryShapeProblem(parsed);
      if (why !== undefined) {
        chain.recs.push({ type: 'bad', kind: isObject(parsed) && parsed.type === 'file-start' ? 'bad-file-start' : 'unparseable', why, fileIndex, file, line });
        continue;
      }
      const entry = parsed as TrailEntry;
      const { hash, ...rest } = entry;
      const rec: EntryRec = { type: 'entry', entry, hashOk: entryHash(rest) === hash, fileIndex, file, line };
      chain.recs.push(rec);
      chain.entries.push(rec);
    }
  }
  return chain;
}

function report(chain: Chain, kind: ProblemKind, where: { fileIndex: number; file?: string; line: number }, seq: number | undefined, message: string): void {
  const problem: TrailProblem = {
    kind, replica: chain.replica, ...(where.file === undefined ? {} : { file: where.file }), ...(where.line > 0 ? { line: where.line } : {}),
    ...(seq === undefined ? {} : { seq }), message,
  };
  chain.found.push({ problem, fileIndex: where.fileIndex, line: where.line });
}

/** The place just past a file's last line. */
function endOf(chain: Chain, fileIndex: number): { fileIndex: number; file?: string; line: number } {
  const file = chain.listing?.files[fileIndex]?.relPath;
  return file === undefined ? { fileIndex: 0, line: 0 } : { fileIndex, file, line: (chain.lastLines[fileIndex] ?? 0) + 1 };
}

/** The entries after recs[i] (skipping file-start lines), at most n. */
function entriesAfter(chain: Chain, i: number, n: number): (EntryRec | BadRec)[] {
  const out: (EntryRec | BadRec)[] = [];
  for (let j = i + 1; j < chain.recs.length && out.length < n; j++) {
    const r = chain.recs[j] as Rec;
    if (r.type !== 'start') out.push(r);
  }
  return out;
}

const entryAt = (r: EntryRec | BadRec | undefined): TrailEntry | undefined => (r?.type === 'entry' ? r.entry : undefined);

/**
 * The links of the chain, in order, up to its first break (past it the chain's state is unknown).
 */
function walk(chain: Chain): void {
  let seq = 1;
  let prev = GENESIS;
  let last: EntryRec | undefined;
  const seen = new Map<number, EntryRec>();
  const recs = chain.recs;
  for (let i = 0; i < recs.length; i++) {
    const r = recs[i] as Rec;
    if (r.type === 'bad') {
      report(chain, r.kind, r, r.kind === 'unparseable' ? seq : undefined, `${at(r)}: ${r.why}${r.kind === 'unparseable' ? ` (seq ${seq} expected)` : ''}`);
      return;
    }
    if (r.type === 'start') {
      const s = r.start;
      const following = recs[i + 1];
      const firstOfFile = following?.type === 'entry' && following.fileIndex === r.fileIndex ? following.entry : undefined;
      const consistent = firstOfFile === undefined || (firstOfFile.seq === s.seq && firstOfFile.prev === s.prev);
      if (s.replica !== chain.replica) {
        report(chain, 'bad-file-start', r, s.seq, `${at(r)}: the file-start line names replica ${JSON.stringify(s.replica)}, but the file is in the directory of ${JSON.stringify(chain.replica)}`);
        return;
      }
      if (s.seq !== r.nameSeq) {
        report(chain, 'bad-file-start', r, s.seq, `${at(r)}: the file is named for seq ${r.nameSeq} but its file-start line says seq ${s.seq}`);
        return;
      }
      if (s.seq === seq && s.prev === prev) continue;
      if (s.seq > seq && consistent) {
        const where = r.fileIndex > 0 ? endOf(chain, r.fileIndex - 1) : r;
        const span = s.seq - 1 === seq ? `seq ${seq} is` : `seq ${seq}–${s.seq - 1} are`;
        const message = r.fileIndex > 0
          ? `${span} missing: ${where.file ?? ''} ends at seq ${seq - 1} and the next file, ${r.file}, continues from seq ${s.seq} (deleted entries, or a deleted file)`
          : `${span} missing: the chain's first file, ${r.file}, starts at seq ${s.seq} (its earlier files were deleted)`;
        report(chain, 'deleted', where, seq, message);
        return;
      }
      if (s.seq === seq && consistent && last !== undefined) {
        report(chain, 'edited', last, last.entry.seq, `${at(last)}: seq ${last.entry.seq} was changed and re-hashed: it hashes to ${short(last.entry.hash)} but the next file, ${r.file}, continues from ${short(s.prev)}`);
        return;
      }
      if (s.seq < seq && consistent) {
        const earlier = seen.get(s.seq);
        report(chain, 'inserted', r, s.seq, `${r.file} repeats seq ${s.seq}–${seq - 1}, already in the chain before it${earlier === undefined ? '' : ` (first at ${at(earlier)})`}`);
        return;
      }
      report(chain, 'bad-file-start', r, s.seq, `${at(r)}: the file-start line (seq ${s.seq}, prev ${short(s.prev)}) does not continue the chain (seq ${seq}, prev ${short(prev)})${consistent ? '' : ', nor does it match the file\'s first entry'}`);
      return;
    }
    const e = r.entry;
    if (e.replica !== chain.replica) {
      report(chain, r.hashOk ? 'inserted' : 'edited', r, e.seq, r.hashOk
        ? `${at(r)}: an entry of replica ${JSON.stringify(e.replica)} (seq ${e.seq}) in the chain of ${JSON.stringify(chain.replica)}`
        : `${at(r)}: seq ${e.seq} does not hash to its recorded hash (its replica reads ${JSON.stringify(e.replica)}): it was changed`);
      return;
    }
    if (e.seq === seq) {
      const [n1, n2] = entriesAfter(chain, i, 2).map(entryAt);
      if (e.prev === prev) {
        if (!r.hashOk) {
          if (n1 !== undefined && n1.seq === seq && n1.prev === prev) {
            report(chain, 'inserted', r, e.seq, `${at(r)}: a second entry with seq ${e.seq}, whose hash does not recompute, before the one the chain continues with`);
          } else {
            report(chain, 'edited', r, e.seq, `${at(r)}: seq ${e.seq} (${e.kind}) does not hash to its recorded hash ${short(e.hash)}: it was changed after it was written`);
          }
          return;
        }
        if (n1 !== undefined && n1.seq === seq && n2 !== undefined && n2.prev === n1.hash && n2.prev !== e.hash) {
          report(chain, 'inserted', r, e.seq, `${at(r)}: an entry with seq ${e.seq} inserted before another entry with seq ${e.seq}, the one the chain continues from`);
          return;
        }
      } else {
        if (!r.hashOk) {
          report(chain, 'edited', r, e.seq, `${at(r)}: seq ${e.seq} does not hash to its recorded hash and does not link to seq ${seq - 1} (prev ${short(e.prev)}, expected ${short(prev)}): it was changed`);
        } else if (last !== undefined) {
          report(chain, 'edited', last, last.entry.seq, `${at(last)}: seq ${last.entry.seq} was changed and re-hashed: it hashes to ${short(last.entry.hash)}, but seq ${e.seq} (${at(r)}) links to ${short(e.prev)}`);
        } else {
          report(chain, 'edited', r, e.seq, `${at(r)}: seq ${e.seq} links to ${short(e.prev)}, not to ${seq === 1 ? 'the genesis hash' : `the chain state its file-start line gives (${short(prev)})`}`);
        }
        return;
      }
    } else if (e.seq < seq) {
      const earlier = seen.get(e.seq);
      const copy = earlier !== undefined && earlier.entry.hash === e.hash;
      report(chain, 'inserted', r, e.seq, `${at(r)}: seq ${e.seq} again, where seq ${seq} was expected: ${copy ? 'a copy of' : 'another entry with the seq of'} ${earlier === undefined ? `seq ${e.seq}` : at(earlier)}`);
      return;
    } else if (e.prev === prev) {
      report(chain, 'edited', r, e.seq, r.hashOk
        ? `${at(r)}: seq ${e.seq} links to seq ${seq - 1} but carries seq ${e.seq}, not ${seq}: its seq was changed and the entry re-hashed`
        : `${at(r)}: seq ${e.seq} does not hash to its recorded hash and links to seq ${seq - 1}: its seq was changed (${seq} expected)`);
      return;
    } else {
      let later: EntryRec | undefined;
      for (let j = i + 1; j < recs.length && later === undefined; j++) {
        const x = recs[j] as Rec;
        if (x.type === 'entry' && x.entry.seq === seq) later = x;
      }
      if (later !== undefined) {
        report(chain, 'reordered', r, e.seq, `${at(r)}: seq ${e.seq} comes where seq ${seq} was expected; seq ${seq} comes later, at ${at(later)}: the entries were reordered`);
      } else {
        const span = e.seq - 1 === seq ? `seq ${seq} is` : `seq ${seq}–${e.seq - 1} are`;
        report(chain, 'deleted', r, seq, `${at(r)}: ${span} missing: this line holds seq ${e.seq} where seq ${seq} was expected, and its prev (${short(e.prev)}) is not the hash of seq ${seq - 1}`);
      }
      return;
    }
    seen.set(e.seq, r);
    last = r;
    seq = e.seq + 1;
    prev = e.hash;
  }
}

/**
 * Where `r` entries inserted after seq `from - 1` would have to be, for the chain without them (re-
 * numbered back, re-linked) to reproduce the signed `claim` just before the checkpoint at `cpSeq`.
 */
function locateInsertion(bySeq: ReadonlyMap<number, EntryRec>, from: number, cpSeq: number, r: number, claim: Checkpoint): number | undefined {
  const lastSeq = cpSeq - 1;
  if (lastSeq - from + 1 > LOCATE_LIMIT || lastSeq - r !== claim.seq) return undefined;
  for (let m = Math.max(from, 1); m + r - 1 <= lastSeq; m++) {
    let h = m === 1 ? GENESIS : bySeq.get(m - 1)?.entry.hash;
    if (h === undefined) return undefined;
    for (let j = m + r; j <= lastSeq && h !== undefined; j++) {
      const e = bySeq.get(j)?.entry;
      h = e === undefined ? undefined : entryHash({ v: e.v, replica: e.replica, seq: j - r, prev: h, at: e.at, kind: e.kind, body: e.body });
    }
    if (h === claim.hash) return m;
  }
  return undefined;
}

/** The chain's own checkpoints: signed by a listed key, claiming the entry just before them. */
function checkCheckpoints(chain: Chain, keys: ReadonlyMap<string, KeyObject>): void {
  const bySeq = new Map<number, EntryRec>();
  for (const r of chain.entries) if (!bySeq.has(r.entry.seq)) bySeq.set(r.entry.seq, r);
  let verified: EntryRec | undefined;
  let located = false;
  for (const r of chain.entries) {
    if (r.entry.kind !== 'checkpoint') continue;
    const cp = asCheckpoint(r.entry.body);
    const e = r.entry;
    if (cp === undefined) {
      report(chain, 'forged-checkpoint', r, e.seq, `${at(r)}: checkpoint seq ${e.seq} has no valid checkpoint body`);
      continue;
    }
    const forged = checkpointForgery(cp, keys);
    if (forged !== undefined) report(chain, 'forged-checkpoint', r, e.seq, `${at(r)}: checkpoint seq ${e.seq} is forged: ${forged}`);
    if (cp.replica !== chain.replica) {
      report(chain, 'forged-checkpoint', r, e.seq, `${at(r)}: checkpoint seq ${e.seq} is a checkpoint of replica ${JSON.stringify(cp.replica)}, not of this chain`);
      continue;
    }
    const target = bySeq.get(cp.seq);
    const shift = e.seq - 1 - cp.seq;
    if (shift === 0 && target !== undefined && target.entry.hash === cp.hash) {
      if (forged === undefined) verified = target;
      continue;
    }
    const from = (verified?.entry.seq ?? 0) + 1;
    const since = verified === undefined
      ? 'since the start of the chain (no earlier checkpoint verifies)'
      : `after seq ${verified.entry.seq} (${at(verified)}, the last entry a valid checkpoint vouches for)`;
    if (shift > 0) {
      const m = located ? undefined : locateInsertion(bySeq, from, e.seq, shift, cp);
      located = true;
      const inserted = m === undefined ? undefined : bySeq.get(m);
      if (inserted !== undefined && m !== undefined) {
        const span = shift === 1 ? `seq ${m} was` : `seq ${m}–${m + shift - 1} were`;
        report(chain, 'inserted', inserted, m, `${at(inserted)}: ${span} inserted and every entry after re-numbered and re-hashed: without ${shift === 1 ? 'it' : 'them'}, the chain reproduces the hash that checkpoint seq ${e.seq} (${at(r)}) signs for seq ${cp.seq}`);
      } else {
        report(chain, 'inserted', r, e.seq, `${at(r)}: checkpoint seq ${e.seq} vouches for seq ${cp.seq} as the entry just before it, but stands after seq ${e.seq - 1}: ${shift} entr${shift === 1 ? 'y was' : 'ies were'} inserted ${since}, and the chain re-numbered and re-hashed`);
      }
    } else if (shift < 0) {
      report(chain, 'deleted', r, e.seq, `${at(r)}: checkpoint seq ${e.seq} vouches for seq ${cp.seq} as the entry just before it, but stands after seq ${e.seq - 1}: ${-shift} entr${shift === -1 ? 'y was' : 'ies were'} deleted ${since}, and the chain re-numbered and re-hashed`);
    } else {
      report(chain, 'edited', r, e.seq, `${at(r)}: checkpoint seq ${e.seq} vouches for hash ${short(cp.hash)} at seq ${cp.seq}, but seq ${cp.seq}${target === undefined ? ' is not in the chain' : ` (${at(target)}) hashes to ${short(target.entry.hash)}`}: an entry up to seq ${cp.seq} was changed ${since}, and the chain re-hashed`);
    }
  }
}

/** Countersignatures in this chain: valid, and of checkpoints signed by a listed key; the checkpoints go to `claims`. */
function checkCountersigns(chain: Chain, keys: ReadonlyMap<string, KeyObject>, claims: Map<string, ExternalClaim[]>): void {
  for (const r of chain.entries) {
    if (r.entry.kind !== 'countersign') continue;
    const e = r.entry;
    const c = asCountersign(e.body);
    if (c === undefined) {
      report(chain, 'forged-checkpoint', r, e.seq, `${at(r)}: countersignature seq ${e.seq} has no valid countersignature body`);
      continue;
    }
    const key = keys.get(c.keyId);
    if (key === undefined || !countersignatureValid(c, key)) {
      report(chain, 'forged-checkpoint', r, e.seq, `${at(r)}: countersignature seq ${e.seq} (of ${JSON.stringify(c.checkpoint.replica)}'s checkpoint of seq ${c.checkpoint.seq}) is forged: ${key === undefined ? `it is signed with key ${c.keyId}, which is not one of the ${keys.size} listed public key(s)` : `its signature does not verify with key ${c.keyId}`}`);
      continue;
    }
    const forged = checkpointForgery(c.checkpoint, keys);
    if (forged !== undefined) {
      report(chain, 'forged-checkpoint', r, e.seq, `${at(r)}: countersignature seq ${e.seq} vouches for a forged checkpoint of ${JSON.stringify(c.checkpoint.replica)} (seq ${c.checkpoint.seq}): ${forged}`);
      continue;
    }
    const list = claims.get(c.checkpoint.replica) ?? [];
    list.push({ cp: c.checkpoint, source: `${chain.replica}'s countersignature at ${at(r)}` });
    claims.set(c.checkpoint.replica, list);
  }
}

/** Checkpoints known from elsewhere must be in the chain they name. */
function checkExternalClaims(chain: Chain, claims: readonly ExternalClaim[]): void {
  const bySeq = new Map<number, EntryRec>();
  const ownCheckpoints: { rec: EntryRec; cp: Checkpoint }[] = [];
  let lastRec: EntryRec | undefined;
  for (const r of chain.entries) {
    if (!bySeq.has(r.entry.seq)) bySeq.set(r.entry.seq, r);
    if (lastRec === undefined || r.entry.seq > lastRec.entry.seq) lastRec = r;
    const cp = r.entry.kind === 'checkpoint' ? asCheckpoint(r.entry.body) : undefined;
    if (cp !== undefined) ownCheckpoints.push({ rec: r, cp });
  }
  // One check per checkpoint (several replicas countersign each), the furthest first: it is the
  // one a truncation is measured by.
  const unique = new Map<string, ExternalClaim>();
  for (const c of claims) {
    const id = `${c.cp.seq}/${c.cp.hash}/${c.cp.at}`;
    if (!unique.has(id)) unique.set(id, c);
  }
  const sorted = [...unique.values()].sort((a, b) => b.cp.seq - a.cp.seq);
  const furthest = sorted[0];
  const lastSeq = lastRec?.entry.seq ?? 0;
  if (furthest !== undefined && furthest.cp.seq + 1 > lastSeq) {
    const k = furthest.cp.seq;
    const lastFile = (chain.listing?.files.length ?? 0) - 1;
    const where = lastFile >= 0 ? endOf(chain, lastFile) : { fileIndex: 0, line: 0 };
    const cut = lastSeq + 1 === k + 1 ? `seq ${k + 1} (the checkpoint) was` : `seq ${lastSeq + 1}–${k + 1} (at least) were`;
    report(chain, 'truncated', where, lastSeq + 1, lastRec === undefined
      ? `the chain of ${JSON.stringify(chain.replica)} has no entry, but ${furthest.source} holds its signed checkpoint of seq ${k} (at ${furthest.cp.at}): the chain was deleted`
      : `the chain ends at seq ${lastSeq} (${at(lastRec)}), but ${furthest.source} holds its signed checkpoint of seq ${k} (at ${furthest.cp.at}), written as seq ${k + 1}: ${cut} cut off`);
  }
  for (const claim of sorted) {
    const k = claim.cp.seq;
    if (k + 1 > lastSeq) continue;
    if (ownCheckpoints.some((o) => sameClaim(o.cp, claim.cp))) continue;
    const target = bySeq.get(k);
    const after = bySeq.get(k + 1);
    if (target !== undefined && target.entry.hash === claim.cp.hash && after !== undefined) {
      report(chain, 'missing-checkpoint', after, k + 1, `${at(after)}: ${claim.source} holds this replica's signed checkpoint of seq ${k} (at ${claim.cp.at}), which should be seq ${k + 1}; the chain has a ${after.entry.kind} entry there instead: the checkpoint was removed (and the chain after it re-hashed)`);
    } else if (target !== undefined) {
      report(chain, 'edited', target, k, `${at(target)}: seq ${k} hashes to ${short(target.entry.hash)}, but ${claim.source} holds this replica's signed checkpoint claiming ${short(claim.cp.hash)}: the chain up to seq ${k} was rewritten`);
    }
  }
}

/** With checkpointMs: each entry followed by a checkpoint within 2 × checkpointMs. */
function checkCheckpointTimes(chain: Chain, checkpointMs: number, now: number | undefined): void {
  const limit = 2 * checkpointMs;
  let open: { rec: EntryRec; t: number } | undefined;
  for (const r of chain.entries) {
    const t = Date.parse(r.entry.at);
    if (Number.isNaN(t)) continue;
    if (open !== undefined && t - open.t > limit) {
      report(chain, 'missing-checkpoint', r, r.entry.seq, `${at(r)}: no checkpoint within ${limit} ms (2 × ${checkpointMs}) of seq ${open.rec.entry.seq} (${at(open.rec)}, at ${open.rec.entry.at}); seq ${r.entry.seq} was written ${t - open.t} ms after it${r.entry.kind === 'checkpoint' ? ', and is the late checkpoint' : ' without one'}`);
      open = undefined;
    }
    if (r.entry.kind === 'checkpoint') open = undefined;
    else if (open === undefined) open = { rec: r, t };
  }
  if (open !== undefined && now !== undefined && now - open.t > limit) {
    const lastFile = (chain.listing?.files.length ?? 1) - 1;
    report(chain, 'missing-checkpoint', endOf(chain, lastFile), undefined, `no checkpoint since seq ${open.rec.entry.seq} (${at(open.rec)}, at ${open.rec.entry.at}), ${now - open.t} ms before the verification: more than 2 × ${checkpointMs} ms (a replica still running checkpoints, a stopped one ends its chain with a checkpoint)`);
  }
}

function sortFound(found: readonly Found[]): Found[] {
  return [...found].sort((a, b) => a.fileIndex - b.fileIndex || a.line - b.line || PRIORITY.indexOf(a.problem.kind) - PRIORITY.indexOf(b.problem.kind));
}

/** Verifies the trail in `dir` (see the header). Throws only when `dir` cannot be read. */
export async function verifyTrail(dir: string, options: VerifyOptions): Promise<VerifyReport> {
  const keys = keyring(options.publicKeys);
  const listing = await readTrail(dir);
  const chains: Chain[] = [];
  for (const r of listing.replicas) chains.push(await readChain(dir, r));
  const claims = new Map<string, ExternalClaim[]>();
  for (const chain of chains) {
    walk(chain);
    checkCheckpoints(chain, keys);
    checkCountersigns(chain, keys, claims);
    if (options.checkpointMs !== undefined) checkCheckpointTimes(chain, options.checkpointMs, options.now);
  }
  const storeProblems: TrailProblem[] = [];
  for (const cp of options.storeCheckpoints ?? []) {
    const c = asCheckpoint(cp);
    const forged = c === undefined ? 'it is not a checkpoint' : checkpointForgery(c, keys);
    if (forged !== undefined || c === undefined) {
      storeProblems.push({ kind: 'forged-checkpoint', replica: String((cp as Partial<Checkpoint>).replica), ...(c === undefined ? {} : { seq: c.seq + 1 }), message: `the store's checkpoint of ${JSON.stringify((cp as Partial<Checkpoint>).replica)} is forged: ${forged ?? ''}` });
      continue;
    }
    const list = claims.get(c.replica) ?? [];
    list.push({ cp: c, source: 'the store' });
    claims.set(c.replica, list);
  }
  for (const [replica, list] of claims) {
    let chain = chains.find((c) => c.replica === replica);
    if (chain === undefined) {
      chain = { replica, recs: [], entries: [], lastLines: [], found: [] };
      chains.push(chain);
    }
    checkExternalClaims(chain, list);
  }
  chains.sort((a, b) => (a.replica < b.replica ? -1 : a.replica > b.replica ? 1 : 0));

  const total = zeroCounts();
  const reports: ChainReport[] = chains.map((c) => {
    const kinds = zeroCounts();
    let firstSeq: number | undefined;
    let lastSeq: number | undefined;
    for (const r of c.entries) {
      kinds[r.entry.kind]++;
      total[r.entry.kind]++;
      firstSeq = Math.min(firstSeq ?? r.entry.seq, r.entry.seq);
      lastSeq = Math.max(lastSeq ?? r.entry.seq, r.entry.seq);
    }
    const problems = sortFound(c.found).slice(0, MAX_PROBLEMS).map((f) => f.problem);
    return {
      replica: c.replica,
      ...(c.listing === undefined ? {} : { dirName: c.listing.dirName }),
      files: c.listing?.files.map((f) => f.relPath) ?? [],
      entries: c.entries.length,
      kinds,
      checkpoints: kinds.checkpoint,
      countersigns: kinds.countersign,
      ...(firstSeq === undefined ? {} : { firstSeq, lastSeq }),
      ok: problems.length === 0,
      ...(problems[0] === undefined ? {} : { first: problems[0] }),
      problems,
      ignored: c.listing?.ignored ?? [],
    };
  });
  const problems = [...reports.flatMap((r) => (r.first === undefined ? [] : [r.first])), ...storeProblems];
  return {
    ok: problems.length === 0,
    dir,
    replicas: reports.length,
    entries: reports.reduce((n, r) => n + r.entries, 0),
    kinds: total,
    checkpoints: total.checkpoint,
    countersigns: total.countersign,
    files: reports.reduce((n, r) => n + r.files.length, 0),
    chains: reports,
    problems,
    storeProblems,
  };
}
