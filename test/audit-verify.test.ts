/**
 * `breakwater audit verify` and verifyTrail: a real trail (three replicas writing through
 * FileTrailSink into several files each, checkpointing with their own Ed25519 keys and
 * countersigning each other) verifies untouched; each way of tampering with it (an edited, deleted,
 * inserted or reordered line, a cut tail, a removed or forged checkpoint, a broken file-start line,
 * an attacker who re-numbers and re-hashes the chain after his change) fails, and the report names
 * the replica, file, line, seq and kind of the first bad record.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { countersign, keyIdOf, signClaim, type Checkpoint, type Countersign, type TrailEntry } from '../gateway/audit/trail-format.js';
import { replicaDirName } from '../gateway/audit/trail-sink.js';
import { verifyTrail, type TrailProblem, type VerifyReport } from '../gateway/audit/verify.js';
import {
  buildTrail, CHECKPOINT_MS, editFile, filesOf, lineOfSeq, linesOf, newKeys, rehash, removeTrail, rewriteChain, T0,
  type BuiltTrail, type Line,
} from './helpers/audit-trail.js';
import { runCli } from './helpers/gateway.js';

const A = 'alpha:8080';
const B = 'beta:8081';
const built: BuiltTrail[] = [];
after(() => {
  for (const t of built) removeTrail(t);
});

async function trail(opts: Parameters<typeof buildTrail>[0] = {}): Promise<BuiltTrail> {
  const t = await buildTrail(opts);
  built.push(t);
  return t;
}

const verify = (t: BuiltTrail, extra: Partial<Parameters<typeof verifyTrail>[1]> = {}): Promise<VerifyReport> =>
  verifyTrail(t.dir, { publicKeys: t.publicKeys, ...extra });

/** The first problem of `replica`'s chain, asserting the trail failed. */
function firstOf(r: VerifyReport, replica: string): TrailProblem {
  assert.equal(r.ok, false, 'the trail must fail');
  const chain = r.chains.find((c) => c.replica === replica);
  assert.ok(chain?.first, `a problem in ${replica}'s chain: ${JSON.stringify(r.problems, null, 2)}`);
  return chain.first;
}

function assertProblem(p: TrailProblem, expected: { kind: string; replica: string; file?: string; line?: number; seq?: number }, message?: RegExp): void {
  assert.deepEqual({ kind: p.kind, replica: p.replica, file: p.file, line: p.line, seq: p.seq }, { file: undefined, line: undefined, seq: undefined, ...expected }, p.message);
  if (message !== undefined) assert.match(p.message, message);
}

/** The other chains are still fine. */
function othersOk(r: VerifyReport, replica: string): void {
  for (const c of r.chains) if (c.replica !== replica) assert.equal(c.ok, true, `${c.replica}: ${JSON.stringify(c.first)}`);
}

/** A prediction entry of `replica` neither first nor last in its file, at or after seq `from`. */
function middleLine(t: BuiltTrail, replica: string, from: number): Line {
  const lines = linesOf(t.dir, replica);
  const lastLine = new Map<string, number>();
  for (const l of lines) lastLine.set(l.file, l.line);
  const l = lines.find((x) => x.entry !== undefined && x.entry.seq >= from && x.entry.kind === 'prediction' && x.line >= 3 && x.line < (lastLine.get(x.file) as number));
  assert.ok(l, 'a line in the middle of a file');
  return l;
}

/** The checkpoint entries of a replica, in order. */
const checkpoints = (t: BuiltTrail, replica: string): Line[] => linesOf(t.dir, replica).filter((l) => l.entry?.kind === 'checkpoint');

describe('an untouched trail', () => {
  test('verifies, with its counts per replica and per kind', async () => {
    const t = await trail();
    for (const r of t.replicas) assert.ok(filesOf(t.dir, r).length >= 4, `${r} wrote several files`);
    const r = await verify(t, { checkpointMs: CHECKPOINT_MS, storeCheckpoints: [...t.store.values()] });
    assert.equal(r.ok, true, JSON.stringify(r.problems, null, 2));
    assert.deepEqual(r.problems, []);
    assert.equal(r.replicas, 3);
    const all = [...t.written.values()].flat();
    assert.equal(r.entries, all.length);
    for (const kind of ['admin', 'config', 'model', 'prediction', 'checkpoint', 'countersign'] as const) {
      assert.equal(r.kinds[kind], all.filter((e) => e.kind === kind).length, kind);
    }
    assert.equal(r.checkpoints, 3 * 4, 'four checkpoints per replica');
    assert.equal(r.countersigns, 3 * 2 * 4, 'each countersigns the two others\' checkpoints');
    for (const c of r.chains) {
      const written = t.written.get(c.replica) as TrailEntry[];
      assert.equal(c.ok, true);
      assert.equal(c.entries, written.length);
      assert.equal(c.firstSeq, 1);
      assert.equal(c.lastSeq, written.length);
      assert.equal(c.dirName, replicaDirName(c.replica));
      assert.deepEqual(c.files, filesOf(t.dir, c.replica));
    }
  });

  test('verifies with the keys as a map by key id, and as PEM texts', async () => {
    const t = await trail({ replicas: [A, B], rounds: 10 });
    const byId = new Map(t.publicKeys.map((k) => [keyIdOf(k), k] as const));
    assert.equal((await verifyTrail(t.dir, { publicKeys: byId })).ok, true);
    const pems = t.publicKeys.map((k) => k.export({ type: 'spki', format: 'pem' }).toString());
    assert.equal((await verifyTrail(t.dir, { publicKeys: pems })).ok, true);
  });

  test('without the key of one replica, that replica\'s checkpoints are named forged', async () => {
    const t = await trail({ replicas: [A, B], rounds: 10 });
    const r = await verifyTrail(t.dir, { publicKeys: [t.publicKeys[1] as never] });
    const first = checkpoints(t, A)[0] as Line;
    assertProblem(firstOf(r, A), { kind: 'forged-checkpoint', replica: A, file: first.file, line: first.line, seq: first.entry?.seq }, /not one of the 1 listed public key/);
  });
});

describe('tampering is found and located', () => {
  test('an edited body field: the entry whose hash does not recompute', async () => {
    const t = await trail();
    const l = middleLine(t, A, 20);
    editFile(l.path, (texts) => {
      const e = JSON.parse(texts[l.line - 1] as string) as TrailEntry & { body: { outcome: string } };
      e.body.outcome = 'refused';
      texts[l.line - 1] = JSON.stringify(e);
    });
    const r = await verify(t);
    assertProblem(firstOf(r, A), { kind: 'edited', replica: A, file: l.file, line: l.line, seq: l.entry?.seq }, /does not hash to its recorded hash/);
    othersOk(r, A);
    assert.equal(r.problems.length, 1, 'one chain fails');
  });

  test('a deleted line: the seq missing, where it should be', async () => {
    const t = await trail();
    const l = middleLine(t, A, 20);
    editFile(l.path, (texts) => texts.splice(l.line - 1, 1));
    const r = await verify(t);
    assertProblem(firstOf(r, A), { kind: 'deleted', replica: A, file: l.file, line: l.line, seq: l.entry?.seq }, new RegExp(`seq ${l.entry?.seq} is missing`));
    othersOk(r, A);
  });

  test('the last line of a file deleted: the place past the file\'s end', async () => {
    const t = await trail();
    const files = filesOf(t.dir, A);
    const file = files[2] as string;
    const lines = linesOf(t.dir, A).filter((x) => x.file === file);
    const last = lines[lines.length - 1] as Line;
    editFile(last.path, (texts) => texts.pop());
    const r = await verify(t);
    assertProblem(firstOf(r, A), { kind: 'deleted', replica: A, file, line: last.line, seq: last.entry?.seq }, /the next file/);
  });

  test('a whole file deleted from the middle of a chain', async () => {
    const t = await trail();
    const files = filesOf(t.dir, B);
    const gone = linesOf(t.dir, B).filter((x) => x.file === files[2] && x.entry !== undefined);
    const before = linesOf(t.dir, B).filter((x) => x.file === files[1]);
    unlinkSync(join(t.dir, files[2] as string));
    const r = await verify(t);
    const firstGone = gone[0]?.entry?.seq as number;
    assertProblem(firstOf(r, B), { kind: 'deleted', replica: B, file: files[1], line: before.length + 1, seq: firstGone }, new RegExp(`seq ${firstGone}–${firstGone + gone.length - 1} are missing`));
  });

  test('an inserted line, the chain re-numbered and re-hashed after it: found by the next checkpoint, placed exactly', async () => {
    const t = await trail();
    const target = middleLine(t, A, 22).entry as TrailEntry;
    const forged = { body: { model: 'iris', version: '1', request: 'forged', outcome: 'ok', class: 2 } };
    rewriteChain(t.dir, A, (files) => {
      for (const group of files) {
        const i = group.findIndex((e) => e.seq === target.seq);
        if (i >= 0) group.splice(i, 0, { ...target, ...forged });
      }
    });
    const inserted = linesOf(t.dir, A).find((x) => (x.entry?.body as { request?: string } | undefined)?.request === 'forged') as Line;
    assert.equal(inserted.entry?.seq, target.seq, 'the forged entry took the seq of the one it pushed down');
    const r = await verify(t);
    assertProblem(firstOf(r, A), { kind: 'inserted', replica: A, file: inserted.file, line: inserted.line, seq: target.seq }, /inserted and every entry after re-numbered and re-hashed/);
    othersOk(r, A);
  });

  test('a line replayed further down (a copy, not re-hashed): the copy is named inserted', async () => {
    const t = await trail();
    const l = middleLine(t, A, 10);
    editFile(l.path, (texts) => texts.splice(l.line + 1, 0, l.text));
    const r = await verify(t);
    assertProblem(firstOf(r, A), { kind: 'inserted', replica: A, file: l.file, line: l.line + 2, seq: l.entry?.seq }, /a copy of/);
  });

  test('two lines swapped: the first out of order', async () => {
    const t = await trail();
    const l = middleLine(t, A, 15);
    editFile(l.path, (texts) => {
      const [x, y] = [texts[l.line - 1] as string, texts[l.line] as string];
      texts[l.line - 1] = y;
      texts[l.line] = x;
    });
    const r = await verify(t);
    const seq = l.entry?.seq as number;
    assertProblem(firstOf(r, A), { kind: 'reordered', replica: A, file: l.file, line: l.line, seq: seq + 1 }, new RegExp(`seq ${seq} comes later, at ${l.file} line ${l.line + 1}`));
  });

  test('an entry edited, then the chain re-hashed from it: the first checkpoint after it no longer matches', async () => {
    const t = await trail();
    const target = middleLine(t, A, 20).entry as TrailEntry;
    rewriteChain(t.dir, A, (files) => {
      for (const group of files) {
        const i = group.findIndex((e) => e.seq === target.seq);
        if (i >= 0) group[i] = { ...target, body: { ...(target.body as object), outcome: 'refused' } };
      }
    });
    const cp = checkpoints(t, A).find((l) => (l.entry?.seq as number) > target.seq) as Line;
    const r = await verify(t);
    assertProblem(firstOf(r, A), { kind: 'edited', replica: A, file: cp.file, line: cp.line, seq: cp.entry?.seq }, /an entry up to seq \d+ was changed after seq \d+ .* and the chain re-hashed/);
  });

  test('an entry deleted, then the chain re-numbered and re-hashed: the first checkpoint after it says how many are gone', async () => {
    const t = await trail();
    const target = middleLine(t, A, 20).entry as TrailEntry;
    rewriteChain(t.dir, A, (files) => {
      for (const group of files) {
        const i = group.findIndex((e) => e.seq === target.seq);
        if (i >= 0) group.splice(i, 1);
      }
    });
    const cp = checkpoints(t, A).find((l) => (l.entry?.seq as number) >= target.seq) as Line;
    const r = await verify(t);
    assertProblem(firstOf(r, A), { kind: 'deleted', replica: A, file: cp.file, line: cp.line, seq: cp.entry?.seq }, /1 entry was deleted/);
  });

  test('the tail cut just after the entry the last checkpoint claims: found by another replica\'s countersignature', async () => {
    const t = await trail();
    const last = checkpoints(t, A).at(-1) as Line;
    const claimed = (last.entry?.body as Checkpoint).seq;
    assert.equal(claimed, (last.entry?.seq as number) - 1);
    cutFrom(t, A, last);
    const remaining = linesOf(t.dir, A);
    const end = remaining[remaining.length - 1] as Line;
    const r = await verify(t);
    assertProblem(firstOf(r, A), { kind: 'truncated', replica: A, file: end.file, line: end.line + 1, seq: claimed + 1 }, /countersignature at beta_8081\/\d{12}\.jsonl line \d+ holds its signed checkpoint of seq \d+.*seq \d+ \(the checkpoint\) was cut off/);
    othersOk(r, A);
  });

  test('the tail cut before the last checkpoint, whole files with it', async () => {
    const t = await trail();
    const last = checkpoints(t, A).at(-1) as Line;
    const cutAt = lineOfSeq(t.dir, A, (last.entry?.seq as number) - 12);
    cutFrom(t, A, cutAt);
    const remaining = linesOf(t.dir, A);
    const end = remaining[remaining.length - 1] as Line;
    const r = await verify(t);
    assertProblem(firstOf(r, A), { kind: 'truncated', replica: A, file: end.file, line: end.line + 1, seq: cutAt.entry?.seq }, new RegExp(`seq ${cutAt.entry?.seq}–${last.entry?.seq} \\(at least\\) were cut off`));
  });

  test('a replica\'s whole trail deleted: its chain is named truncated from others\' countersignatures', async () => {
    const t = await trail();
    rmSync(join(t.dir, replicaDirName(A)), { recursive: true });
    const r = await verify(t);
    assertProblem(firstOf(r, A), { kind: 'truncated', replica: A, seq: 1 }, /has no entry.*the chain was deleted/);
    othersOk(r, A);
  });

  test('a checkpoint removed and the chain re-hashed: named missing where the countersigned checkpoint was', async () => {
    const t = await trail();
    const cp = checkpoints(t, A)[1] as Line;
    const seq = cp.entry?.seq as number;
    rewriteChain(t.dir, A, (files) => {
      for (const group of files) {
        const i = group.findIndex((e) => e.seq === seq);
        if (i >= 0) group.splice(i, 1);
      }
    });
    const now = lineOfSeq(t.dir, A, seq);
    const r = await verify(t);
    assertProblem(firstOf(r, A), { kind: 'missing-checkpoint', replica: A, file: now.file, line: now.line, seq }, /countersignature .* holds this replica's signed checkpoint of seq \d+ .* the checkpoint was removed/);
  });

  test('no checkpoint for more than 2 × checkpointMs: named at the first entry written after one was due', async () => {
    const t = await trail({ replicas: ['solo:1'], rounds: 20, checkpointAt: (round) => round === 0 || round === 19 });
    assert.equal((await verify(t)).ok, true, 'without checkpointMs, no period to hold it to');
    const written = t.written.get('solo:1') as TrailEntry[];
    const firstCp = written.findIndex((e) => e.kind === 'checkpoint');
    const open = Date.parse((written[firstCp + 1] as TrailEntry).at);
    const late = written.find((e) => Date.parse(e.at) > open + 2 * CHECKPOINT_MS) as TrailEntry;
    const l = lineOfSeq(t.dir, 'solo:1', late.seq);
    const r = await verify(t, { checkpointMs: CHECKPOINT_MS });
    assertProblem(firstOf(r, 'solo:1'), { kind: 'missing-checkpoint', replica: 'solo:1', file: l.file, line: l.line, seq: late.seq }, /no checkpoint within 1000 ms \(2 × 500\) of seq/);
  });

  test('with now: a chain not checkpointed since long before now is reported; a recent tail is not', async () => {
    const t = await trail({ replicas: ['solo:1'], rounds: 17, checkpointAt: (round) => round % 5 === 4 });
    const written = t.written.get('solo:1') as TrailEntry[];
    const lastCp = written.map((e) => e.kind).lastIndexOf('checkpoint');
    const open = Date.parse((written[lastCp + 1] as TrailEntry).at);
    assert.equal((await verify(t, { checkpointMs: CHECKPOINT_MS, now: open + 2 * CHECKPOINT_MS })).ok, true);
    const r = await verify(t, { checkpointMs: CHECKPOINT_MS, now: open + 2 * CHECKPOINT_MS + 1 });
    const files = filesOf(t.dir, 'solo:1');
    const end = linesOf(t.dir, 'solo:1').filter((x) => x.file === files.at(-1)).length;
    assertProblem(firstOf(r, 'solo:1'), { kind: 'missing-checkpoint', replica: 'solo:1', file: files.at(-1), line: end + 1 }, /before the verification/);
  });

  test('a checkpoint signed with another key (the chain re-hashed to fit it): forged', async () => {
    const t = await trail();
    const cp = checkpoints(t, A)[2] as Line;
    const attacker = newKeys();
    const original = cp.entry?.body as Checkpoint;
    rewriteChain(t.dir, A, (files) => {
      for (const group of files) {
        const i = group.findIndex((e) => e.seq === cp.entry?.seq);
        if (i >= 0) group[i] = { ...(group[i] as TrailEntry), body: signClaim(original, attacker.privateKey) };
      }
    });
    const r = await verify(t);
    assertProblem(firstOf(r, A), { kind: 'forged-checkpoint', replica: A, file: cp.file, line: cp.line, seq: cp.entry?.seq }, new RegExp(`signed with key ${keyIdOf(attacker.publicKey)}, which is not one of the 3 listed`));
  });

  test('a checkpoint claim altered under a listed key id: its signature does not verify', async () => {
    const t = await trail();
    const cp = checkpoints(t, A)[1] as Line;
    editFile(cp.path, (texts) => {
      const e = JSON.parse(texts[cp.line - 1] as string) as TrailEntry;
      texts[cp.line - 1] = JSON.stringify(rehash({ ...e, body: { ...(e.body as Checkpoint), at: new Date(T0).toISOString() } }));
    });
    const r = await verify(t);
    const p = firstOf(r, A);
    assertProblem(p, { kind: 'forged-checkpoint', replica: A, file: cp.file, line: cp.line, seq: cp.entry?.seq }, /its signature does not verify with key/);
  });

  test('a countersignature made with another key: forged, in the countersigning chain', async () => {
    const t = await trail();
    const cs = linesOf(t.dir, B).filter((l) => l.entry?.kind === 'countersign')[3] as Line;
    const attacker = newKeys();
    rewriteChain(t.dir, B, (files) => {
      for (const group of files) {
        const i = group.findIndex((e) => e.seq === cs.entry?.seq);
        if (i >= 0) group[i] = { ...(group[i] as TrailEntry), body: countersign((cs.entry?.body as Countersign).checkpoint, attacker.privateKey) };
      }
    });
    const r = await verify(t);
    assertProblem(firstOf(r, B), { kind: 'forged-checkpoint', replica: B, file: cs.file, line: cs.line, seq: cs.entry?.seq }, /countersignature seq \d+ .* is forged/);
  });

  test('a file-start line that does not continue the chain', async () => {
    const t = await trail();
    const file = filesOf(t.dir, A)[2] as string;
    editFile(join(t.dir, file), (texts) => {
      texts[0] = JSON.stringify({ ...JSON.parse(texts[0] as string), prev: 'f'.repeat(64) });
    });
    const r = await verify(t);
    const start = JSON.parse(readFileSync(join(t.dir, file), 'utf8').split('\n')[0] as string) as { seq: number };
    assertProblem(firstOf(r, A), { kind: 'bad-file-start', replica: A, file, line: 1, seq: start.seq }, /does not continue the chain/);
  });

  test('a torn or garbled line: unparseable', async () => {
    const t = await trail();
    const l = middleLine(t, A, 12);
    editFile(l.path, (texts) => {
      texts[l.line - 1] = (texts[l.line - 1] as string).slice(0, 40);
    });
    const r = await verify(t);
    assertProblem(firstOf(r, A), { kind: 'unparseable', replica: A, file: l.file, line: l.line, seq: l.entry?.seq }, /not JSON/);
  });

  test('the store\'s checkpoints find a cut tail that no countersignature saw, and a forged one is named', async () => {
    const t = await trail({ replicas: ['solo:1'], rounds: 10 });
    const last = checkpoints(t, 'solo:1').at(-1) as Line;
    cutFrom(t, 'solo:1', last);
    assert.equal((await verify(t)).ok, true, 'without the store, a cut after the claimed entries cannot be seen');
    const store = [...t.store.values()];
    const r = await verify(t, { storeCheckpoints: store });
    assert.equal(firstOf(r, 'solo:1').kind, 'truncated');
    assert.match(firstOf(r, 'solo:1').message, /the store holds its signed checkpoint/);
    const forged = await verify(t, { storeCheckpoints: [{ ...(store[0] as Checkpoint), seq: 2 }] });
    assert.equal(forged.ok, false);
    assert.equal(forged.storeProblems[0]?.kind, 'forged-checkpoint');
  });
});

/** Cuts a replica's chain from line `from` on (that line, the rest of its file, every later file). */
function cutFrom(t: BuiltTrail, replica: string, from: Line): void {
  const files = filesOf(t.dir, replica);
  editFile(from.path, (texts) => texts.splice(from.line - 1));
  for (const f of files.slice(files.indexOf(from.file) + 1)) unlinkSync(join(t.dir, f));
}

describe('breakwater audit verify', { timeout: 60_000 }, () => {
  const keysDir = mkdtempSync(join(tmpdir(), 'bw-trail-keys-'));
  after(() => rmSync(keysDir, { recursive: true, force: true }));
  const keyArgs = (t: BuiltTrail): string[] => t.publicKeys.flatMap((k, i) => {
    const file = join(keysDir, `${i}-${keyIdOf(k)}.pem`);
    writeFileSync(file, k.export({ type: 'spki', format: 'pem' }));
    return ['--public-key', file];
  });

  test('exit 0 and a summary per replica on an untouched trail', async () => {
    const t = await trail();
    const r = await runCli(['audit', 'verify', t.dir, ...keyArgs(t), '--checkpoint-ms', String(CHECKPOINT_MS)]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stderr, '');
    for (const replica of t.replicas) assert.match(r.stdout, new RegExp(`  ${replica}: \\d+ files, seq 1–\\d+, \\d+ entries, 4 checkpoints, 8 countersignatures: ok`));
    assert.match(r.stdout, /verified: 3 chains, 12 checkpoints and 24 countersignatures, no tampering found/);
  });

  test('exit 1 naming the first bad record on a tampered trail; --json gives the report', async () => {
    const t = await trail();
    const l = middleLine(t, A, 20);
    editFile(l.path, (texts) => texts.splice(l.line - 1, 1));
    const args = ['audit', 'verify', t.dir, ...keyArgs(t)];
    const r = await runCli(args);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`DELETED at ${l.file.replace('.', '\\.')}:${l.line}, seq ${l.entry?.seq}`));
    assert.match(r.stdout, /beta:8081: .*: ok/);
    assert.match(r.stdout, /TAMPERING FOUND: 1 of 3 chains/);
    assert.match(r.stderr, new RegExp(`alpha:8080: deleted at ${l.file.replace('.', '\\.')}:${l.line}`));
    const j = await runCli([...args, '--json']);
    assert.equal(j.code, 1);
    const report = JSON.parse(j.stdout) as VerifyReport;
    assert.equal(report.ok, false);
    assert.deepEqual(report.problems.map((p) => [p.kind, p.replica, p.file, p.line, p.seq]), [['deleted', A, l.file, l.line, l.entry?.seq]]);
  });

  test('exit 2 without a key, with a bad key file or a missing directory', async () => {
    const t = await trail({ replicas: [A], rounds: 5 });
    const noKey = await runCli(['audit', 'verify', t.dir]);
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /give at least one --public-key FILE[\s\S]*breakwater audit verify DIR/);
    const bad = join(keysDir, 'not-a-key.pem');
    writeFileSync(bad, 'hello');
    const badKey = await runCli(['audit', 'verify', t.dir, '--public-key', bad]);
    assert.equal(badKey.code, 2);
    assert.match(badKey.stderr, /not a PEM Ed25519 public key/);
    const missing = await runCli(['audit', 'verify', join(t.dir, 'nope'), ...keyArgs(t)]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /is not a directory/);
  });
});
