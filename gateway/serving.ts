/**
 * What the gateway serves right now: the current model table, swapped whole on reload. Reload
 * builds the new table while the old one keeps serving; only a fully loaded table is swapped in,
 * and the old one's retired adapters close after its last in-flight request finishes.
 */
import type { Logger } from 'pino';
import type { BackendEvents } from '../adapters/backend-guard.js';
import { buildModelTable, retireTable, type ArtifactLoader, type ModelTable } from '../adapters/registry.js';
import type { GatewayConfig } from './config.js';
import type { GatewayMetrics } from './telemetry/metrics.js';

/**
 * Remote backends' guard events: counted by the metrics; a breaker's changes are logged too (a
 * refusal is not: there can be thousands a second, and the metrics count them).
 */
function backendEvents(metrics: GatewayMetrics, log: Logger): BackendEvents {
  return {
    backendShed: (model, version, reason) => metrics.backendShed(model, version, reason),
    backendBreakerChanged(model, version, to, from) {
      metrics.backendBreakerChanged(model, version, to, from);
      if (to === 'open') log.warn({ model, version, from }, 'backend keeps failing; circuit breaker open, calls refused until a probe succeeds');
      else if (to === 'closed') log.info({ model, version }, 'backend answers again; circuit breaker closed');
    },
  };
}

export class Serving {
  #table: ModelTable;
  #draining = false;
  #reloading: Promise<void> = Promise.resolve();
  readonly #log: Logger;
  readonly #metrics: GatewayMetrics;

  /** Per-version artefacts loaded with every table (reference profiles, …). */
  readonly #artifacts: readonly ArtifactLoader[];

  constructor(table: ModelTable, log: Logger, metrics: GatewayMetrics, artifacts: readonly ArtifactLoader[] = []) {
    this.#table = table;
    this.#log = log;
    this.#metrics = metrics;
    this.#artifacts = artifacts;
  }

  static async start(config: GatewayConfig, log: Logger, metrics: GatewayMetrics, artifacts: readonly ArtifactLoader[] = []): Promise<Serving> {
    const table = await buildModelTable(config, { log, tolerateUnreachable: true, artifacts, events: backendEvents(metrics, log) });
    return new Serving(table, log, metrics, artifacts);
  }

  get table(): ModelTable {
    return this.#table;
  }

  get config(): GatewayConfig {
    return this.#table.config;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Applies a validated configuration. Reloads are serialised: a SIGHUP during a reload waits for
   * it. Throws (and keeps the current table) if any model of the new configuration fails to load.
   */
  reload(config: GatewayConfig): Promise<void> {
    const next = this.#reloading.then(() => this.#apply(config));
    this.#reloading = next.catch(() => undefined);
    return next;
  }

  async #apply(config: GatewayConfig): Promise<void> {
    let table: ModelTable;
    try {
      table = await buildModelTable(config, { log: this.#log, previous: this.#table, tolerateUnreachable: true, artifacts: this.#artifacts, events: backendEvents(this.#metrics, this.#log) });
    } catch (e) {
      this.#metrics.recordReload(false);
      throw e;
    }
    const old = this.#table;
    this.#table = table;
    this.#metrics.recordReload(true);
    this.#log.info({ models: [...table.models.keys()] }, 'configuration reloaded');
    retireTable(old, table).catch((e: unknown) => this.#log.warn({ err: e }, 'closing retired model versions failed'));
  }

  /** Marks the gateway not ready so load balancers stop sending; requests in flight go on. */
  drain(): void {
    this.#draining = true;
  }

  /**
   * Closes every adapter once the requests still using the table have finished, or after `waitMs`,
   * whichever comes first (past the shutdown grace, in-flight backend calls are cut off).
   */
  async close(waitMs = Infinity): Promise<void> {
    this.#draining = true;
    await this.#reloading;
    await retireTable(this.#table, undefined, waitMs);
  }
}
