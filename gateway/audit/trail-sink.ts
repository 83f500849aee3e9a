/**
 * Where a replica's audit trail goes (trail-format.ts): `TrailSink` is the one interface the trail
 * writer appends to, and `FileTrailSink` writes it as files on a local disk.
 *
 * Layout: `<dir>/<replica>/<seq>.jsonl`, one directory per replica (its id made safe for a file
 * name by `replicaDirName`: `host:1234` → `host_1234`, reversibly) and one file per stretch of the
 * chain, named after the sequence number of its first entry padded to 12 digits, so that a listing
 * sorted by name is the chain in order. Every file starts with a `file-start` line (the chain state
 * it continues from), then one entry per line. Directories are made 0700, files 0600.
 *
 * A file is appended to while it is current, then closed for good (rotated) once it has reached
 * `maxFileBytes` or is older than `rotateMs`, checked before each batch; a restarted replica starts
 * a new file (it never appends to an old one). So **a file that is not the newest of its directory
 * is immutable**: that is what to ship. A log shipper (Vector, Fluent Bit, Filebeat…) tailing
 * every `.jsonl` file under `<dir>`, or a cron job copying every closed file to an object store with a
 * write-once (object lock / retention) policy, moves the trail off the host; the newest file of
 * each replica is still growing, and a tailing shipper sends its lines as they come. Ship the files
 * as they are: `breakwater audit verify DIR` (verify.ts) reads the same layout wherever it lands.
 *
 * Another destination (an object store written directly, a log pipeline, a database) is another
 * implementation of `TrailSink`: take each batch in order, keep it whole, and make it durable before
 * resolving when asked to. The trail's integrity does not depend on the sink: it is in the hash
 * chain and the signed checkpoints, which the verifier checks wherever the lines end up.
 */
import { constants as fsConstants } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { join } from 'node:path';
import type { FileStart, TrailEntry } from './trail-format.js';

/** What the trail writer appends to. */
export interface TrailSink {
  /**
   * Appends `entries` (consecutive entries of one chain, following the last appended) as one batch,
   * after every earlier append; when `durable`, resolves only once they are on stable storage.
   */
  append(entries: readonly TrailEntry[], durable: boolean): Promise<void>;
  /** Waits for the appends in flight, makes them durable and releases the sink. */
  close(): Promise<void>;
}

/** The file operations FileTrailSink uses (node:fs/promises by default; tests pass a spy). */
export interface SinkFs {
  mkdir(path: string, options: { recursive: true; mode: number }): Promise<unknown>;
  open(path: string, flags: string | number, mode?: number): Promise<SinkFileHandle>;
  unlink(path: string): Promise<void>;
}

export interface SinkFileHandle {
  write(buffer: Uint8Array): Promise<{ bytesWritten: number }>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface FileTrailSinkOptions {
  /** The trail's root directory (one sub-directory per replica). */
  readonly dir: string;
  /** The replica whose chain this sink writes. */
  readonly replica: string;
  /** Rotate before a batch once the current file has this many bytes (default 64 MiB). */
  readonly maxFileBytes?: number;
  /** Rotate before a batch once the current file is this old (default 1 h). */
  readonly rotateMs?: number;
  /** The clock (ms), for the file-start lines and rotation by age. */
  readonly now?: () => number;
  readonly fs?: SinkFs;
}

export const DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_ROTATE_MS = 60 * 60 * 1000;
export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;
/** The digits of a file name's sequence number. */
export const SEQ_DIGITS = 12;
export const TRAIL_FILE_RE = /^(\d{12})\.jsonl$/;

/**
 * A replica id as a directory name: percent-encoding (encodeURIComponent, plus `!'()*~`, `_` and
 * a leading `.`), then `:` (written `%3A`) as `_`, so `host:1234` reads `host_1234`. Reversible
 * (replicaFromDirName), hence unique.
 */
export function replicaDirName(replica: string): string {
  if (replica === '') throw new Error('a replica id cannot be empty');
  return encodeURIComponent(replica)
    .replace(/[!'()*~_]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/^\./, '%2E')
    .replace(/%3A/g, '_');
}

/** The replica id a directory name stands for (undefined when it is not one replicaDirName makes). */
export function replicaFromDirName(name: string): string | undefined {
  try {
    const replica = decodeURIComponent(name.replace(/_/g, '%3A'));
    return replica !== '' && replicaDirName(replica) === name ? replica : undefined;
  } catch {
    return undefined;
  }
}

/** The file name of a file whose first entry has sequence number `seq`. */
export function trailFileName(seq: number): string {
  return `${String(seq).padStart(SEQ_DIGITS, '0')}.jsonl`;
}

export interface TrailFileRef {
  /** The file name (`000000000001.jsonl`). */
  readonly name: string;
  /** Its path relative to the trail's root (`host_1234/000000000001.jsonl`). */
  readonly relPath: string;
  readonly path: string;
  /** The sequence number in its name (of its first entry). */
  readonly seq: number;
}

export interface ReplicaFiles {
  /** The replica id (decoded from the directory name; the raw name when it does not decode). */
  readonly replica: string;
  readonly dirName: string;
  /** The trail files, in chain order. */
  readonly files: readonly TrailFileRef[];
  /** Anything else in the directory (not a trail file name). */
  readonly ignored: readonly string[];
}

export interface TrailListing {
  readonly dir: string;
  /** Sorted by replica id. */
  readonly replicas: readonly ReplicaFiles[];
  /** Entries of the root that are not directories. */
  readonly ignored: readonly string[];
}

/** Lists a trail directory: its replicas and each one's files in order. Throws when `dir` cannot be read. */
export async function readTrail(dir: string): Promise<TrailListing> {
  const replicas: ReplicaFiles[] = [];
  const ignoredRoot: string[] = [];
  for (const d of await fsp.readdir(dir, { withFileTypes: true })) {
    if (!d.isDirectory()) {
      ignoredRoot.push(d.name);
      continue;
    }
    const files: TrailFileRef[] = [];
    const ignored: string[] = [];
    for (const f of await fsp.readdir(join(dir, d.name), { withFileTypes: true })) {
      const m = TRAIL_FILE_RE.exec(f.name);
      if (m === null || !f.isFile()) ignored.push(f.name);
      else files.push({ name: f.name, relPath: `${d.name}/${f.name}`, path: join(dir, d.name, f.name), seq: Number(m[1]) });
    }
    files.sort((a, b) => a.seq - b.seq);
    ignored.sort();
    replicas.push({ replica: replicaFromDirName(d.name) ?? d.name, dirName: d.name, files, ignored });
  }
  replicas.sort((a, b) => (a.replica < b.replica ? -1 : a.replica > b.replica ? 1 : 0));
  return { dir, replicas, ignored: ignoredRoot.sort() };
}

/**
 * The head `{seq, hash}` of a replica's chain as its files hold it (the last entry of its newest
 * file, or the state its file-start line continues from when it has no entry), for a replica that
 * restarts and continues its chain; undefined when the replica has no file. Does not verify.
 */
export async function readChainHead(dir: string, replica: string): Promise<{ seq: number; hash: string } | undefined> {
  const listing = await readTrail(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  const files = listing?.replicas.find((r) => r.replica === replica)?.files ?? [];
  const last = files[files.length - 1];
  if (last === undefined) return undefined;
  const lines = (await fsp.readFile(last.path, 'utf8')).split('\n').filter((l) => l !== '');
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const x = JSON.parse(lines[i] as string) as Partial<TrailEntry & FileStart>;
      if (x.type === 'file-start' && typeof x.seq === 'number' && typeof x.prev === 'string') return { seq: x.seq - 1, hash: x.prev };
      if (typeof x.seq === 'number' && typeof x.hash === 'string') return { seq: x.seq, hash: x.hash };
    } catch {
      // A torn last line (a crash mid-write): the head is the line before.
    }
  }
  return undefined;
}

interface OpenFile {
  readonly handle: SinkFileHandle;
  readonly path: string;
  readonly openedAt: number;
  bytes: number;
}

/** A TrailSink writing `<dir>/<replica>/<seq>.jsonl` files (see the header). */
export class FileTrailSink implements TrailSink {
  /** Lists a trail directory (the standalone readTrail). */
  static readonly readTrail = readTrail;

  readonly dir: string;
  readonly replica: string;
  /** This replica's directory. */
  readonly replicaDir: string;
  readonly #maxFileBytes: number;
  readonly #rotateMs: number;
  readonly #now: () => number;
  readonly #fs: SinkFs;
  #queue: Promise<void> = Promise.resolve();
  #file: OpenFile | undefined;
  /** The last entry appended, to check that the next batch follows it. */
  #head: { seq: number; hash: string } | undefined;
  #closed = false;

  constructor(options: FileTrailSinkOptions) {
    this.dir = options.dir;
    this.replica = options.replica;
    this.replicaDir = join(options.dir, replicaDirName(options.replica));
    this.#maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
    this.#rotateMs = options.rotateMs ?? DEFAULT_ROTATE_MS;
    this.#now = options.now ?? Date.now;
    this.#fs = options.fs ?? (fsp as unknown as SinkFs);
    if (!(this.#maxFileBytes > 0) || !(this.#rotateMs > 0)) throw new Error('maxFileBytes and rotateMs must be positive');
  }

  /** The file being appended to (undefined before the first append and after close). */
  get currentFile(): string | undefined {
    return this.#file?.path;
  }

  append(entries: readonly TrailEntry[], durable: boolean): Promise<void> {
    if (this.#closed) return Promise.reject(new Error(`the audit trail sink of ${this.replica} is closed`));
    const batch = [...entries];
    const run = this.#queue.then(() => this.#append(batch, durable));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  close(): Promise<void> {
    this.#closed = true;
    const run = this.#queue.then(() => this.#closeFile(true));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #check(entries: readonly TrailEntry[]): void {
    let head = this.#head;
    for (const e of entries) {
      if (e.replica !== this.replica) throw new Error(`the trail sink of ${this.replica} was given an entry of ${e.replica}`);
      if (head !== undefined && (e.seq !== head.seq + 1 || e.prev !== head.hash)) {
        throw new Error(`trail entry seq ${e.seq} does not follow seq ${head.seq} (the last appended to ${this.replica}'s trail)`);
      }
      head = { seq: e.seq, hash: e.hash };
    }
  }

  async #append(entries: readonly TrailEntry[], durable: boolean): Promise<void> {
    const first = entries[0];
    if (first === undefined) return;
    this.#check(entries);
    const current = this.#file;
    if (current !== undefined && (current.bytes >= this.#maxFileBytes || this.#now() - current.openedAt >= this.#rotateMs)) {
      await this.#closeFile(true);
    }
    let text = entries.map((e) => `${JSON.stringify(e)}\n`).join('');
    let created = false;
    if (this.#file === undefined) {
      const openedAt = this.#now();
      const start: FileStart = { v: 1, type: 'file-start', replica: this.replica, seq: first.seq, prev: first.prev, at: new Date(openedAt).toISOString() };
      await this.#fs.mkdir(this.replicaDir, { recursive: true, mode: DIR_MODE });
      const path = join(this.replicaDir, trailFileName(first.seq));
      // O_EXCL: a file of the chain is never reopened; an existing one means a chain that restarted
      // without its head (readChainHead), which must not overwrite what was written.
      const flags = fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT | fsConstants.O_EXCL;
      let handle: SinkFileHandle;
      try {
        handle = await this.#fs.open(path, flags, FILE_MODE);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new Error(`${path} exists already: ${this.replica}'s trail was started again at seq ${first.seq}; continue it from its head (readChainHead)`);
        throw e;
      }
      this.#file = { handle, path, openedAt, bytes: 0 };
      text = `${JSON.stringify(start)}\n${text}`;
      created = true;
    }
    const file = this.#file as OpenFile;
    const buf = Buffer.from(text, 'utf8');
    const fresh = file.bytes === 0;
    try {
      // One write for the batch (a regular file takes it whole; the loop only covers a short write).
      let done = 0;
      while (done < buf.length) done += (await file.handle.write(done === 0 ? buf : buf.subarray(done))).bytesWritten;
      file.bytes += buf.length;
      if (durable) {
        await file.handle.sync();
        if (created) await this.#syncDir();
      }
    } catch (e) {
      // What reached the file is unknown: the next batch starts a new file. A file that held only
      // this batch is removed, so that the batch can be appended again under the same name; in an
      // older file, a torn last line stays (the verifier names it: the trail shows the failure).
      await this.#closeFile(false).catch(() => undefined);
      if (fresh) await this.#fs.unlink(file.path).catch(() => undefined);
      throw e;
    }
    const last = entries[entries.length - 1] as TrailEntry;
    this.#head = { seq: last.seq, hash: last.hash };
  }

  /** Makes the new file's directory entry durable too (best effort: not every platform can). */
  async #syncDir(): Promise<void> {
    let dirHandle: SinkFileHandle | undefined;
    try {
      dirHandle = await this.#fs.open(this.replicaDir, 'r');
      await dirHandle.sync();
    } catch {
      // e.g. EISDIR / EPERM on platforms that cannot sync a directory.
    } finally {
      await dirHandle?.close().catch(() => undefined);
    }
  }

  async #closeFile(sync: boolean): Promise<void> {
    const file = this.#file;
    if (file === undefined) return;
    this.#file = undefined;
    try {
      if (sync) await file.handle.sync();
    } finally {
      await file.handle.close();
    }
  }
}
