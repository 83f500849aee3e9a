/**
 * The live routes of every model: the configuration file's `models.<m>.traffic`, unless a product
 * owner replaced them at run time (PUT /admin/models/{m}/traffic or `breakwater traffic set`).
 *
 * A change is validated like the configuration, written to the shared store (so it survives
 * restarts and reaches every replica) and mirrored in every replica's memory
 * (gateway/state/mirrored-scope.ts: applied here at once, announced to the others, reconciled every
 * `state.reconcileMs`). The request path never reads the store: the traffic policy answers from
 * tables built from this local copy.
 *
 * Every change leaves an audit entry (who, what, before, after, why): a log line, a record of its
 * own in the store (`audit` scope), and the model's recent history shown by the admin API.
 *
 * Concurrent changes of one model from two replicas are last-writer-wins (the store has no
 * compare-and-set); each is audited with what it replaced.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, parseTraffic, type GatewayConfig, type MirrorStart, type TrafficConfig } from '../config.js';
import { GatewayError } from '../errors.js';
import { MirroredScope, storeUnavailable } from '../state/mirrored-scope.js';
import type { StateStore } from '../state/store.js';

/** The live run-time routes, one record per model (mirrored). */
const SCOPE = 'traffic';
/** Each model's recent changes, one record per model (read by the admin view only). */
const HISTORY_SCOPE = 'traffic-history';
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

export interface MirrorOptions {
  readonly start?: MirrorStart;
  /** Folder of the `snapshot` start's file. */
  readonly snapshotDir?: string;
}

/** A stored value as a TrafficRecord, structurally; its routes are checked against the configuration later. */
function parseRecord(_model: string, value: unknown): TrafficRecord {
  const r = value as Partial<TrafficRecord> | null;
  if (r === null || typeof r !== 'object' || typeof r.revision !== 'number' || typeof r.traffic !== 'object' || r.traffic === null) {
    throw new Error('not a traffic record');
  }
  return r as TrafficRecord;
}

/** What a stored record became under the current configuration: its routes, or none (they do not fit). */
interface Derived {
  readonly record: TrafficRecord;
  readonly traffic: TrafficConfig | undefined;
}

export class TrafficRoutes {
  readonly #store: StateStore;
  readonly #log: Logger;
  readonly #onChange: (overrides: ReadonlyMap<string, TrafficConfig>) => void;
  readonly #mirror: MirroredScope<TrafficRecord>;
  #config: GatewayConfig;
  /** Per model, the record last checked against the configuration and what it became. */
  #derived = new Map<string, Derived>();
  #overrides: ReadonlyMap<string, TrafficConfig> = new Map();

  private constructor(store: StateStore, log: Logger, config: GatewayConfig, onChange: (overrides: ReadonlyMap<string, TrafficConfig>) => void, mirror: MirrorOptions) {
    this.#store = store;
    this.#log = log;
    this.#config = config;
    this.#onChange = onChange;
    this.#mirror = new MirroredScope<TrafficRecord>(store, {
      scope: SCOPE,
      reconcileMs: config.state.reconcileMs,
      log,
      parse: parseRecord,
      onChange: (records) => this.#derive(records),
      start: mirror.start,
      snapshotFile: mirror.snapshotDir === undefined ? undefined : join(mirror.snapshotDir, `${SCOPE}.json`),
    });
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
    /** How the copy starts when the store does not answer; default `open`. */
    mirror?: MirrorOptions;
  }): Promise<TrafficRoutes> {
    const r = new TrafficRoutes(opts.store, opts.log, opts.config, opts.onChange, opts.mirror ?? {});
    await r.#mirror.start();
    return r;
  }

  /** False while the routes start closed and have not been read (the gateway must not serve). */
  get ready(): boolean {
    return this.#mirror.ready;
  }

  /** Run-time routes by model, for `effectiveTraffic`. */
  get overrides(): ReadonlyMap<string, TrafficConfig> {
    return this.#overrides;
  }

  /** Re-reads every stored record; keeps the last known routes if the store fails. */
  async reconcile(): Promise<void> {
    await this.#mirror.reconcile();
  }

  /**
   * Checks the mirrored records against the configuration's versions (only records that changed)
   * and hands the routes on when they changed. A record naming a version the configuration lacks
   * (removed since the routes were set) is set aside, warned once: the file's routes serve.
   */
  #derive(records: ReadonlyMap<string, TrafficRecord>, force = false): void {
    let changed = false;
    const next = new Map<string, Derived>();
    for (const [model, record] of records) {
      const mc = this.#config.models[model];
      if (mc === undefined) continue;
      const had = this.#derived.get(model);
      if (had !== undefined && had.record.revision === record.revision && had.record.updatedAt === record.updatedAt) {
        next.set(model, had);
        continue;
      }
      let traffic: TrafficConfig | undefined;
      try {
        traffic = parseTraffic(record.traffic, Object.keys(mc.versions), `stored routes of ${model}`);
      } catch (e) {
        this.#log.warn({ model, problems: e instanceof ConfigError ? e.problems : String(e) }, 'traffic: stored routes do not fit the configuration; using the configuration\'s');
      }
      next.set(model, { record, traffic });
      changed ||= traffic !== undefined || had?.traffic !== undefined;
    }
    for (const [model, had] of this.#derived) if (!next.has(model) && had.traffic !== undefined) changed = true;
    this.#derived = next;
    if (!changed && !force) return;
    const overrides = new Map<string, TrafficConfig>();
    for (const [model, d] of next) if (d.traffic !== undefined) overrides.set(model, d.traffic);
    this.#overrides = overrides;
    this.#onChange(overrides);
  }

  /** A reloaded configuration: stored routes are re-checked against its versions at once. */
  async reconfigure(config: GatewayConfig): Promise<void> {
    this.#config = config;
    // Re-checked now, from the copy in hand, without a moment on the file's routes in between
    // (that would move subjects between arms and back); then the store is read again.
    this.#derived = new Map();
    this.#derive(this.#mirror.entries, true);
    await this.#mirror.reconcile();
  }

  live(model: string): LiveTraffic {
    const d = this.#derived.get(model);
    if (d?.traffic !== undefined) {
      const rec = d.record;
      return { source: 'admin', traffic: d.traffic, revision: rec.revision, updatedAt: rec.updatedAt, updatedBy: rec.updatedBy, reason: rec.reason };
    }
    const fromFile = this.#config.models[model]?.traffic;
    return fromFile === undefined ? { source: 'none', traffic: null, revision: 0 } : { source: 'config', traffic: fromFile, revision: 0 };
  }

  async history(model: string): Promise<readonly TrafficChange[]> {
    try {
      const h = await this.#store.get(HISTORY_SCOPE, model);
      return Array.isArray(h) ? (h as TrafficChange[]) : [];
    } catch (e) {
      throw storeUnavailable(e);
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
    // The stored record, not only the local copy: another replica may have changed it a moment ago.
    const [history, stored] = await Promise.all([this.history(model), this.#mirror.fetch(model)]);
    const before = this.live(model).traffic;
    const at = new Date().toISOString();
    // Revisions only grow, across resets too (the history remembers the last one).
    const previous = typeof (stored as TrafficRecord | undefined)?.revision === 'number' ? (stored as TrafficRecord).revision : 0;
    const revision = Math.max(previous, history[0]?.revision ?? 0) + 1;
    const change: TrafficChange = { model, action, revision, at, by, reason, before, after: after ?? this.#config.models[model]?.traffic ?? null };
    if (after === null) await this.#mirror.remove(model);
    else await this.#mirror.put(model, { traffic: after, revision, updatedAt: at, updatedBy: by, reason } satisfies TrafficRecord);
    // The routes are in: from here on, failures only cost the audit copies, and are logged (the
    // log line is itself the audit record of last resort).
    this.#log.info({ audit: 'traffic', ...change }, 'traffic routes changed');
    const results = await Promise.allSettled([
      this.#store.set('audit', `traffic:${model}:${String(revision).padStart(8, '0')}`, change),
      this.#store.set(HISTORY_SCOPE, model, [change, ...history].slice(0, HISTORY_LENGTH)),
    ]);
    for (const r of results) if (r.status === 'rejected') this.#log.warn({ err: r.reason, model }, 'traffic: change stored, but its audit copy failed');
    return change;
  }

  async close(): Promise<void> {
    await this.#mirror.close();
  }
}
