/**
 * The model table: model → version → adapter, built from a frozen configuration. A table is
 * immutable once built; a reload builds a new one (reusing adapters whose backend did not change)
 * and swaps it in whole, so a request sees one consistent table from start to end.
 */
import type { Logger } from 'pino';
import type { BackendConfig, GatewayConfig, ModelConfig } from '../gateway/config.js';
import { GatewayError } from '../gateway/errors.js';
import type { Adapter, ModelMetadata } from './adapter.js';
import { OipHttpAdapter } from './oip-http.js';
import { OnnxAdapter } from './onnx.js';

export function createAdapter(backend: BackendConfig): Adapter {
  switch (backend.kind) {
    case 'onnx':
      return new OnnxAdapter(backend);
    case 'oip-http':
      return new OipHttpAdapter(backend);
  }
}

/** One servable model version. `metadata` is undefined until its backend has answered once. */
export class ServedVersion {
  readonly model: string;
  readonly version: string;
  readonly adapter: Adapter;
  readonly backendKey: string;
  #metadata: ModelMetadata | undefined;
  #loadError: Error | undefined;
  #loading: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(model: string, version: string, backend: BackendConfig) {
    this.model = model;
    this.version = version;
    this.adapter = createAdapter(backend);
    this.backendKey = JSON.stringify(backend);
  }

  get metadata(): ModelMetadata | undefined {
    return this.#metadata;
  }

  /** Why the last load failed, while the version is not loaded (an unreachable remote backend). */
  get loadError(): Error | undefined {
    return this.#loadError;
  }

  /** Loads once; concurrent callers share the attempt. */
  load(): Promise<void> {
    this.#loading ??= this.adapter.load().then(
      () => {
        this.#metadata = this.adapter.metadata();
        this.#loadError = undefined;
      },
      (e: unknown) => {
        this.#loading = undefined;
        this.#loadError = e instanceof Error ? e : new Error(String(e));
        throw e;
      },
    );
    return this.#loading;
  }

  /**
   * Keeps retrying a backend that was unreachable at start-up (remote backends start in any order),
   * with capped exponential back-off. Requests meanwhile get 503 MODEL_NOT_READY.
   */
  loadInBackground(log: Logger, delayMs = 500): void {
    if (this.#closed || this.#metadata !== undefined) return;
    this.#retryTimer = setTimeout(() => {
      this.load().then(
        () => log.info({ model: this.model, version: this.version }, 'model version loaded'),
        () => this.loadInBackground(log, Math.min(delayMs * 2, 30_000)),
      );
    }, delayMs);
    this.#retryTimer.unref();
  }

  /** Metadata, or a 503 if the backend has not been reached yet. */
  requireMetadata(): ModelMetadata {
    const md = this.#metadata;
    if (md === undefined) throw new GatewayError('MODEL_NOT_READY', `${this.model} version ${this.version}`);
    return md;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    await this.adapter.close();
  }
}

export interface ServedModel {
  readonly name: string;
  readonly config: ModelConfig;
  readonly versions: ReadonlyMap<string, ServedVersion>;
  readonly stable: ServedVersion;
  /** Version names in configuration order, for metadata responses. */
  readonly versionNames: readonly string[];
}

export class ModelTable {
  readonly models: ReadonlyMap<string, ServedModel>;
  readonly config: GatewayConfig;
  /** Requests currently using this table; the table's retired adapters close when it reaches 0. */
  #inflight = 0;
  #onIdle: (() => void) | undefined;

  constructor(config: GatewayConfig, models: ReadonlyMap<string, ServedModel>) {
    this.config = config;
    this.models = models;
  }

  acquire(): void {
    this.#inflight++;
  }

  release(): void {
    if (--this.#inflight === 0 && this.#onIdle !== undefined) this.#onIdle();
  }

  /** Resolves once no request uses this table any more. */
  idle(): Promise<void> {
    if (this.#inflight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#onIdle = resolve;
    });
  }

  *allVersions(): Iterable<ServedVersion> {
    for (const m of this.models.values()) yield* m.versions.values();
  }
}

/** Where a version's model comes from, for messages: its file, or its remote server and model. */
export function backendSource(backend: BackendConfig): string {
  return backend.kind === 'onnx' ? backend.path : `${backend.url} (model ${backend.model})`;
}

/** The versions of a table that could not be loaded, each named with its model, version and source. */
export class TableLoadError extends Error {
  readonly failures: readonly string[];
  constructor(failures: readonly string[], causes: readonly unknown[]) {
    super(failures.join('; '), { cause: causes.length === 1 ? causes[0] : new AggregateError(causes) });
    this.name = 'TableLoadError';
    this.failures = failures;
  }
}

export interface BuildOptions {
  readonly log: Logger;
  /** The table being replaced: adapters with an identical backend are reused, not reloaded. */
  readonly previous?: ModelTable;
  /**
   * Remote backends that do not answer yet are retried in the background instead of failing the
   * build. In-process models (onnx) must always load: a broken file is a configuration error.
   */
  readonly tolerateUnreachable: boolean;
}

/**
 * Builds and loads a table. On failure, closes what it opened and throws a TableLoadError naming
 * every version that failed (not only the first), so one attempt shows everything to fix.
 */
export async function buildModelTable(config: GatewayConfig, opts: BuildOptions): Promise<ModelTable> {
  const reusable = new Map<string, ServedVersion>();
  if (opts.previous) {
    for (const sv of opts.previous.allVersions()) {
      if (sv.metadata !== undefined) reusable.set(`${sv.model}@${sv.version}|${sv.backendKey}`, sv);
    }
  }
  const created: ServedVersion[] = [];
  const models = new Map<string, ServedModel>();
  const failures: string[] = [];
  const causes: unknown[] = [];
  try {
    const pending: Promise<void>[] = [];
    for (const [name, mc] of Object.entries(config.models)) {
      const versions = new Map<string, ServedVersion>();
      for (const [v, vc] of Object.entries(mc.versions)) {
        const key = `${name}@${v}|${JSON.stringify(vc.backend)}`;
        let sv = reusable.get(key);
        if (sv === undefined) {
          sv = new ServedVersion(name, v, vc.backend);
          created.push(sv);
          const loading = sv.load();
          const tolerate = opts.tolerateUnreachable && vc.backend.kind !== 'onnx';
          const served = sv;
          pending.push(tolerate ? loading.catch((e: unknown) => {
            opts.log.warn({ model: name, version: v, err: e }, 'backend not reachable yet; retrying in the background');
            served.loadInBackground(opts.log);
          }) : loading.catch((e: unknown) => {
            failures.push(`model ${name} version ${v} failed to load from ${backendSource(vc.backend)}: ${(e as Error).message}`);
            causes.push(e);
          }));
        }
        versions.set(v, sv);
      }
      const stable = versions.get(mc.stable);
      if (stable === undefined) throw new Error(`model ${name}: stable version ${mc.stable} is missing`);
      models.set(name, { name, config: mc, versions, stable, versionNames: [...versions.keys()] });
    }
    await Promise.all(pending);
    if (failures.length > 0) throw new TableLoadError(failures, causes);
  } catch (e) {
    await Promise.allSettled(created.map((sv) => sv.close()));
    throw e;
  }
  return new ModelTable(config, models);
}

/**
 * Closes the adapters of `old` that `current` no longer uses, once `old` has no requests left (or
 * after `waitMs`, for a shutdown that cannot wait for ever).
 */
export async function retireTable(old: ModelTable, current: ModelTable | undefined, waitMs = Infinity): Promise<void> {
  const kept = new Set<ServedVersion>(current ? current.allVersions() : []);
  if (Number.isFinite(waitMs)) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([old.idle(), new Promise<void>((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
  } else {
    await old.idle();
  }
  await Promise.allSettled([...old.allVersions()].filter((sv) => !kept.has(sv)).map((sv) => sv.close()));
}
