/**
 * Guard failures in the log: at most once a minute per key (a model and guard, a store call), so a
 * broken profile or a store outage is one line a minute, not one per request. The guards count
 * every failure (guard-events.ts); this is only what a person reads.
 */
import type { Logger } from 'pino';

export const GUARD_LOG_EVERY_MS = 60_000;

/** A guard error's code (or its class name): never its message, which may quote a client's value. */
export function errorCode(e: unknown): unknown {
  return (e as { code?: unknown }).code ?? (e as Error).name;
}

/** A warn function that writes a key's line at most once every GUARD_LOG_EVERY_MS. */
export function guardWarnings(log: Logger, now: () => number = Date.now): (key: string, fields: Record<string, unknown>, message: string) => void {
  const last = new Map<string, number>();
  return (key, fields, message) => {
    const t = now();
    if ((last.get(key) ?? -Infinity) + GUARD_LOG_EVERY_MS > t) return;
    last.set(key, t);
    log.warn(fields, message);
  };
}
