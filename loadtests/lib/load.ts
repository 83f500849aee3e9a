/**
 * One bounded autocannon run (programmatic API). autocannon ships no types; the small part used
 * here is declared below. A run ends at its duration, at maxRequests, or at a watchdog
 * (duration + 15 s) that stops it, whichever comes first.
 *
 * autocannon's own histogram keeps whole milliseconds, too coarse for sub-millisecond answers at one
 * connection, so p50/p99 are computed here from autocannon's per-response timings (its 'response'
 * event, float ms); its histogram percentiles are kept alongside.
 */
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';

interface AutocannonOptions {
  url: string;
  method: 'POST';
  headers: Record<string, string>;
  body: string;
  connections: number;
  pipelining: number;
  duration: number;
  maxOverallRequests: number;
  timeout: number;
}

interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  resets: number;
  statusCodeStats: Record<string, { count: number }>;
  latency: { p50: number; p99: number; average: number; max: number; totalCount: number };
  requests: { average: number; total: number; sent: number };
}

interface AutocannonInstance extends EventEmitter {
  stop(): void;
}

type Autocannon = (opts: AutocannonOptions, cb: (err: Error | null, result: AutocannonResult) => void) => AutocannonInstance;

const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

export interface LoadSpec {
  readonly url: string;
  readonly body: string;
  /** Sent with every request of the run, besides content-type (e.g. (f)'s authorization). */
  readonly headers?: Readonly<Record<string, string>>;
  readonly connections: number;
  readonly durationS: number;
  readonly maxRequests: number;
}

export interface LoadResult {
  readonly completed: number;
  readonly wallS: number;
  readonly rps: number;
  /** From autocannon's per-response timings (sub-millisecond). */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** autocannon's histogram percentiles (whole ms). */
  readonly histogramP50Ms: number;
  readonly histogramP99Ms: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly statusCodes: Record<string, number>;
}

/** Nearest-rank percentile of ascending values. */
function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const cap = Math.max(spec.maxRequests, spec.connections) + spec.connections;
    const times = new Float64Array(cap);
    let count = 0;
    const instance = autocannon(
      {
        url: spec.url,
        method: 'POST',
        headers: { 'content-type': 'application/json', ...spec.headers },
        body: spec.body,
        connections: spec.connections,
        pipelining: 1,
        duration: spec.durationS,
        // Not below `connections` (autocannon refuses it).
        maxOverallRequests: Math.max(spec.maxRequests, spec.connections),
        timeout: 10,
      },
      (err, r) => {
        clearTimeout(watchdog);
        if (settled) return;
        settled = true;
        if (err !== null || r === undefined) return reject(err ?? new Error('autocannon returned no result'));
        const completed = r.requests.total;
        const sorted = times.subarray(0, count).sort();
        resolve({
          completed,
          wallS: r.duration,
          rps: r.duration > 0 ? completed / r.duration : 0,
          p50Ms: percentile(sorted, 0.5),
          p99Ms: percentile(sorted, 0.99),
          histogramP50Ms: r.latency.p50,
          histogramP99Ms: r.latency.p99,
          non2xx: r.non2xx,
          errors: r.errors,
          timeouts: r.timeouts,
          statusCodes: Object.fromEntries(Object.entries(r.statusCodeStats).map(([code, s]) => [code, s.count])),
        });
      },
    );
    instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => {
      if (count < cap) times[count++] = ms;
    });
    const watchdog = setTimeout(() => {
      // stop() makes autocannon finish and call back with what it has; if even that hangs, give up.
      instance.stop();
      setTimeout(() => {
        if (settled) return;
        settled = true;
        reject(new Error(`autocannon did not finish within ${spec.durationS + 20} s`));
      }, 5000).unref();
    }, (spec.durationS + 15) * 1000);
  });
}
