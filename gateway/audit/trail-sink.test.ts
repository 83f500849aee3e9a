import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { GENESIS, nextEntry, type FileStart, type TrailEntry } from './trail-format.js';
import {
  FileTrailSink, readChainHead, readTrail, replicaDirName, replicaFromDirName, trailFileName,
  type SinkFileHandle, type SinkFs,
} from './trail-sink.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'bw-sink-'));
  dirs.push(d);
  return d;
}

const T0 = Date.parse('2025-03-01T10:00:00.000Z');

/** `n` entries of `replica` following `head`. */
function entries(replica: string, head: { seq: number; hash: string }, n: number, at = T0): TrailEntry[] {
  const out: TrailEntry[] = [];
  let h = head;
  for (let i = 0; i < n; i++) {
    const e = nextEntry(h, replica, 'prediction', { request: `r${h.seq + 1}`, outcome: 'ok' }, new Date(at).toISOString());
    out.push(e);
    h = e;
  }
  return out;
}

const headOf = (es: readonly TrailEntry[]): { seq: number; hash: string } => es[es.length - 1] as TrailEntry;

function readLines(path: string): unknown[] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as unknown);
}

/** node:fs/promises, counting syncs and writes, optionally delaying writes. */
function spyFs(delayOf: (n: number) => number = () => 0): SinkFs & { syncs: string[]; writes: number } {
  let n = 0;
  const spy = {
    syncs: [] as string[],
    writes: 0,
    mkdir: (path: string, options: { recursive: true; mode: number }) => fsp.mkdir(path, options),
    unlink: (path: string) => fsp.unlink(path),
    async open(path: string, flags: string | number, mode?: number): Promise<SinkFileHandle> {
      const h = await fsp.open(path, flags, mode);
      return {
        write: async (buf: Uint8Array) => {
          const delay = delayOf(n++);
          if (delay > 0) await new Promise((r) => setTimeout(r, delay));
          spy.writes++;
          return h.write(buf);
        },
        sync: async () => {
          spy.syncs.push(path);
          await h.sync();
        },
        close: () => h.close(),
      };
    },
  };
  return spy;
}

describe('replica directory names', () => {
  test('are safe file names, reversible, and distinct for distinct replicas', () => {
    for (const replica of ['host:1234', 'host_1234', 'a:b:c', '10.0.0.7:8080', '..', '.hidden', 'x/y', 'ä ö', 'a%3Ab', '*~!']) {
      const name = replicaDirName(replica);
      assert.match(name, /^[A-Za-z0-9%_.-]+$/, name);
      assert.notEqual(name, '..');
      assert.ok(!name.startsWith('.'), name);
      assert.equal(replicaFromDirName(name), replica);
    }
    assert.equal(replicaDirName('host:1234'), 'host_1234');
    assert.notEqual(replicaDirName('host:1234'), replicaDirName('host_1234'));
    assert.equal(replicaFromDirName('not%zzvalid'), undefined);
    assert.throws(() => replicaDirName(''));
  });
});

describe('FileTrailSink', () => {
  test('writes <dir>/<replica>/<seq>.jsonl, starting with a file-start line, 0700 directories and 0600 files', async () => {
    const dir = tempDir();
    const now = T0 + 5;
    const sink = new FileTrailSink({ dir, replica: 'host:1234', now: () => now });
    const batch = entries('host:1234', { seq: 0, hash: GENESIS }, 3);
    await sink.append(batch, false);
    await sink.close();
    const replicaDir = join(dir, 'host_1234');
    assert.deepEqual(readdirSync(replicaDir), ['000000000001.jsonl']);
    assert.equal(trailFileName(1), '000000000001.jsonl');
    const [start, ...rest] = readLines(join(replicaDir, '000000000001.jsonl'));
    assert.deepEqual(start, { v: 1, type: 'file-start', replica: 'host:1234', seq: 1, prev: GENESIS, at: new Date(now).toISOString() } satisfies FileStart);
    assert.deepEqual(rest, batch);
    assert.equal(statSync(replicaDir).mode & 0o777, 0o700);
    assert.equal(statSync(join(replicaDir, '000000000001.jsonl')).mode & 0o777, 0o600);
  });

  test('rotates by size: a new file once the current one has maxFileBytes, each continuing the chain', async () => {
    const dir = tempDir();
    const sink = new FileTrailSink({ dir, replica: 'r:1', maxFileBytes: 600 });
    let head = { seq: 0, hash: GENESIS };
    const all: TrailEntry[] = [];
    for (let i = 0; i < 12; i++) {
      const batch = entries('r:1', head, 2);
      await sink.append(batch, false);
      all.push(...batch);
      head = headOf(batch);
    }
    await sink.close();
    const listing = await readTrail(dir);
    assert.equal(listing.replicas.length, 1);
    const files = listing.replicas[0]?.files ?? [];
    assert.ok(files.length >= 3, `several files (${files.length})`);
    let expected = { seq: 1, prev: GENESIS };
    const read: unknown[] = [];
    for (const f of files) {
      const [start, ...rest] = readLines(f.path) as [FileStart, ...TrailEntry[]];
      assert.equal(f.name, trailFileName(start.seq));
      assert.deepEqual({ seq: start.seq, prev: start.prev }, expected, f.name);
      assert.ok(rest.length > 0 && rest.length % 2 === 0, 'batches are not split across files');
      // Rotation happens before a batch when the file is over the limit: at most one batch past it.
      assert.ok(statSync(f.path).size < 600 + 2 * JSON.stringify(rest[0]).length + 2);
      read.push(...rest);
      const last = rest[rest.length - 1] as TrailEntry;
      expected = { seq: last.seq + 1, prev: last.hash };
    }
    assert.deepEqual(read, all);
  });

  test('rotates by time: a batch after rotateMs goes to a new file (a fake clock)', async () => {
    const dir = tempDir();
    let now = T0;
    const sink = new FileTrailSink({ dir, replica: 'r:1', rotateMs: 60_000, now: () => now });
    const b1 = entries('r:1', { seq: 0, hash: GENESIS }, 2);
    await sink.append(b1, false);
    now += 59_999;
    const b2 = entries('r:1', headOf(b1), 1);
    await sink.append(b2, false);
    now += 1;
    const b3 = entries('r:1', headOf(b2), 1);
    await sink.append(b3, false);
    await sink.close();
    const files = (await readTrail(dir)).replicas[0]?.files.map((f) => f.name);
    assert.deepEqual(files, ['000000000001.jsonl', '000000000004.jsonl']);
    const [start] = readLines(join(dir, 'r_1', '000000000004.jsonl')) as [FileStart];
    assert.equal(start.at, new Date(T0 + 60_000).toISOString());
    assert.equal(start.prev, b2[0]?.hash);
  });

  test('a durable append syncs before it resolves; a non-durable one does not', async () => {
    const dir = tempDir();
    const fs = spyFs();
    const sink = new FileTrailSink({ dir, replica: 'r:1', fs });
    const b1 = entries('r:1', { seq: 0, hash: GENESIS }, 2);
    await sink.append(b1, false);
    assert.equal(fs.syncs.length, 0, 'no sync for a non-durable batch');
    const b2 = entries('r:1', headOf(b1), 2);
    await sink.append(b2, true);
    assert.equal(fs.syncs.filter((p) => p.endsWith('.jsonl')).length, 1, 'the file was synced');
    assert.equal(readLines(join(dir, 'r_1', '000000000001.jsonl')).length, 5, 'and the lines are in it');
    assert.equal(fs.writes, 2, 'one write per batch');
    await sink.close();
  });

  test('concurrent appends are written one at a time, in the order they were made', async () => {
    const dir = tempDir();
    // The first writes are the slowest: without the queue, later batches would land first.
    const fs = spyFs((n) => Math.max(0, 20 - 2 * n));
    const sink = new FileTrailSink({ dir, replica: 'r:1', fs, maxFileBytes: 1000 });
    let head = { seq: 0, hash: GENESIS };
    const all: TrailEntry[] = [];
    const pending: Promise<void>[] = [];
    for (let i = 0; i < 10; i++) {
      const batch = entries('r:1', head, 1 + (i % 3));
      pending.push(sink.append(batch, i % 2 === 0));
      all.push(...batch);
      head = headOf(batch);
    }
    await Promise.all(pending);
    await sink.close();
    const files = (await readTrail(dir)).replicas[0]?.files ?? [];
    const read = files.flatMap((f) => readLines(f.path).slice(1));
    assert.deepEqual(read, all);
  });

  test('refuses an entry that does not follow the last appended, or of another replica, and goes on', async () => {
    const dir = tempDir();
    const sink = new FileTrailSink({ dir, replica: 'r:1' });
    const b1 = entries('r:1', { seq: 0, hash: GENESIS }, 2);
    await sink.append(b1, false);
    await assert.rejects(sink.append(entries('r:1', { seq: 5, hash: GENESIS }, 1), false), /does not follow seq 2/);
    await assert.rejects(sink.append(entries('r:2', headOf(b1), 1), false), /given an entry of r:2/);
    const b2 = entries('r:1', headOf(b1), 1);
    await sink.append(b2, false);
    await sink.append([], true);
    await sink.close();
    await assert.rejects(sink.append(entries('r:1', headOf(b2), 1), false), /closed/);
    assert.deepEqual(readLines(join(dir, 'r_1', '000000000001.jsonl')).slice(1), [...b1, ...b2]);
  });

  test('a batch that could not be written can be appended again (the file it alone started is removed)', async () => {
    const dir = tempDir();
    const fs = spyFs();
    let fail = true;
    const failing: SinkFs = {
      ...fs,
      open: async (path, flags, mode) => {
        const h = await fs.open(path, flags, mode);
        return {
          ...h,
          write: async (buf) => {
            if (fail) {
              fail = false;
              throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
            }
            return h.write(buf);
          },
        };
      },
    };
    const sink = new FileTrailSink({ dir, replica: 'r:1', fs: failing });
    const b1 = entries('r:1', { seq: 0, hash: GENESIS }, 2);
    await assert.rejects(sink.append(b1, true), /no space left/);
    assert.deepEqual(readdirSync(join(dir, 'r_1')), []);
    await sink.append(b1, true);
    await sink.close();
    assert.deepEqual(readLines(join(dir, 'r_1', '000000000001.jsonl')).slice(1), b1);
  });

  test('a restarted replica continues its chain in a new file; restarting it from seq 1 is refused', async () => {
    const dir = tempDir();
    const s1 = new FileTrailSink({ dir, replica: 'r:1' });
    const b1 = entries('r:1', { seq: 0, hash: GENESIS }, 3);
    await s1.append(b1, true);
    await s1.close();
    const head = await readChainHead(dir, 'r:1');
    assert.deepEqual(head, { seq: 3, hash: b1[2]?.hash });
    assert.equal(await readChainHead(dir, 'other:1'), undefined);
    assert.equal(await readChainHead(join(dir, 'nope'), 'r:1'), undefined);
    const s2 = new FileTrailSink({ dir, replica: 'r:1' });
    await s2.append(entries('r:1', head as { seq: number; hash: string }, 1), true);
    await s2.close();
    assert.deepEqual((await readTrail(dir)).replicas[0]?.files.map((f) => f.name), ['000000000001.jsonl', '000000000004.jsonl']);
    const s3 = new FileTrailSink({ dir, replica: 'r:1' });
    await assert.rejects(s3.append(entries('r:1', { seq: 0, hash: GENESIS }, 1), true), /exists already.*continue it from its head/);
    await s3.close();
    assert.equal(readLines(join(dir, 'r_1', '000000000001.jsonl')).length, 4, 'the old file is untouched');
  });
});

describe('readTrail', () => {
  test('lists the replicas (sorted, ids decoded) and their files in chain order, and what it ignores', async () => {
    const dir = tempDir();
    for (const replica of ['b:2', 'a:1']) {
      const sink = new FileTrailSink({ dir, replica, maxFileBytes: 300 });
      let head = { seq: 0, hash: GENESIS };
      for (let i = 0; i < 4; i++) {
        const batch = entries(replica, head, 1);
        await sink.append(batch, false);
        head = headOf(batch);
      }
      await sink.close();
    }
    writeFileSync(join(dir, 'a_1', 'notes.txt'), 'x');
    writeFileSync(join(dir, 'README'), 'x');
    const listing = await readTrail(dir);
    assert.equal(FileTrailSink.readTrail, readTrail);
    assert.deepEqual(listing.replicas.map((r) => [r.replica, r.dirName]), [['a:1', 'a_1'], ['b:2', 'b_2']]);
    const a = listing.replicas[0];
    assert.deepEqual(a?.files.map((f) => f.seq), [1, 2, 3, 4]);
    assert.deepEqual(a?.files.map((f) => f.relPath), ['a_1/000000000001.jsonl', 'a_1/000000000002.jsonl', 'a_1/000000000003.jsonl', 'a_1/000000000004.jsonl']);
    assert.deepEqual(a?.ignored, ['notes.txt']);
    assert.deepEqual(listing.ignored, ['README']);
  });
});
