/**
 * A rollout's figures, merged across replicas: each replica counts what it served of the canary and
 * the stable version (an observer, after the answer) and what the comparison copies found
 * (comparisons.ts), and adds its counts to one shared counter per rollout step (the store's
 * `add`, a hash of named buckets) every `rollout.flushMs`: one store command per step with traffic,
 * however many requests. The controller reads a step's figures with one `sum`, and the whole
 * rollout's with one `sum` over every step's key.
 *
 * The buckets of a step's counter (`c.` the canary, `s.` the stable version):
 *   c.r / s.r        requests routed to the version (every one but the gateway's own failures)
 *   c.n / s.n        requests that reached the model (answers and failures of the model or backend)
 *   c.e / s.e        failures of the model or its backend (errors.ts faultOf 'backend')
 *   c.g / s.g        requests an input guard flagged, routed or rejected
 *   c.l<i> / s.l<i>  latency histogram of the requests that reached the model (arm-figures.ts BOUNDS)
 *   d.n              rows compared (the canary's answer and stable's to the same input)
 *   d.x              of them, rows whose predicted class differed
 *   d.c:<k> / d.s:<k>  rows the canary (c) or stable (s) answered with class k
 *   d.u:<k> / d.v:<k>  rows where only the canary's (u) or only stable's (v) answer was class k
 * Class names come from the model's own answers (labels or class indexes), never from a client; at
 * most MAX_CLASSES per step, the rest share `other`.
 *
 * A store outage pauses the merging only: pending counts stay here (a fixed set of buckets per
 * step) and are added once the store answers. Nothing on the request path waits for the store.
 */
import type { Logger } from 'pino';
import type { StateStore } from '../state/store.js';
import { BOUNDS } from '../telemetry/arm-figures.js';

export const FIGURES_SCOPE = 'rollout-figures';
/** A step's counter lives this long after its last addition: a week covers any step's duration. */
const FIGURES_TTL_MS = 7 * 86_400_000;
/** Class names counted per step at most; the rest are `other`. */
export const MAX_CLASSES = 32;
const OTHER = 'other';

/** The counter key of one step of one rollout. */
export function stepKey(rolloutId: string, step: number): string {
  return `${rolloutId}:${step}`;
}

export type Side = 'c' | 's';

/** One version's figures over a period. */
export interface SideFigures {
  readonly requests: number;
  readonly reached: number;
  readonly errors: number;
  readonly guarded: number;
  /** Latency histogram over BOUNDS, of the `reached` requests. */
  readonly latency: Float64Array;
}

export interface ClassShift {
  readonly canary: number;
  readonly stable: number;
  /** Rows where only the canary (up) or only stable (down) answered this class. */
  readonly up: number;
  readonly down: number;
}

export interface ComparedFigures {
  readonly rows: number;
  readonly disagreed: number;
  readonly classes: ReadonlyMap<string, ClassShift>;
}

export interface StepFigures {
  readonly canary: SideFigures;
  readonly stable: SideFigures;
  readonly compared: ComparedFigures;
}

function side(fields: Readonly<Record<string, number>>, s: Side): SideFigures {
  const latency = new Float64Array(BOUNDS.length);
  for (let i = 0; i < BOUNDS.length; i++) latency[i] = fields[`${s}.l${i}`] ?? 0;
  return { requests: fields[`${s}.r`] ?? 0, reached: fields[`${s}.n`] ?? 0, errors: fields[`${s}.e`] ?? 0, guarded: fields[`${s}.g`] ?? 0, latency };
}

/** A merged counter's buckets as figures. */
export function parseFigures(fields: Readonly<Record<string, number>>): StepFigures {
  const classes = new Map<string, { canary: number; stable: number; up: number; down: number }>();
  const of = (name: string) => {
    let c = classes.get(name);
    if (c === undefined) classes.set(name, (c = { canary: 0, stable: 0, up: 0, down: 0 }));
    return c;
  };
  for (const [field, n] of Object.entries(fields)) {
    const m = /^d\.([csuv]):(.*)$/s.exec(field);
    if (m === null) continue;
    const c = of(m[2]);
    if (m[1] === 'c') c.canary += n;
    else if (m[1] === 's') c.stable += n;
    else if (m[1] === 'u') c.up += n;
    else c.down += n;
  }
  return { canary: side(fields, 'c'), stable: side(fields, 's'), compared: { rows: fields['d.n'] ?? 0, disagreed: fields['d.x'] ?? 0, classes } };
}

/** One bucket index of BOUNDS for a latency of `ms`. */
export function latencyBucket(ms: number): number {
  let i = 0;
  while (ms > BOUNDS[i]) i++;
  return i;
}

/** This replica's counts not yet added to the store, per step key. */
export class PendingFigures {
  readonly #pending = new Map<string, Map<string, number>>();
  /** Class names seen per step key (bounded by MAX_CLASSES). */
  readonly #classes = new Map<string, Set<string>>();
  readonly #store: StateStore;
  readonly #log: Logger;
  #flushing: Promise<void> | undefined;
  #failing = false;

  constructor(store: StateStore, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  #of(key: string): Map<string, number> {
    let m = this.#pending.get(key);
    if (m === undefined) this.#pending.set(key, (m = new Map()));
    return m;
  }

  #bump(m: Map<string, number>, field: string, n = 1): void {
    m.set(field, (m.get(field) ?? 0) + n);
  }

  /** One request routed to the canary (c) or the stable version (s). */
  served(key: string, s: Side, reached: boolean, error: boolean, guarded: boolean, ms: number): void {
    const m = this.#of(key);
    this.#bump(m, `${s}.r`);
    if (guarded) this.#bump(m, `${s}.g`);
    if (!reached) return;
    this.#bump(m, `${s}.n`);
    if (error) this.#bump(m, `${s}.e`);
    this.#bump(m, `${s}.l${latencyBucket(ms)}`);
  }

  #className(key: string, name: string): string {
    let seen = this.#classes.get(key);
    if (seen === undefined) this.#classes.set(key, (seen = new Set()));
    if (seen.has(name)) return name;
    if (seen.size >= MAX_CLASSES) return OTHER;
    seen.add(name);
    return name;
  }

  /** The canary's and stable's classes for the same rows (one entry per row). */
  compared(key: string, canary: readonly string[], stable: readonly string[]): void {
    const m = this.#of(key);
    const rows = Math.min(canary.length, stable.length);
    this.#bump(m, 'd.n', rows);
    for (let i = 0; i < rows; i++) {
      const c = this.#className(key, canary[i]);
      const s = this.#className(key, stable[i]);
      this.#bump(m, `d.c:${c}`);
      this.#bump(m, `d.s:${s}`);
      if (canary[i] !== stable[i]) {
        this.#bump(m, 'd.x');
        if (c !== s) {
          this.#bump(m, `d.u:${c}`);
          this.#bump(m, `d.v:${s}`);
        }
      }
    }
  }

  /** Whether anything waits to be added. */
  get empty(): boolean {
    return this.#pending.size === 0;
  }

  /** Adds every pending count to the store; counts the store refused stay pending. Never rejects. */
  flush(): Promise<void> {
    this.#flushing ??= this.#flushOnce().finally(() => (this.#flushing = undefined));
    return this.#flushing;
  }

  async #flushOnce(): Promise<void> {
    if (this.#pending.size === 0) return;
    const batch = [...this.#pending];
    this.#pending.clear();
    const results = await Promise.allSettled(batch.map(([key, fields]) => this.#store.add(FIGURES_SCOPE, key, Object.fromEntries(fields), FIGURES_TTL_MS)));
    let failed = 0;
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') return;
      failed++;
      // Back into pending, merged with what arrived meanwhile.
      const [key, fields] = batch[i];
      const m = this.#of(key);
      for (const [f, n] of fields) this.#bump(m, f, n);
    });
    if (failed > 0 && !this.#failing) this.#log.warn({ keys: failed }, 'rollout: figures cannot be added to the shared store; they are kept and added once it answers');
    this.#failing = failed > 0;
  }

  /** Forgets the class names of steps no longer counted (their pending counts are flushed first). */
  retain(keys: ReadonlySet<string>): void {
    for (const k of this.#classes.keys()) if (!keys.has(k)) this.#classes.delete(k);
  }
}

/** The merged figures of `keys` (one step, or every step of a rollout). */
export async function readFigures(store: StateStore, keys: readonly string[]): Promise<StepFigures> {
  return parseFigures(await store.sum(FIGURES_SCOPE, keys));
}
