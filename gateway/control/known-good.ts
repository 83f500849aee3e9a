/**
 * Known-good versions: per model, the last version that served as its stable version for at least
 * `killSwitch.knownGoodAfterMs` without being killed. A kill rolls back to it when the model names
 * no `killSwitch.rollbackTo` (gateway/control/kill-switch.ts).
 *
 * Tracked in the shared store (scope `known-good`, one record per model) so every replica agrees
 * and it survives restarts: each replica, on a timer, notes since when the configured stable
 * version has served unkilled, and promotes it once it has done so long enough. Changes are
 * compare-and-set; a replica that loses the race leaves the record to the winner. A store outage
 * pauses the tracking; nothing on the request path reads it.
 */
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config.js';
import type { StateStore } from '../state/store.js';

export const KNOWN_GOOD_SCOPE = 'known-good';

export interface KnownGoodRecord {
  /** The stable version being watched, and since when it has served unkilled (ms since the epoch). */
  readonly stable: string;
  readonly since: number;
  /** The last version that passed; absent until one has. */
  readonly knownGood?: string;
  readonly knownGoodAt?: number;
}

export interface KnownGoodOptions {
  readonly afterMs: number;
  readonly config: () => GatewayConfig;
  /** Whether a version is stopped by the kill switch now. */
  readonly isKilled: (model: string, version: string) => boolean;
  /**
   * The version serving as the model's stable one, when it is not the configuration's (a rollout
   * promoted it: gateway/rollout/rollouts.ts promotedStable); undefined: the configuration's.
   */
  readonly stableOf?: (model: string) => string | undefined;
  readonly now?: () => number;
}

function asRecord(v: unknown): KnownGoodRecord | undefined {
  const r = v as Partial<KnownGoodRecord> | null;
  return r !== null && typeof r === 'object' && typeof r.stable === 'string' && typeof r.since === 'number' ? (r as KnownGoodRecord) : undefined;
}

export class KnownGood {
  readonly #store: StateStore;
  readonly #log: Logger;
  readonly #opts: KnownGoodOptions;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #failing = false;

  constructor(store: StateStore, log: Logger, opts: KnownGoodOptions) {
    this.#store = store;
    this.#log = log;
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** Checks now, then every tenth of knownGoodAfterMs (between 1 s and 1 min). */
  start(): void {
    void this.tick();
    const every = Math.min(60_000, Math.max(1000, Math.floor(this.#opts.afterMs / 10)));
    this.#timer = setInterval(() => void this.tick(), every);
    this.#timer.unref();
  }

  /** The model's known-good version, if one has passed; undefined when the store does not answer. */
  async of(model: string): Promise<string | undefined> {
    try {
      return asRecord(await this.#store.get(KNOWN_GOOD_SCOPE, model))?.knownGood;
    } catch {
      return undefined;
    }
  }

  /** One pass over every model; concurrent calls share it. */
  tick(): Promise<void> {
    this.#ticking ??= this.#tickOnce().finally(() => (this.#ticking = undefined));
    return this.#ticking;
  }

  async #tickOnce(): Promise<void> {
    const config = this.#opts.config();
    try {
      for (const [model, mc] of Object.entries(config.models)) await this.#check(model, this.#opts.stableOf?.(model) ?? mc.stable);
      this.#failing = false;
    } catch (err) {
      if (!this.#failing) {
        this.#failing = true;
        this.#log.warn({ err }, 'kill switch: known-good versions cannot be tracked while the store does not answer');
      }
    }
  }

  async #check(model: string, stable: string): Promise<void> {
    const now = this.#now();
    const stored = await this.#store.read(KNOWN_GOOD_SCOPE, model);
    const r = asRecord(stored?.value);
    let next: KnownGoodRecord | undefined;
    if (r === undefined || r.stable !== stable || this.#opts.isKilled(model, stable)) {
      // A new stable version, or a kill of the one watched: its time starts (again) now.
      if (r?.stable === stable && now - r.since < 1000) return;
      next = { ...(r?.knownGood === undefined ? {} : { knownGood: r.knownGood, knownGoodAt: r.knownGoodAt }), stable, since: now };
    } else if (now - r.since >= this.#opts.afterMs && r.knownGood !== stable) {
      next = { ...r, knownGood: stable, knownGoodAt: now };
      this.#log.info({ model, version: stable }, 'kill switch: a version became known-good');
    }
    if (next === undefined) return;
    await this.#store.compareAndSet(KNOWN_GOOD_SCOPE, model, stored?.revision ?? 0, next);
  }

  close(): Promise<void> {
    clearInterval(this.#timer);
    return this.#ticking ?? Promise.resolve();
  }
}
