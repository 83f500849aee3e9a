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
 * Changes are compare-and-set on the model's record: its revision comes from the store's sequence,
 * so two replicas changing one model at once each get their own revision and each change's
 * `before` is exactly what it replaced; a caller that says which revision it read (If-Match) gets
 * REVISION_CONFLICT if it moved. A reset writes a record too (routes null: the file's serve), so
 * it has a revision of its own and says who reset and why. The admin feature writes each change
 * to the audit log (gateway/audit/audit-log.ts), which is also the model's history.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, parseTraffic, type GatewayConfig, type MirrorStart, type TrafficConfig } from '../config.js';
import { GatewayError } from '../errors.js';
import { MirroredScope } from '../state/mirrored-scope.js';
import type { StateStore } from '../state/store.js';

/** The live run-time routes, one record per model (mirrored). */
const SCOPE = 'traffic';

/** A model's run-time routes as stored; `traffic: null` is a reset (the file's routes serve). */
export interface TrafficRecord {
  readonly traffic: TrafficConfig | null;
  readonly updatedAt: string;
  readonly updatedBy: string;
  readonly reason: string;
}

/** What a change did; the admin API answers with it and the audit log keeps it. */
export interface TrafficChange {
  readonly model: string;
  readonly action: 'set' | 'reset';
  /** The model's record revision after the change (If-Match takes it). */
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
  readonly updatedAt?: string;
  readonly updatedBy?: string;
  readonly reason?: string;
}

export interface MirrorOptions {
  readonly start?: MirrorStart;
  /** Folder of the `snapshot` start's file. */
  readonly snapshotDir?: string;
}

/** A stored value as a TrafficRecord, structurally (records of older versions carried a revision: ignored). */
function asRecord(value: unknown): TrafficRecord {
  const r = value as Partial<TrafficRecord> | null;
  if (r === null || typeof r !== 'object' || typeof r.traffic !== 'object') throw new Error('not a traffic record');
  return { traffic: r.traffic, updatedAt: String(r.updatedAt ?? ''), updatedBy: String(r.updatedBy ?? ''), reason: String(r.reason ?? '') };
}

/** The mirror holds run-time routes only: a reset record is no entry. Its routes are checked against the configuration later. */
function parseRecord(_model: string, value: unknown): TrafficRecord | undefined {
  const r = asRecord(value);
  return r.traffic === null ? undefined : r;
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
      if (had !== undefined && had.record.updatedAt === record.updatedAt && had.record.updatedBy === record.updatedBy && had.record.reason === record.reason) {
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
      return { source: 'admin', traffic: d.traffic, updatedAt: rec.updatedAt, updatedBy: rec.updatedBy, reason: rec.reason };
    }
    const fromFile = this.#config.models[model]?.traffic;
    return fromFile === undefined ? { source: 'none', traffic: null } : { source: 'config', traffic: fromFile };
  }

  /** The revision of the model's stored record (0: never changed at run time), read from the store: for If-Match. */
  async revision(model: string): Promise<number> {
    return (await this.#mirror.read(model))?.revision ?? 0;
  }

  /** Validates and stores new routes for `model`; INVALID_TRAFFIC lists every problem. */
  async set(model: string, input: unknown, by: string, reason: string, expected?: number): Promise<TrafficChange> {
    const versions = Object.keys(this.#config.models[model]?.versions ?? {});
    let traffic: TrafficConfig;
    try {
      traffic = parseTraffic(input, versions);
    } catch (e) {
      throw new GatewayError('INVALID_TRAFFIC', e instanceof ConfigError ? e.problems.join('; ') : String(e));
    }
    return this.#change(model, 'set', traffic, by, reason, expected);
  }

  /** Drops the run-time routes: the configuration file's routes serve again. */
  async reset(model: string, by: string, reason: string, expected?: number): Promise<TrafficChange> {
    return this.#change(model, 'reset', null, by, reason, expected);
  }

  /** The routes a stored value stands for under the current configuration. */
  #routesOf(model: string, stored: unknown): TrafficConfig | null {
    const fromFile = this.#config.models[model]?.traffic ?? null;
    if (stored === undefined || stored === null) return fromFile;
    let r: TrafficRecord;
    try {
      r = asRecord(stored);
    } catch {
      return fromFile;
    }
    if (r.traffic === null) return fromFile;
    try {
      return parseTraffic(r.traffic, Object.keys(this.#config.models[model]?.versions ?? {}));
    } catch {
      return fromFile;
    }
  }

  async #change(model: string, action: 'set' | 'reset', after: TrafficConfig | null, by: string, reason: string, expected: number | undefined): Promise<TrafficChange> {
    const at = new Date().toISOString();
    const record: TrafficRecord = { traffic: after, updatedAt: at, updatedBy: by, reason };
    let before: TrafficConfig | null = null;
    // Compare-and-set against the stored record, not the local copy: another replica may have
    // changed it a moment ago, and `before` must be what this change replaced.
    const done = await this.#mirror.change(model, expected, (stored) => {
      before = this.#routesOf(model, stored);
      return record;
    });
    return { model, action, revision: done.revision, at, by, reason, before, after: after ?? this.#config.models[model]?.traffic ?? null };
  }

  async close(): Promise<void> {
    await this.#mirror.close();
  }
}
