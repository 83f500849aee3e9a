/**
 * A recording backend for one model version: the suite's fake OIP v2 server whose every answer says
 * which version computed it (a declared output `version`, one value per row, holding the version
 * number), and which records every infer call it receives: the request id the gateway forwarded
 * (`x-request-id`; a shadow copy's ends in `-shadow`), when it arrived and when its answer was
 * written. Tests of the kill switch read both ends with it: the client knows from the answer which
 * version computed it, and the backend knows when it was asked and by which request.
 *
 * Times are `Date.now()` of this process, the same clock as a gateway child's ISO timestamps on the
 * same machine. `arrivedAt` is taken when the call's body has been read (at the latest it is late by
 * this process's event-loop lag); `completedAt` just before the answer is written, so a gateway
 * cannot have received that answer before `completedAt`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { startFakeOipBackend, type FakeOipBackend, type OipModelMetadataJson, type OipTensorJson } from './backends.js';

/** The backend's model: input `x` FP32 [-1, 3]; outputs `sum` FP32 [-1] and `version` INT32 [-1]. */
export const TAGGED_MODEL = 'tagged';

export function taggedMetadata(version: string): OipModelMetadataJson {
  return {
    name: TAGGED_MODEL,
    versions: [version],
    platform: 'fake-oip',
    inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3] }],
    outputs: [
      { name: 'sum', datatype: 'FP32', shape: [-1] },
      { name: 'version', datatype: 'INT32', shape: [-1] },
    ],
  };
}

/** A one-row request body for the tagged model. */
export const TAGGED_BODY = JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] });

/** The version that computed an answer of the tagged model (JSON body), or undefined if it names none. */
export function versionOf(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { outputs?: { name?: string; data?: unknown[] }[] };
    const tag = parsed.outputs?.find((o) => o.name === 'version')?.data?.[0];
    return typeof tag === 'number' ? String(tag) : undefined;
  } catch {
    return undefined;
  }
}

/** One infer call as the backend saw it. */
export interface RecordedInfer {
  readonly version: string;
  /** The gateway's request id (`x-request-id`), if it sent one. */
  readonly requestId: string | undefined;
  /** A shadow copy (the gateway suffixes the primary's request id with `-shadow`). */
  readonly shadow: boolean;
  /** Date.now() when the call's body had been read. */
  readonly arrivedAt: number;
  /** Date.now() just before the answer was written; undefined while it is held (or was abandoned). */
  completedAt: number | undefined;
}

export interface RecordingBackend {
  readonly version: string;
  readonly url: string;
  readonly fake: FakeOipBackend;
  /** Every infer call so far, in arrival order. */
  calls(): readonly RecordedInfer[];
  /** Calls held right now (arrived, not answered). */
  inFlight(): number;
  /** Every answer from now on waits `ms` first (0: answer at once). */
  setDelay(ms: number): void;
  /** The gateway's configuration of this version: `{backend: {kind: 'oip-http', …}}`. */
  versionConfig(extra?: Record<string, unknown>): { backend: Record<string, unknown> };
  close(): Promise<void>;
}

/** Starts a recording backend for `version` (a number as a string: the tag is INT32). */
export async function startRecordingBackend(version: string, opts: { delayMs?: number } = {}): Promise<RecordingBackend> {
  const tag = Number(version);
  if (!Number.isInteger(tag)) throw new RangeError(`version must be an integer to be used as a tag: ${version}`);
  let delayMs = opts.delayMs ?? 0;
  let held = 0;
  const recorded: RecordedInfer[] = [];
  // Delays end early on close, so a held call never keeps the test process alive.
  const closing = new AbortController();
  const fake = await startFakeOipBackend(taggedMetadata(version), async (req, call) => {
    const id = call.headers['x-request-id'];
    const requestId = typeof id === 'string' ? id : undefined;
    const entry: RecordedInfer = { version, requestId, shadow: requestId?.endsWith('-shadow') ?? false, arrivedAt: Date.now(), completedAt: undefined };
    recorded.push(entry);
    held++;
    try {
      if (delayMs > 0) await sleep(delayMs, undefined, { signal: closing.signal }).catch(() => undefined);
      const x = req.inputs?.find((t) => t.name === 'x');
      const flat = ((x?.data ?? []) as unknown[]).flat(4) as number[];
      const rows = x?.shape[0] ?? 0;
      const sums = Array.from({ length: rows }, (_, r) => flat[r * 3] + flat[r * 3 + 1] + flat[r * 3 + 2]);
      const outputs: OipTensorJson[] = [
        { name: 'sum', datatype: 'FP32', shape: [rows], data: sums },
        { name: 'version', datatype: 'INT32', shape: [rows], data: Array.from({ length: rows }, () => tag) },
      ];
      entry.completedAt = Date.now();
      return { outputs };
    } finally {
      held--;
    }
  }, { version });
  return {
    version,
    url: fake.url,
    fake,
    calls: () => recorded,
    inFlight: () => held,
    setDelay: (ms) => void (delayMs = ms),
    versionConfig: (extra = {}) => ({ backend: { kind: 'oip-http', url: fake.url, model: TAGGED_MODEL, ...extra } }),
    close: async () => {
      closing.abort();
      await fake.close();
    },
  };
}
