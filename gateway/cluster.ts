/**
 * Several worker processes sharing one listening socket (node:cluster), like nginx's and Kong's
 * worker processes or Envoy's worker threads: one event loop saturates one core, and an in-process
 * model runs on its event loop, so a single process can use only one core however many there are.
 *
 * The primary serves nothing itself. It forwards SIGHUP to every worker (each reloads and validates
 * on its own, from the same file), and on SIGTERM/SIGINT asks every worker to drain, then exits once
 * they have. A worker that dies unexpectedly is replaced, with back-off so a crash loop cannot spin.
 *
 * Without Redis the primary also holds the one StateStore the workers share (through the state
 * relay, gateway/state/relay-host.ts): otherwise each worker would keep its own, an admin change
 * would reach one worker only and every limit would be multiplied by the number of workers.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { StoreSettings } from './config.js';
import { flushAndExit } from './logger.js';
import { MemoryStore } from './state/memory-store.js';
import { RelayHost } from './state/relay-host.js';
import { workerChannel } from './state/relay-ipc.js';

const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 5_000;
/** A worker that lived this long resets the back-off: its death was not a start-up crash loop. */
const HEALTHY_UPTIME_MS = 30_000;

export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

export interface PrimaryOptions {
  readonly workers: number;
  /** Time workers get to drain on shutdown; past it (plus a margin) they are killed. */
  readonly shutdownGraceMs: number;
  /** Without `redisUrl`, the workers' state lives here and they reach it through the relay. */
  readonly state: StoreSettings;
  readonly log: Logger;
}

export function runPrimary({ workers, shutdownGraceMs, state, log }: PrimaryOptions): void {
  let stopping = false;
  let restartDelay = RESTART_MIN_MS;
  const startedAt = new WeakMap<Worker, number>();
  const relay = state.redisUrl === undefined ? new RelayHost(new MemoryStore(), log) : undefined;
  if (relay !== undefined) {
    log.info('state is shared between workers through the primary (per host only; use state.redisUrl to share across hosts)');
  }

  const fork = (): void => {
    const w = cluster.fork();
    startedAt.set(w, Date.now());
    // Before the worker runs any code, so its first request finds the relay listening.
    relay?.serve(workerChannel(w));
  };

  let everListened = false;
  cluster.on('listening', () => {
    everListened = true;
  });

  cluster.on('exit', (worker, code, signal) => {
    if (!stopping && !everListened) {
      // Not one worker ever served (port taken, model failed to load): a start-up failure, not a crash.
      log.fatal({ workerPid: worker.process.pid, code, signal }, 'a worker failed to start; stopping');
      stopping = true;
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
      flushAndExit(log, 1);
    }
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        log.info('all workers stopped');
        flushAndExit(log, 0);
      }
      return;
    }
    const lived = Date.now() - (startedAt.get(worker) ?? Date.now());
    if (lived > HEALTHY_UPTIME_MS) restartDelay = RESTART_MIN_MS;
    log.error({ workerPid: worker.process.pid, code, signal, restartInMs: restartDelay }, 'worker exited unexpectedly; replacing it');
    setTimeout(fork, restartDelay).unref();
    restartDelay = Math.min(restartDelay * 2, RESTART_MAX_MS);
  });

  process.on('SIGHUP', () => {
    log.info('SIGHUP: asking every worker to reload');
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP');
  });

  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: asking every worker to drain');
    const live = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    if (live.length === 0) process.exit(0);
    for (const w of live) w.process.kill('SIGTERM');
    // Workers bound their own drain by the grace time; this only catches a worker that hangs.
    setTimeout(() => {
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
      log.error('workers did not stop in time; killed them');
      flushAndExit(log, 1);
    }, shutdownGraceMs + 2_000).unref();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));

  for (let i = 0; i < workers; i++) fork();
  log.info({ workers }, 'started worker processes');
}
