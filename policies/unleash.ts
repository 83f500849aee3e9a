/**
 * A model's split driven by an Unleash flag (`unleash` + `models.<m>.traffic.unleash.flag`): the
 * flag's variants name versions. unleash-client evaluates flags locally from the copy it polls
 * (every `refreshIntervalMs`), so the request path reads memory: `variant()` never waits for the
 * network and never throws. Stickiness is Unleash's own (the strategy's and the variants'
 * `stickiness`, hashed by the client with murmur3 over `groupId:userId`); the caller's verified
 * `sub` is the `userId`, its tenant the `tenant` context property (for constraints and custom
 * stickiness).
 *
 * When Unleash is unreachable the client keeps the last flags it had, so the split stands as it
 * was; a warning is logged once per outage and a line when Unleash answers again. Before it has
 * any flags (never reached, no bootstrap) `variant()` answers undefined and the model's own
 * `routes` apply.
 */
import type { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { InMemStorageProvider, Unleash, UnleashEvents, type ClientFeaturesResponse, type Context } from 'unleash-client';
import type { UnleashConfig } from '../gateway/config.js';
import type { Principal } from './principal.js';
import type { VariantSource } from './traffic-split.js';

export interface UnleashSource extends VariantSource {
  close(): Promise<void>;
}

export interface UnleashSourceOptions {
  /**
   * How long start-up waits for the bootstrap and the first answer from Unleash before serving
   * anyway (then the bootstrap, or else the configured routes, serve until Unleash answers).
   * Long enough for a reachable server on the same network, short enough that an unreachable one
   * (a black hole holds the client's fetch for its 10 s timeout) barely delays start-up.
   */
  readonly startupWaitMs?: number;
}

const DEFAULT_STARTUP_WAIT_MS = 2_000;

/** Reads and checks the bootstrap file now, so a wrong path fails start-up rather than hiding. */
async function readBootstrap(path: string): Promise<ClientFeaturesResponse> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`unleash.bootstrapFile ${path}: ${(e as Error).message}`, { cause: e });
  }
  const features = (parsed as { features?: unknown } | null)?.features;
  if (!Array.isArray(features)) {
    throw new Error(`unleash.bootstrapFile ${path}: not a client API response (GET /api/client/features): no "features" array`);
  }
  return parsed as ClientFeaturesResponse;
}

function text(x: unknown): string {
  return x instanceof Error ? x.message : typeof x === 'string' ? x : JSON.stringify(x) ?? String(x);
}

/** The version a variant names: its string payload when it has one, else its name. */
function versionOf(v: { name: string; enabled: boolean; feature_enabled?: boolean; payload?: { type: string; value: string } }): string | undefined {
  if (!v.enabled || v.feature_enabled !== true) return undefined;
  const p = v.payload;
  return p !== undefined && p.type === 'string' && p.value !== '' ? p.value : v.name;
}

export async function createUnleashSource(cfg: UnleashConfig, log: Logger, opts: UnleashSourceOptions = {}): Promise<UnleashSource> {
  const bootstrap = cfg.bootstrapFile === undefined ? undefined : await readBootstrap(cfg.bootstrapFile);
  const token = process.env[cfg.apiTokenEnv];
  if (token === undefined || token === '') {
    log.warn({ env: cfg.apiTokenEnv }, 'no Unleash client token in the environment: Unleash will refuse the client API and only the bootstrap (if any) applies');
  }
  // Set (at most once) when the bootstrap is handed over, so the 'changed' event it causes is not
  // taken for an answer from the server.
  let bootstrapPending = false;
  const unleash = new Unleash({
    url: cfg.url,
    appName: cfg.appName,
    refreshInterval: cfg.refreshIntervalMs,
    customHeaders: token === undefined || token === '' ? {} : { Authorization: token },
    bootstrap:
      bootstrap === undefined
        ? {}
        : {
            bootstrapProvider: {
              async readBootstrap() {
                bootstrapPending = true;
                return bootstrap;
              },
            },
          },
    // The default file storage writes `unleash-backup-<appName>.json` into the OS temp folder and
    // loads it at the next start as if current: flags of an unknown age, shared by every process
    // with that appName (each worker would write it), in a world-writable folder. Starting
    // offline is what `bootstrapFile` is for: an explicit, reviewed file.
    storageProvider: new InMemStorageProvider<ClientFeaturesResponse>(),
    // Metrics stay on: Unleash's "last seen" and per-variant exposure (what product owners read
    // to judge a split) come from them. Counting is an in-memory increment on the request path;
    // sending happens on the client's own timer, and its failures only log.
    disableMetrics: false,
    // We start it ourselves, below, to bound how long start-up waits.
    disableAutoStart: true,
  });

  let ready = false;
  let closed = false;
  // One warning per outage of the features endpoint, one per outage of metrics/registration.
  let featuresDown = false;
  let metricsDown = false;
  let evaluationFailed = false;

  unleash.on(UnleashEvents.Ready, () => {
    ready = true;
  });
  const recovered = (): void => {
    if (featuresDown) log.info({ unleash: cfg.url }, 'Unleash answers again: flags refreshed');
    featuresDown = false;
  };
  unleash.on(UnleashEvents.Changed, () => {
    if (bootstrapPending) {
      bootstrapPending = false;
      log.info({ unleash: cfg.url, file: cfg.bootstrapFile }, 'Unleash flags loaded from the bootstrap file');
      return;
    }
    recovered();
  });
  unleash.on(UnleashEvents.Unchanged, recovered);
  unleash.on(UnleashEvents.Sent, () => (metricsDown = false));
  unleash.on(UnleashEvents.Registered, () => (metricsDown = false));
  const problem = (level: 'warn' | 'error') =>
    function unleashProblem(x: unknown): void {
      if (closed) return;
      const message = text(x);
      if (/client\/(metrics|register)/.test(message)) {
        if (!metricsDown) log.warn({ unleash: cfg.url, problem: message }, 'Unleash metrics could not be sent; flags are unaffected');
        metricsDown = true;
      } else if (/client\/features|Repository error/.test(message)) {
        if (/responded (401|403)/.test(message)) {
          log.error({ unleash: cfg.url, problem: message }, `Unleash refused the client token (${cfg.apiTokenEnv}); the client stops polling until a restart`);
        } else if (!featuresDown) {
          log.warn({ unleash: cfg.url, problem: message }, 'Unleash unreachable: keeping the last flags it sent (the split stands as it was)');
        }
        featuresDown = true;
      } else {
        log[level]({ unleash: cfg.url, problem: message }, 'Unleash client problem');
      }
    };
  // Listening on 'error' also stops the client printing every error to the console itself.
  unleash.on(UnleashEvents.Error, problem('error'));
  unleash.on(UnleashEvents.Warn, problem('warn'));

  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<void>((res) => {
    timer = setTimeout(res, opts.startupWaitMs ?? DEFAULT_STARTUP_WAIT_MS);
  });
  // start() settles once the first fetch, the bootstrap and the registration are done (each
  // catches its own failures and reports them as events).
  const started = unleash.start().catch((e: unknown) => log.warn({ problem: text(e) }, 'Unleash client failed to start'));
  await Promise.race([started, waited]);
  clearTimeout(timer);
  // The client announces readiness on a later tick than the one that made it ready.
  await new Promise<void>((res) => setImmediate(res));
  if (!ready) log.warn({ unleash: cfg.url }, 'no Unleash flags yet: flag-driven models use their configured routes until Unleash answers');

  return {
    variant: function unleashVariant(flag: string, principal: Principal | undefined): string | undefined {
      // Before the client has flags it would answer a default and emit a warning per call.
      if (!ready) return undefined;
      try {
        const context: Context =
          principal === undefined ? {} : { userId: principal.subject, properties: { tenant: principal.tenant } };
        return versionOf(unleash.getVariant(flag, context));
      } catch (e) {
        // Never expected (evaluation is local and total), but a flag must never fail a request;
        // logged once, not per request.
        if (!evaluationFailed) log.warn({ flag, problem: text(e) }, 'Unleash evaluation failed; using configured routes');
        evaluationFailed = true;
        return undefined;
      }
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      // No final metrics flush: it would hold shutdown on a network call to a server that may be
      // the reason we are stopping; at most one interval of exposure counts is lost.
      // unleash-client 6.12: destroy() strips the repository's listeners while a fetch (and its
      // retries) may still be in flight; when that fetch then fails, the repository emits 'error'
      // with no listener, which throws inside a timer's promise: an unhandled rejection, fatal to
      // the process. A listener that outlives destroy() absorbs it (test/unleash.test.ts).
      const repository = (unleash as unknown as { repository?: EventEmitter }).repository;
      unleash.destroy();
      repository?.on(UnleashEvents.Error, function afterClose() {});
    },
  };
}
