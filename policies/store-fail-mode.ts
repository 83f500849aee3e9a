/**
 * What the limits do while the shared store does not answer (`rateLimits.failMode`), said once for
 * the row quotas (rate-limit.ts) and the request limits (request-limit.ts), which share one
 * instance: one outage is one warning every WARN_EVERY_MS and one line when the store answers
 * again, however many limits asked it.
 *
 * `local` limits per replica with the fallback MemoryStore, `closed` refuses (503), `open` lets the
 * request through. Every request so decided is counted in STORE_FAILURES_METRIC.
 */
import { metrics, type Attributes, type Counter } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { RateLimitConfig } from '../gateway/config.js';
import { GatewayError } from '../gateway/errors.js';
import type { StateStore } from '../gateway/state/store.js';
import { METER_NAME } from '../gateway/telemetry/names.js';
import { CONTINUE, type Decision } from './policy.js';

export const STORE_FAILURES_METRIC = 'breakwater.ratelimit.store_failures';
export const FAIL_MODE_ATTR = 'fail_mode';
/** One warning per outage period is enough to page on; per request it would flood the log. */
export const WARN_EVERY_MS = 30_000;

export interface StoreFailMode {
  readonly mode: RateLimitConfig['failMode'];
  /** The shared store. */
  readonly store: StateStore;
  /** Per-replica limits while `store` is unavailable in failMode `local` (a MemoryStore). */
  readonly fallback: StateStore;
  /** Counts a request decided without the store; says whether to go on with the fallback. */
  down(err: unknown): 'fallback' | Decision;
  /** The store answered: ends a degraded period (logged once). */
  answered(): void;
}

export function createStoreFailMode(mode: RateLimitConfig['failMode'], store: StateStore, fallback: StateStore, log: Logger): StoreFailMode {
  const attrs: Attributes = Object.freeze({ [FAIL_MODE_ATTR]: mode });
  const failures: Counter = metrics.getMeter(METER_NAME).createCounter(STORE_FAILURES_METRIC, {
    description: 'Requests decided without the shared quota store (unavailable), by fail mode',
  });
  let degraded = false;
  let lastWarnAt = -Infinity;
  let unreported = 0;
  return {
    mode,
    store,
    fallback,
    down(err: unknown): 'fallback' | Decision {
      failures.add(1, attrs);
      degraded = true;
      unreported++;
      const now = Date.now();
      if (now - lastWarnAt >= WARN_EVERY_MS) {
        lastWarnAt = now;
        log.warn({ err, store: store.kind, failMode: mode, requests: unreported }, 'rate limits: quota store unavailable, applying failMode');
        unreported = 0;
      }
      if (mode === 'local') return 'fallback';
      if (mode === 'open') return CONTINUE;
      return { kind: 'deny', error: new GatewayError('QUOTA_STORE_UNAVAILABLE'), headers: { 'retry-after': '1' } };
    },
    answered(): void {
      if (!degraded) return;
      degraded = false;
      log.info({ store: store.kind, requests: unreported }, 'rate limits: quota store answers again');
      unreported = 0;
    },
  };
}
