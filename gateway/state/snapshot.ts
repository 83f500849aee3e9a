/**
 * A mirrored scope's last known copy on this replica's disk (gateway/state/mirrored-scope.ts,
 * `start: snapshot`): what a replica that restarts while the shared store is down serves from,
 * instead of an empty copy. One JSON file per scope, `{format, scope, writtenAt, records}`.
 *
 * Written after changes settle (debounced), to a temporary file renamed over the old one, so a
 * crash mid-write leaves the previous snapshot whole; a copy that did not change since the last
 * write (every reconcile hands one over) is not written again. Mode 0600 in a 0700 folder: a scope may
 * name subjects (opt-outs). An erased subject leaves the next snapshot, written moments later.
 * A write that fails is logged once per run of failures and never affects serving.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';

const FORMAT = 1;
/** Changes within this long share one write. */
const DEBOUNCE_MS = 200;

export interface Snapshot {
  readonly writtenAt: string;
  readonly records: ReadonlyMap<string, unknown>;
}

/** The snapshot of `scope` in `file`, or undefined (none, unreadable, or another scope's). */
export async function readSnapshot(file: string, scope: string, log: Logger): Promise<Snapshot | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ err, file }, `${scope}: the snapshot cannot be read`);
    return undefined;
  }
  try {
    const s = JSON.parse(text) as { format?: unknown; scope?: unknown; writtenAt?: unknown; records?: unknown };
    if (s.format !== FORMAT || s.scope !== scope || typeof s.writtenAt !== 'string' || s.records === null || typeof s.records !== 'object') {
      throw new Error('not a snapshot of this scope');
    }
    return { writtenAt: s.writtenAt, records: new Map(Object.entries(s.records as Record<string, unknown>)) };
  } catch (err) {
    log.warn({ err, file }, `${scope}: the snapshot is not valid; ignoring it`);
    return undefined;
  }
}

export class SnapshotWriter {
  readonly #file: string;
  readonly #scope: string;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #pending: ReadonlyMap<string, unknown> | undefined;
  #writing: Promise<void> = Promise.resolve();
  #failing = false;
  /** The records of the last write that succeeded, as written. */
  #written: string | undefined;

  constructor(file: string, scope: string, log: Logger) {
    this.#file = file;
    this.#scope = scope;
    this.#log = log;
  }

  /** Writes `records` soon; a later call before then replaces it. The map is copied at write time. */
  schedule(records: ReadonlyMap<string, unknown>): void {
    this.#pending = records;
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flush();
    }, DEBOUNCE_MS);
    this.#timer.unref();
  }

  /** Writes what is pending now and waits for it. */
  async close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#flush();
    await this.#writing;
  }

  #flush(): void {
    const records = this.#pending;
    if (records === undefined) return;
    this.#pending = undefined;
    // Sorted: a reconcile rebuilds the copy in the store's order, which says nothing about a change.
    const body = JSON.stringify(Object.fromEntries([...records].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
    if (body === this.#written) return;
    this.#writing = this.#writing.then(() => this.#write(body));
  }

  async #write(body: string): Promise<void> {
    // Built by hand around the records' JSON, so the comparison above is over exactly what is written.
    const text = `{"format":${FORMAT},"scope":${JSON.stringify(this.#scope)},"writtenAt":"${new Date().toISOString()}","records":${body}}`;
    const tmp = `${this.#file}.${process.pid}.tmp`;
    try {
      await mkdir(dirname(this.#file), { recursive: true, mode: 0o700 });
      await writeFile(tmp, text, { mode: 0o600 });
      await rename(tmp, this.#file);
      this.#written = body;
      if (this.#failing) this.#log.info({ file: this.#file }, `${this.#scope}: snapshot written again`);
      this.#failing = false;
    } catch (err) {
      if (!this.#failing) this.#log.warn({ err, file: this.#file }, `${this.#scope}: could not write the snapshot; a restart during a store outage would start closed`);
      this.#failing = true;
    }
  }
}
