/**
 * The live routes of every model: the configuration file's `models.<m>.traffic`, unless a product
 * owner replaced them at run time (PUT /admin/models/{m}/traffic or `breakwater traffic set`).
 *
 * A change is validated like the configuration, written to the shared store (so it survives
 * restarts and reaches every replica), announced on a channel, and applied here at once. Other
 * replicas re-read the model's record when the announcement arrives (within milliseconds) and
 * re-read every record each `state.reconcileMs`, since announcements are at most once. The request
 * path never reads the store: the traffic policy answers from tables built from this local copy.
 *
 * Every change leaves an audit entry (who, what, before, after, why): a log line, a record of its
 * own in the store (`audit` scope), and the model's recent history shown by the admin API.
 *
 * Concurrent changes of one model from two replicas are last-writer-wins (the store has no
 * compare-and-set); each is audited with what it replaced.
 */
import type { Logger } from 'pino';
import { ConfigError, parseTraffic, type GatewayConfig, type TrafficConfig } from '../config.js';
import { GatewayError } from '../errors.js';
import type { StateStore } from '../state/store.js';

const SCOPE = 'traffic';
const HISTORY_KEY = (model: string) => `history:${model}`;
const CHANNEL = 'traffic';
/** Entries of a model's history kept for the admin view; older ones stay in the `audit` scope. */
export const HISTORY_LENGTH = 20;

/** A model's run-time routes as stored. */
export interface TrafficRecord {
  readonly traffic: TrafficConfig;
  readonly revision: number;
  readonly updatedAt: string;
  readonly updatedBy: string;
  readonly reason: string;
}

export interface TrafficChange {
  readonly model: string;
  readonly action: 'set' | 'reset';
  readonly revision: number;
  readonly at: string;
  readonly by: string;
  readonly reason: string;
  /** The live routes before and after (null: the model had no split). */
  readonly before: TrafficConfig | null;
  readonly after: TrafficConfig | null;
}

/** What the admin API shows as a model's live routes. */
export interface LiveTraffic {
  /** `admin`: set at run time; `config`: the configuration file's; `none`: no split. */
  readonly source: 'admin' | 'config' | 'none';
  readonly traffic: TrafficConfig | null;
  readonly revision: number;
  readonly updatedAt?: string;
  readonly updatedBy?: string;
  readonly reason?: string;
}

function storeDown(e: unknown): GatewayError {
  return new GatewayError('STATE_STORE_UNAVAILABLE', undefined, { cause: e });
}

export class TrafficRoutes {
  readonly #store: StateStore;
  readonly #log: Logger;
  readonly #onChange: (overrides: ReadonlyMap<string, TrafficConfig>) => void;
  #config: GatewayConfig;
  /** Valid run-time routes by model (records naming versions the configuration lacks are left out). */
  readonly #records = new Map<string, TrafficRecord>();
  #overrides: ReadonlyMap<string, TrafficConfig> = new Map();
  #unsubscribe: (() => Promise<void>) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #reconcileFailing = false;

  private constructor(store: StateStore, log: Logger, config: GatewayConfig, onChange: (overrides: ReadonlyMap<string, TrafficConfig>) => void) {
    this.#store = store;
    this.#log = log;
    this.#config = config;
    this.#onChange = onChange;
  }

  /**
   * Loads the stored routes of every configured model, subscribes to changes and starts the
   * reconciliation timer. A store that does not answer at start leaves the configuration's routes
   * in place until it does (the next reconciliation), rather than keeping the gateway down.
   */
  static async start(opts: {
    store: StateStore;
    log: Logger;
    config: GatewayConfig;
    /** Called with the new run-time routes whenever they change (before `start` resolves, too). */
    onChange: (overrides: ReadonlyMap<string, TrafficConfig>) => void;
  }): Promise<TrafficRoutes> {
    const r = new TrafficRoutes(opts.store, opts.log, opts.config, opts.onChange);
    try {
      r.#unsubscribe = await opts.store.subscribe(CHANNEL, (model) => {
        r.#refresh(model).catch((e: unknown) => r.#log.warn({ err: e, model }, 'traffic: could not read a changed model\'s routes (the next reconciliation retries)'));
      });
    } catch (e) {
      r.#log.warn({ err: e }, 'traffic: could not subscribe to route changes; relying on reconciliation');
    }
    await r.reconcile();
    r.#timer = setInterval(() => void r.reconcile(), opts.config.state.reconcileMs);
    r.#timer.unref();
    return r;
  }

  /** Run-time routes by model, for `effectiveTraffic`. */
  get overrides(): ReadonlyMap<string, TrafficConfig> {
    return this.#overrides;
  }

  /** Re-reads every configured model's record; keeps the last known routes if the store fails. */
  async reconcile(): Promise<void> {
    try {
      const models = Object.keys(this.#config.models);
      const found = await Promise.all(models.map((m) => this.#store.get(SCOPE, m)));
      let changed = false;
      models.forEach((m, i) => {
        changed = this.#take(m, found[i]) || changed;
      });
      for (const m of this.#records.keys()) {
        if (!(m in this.#config.models)) {
          this.#records.delete(m);
          changed = true;
        }
      }
      if (this.#reconcileFailing) this.#log.info('traffic: the shared store answers again; routes reconciled');
      this.#reconcileFailing = false;
      if (changed) this.#apply();
    } catch (e) {
      if (!this.#reconcileFailing) this.#log.warn({ err: e }, 'traffic: could not read routes from the shared store; the last known routes stand');
      this.#reconcileFailing = true;
    }
  }

  async #refresh(model: string): Promise<void> {
    if (!(model in this.#config.models)) return;
    if (this.#take(model, await this.#store.get(SCOPE, model))) this.#apply();
  }

  /** Puts a stored record (or its absence) into the local copy; true if that changed anything. */
  #take(model: string, raw: unknown): boolean {
    const had = this.#records.get(model);
    if (raw === undefined || raw === null) {
      if (had === undefined) return false;
      this.#records.delete(model);
      return true;
    }
    const rec = raw as TrafficRecord;
    if (had !== undefined && had.revision === rec.revision && had.updatedAt === rec.updatedAt) return false;
    const versions = Object.keys(this.#config.models[model]?.versions ?? {});
    try {
      const traffic = parseTraffic(rec.traffic, versions, `stored routes of ${model}`);
      this.#records.set(model, Object.freeze({ ...rec, traffic }));
    } catch (e) {
      // A version was removed from the configuration since the routes were set: the file's routes
      // serve until someone sets new ones.
      this.#log.warn({ model, problems: e instanceof ConfigError ? e.problems : String(e) }, 'traffic: stored routes do not fit the configuration; using the configuration\'s');
      if (had === undefined) return false;
      this.#records.delete(model);
    }
    return true;
  }

  #apply(): void {
    const next = new Map<string, TrafficConfig>();
    for (const [m, r] of this.#records) next.set(m, r.traffic);
    this.#overrides = next;
    this.#onChange(next);
  }

  /** A reloaded configuration: stored routes are re-checked against its versions. */
  async reconfigure(config: GatewayConfig): Promise<void> {
    this.#config = config;
    // Re-check the routes in hand against the new versions now, without a moment on the file's
    // routes in between (that would move subjects between arms and back).
    for (const [m, rec] of [...this.#records]) {
      this.#records.delete(m);
      if (m in config.models) this.#take(m, rec);
    }
    this.#apply();
    await this.reconcile();
  }

  live(model: string): LiveTraffic {
    const rec = this.#records.get(model);
    if (rec !== undefined) {
      return { source: 'admin', traffic: rec.traffic, revision: rec.revision, updatedAt: rec.updatedAt, updatedBy: rec.updatedBy, reason: rec.reason };
    }
    const fromFile = this.#config.models[model]?.traffic;
    return fromFile === undefined ? { source: 'none', traffic: null, revision: 0 } : { source: 'config', traffic: fromFile, revision: 0 };
  }

  async history(model: string): Promise<readonly TrafficChange[]> {
    try {
      const h = await this.#store.get(SCOPE, HISTORY_KEY(model));
      return Array.isArray(h) ? (h as TrafficChange[]) : [];
    } catch (e) {
      throw storeDown(e);
    }
  }

  /** Validates and stores new routes for `model`; INVALID_TRAFFIC lists every problem. */
  async set(model: string, input: unknown, by: string, reason: string): Promise<TrafficChange> {
    const versions = Object.keys(this.#config.models[model]?.versions ?? {});
    let traffic: TrafficConfig;
    try {
      traffic = parseTraffic(input, versions);
    } catch (e) {
      throw new GatewayError('INVALID_TRAFFIC', e instanceof ConfigError ? e.problems.join('; ') : String(e));
    }
    return this.#change(model, 'set', traffic, by, reason);
  }

  /** Drops the run-time routes: the configuration file's routes serve again. */
  async reset(model: string, by: string, reason: string): Promise<TrafficChange> {
    return this.#change(model, 'reset', null, by, reason);
  }

  async #change(model: string, action: 'set' | 'reset', after: TrafficConfig | null, by: string, reason: string): Promise<TrafficChange> {
    const store = this.#store;
    let previous: TrafficRecord | undefined;
    let history: TrafficChange[];
    try {
      const [rec, h] = await Promise.all([store.get(SCOPE, model), store.get(SCOPE, HISTORY_KEY(model))]);
      previous = (rec ?? undefined) as TrafficRecord | undefined;
      history = Array.isArray(h) ? (h as TrafficChange[]) : [];
    } catch (e) {
      throw storeDown(e);
    }
    const before = this.live(model).traffic;
    const at = new Date().toISOString();
    const revision = Math.max(previous?.revision ?? 0, this.#records.get(model)?.revision ?? 0, history[0]?.revision ?? 0) + 1;
    const change: TrafficChange = { model, action, revision, at, by, reason, before, after: after ?? this.#config.models[model]?.traffic ?? null };
    try {
      if (after === null) await store.delete(SCOPE, model);
      else await store.set(SCOPE, model, { traffic: after, revision, updatedAt: at, updatedBy: by, reason } satisfies TrafficRecord);
    } catch (e) {
      throw storeDown(e);
    }
    // The routes are in: from here on, failures only cost the audit copies or the announcement,
    // and are logged (the log line below is itself the audit record of last resort).
    this.#log.info({ audit: 'traffic', ...change }, 'traffic routes changed');
    this.#take(model, after === null ? undefined : { traffic: after, revision, updatedAt: at, updatedBy: by, reason });
    this.#apply();
    const results = await Promise.allSettled([
      store.set('audit', `traffic:${model}:${String(revision).padStart(8, '0')}`, change),
      store.set(SCOPE, HISTORY_KEY(model), [change, ...history].slice(0, HISTORY_LENGTH)),
      store.publish(CHANNEL, model),
    ]);
    for (const r of results) if (r.status === 'rejected') this.#log.warn({ err: r.reason, model }, 'traffic: change stored, but its audit copy or announcement failed (reconciliation spreads it)');
    return change;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#unsubscribe?.().catch(() => undefined);
  }
}
