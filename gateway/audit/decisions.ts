/**
 * One decision record per prediction (docs/audit.md): an observer (gateway/observers.ts), after the
 * answer, never on the request path. A record says which version decided and why, and what each
 * control said, so a prediction can be walked back to the state that produced it:
 *
 *   requestId, at, tenant, subject (a pseudonym: subject-keys.ts), model, version, reason (the route
 *   reason: stable, an arm, `canary`/`promoted` of a rollout, a rule, an opt-out, the kill switch,
 *   a guard's route), status, code, fault, ms, rows, optOuts (bits), guards (the guards that fired,
 *   coarsening), and SHA-256 digests of the input and output tensors in canonical form.
 *
 * No payload is kept, unless the model's configuration asks (`auditPayloads`). A caller who opted out of tracking reaches observers without payload or answer
 * (the retention rule, enforced once in observers.ts), so their records carry no digests either.
 * Records wait in a bounded queue while their pseudonym is found (a cached key, or one store read
 * the first time a subject is seen); the trail writes them within `audit.maxLossMs`.
 */
import type { Logger } from 'pino';
import type { InferRequest, InferResponse, InferTensor } from '../../adapters/adapter.js';
import { ANONYMOUS } from '../../policies/authenticate.js';
import type { Observer, RequestEnd } from '../observers.js';
import { createHash } from 'node:crypto';
import { canonicalJson } from './trail-format.js';

export interface DecisionRecord {
  readonly requestId: string;
  readonly at: string;
  readonly tenant: string | null;
  /** HMAC of the subject under its own key; null for anonymous callers. */
  readonly subject: string | null;
  readonly model: string;
  readonly version: string;
  readonly reason: string;
  readonly status: number;
  readonly code: string | null;
  readonly fault: string | null;
  readonly ms: number;
  readonly rows: number;
  readonly optOuts: number;
  readonly guards: readonly string[];
  readonly coarsened: boolean;
  /** SHA-256 of the input (output) tensors in canonical form (tensorsDigest); null when not retained or none. */
  readonly input: string | null;
  readonly output: string | null;
  /** The tensors themselves, for a model whose configuration asks (models.<m>.auditPayloads). */
  readonly payload?: { readonly inputs: unknown[]; readonly outputs: unknown[] };
}

/** A tensor's values as JSON can hold them exactly (64-bit integers as strings, bytes as base64). */
function plain(t: InferTensor): unknown {
  const out: unknown[] = [];
  const data = t.data as ArrayLike<unknown>;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    out.push(typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('base64') : typeof v === 'number' && !Number.isFinite(v) ? String(v) : v);
  }
  return { name: t.name, datatype: t.datatype, shape: t.shape, data: out };
}

/** The element type of a fixed-size datatype, to hash its values as bytes whatever array holds them. */
const TYPED: Readonly<Record<string, (n: ArrayLike<number>) => ArrayBufferView>> = {
  FP32: (v) => Float32Array.from(v), FP64: (v) => Float64Array.from(v), FP16: (v) => Uint16Array.from(v),
  INT8: (v) => Int8Array.from(v), INT16: (v) => Int16Array.from(v), INT32: (v) => Int32Array.from(v),
  UINT8: (v) => Uint8Array.from(v), UINT16: (v) => Uint16Array.from(v), UINT32: (v) => Uint32Array.from(v), BOOL: (v) => Uint8Array.from(v, (x) => (x ? 1 : 0)),
};
const CTORS: Readonly<Record<string, unknown>> = { FP32: Float32Array, FP64: Float64Array, FP16: Uint16Array, INT8: Int8Array, INT16: Int16Array, INT32: Int32Array, UINT8: Uint8Array, UINT16: Uint16Array, UINT32: Uint32Array };

/**
 * SHA-256 of the tensors in canonical form, sorted by name: for each, a header line
 * `name\0datatype\0shape` and its values — fixed-size numbers as their little-endian bytes (what the
 * model received, whatever the wire encoding: JSON and binary requests digest alike), 64-bit integers,
 * strings and bytes as the canonical JSON of their values. Hashing bytes, not text: a digest costs a
 * few microseconds per tensor on the path after the answer.
 */
export function tensorsDigest(tensors: readonly InferTensor[]): string {
  const h = createHash('sha256');
  const sorted = tensors.length < 2 ? tensors : [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const t of sorted) {
    h.update(`${t.name}\0${t.datatype}\0${t.shape.join(',')}\n`);
    const make = TYPED[t.datatype];
    const d = t.data as unknown;
    if (make !== undefined && ArrayBuffer.isView(d) && (d as object).constructor === CTORS[t.datatype]) {
      const v = d as ArrayBufferView;
      h.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    } else if (make !== undefined && !(d instanceof BigInt64Array) && !(d instanceof BigUint64Array)) {
      const v = make(d as ArrayLike<number>);
      h.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    } else {
      h.update(canonicalJson((plain(t) as { data: unknown }).data));
    }
    h.update('\n');
  }
  return h.digest('hex');
}

export interface DecisionSink {
  prediction(body: unknown): void;
}

export interface DecisionOptions {
  readonly trail: DecisionSink;
  readonly pseudonym: (tenant: string | undefined, subject: string) => Promise<string>;
  /** The pseudonym at once when it is known (a cached key), so most records need no await. */
  readonly cachedPseudonym?: (tenant: string | undefined, subject: string) => string | undefined;
  readonly maxPending: number;
  readonly log: Logger;
  /** Whether a model's records hold the tensors themselves (models.<m>.auditPayloads). */
  readonly payloads?: (model: string) => boolean;
}

/** The observer that writes a decision record per prediction; `idle()` resolves when its queue is empty. */
export function decisionObserver(o: DecisionOptions): Observer & { idle(): Promise<void>; readonly dropped: number } {
  const queue: RequestEnd[] = [];
  let draining: Promise<void> | undefined;
  let dropped = 0;

  /** The record of `e`, its subject given (a pseudonym, null for anonymous callers). */
  function record(e: RequestEnd, subject: string | null): DecisionRecord {
    const p = e.principal;
    const known = p !== undefined && p !== ANONYMOUS;
    const payload: InferRequest | undefined = e.payload;
    const answer: InferResponse | undefined = e.answer;
    return {
      requestId: e.requestId,
      at: new Date(e.startedAt).toISOString(),
      tenant: known ? p.tenant ?? null : null,
      subject,
      model: e.model,
      version: e.version,
      reason: e.reason,
      status: e.status,
      code: e.code ?? null,
      fault: e.fault ?? null,
      ms: Math.round(e.ms * 1000) / 1000,
      rows: e.rows,
      optOuts: e.optOuts,
      guards: e.annotations?.guardsFired ?? [],
      coarsened: e.annotations?.coarsen !== undefined,
      input: payload === undefined || payload.inputs.length === 0 ? null : tensorsDigest(payload.inputs),
      output: answer === undefined || answer.outputs.length === 0 ? null : tensorsDigest(answer.outputs),
      ...(payload !== undefined && o.payloads?.(e.model) === true ? { payload: { inputs: payload.inputs.map(plain), outputs: (answer?.outputs ?? []).map(plain) } } : {}),
    };
  }

  /** The subject's pseudonym now, if it needs no store (anonymous, or cached); undefined otherwise. */
  function subjectNow(e: RequestEnd): string | null | undefined {
    const p = e.principal;
    if (p === undefined || p === ANONYMOUS) return null;
    return o.cachedPseudonym?.(p.tenant, p.subject);
  }

  async function subjectLater(e: RequestEnd): Promise<string> {
    const p = e.principal as NonNullable<RequestEnd['principal']>;
    try {
      return await o.pseudonym(p.tenant, p.subject);
    } catch (err) {
      o.log.warn({ err }, 'audit: the subject\'s pseudonym could not be made (the store did not answer); recorded as unavailable');
      return 'unavailable';
    }
  }

  /** Records in arrival order; only a subject seen for the first time waits (for its key). */
  async function drain(): Promise<void> {
    while (queue.length > 0) {
      const e = queue.shift() as RequestEnd;
      try {
        const now = subjectNow(e);
        o.trail.prediction(record(e, now === undefined ? await subjectLater(e) : now));
      } catch (err) {
        o.log.warn({ err, requestId: e.requestId }, 'audit: a decision record could not be made');
      }
    }
  }

  return {
    name: 'audit decision records',
    onEnd(e: RequestEnd): void {
      if (queue.length >= o.maxPending) {
        if (dropped++ % 10_000 === 0) o.log.error({ dropped }, 'audit: decision records are arriving faster than they are made; the newest are dropped');
        return;
      }
      queue.push(e);
      draining ??= drain().finally(() => (draining = undefined));
    },
    idle: async () => {
      while (draining !== undefined) await draining;
    },
    get dropped() {
      return dropped;
    },
  };
}
