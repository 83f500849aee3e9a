/**
 * The model table: model → version → adapter, built from a frozen configuration. A table is
 * immutable once built; a reload builds a new one (reusing versions whose backend and model file
 * did not change) and swaps it in whole, so a request sees one consistent table from start to end.
 */
import type { Logger } from 'pino';
import type { BackendConfig, GatewayConfig, ModelConfig, VersionConfig } from '../gateway/config.js';
import { GatewayError } from '../gateway/errors.js';
import type { Adapter, ModelMetadata } from './adapter.js';
import { artifactSha256 } from './artifact.js';
import type { BackendEvents, BackendGuardEvents } from './backend-guard.js';
import { OipHttpAdapter } from './oip-http.js';
import { OnnxAdapter } from './onnx.js';

/**
 * An adapter for a backend; `events` are its guard's (remote backends only: an in-process model
 * runs on the gateway's own thread, which the server's connection and time limits already bound).
 */
export function createAdapter(backend: BackendConfig, events?: BackendGuardEvents): Adapter {
  switch (backend.kind) {
    case 'onnx':
      return new OnnxAdapter(backend);
    case 'oip-http':
      return new OipHttpAdapter(backend, { events });
  }
}

/** The table's backend events, bound to one version. */
function versionEvents(events: BackendEvents | undefined, model: string, version: string): BackendGuardEvents | undefined {
  if (events === undefined) return undefined;
  return {
    shed: (reason) => events.backendShed(model, version, reason),
    breakerChanged: (to, from) => events.backendBreakerChanged(model, version, to, from),
  };
}

const NO_ARTIFACTS: ReadonlyMap<string, unknown> = new Map();

/** One servable model version. `metadata` is undefined until its backend has answered once. */
export class ServedVersion {
  readonly model: string;
  readonly version: string;
  readonly adapter: Adapter;
  readonly backendKey: string;
  /** SHA-256 of the model file this version loaded (in-process backends); see artifact.ts. */
  readonly artifactSha256: string | undefined;
  /** Per-version artefacts by name (see ArtifactLoader), loaded with the table; empty when none is configured. */
  artifacts: ReadonlyMap<string, unknown> = NO_ARTIFACTS;
  /** What those artefacts were read from (ArtifactLoader.source), so a reload tells whether they changed. */
  artifactSources = '[]';
  #metadata: ModelMetadata | undefined;
  #loadError: Error | undefined;
  #loading: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(model: string, version: string, backend: BackendConfig, artifactSha256?: string, events?: BackendEvents) {
    this.model = model;
    this.version = version;
    this.adapter = createAdapter(backend, versionEvents(events, model, version));
    this.backendKey = JSON.stringify(backend);
    this.artifactSha256 = artifactSha256;
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

/** What an artefact is loaded against: the version's model, as far as it is known at load. */
export interface LoadedModel {
  /** Undefined while a remote backend has not answered yet (it is retried in the background). */
  readonly metadata: ModelMetadata | undefined;
  /** SHA-256 of the model file (in-process backends); undefined for a remote one. */
  readonly artifactSha256: string | undefined;
}

/**
 * A per-version artefact loaded with the model table and swapped with it on reload, for the
 * policies of the payload phase to read from the routed version (a reference profile for input
 * guards and drift, …): `source` names what it is read from for a version as a string that changes
 * when it does (a path and its SHA-256), so a reload reuses an unchanged version and loads a
 * changed one anew; `load` reads it, after the model has loaded, so it can check that it fits the
 * model (`model`). A failing load is that version's load failure: a reload is refused and the old
 * table keeps serving, exactly as for a broken model file.
 */
export interface ArtifactLoader {
  readonly name: string;
  /** undefined: this version has no such artefact. */
  source(model: string, version: string, config: VersionConfig): Promise<string | undefined>;
  load(model: string, version: string, config: VersionConfig, loaded: LoadedModel): Promise<unknown>;
}

export interface BuildOptions {
  readonly log: Logger;
  /** Per-version artefacts to load with the models (none by default). */
  readonly artifacts?: readonly ArtifactLoader[];
  /** The table being replaced: versions with an identical backend and model file are reused, not reloaded. */
  readonly previous?: ModelTable;
  /**
   * Remote backends that do not answer yet are retried in the background instead of failing the
   * build. In-process models (onnx) must always load: a broken file is a configuration error.
   */
  readonly tolerateUnreachable: boolean;
  /** Where remote backends' load shedding and breaker changes are reported (the metrics). */
  readonly events?: BackendEvents;
}

/** Loads what each loader has a source for (`sources[i]`, already asked: a source may hash a file). */
async function loadArtifacts(loaders: readonly ArtifactLoader[], sources: readonly (string | undefined)[], model: string, version: string, vc: VersionConfig, loaded: LoadedModel): Promise<ReadonlyMap<string, unknown>> {
  if (loaders.length === 0) return NO_ARTIFACTS;
  const out = new Map<string, unknown>();
  for (const [i, l] of loaders.entries()) {
    if (sources[i] === undefined) continue;
    try {
      out.set(l.name, await l.load(model, version, vc, loaded));
    } catch (e) {
      throw new Error(`its ${l.name} could not be loaded: ${(e as Error).message}`, { cause: e });
    }
  }
  return out;
}

/**
 * Builds and loads a table. A version of `previous` is reused when its backend and its model file's
 * content are unchanged; anything else is loaded anew. On failure, closes what it opened and throws
 * a TableLoadError naming every version that failed (not only the first), so one attempt shows
 * everything to fix.
 */
export async function buildModelTable(config: GatewayConfig, opts: BuildOptions): Promise<ModelTable> {
  const previous = new Map<string, ServedVersion>();
  for (const sv of opts.previous?.allVersions() ?? []) previous.set(`${sv.model}@${sv.version}`, sv);
  const created: ServedVersion[] = [];
  const failures: string[] = [];
  const causes: unknown[] = [];
  const failed = (name: string, v: string, backend: BackendConfig, e: unknown): undefined => {
    failures.push(`model ${name} version ${v} failed to load from ${backendSource(backend)}: ${(e as Error).message}`);
    causes.push(e);
    return undefined;
  };

  const loaders = opts.artifacts ?? [];

  async function place(name: string, v: string, vc: VersionConfig): Promise<ServedVersion | undefined> {
    const { backend } = vc;
    let sha: string | undefined;
    let sourceList: (string | undefined)[];
    let sources: string;
    try {
      sha = await artifactSha256(backend);
      sourceList = await Promise.all(loaders.map((l) => l.source(name, v, vc)));
      sources = JSON.stringify(sourceList);
    } catch (e) {
      return failed(name, v, backend, e);
    }
    const before = previous.get(`${name}@${v}`);
    const sameBackend = before !== undefined && before.backendKey === JSON.stringify(backend);
    if (sameBackend && before.metadata !== undefined && before.artifactSha256 === sha && before.artifactSources === sources) return before;
    if (sameBackend && before.artifactSha256 !== sha) {
      opts.log.info({ model: name, version: v, previousSha256: before.artifactSha256, sha256: sha }, 'model file changed; loading it anew');
    }
    const sv = new ServedVersion(name, v, backend, sha, opts.events);
    created.push(sv);
    let unreachable = false;
    try {
      await sv.load();
    } catch (e) {
      if (!opts.tolerateUnreachable || backend.kind === 'onnx') return failed(name, v, backend, e);
      opts.log.warn({ model: name, version: v, err: e }, 'backend not reachable yet; retrying in the background');
      unreachable = true;
    }
    // After the model: an artefact is checked against the model it serves with (its metadata when known).
    try {
      sv.artifacts = await loadArtifacts(loaders, sourceList, name, v, vc, { metadata: sv.metadata, artifactSha256: sha });
      sv.artifactSources = sources;
    } catch (e) {
      return failed(name, v, backend, e);
    }
    if (unreachable) sv.loadInBackground(opts.log);
    return sv;
  }

  const entries = Object.entries(config.models).flatMap(([name, mc]) => Object.entries(mc.versions).map(([v, vc]) => ({ name, v, vc })));
  const placed = await Promise.all(entries.map((e) => place(e.name, e.v, e.vc)));
  const models = new Map<string, ServedModel>();
  let i = 0;
  for (const [name, mc] of Object.entries(config.models)) {
    const versions = new Map<string, ServedVersion>();
    for (const v of Object.keys(mc.versions)) {
      const sv = placed[i++];
      if (sv !== undefined) versions.set(v, sv);
    }
    const stable = versions.get(mc.stable);
    if (stable !== undefined) models.set(name, { name, config: mc, versions, stable, versionNames: [...versions.keys()] });
    else if (failures.length === 0) failures.push(`model ${name}: stable version ${mc.stable} is missing`);
  }
  if (failures.length > 0) {
    await Promise.allSettled(created.map((sv) => sv.close()));
    throw new TableLoadError(failures, causes);
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
