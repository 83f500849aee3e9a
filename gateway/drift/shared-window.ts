/**
 * One model version's live drift window, merged across replicas through the state store: every
 * replica adds its bin counts to the same blocks, and every replica reads the same sums, so the
 * status is judged on all traffic and two replicas that each saw half of a stream read what one
 * replica that saw all of it would.
 *
 * Windows by sample count (`window.samples`: N). A shared counter (a bucket counter whose `add`
 * answers its new total, atomically) numbers the samples of all replicas: a flush of n samples takes the numbers [E − n, E) and
 * adds its counts to the block of its last sample, block = ⌊(E − 1) / B⌋ with B = N / BLOCKS. The
 * window is the blocks that hold the last N numbers (sliding) or, tumbling, the last complete run of
 * N numbers. A flush is two store commands; a replica flushes once a second, or sooner once half a
 * window is waiting, so the window always spans at least two flushes of each replica.
 *
 * Windows by time (`window.seconds`: S): blocks of S / BLOCKS seconds by the replica's clock; the
 * window is the blocks of the last S seconds (sliding) or the last complete S (tumbling). No counter.
 *
 * Blocks are counter keys with a time to live (`add`), so the store keeps only recent ones: for
 * sample windows, BLOCK_TTL_FACTOR times the time the last window took to fill (at least a minute,
 * at most a week), for time windows twice the window.
 *
 * A flush lands whole in one block, so a window's edge is as fine as a flush: a sliding window holds
 * the last N samples give or take one flush of each replica. A reset is exact instead: it starts a
 * new epoch (`epoch`, set by the monitor from a shared record), whose counter and blocks are new
 * keys, so nothing flushed before a replica learned of the reset is read after it.
 */
import type { StateStore } from '../state/store.js';

/** Blocks per window: the granularity of a sliding window. */
export const BLOCKS = 20;
/** The shared sample counter expires this long after its last use (it then restarts from 0, and so do the blocks' numbers). */
const INDEX_TTL_MS = 30 * 86_400_000;
const BLOCK_TTL_FACTOR = 3;
const MIN_BLOCK_TTL_MS = 60_000;
const MAX_BLOCK_TTL_MS = 7 * 86_400_000;
/** The bucket holding a block's sample count; bins are buckets "0", "1", … */
const SAMPLES = 'n';

export type WindowSpec =
  | { readonly kind: 'samples'; readonly size: number; readonly mode: 'sliding' | 'tumbling' }
  | { readonly kind: 'seconds'; readonly size: number; readonly mode: 'sliding' | 'tumbling' };

/** Where a window starts at the earliest: a sample number (sample windows: after a baseline) or a time in ms. */
export interface ResetPoint {
  readonly at: number;
}

/** A window read back: merged counts per bin, the samples in it and the range it covers. */
export interface WindowRead {
  readonly counts: Float64Array;
  readonly samples: number;
  /** Sample numbers [from, to) or times in ms [from, to). */
  readonly from: number;
  readonly to: number;
}

export class SharedWindow {
  readonly #store: StateStore;
  readonly #scope: string;
  readonly #version: string;
  readonly #bins: number;
  readonly #spec: WindowSpec;
  readonly #blockSize: number;
  /** ms per window, as the last reads measured it (sample windows): sets the blocks' time to live. */
  #windowMs = MIN_BLOCK_TTL_MS;
  #lastIndex: { at: number; index: number } | undefined;

  constructor(store: StateStore, scope: string, version: string, bins: number, spec: WindowSpec) {
    this.#store = store;
    this.#scope = scope;
    this.#version = version;
    this.#bins = bins;
    this.#spec = spec;
    this.#blockSize = spec.kind === 'samples' ? Math.max(1, Math.floor(spec.size / BLOCKS)) : Math.max(1, Math.floor((spec.size * 1000) / BLOCKS));
  }

  /** The reset epoch the window's keys belong to (0 until the first reset). */
  epoch = 0;

  get spec(): WindowSpec {
    return this.#spec;
  }

  get #prefix(): string {
    return `drift:${this.#version}:e${this.epoch}`;
  }

  /** Adds `n` samples' counts (`counts`, one per bin) to the shared window. */
  async flush(counts: ArrayLike<number>, n: number, now: number): Promise<void> {
    if (n <= 0) return;
    const buckets: Record<string, number> = { [SAMPLES]: n };
    for (let i = 0; i < this.#bins; i++) if (counts[i] !== 0) buckets[String(i)] = counts[i];
    if (this.#spec.kind === 'samples') {
      const end = await this.#charge(n);
      const block = Math.floor((end - 1) / this.#blockSize);
      const ttl = Math.min(MAX_BLOCK_TTL_MS, Math.max(MIN_BLOCK_TTL_MS, Math.round(BLOCK_TTL_FACTOR * this.#windowMs)));
      await this.#store.add(this.#scope, `${this.#prefix}:b:${block}`, buckets, ttl);
    } else {
      const block = Math.floor(now / this.#blockSize);
      await this.#store.add(this.#scope, `${this.#prefix}:t:${block}`, buckets, 2 * this.#spec.size * 1000);
    }
  }

  /** The current sample number of the epoch (sample windows) or `now` (time windows). */
  async position(now: number): Promise<number> {
    return this.#spec.kind === 'samples' ? this.#charge(0) : now;
  }

  /** The window's merged counts, from `reset` (a start point) on when given. */
  async read(now: number, reset?: ResetPoint): Promise<WindowRead> {
    const keys: string[] = [];
    let from: number;
    let to: number;
    if (this.#spec.kind === 'samples') {
      const end = await this.#charge(0);
      this.#measure(now, end);
      const size = this.#spec.size;
      const start = reset !== undefined && reset.at <= end ? reset.at : 0;
      if (this.#spec.mode === 'sliding') {
        to = end;
        from = Math.max(start, end - size);
      } else {
        // The last complete run of N samples since the reset (none yet: the partial one).
        const runs = Math.floor((end - start) / size);
        from = runs === 0 ? start : start + (runs - 1) * size;
        to = runs === 0 ? end : from + size;
      }
      if (to > from) {
        const b = this.#blockSize;
        for (let block = Math.floor(from / b); block <= Math.floor((to - 1) / b); block++) keys.push(`${this.#prefix}:b:${block}`);
      }
    } else {
      const ms = this.#spec.size * 1000;
      const start = reset !== undefined && reset.at <= now ? reset.at : -Infinity;
      if (this.#spec.mode === 'sliding') {
        to = now;
        from = Math.max(start, now - ms);
      } else {
        const anchor = Number.isFinite(start) ? start : 0;
        const runs = Math.floor((now - anchor) / ms);
        from = runs === 0 ? anchor : anchor + (runs - 1) * ms;
        to = runs === 0 ? now : from + ms;
      }
      const b = this.#blockSize;
      for (let block = Math.floor(from / b); block <= Math.floor((to - 1) / b); block++) keys.push(`${this.#prefix}:t:${block}`);
    }
    const sums = keys.length === 0 ? {} : await this.#store.sum(this.#scope, keys);
    const counts = new Float64Array(this.#bins);
    for (let i = 0; i < this.#bins; i++) counts[i] = sums[String(i)] ?? 0;
    return { counts, samples: sums[SAMPLES] ?? 0, from, to };
  }

  /** The merged counts of the samples numbered [start, end) of `epoch` (sample windows: a baseline). */
  async readRange(start: number, end: number, epoch = this.epoch): Promise<WindowRead> {
    const keys: string[] = [];
    const b = this.#blockSize;
    for (let block = Math.floor(start / b); block <= Math.floor((end - 1) / b); block++) keys.push(`drift:${this.#version}:e${epoch}:b:${block}`);
    const sums = keys.length === 0 ? {} : await this.#store.sum(this.#scope, keys);
    const counts = new Float64Array(this.#bins);
    for (let i = 0; i < this.#bins; i++) counts[i] = sums[String(i)] ?? 0;
    return { counts, samples: sums[SAMPLES] ?? 0, from: start, to: end };
  }

  async #charge(n: number): Promise<number> {
    const r = await this.#store.add(this.#scope, `${this.#prefix}:ix`, { [SAMPLES]: n }, INDEX_TTL_MS);
    return r[SAMPLES] ?? 0;
  }

  /** How long a window of samples takes to fill, from the counter's progress between reads. */
  #measure(now: number, index: number): void {
    const last = this.#lastIndex;
    if (last !== undefined && index > last.index && now > last.at) {
      const perSample = (now - last.at) / (index - last.index);
      this.#windowMs = perSample * (this.#spec.size);
    }
    if (last === undefined || now - last.at >= 1000) this.#lastIndex = { at: now, index };
  }
}
