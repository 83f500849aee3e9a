/**
 * The fleet: every live replica announces itself through the shared store (scope `fleet`, one
 * record per replica, expiring `fleet.expireAfterMs` after its last heartbeat), with what an
 * on-call engineer needs to know it is in line: its gateway version, the SHA-256 of its
 * configuration, and the kill-state revision it has applied and when. `GET /admin/fleet` and
 * `GET /admin/kill` read it; `breakwater kill` waits on it.
 *
 * A heartbeat is written every `heartbeatMs` and at once when a kill revision is applied, so the
 * engineer sees the apply within a store round trip, not a heartbeat later. Writes never overlap
 * (a newer state waits for the write in flight and follows it); a store that does not answer only
 * delays them (the record then expires and the replica drops out of the list until it answers:
 * the list shows who can be confirmed, which is what matters during an incident).
 * On close the record is deleted: a replica that stops cleanly leaves the list at once.
 */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { StateStore } from '../state/store.js';

export const FLEET_SCOPE = 'fleet';

export interface ReplicaRecord {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly gatewayVersion: string;
  readonly configHash: string;
  readonly startedAt: string;
  readonly heartbeatAt: string;
  /** The kill-state revision this replica has applied, and when (its clock). */
  readonly kill: { readonly revision: number; readonly appliedAt: string | null };
}

export interface FleetOptions {
  readonly id: string;
  readonly gatewayVersion: string;
  readonly configHash: string;
  readonly heartbeatMs: number;
  readonly expireAfterMs: number;
}

function isReplicaRecord(v: unknown): v is ReplicaRecord {
  const r = v as Partial<ReplicaRecord> | null;
  return r !== null && typeof r === 'object' && typeof r.id === 'string' && typeof r.heartbeatAt === 'string' && typeof r.kill === 'object' && r.kill !== null;
}

export class Fleet {
  readonly #store: StateStore;
  readonly #log: Logger;
  readonly #opts: FleetOptions;
  readonly #startedAt = new Date().toISOString();
  #configHash: string;
  #kill: { revision: number; appliedAt: string | null } = { revision: 0, appliedAt: null };
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> | undefined;
  #again = false;
  #failing = false;
  #closed = false;

  constructor(store: StateStore, log: Logger, opts: FleetOptions) {
    this.#store = store;
    this.#log = log;
    this.#opts = opts;
    this.#configHash = opts.configHash;
  }

  get id(): string {
    return this.#opts.id;
  }

  /** Writes the first heartbeat (not failing for want of the store) and starts the timer. */
  async start(): Promise<void> {
    await this.beat();
    this.#timer = setInterval(() => void this.beat(), this.#opts.heartbeatMs);
    this.#timer.unref();
  }

  /** This replica applied kill-state `revision`: said at once. */
  applied(revision: number, at = Date.now()): void {
    this.#kill = { revision, appliedAt: new Date(at).toISOString() };
    void this.beat();
  }

  /** A reload applied a new configuration. */
  setConfigHash(hash: string): void {
    this.#configHash = hash;
    void this.beat();
  }

  /** This replica's record as it is now. */
  self(): ReplicaRecord {
    const { id, gatewayVersion } = this.#opts;
    const colon = id.lastIndexOf(':');
    return {
      id,
      host: colon > 0 ? id.slice(0, colon) : hostname(),
      pid: process.pid,
      gatewayVersion,
      configHash: this.#configHash,
      startedAt: this.#startedAt,
      heartbeatAt: new Date().toISOString(),
      kill: this.#kill,
    };
  }

  /** Writes the record now (after the write in flight, if any); never rejects. */
  beat(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#writing !== undefined) {
      this.#again = true;
      return this.#writing;
    }
    this.#writing = this.#write().finally(() => {
      this.#writing = undefined;
      if (this.#again && !this.#closed) {
        this.#again = false;
        void this.beat();
      }
    });
    return this.#writing;
  }

  async #write(): Promise<void> {
    try {
      await this.#store.set(FLEET_SCOPE, this.#opts.id, this.self(), { ttlMs: this.#opts.expireAfterMs });
      if (this.#failing) {
        this.#failing = false;
        this.#log.info('fleet: heartbeats reach the store again');
      }
    } catch (err) {
      if (!this.#failing) {
        this.#failing = true;
        this.#log.warn({ err }, 'fleet: a heartbeat did not reach the store; this replica drops out of the fleet list until one does');
      }
    }
  }

  /** The live replicas (heartbeat within expireAfterMs), by id. Throws when the store does not answer. */
  async list(): Promise<ReplicaRecord[]> {
    const records = await this.#store.records(FLEET_SCOPE);
    const now = Date.now();
    const out: ReplicaRecord[] = [];
    for (const v of records.values()) {
      if (!isReplicaRecord(v)) continue;
      if (now - Date.parse(v.heartbeatAt) > this.#opts.expireAfterMs) continue;
      out.push(v);
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#writing;
    try {
      await this.#store.delete(FLEET_SCOPE, this.#opts.id);
    } catch {
      // The record expires by itself.
    }
  }
}
