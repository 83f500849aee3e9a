/**
 * One decision record per prediction (docs/audit.md): an observer (gateway/observers.ts), after the
 * answer, never on the request path. A record says which version decided and why, and what each
 * control said, so a prediction can be walked back to the state that produced it:
 *
 *   requestId, at, tenant, subject (a pseudonym: subject-keys.ts), model, version, reason (the route
 *   reason: stable, an arm, `canary`/`promoted` of a rollout, a rule, an opt-out, the kill switch,
 *   a guard's route), status, code, fault, ms, rows, optOuts (bits), guards (the guards that fired,
 *   coarsening), and SHA-256 digests of the canonical input and output tensors.
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
import { canonicalJson, sha256Hex } from './trail-format.js';

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
  /** SHA-256 of the canonical JSON of the input (output) tensors; null when not retained or none. */
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

/** SHA-256 of the canonical JSON of tensors (sorted by name): the same tensors give the same digest, whatever their encoding on the wire. */
export function tensorsDigest(tensors: readonly InferTensor[]): string {
  return sha256Hex(canonicalJson([...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map(plain)));
}

export interface DecisionSink {
  prediction(body: unknown): void;
}

export interface DecisionOptions {
  readonly trail: DecisionSink;
  readonly pseudonym: (tenant: string | undefined, subject: string) => Promise<string>;
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

  async function record(e: RequestEnd): Promise<DecisionRecord> {
    const p = e.principal;
    const known = p !== undefined && p !== ANONYMOUS;
    let subject: string | null = null;
    if (known) {
      try {
        subject = await o.pseudonym(p.tenant, p.subject);
      } catch (err) {
        o.log.warn({ err }, 'audit: the subject\'s pseudonym could not be made (the store did not answer); recorded as unknown');
        subject = 'unavailable';
      }
    }
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

  async function drain(): Promise<void> {
    while (queue.length > 0) {
      const e = queue.shift() as RequestEnd;
      try {
        o.trail.prediction(await record(e));
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
