/**
 * Running the gateway: listen, reload on SIGHUP (and on file change when enabled), drain and close
 * on SIGTERM/SIGINT. A reload that fails leaves the running configuration untouched.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { compose } from './compose.js';
import type { GatewayConfig } from './config.js';
import { flushAndExit } from './logger.js';
import type { Observer } from './observers.js';
import { buildServer } from './server.js';
import type { Serving } from './serving.js';
import type { ShadowMirror } from './shadow.js';

export interface RunningGateway {
  readonly app: FastifyInstance;
  readonly serving: Serving;
  /** Shadow copies of this process and their figures (`shadow.figures(model)`). */
  readonly shadow: ShadowMirror;
  /** The address it listens on, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  /** Re-reads the configuration and applies it; rejects (keeping the old one) if it is invalid. */
  reload(): Promise<void>;
  /** Stops accepting, lets in-flight requests finish (up to the grace time), closes backends. */
  close(): Promise<void>;
}

export interface StartOptions {
  readonly config: GatewayConfig;
  readonly log: Logger;
  /** Produces a fresh, validated configuration for a reload (re-reads the file or rescans the repository). */
  readonly loadConfig: () => Promise<GatewayConfig>;
  /** A file to watch for changes when `server.watchConfig` is on. */
  readonly watchPath?: string;
  /** Observers beyond the gateway's own (gateway/compose.ts ComposeOptions). */
  readonly observers?: readonly Observer[];
}

export async function startGateway(opts: StartOptions): Promise<RunningGateway> {
  const { log } = opts;
  const parts = await compose(opts.config, log, { observers: opts.observers });
  const { serving } = parts;
  const app = buildServer(parts, log);
  const { host, port } = opts.config.server;
  let url: string;
  try {
    url = await app.listen({ host, port, listenTextResolver: (address) => `listening at ${address}` });
  } catch (e) {
    await parts.close(0);
    throw e;
  }
  log.info({ url, models: [...serving.table.models.keys()], observers: parts.observers.names }, 'breakwater is serving');

  const reload = async (): Promise<void> => {
    await parts.reload(await opts.loadConfig());
  };

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      serving.drain();
      const grace = opts.config.server.shutdownGraceMs;
      const deadline = Date.now() + grace;
      const force = setTimeout(() => {
        log.warn({ graceMs: grace }, 'in-flight requests did not finish in time; closing connections');
        app.server.closeAllConnections();
      }, grace);
      force.unref();
      // server.close() only closes the connections idle at that moment; a keep-alive connection
      // whose request finishes later would hold the process until the client or keep-alive timer
      // closes it. Sweep idle connections until the server has closed (nothing on the request path).
      const sweep = setInterval(() => app.server.closeIdleConnections(), 50);
      sweep.unref();
      try {
        await app.close();
      } finally {
        clearInterval(sweep);
        clearTimeout(force);
      }
      await parts.close(Math.max(0, deadline - Date.now()));
    })();
    return closing;
  };

  return { app, serving, shadow: parts.shadow, url, reload, close };
}

/** Wires process signals (and the optional file watch) to reload and shutdown. */
export function handleProcessSignals(gw: RunningGateway, log: Logger, watchPath?: string): void {
  const reload = (why: string) => {
    gw.reload().then(
      () => log.info({ trigger: why }, 'reload applied'),
      (e: unknown) => log.error({ trigger: why, problem: (e as Error).message }, 'reload rejected; the previous configuration keeps serving'),
    );
  };
  process.on('SIGHUP', () => reload('SIGHUP'));

  let watcher: FSWatcher | undefined;
  if (watchPath !== undefined && gw.serving.config.server.watchConfig) {
    watchPath = resolve(watchPath);
    let debounce: NodeJS.Timeout | undefined;
    const file = basename(watchPath);
    // Watch the folder, not the file: editors and config tools save by writing a new file and
    // renaming it over the old one, which leaves a watch on the old inode deaf. Editors also write
    // in several steps; wait for the writes to settle before reading.
    watcher = watch(dirname(watchPath), (_event, changed) => {
      if (changed !== null && changed !== file) return;
      clearTimeout(debounce);
      debounce = setTimeout(() => reload('file change'), 250);
    });
  }

  const shutdown = (signal: string) => {
    log.info({ signal }, 'shutting down: draining in-flight requests');
    watcher?.close();
    gw.close().then(
      () => {
        log.info('shut down cleanly');
        flushAndExit(log, 0);
      },
      (e: unknown) => {
        log.error({ err: e }, 'shutdown failed');
        flushAndExit(log, 1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
