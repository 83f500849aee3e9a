/**
 * One cell of the benchmark: a target at a connection count. A warm-up run (discarded), then the
 * measured run bracketed by CPU samples of the process under test, its backend (if any), its Redis
 * (if any, (f)) and the load generator itself.
 */
import { cpuDelta, machineBusyMs, sampleCpu, sampleMachine, type CpuSample } from './cpu.js';
import { runLoad, type LoadResult } from './load.js';
import { scriptCalls } from './redis.js';
import type { Target, TargetId } from './targets.js';

/** The model every request goes to (its admin view is at /admin/models/<model>). */
export const INFER_MODEL = 'iris';
export const INFER_PATH = `/v2/models/${INFER_MODEL}/infer`;
export const INFER_BODY = JSON.stringify({
  id: 'bench',
  inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }],
});

export interface CellOptions {
  readonly warmupS: number;
  readonly durationS: number;
  readonly maxRequests: number;
}

export interface Cell extends LoadResult {
  readonly target: TargetId;
  readonly connections: number;
  /** CPU ms per completed request of the process the load hits. */
  readonly frontCpuMsPerReq: number;
  /** Cores the front process used on average during the window (CPU time / wall time). */
  readonly frontCores: number;
  readonly backendCpuMsPerReq?: number;
  readonly backendCores?: number;
  /** The Redis server's CPU per completed request and cores, for a target with one ((f)). */
  readonly redisCpuMsPerReq?: number;
  readonly redisCores?: number;
  /** Scripts (EVALSHA/EVAL) Redis ran per completed request: 1 when every request was charged there once. */
  readonly redisScriptsPerReq?: number;
  /** front + backend + Redis. */
  readonly totalCpuMsPerReq: number;
  /** The load generator's (this process's) CPU per request. */
  readonly loadgenCpuMsPerReq: number;
  /**
   * Cores that other programs kept busy during the window: the machine's busy time minus that of the
   * front, the backend, Redis and the load generator, over wall time. High values mean a noisy measurement.
   */
  readonly otherCores?: number;
  readonly cpuSource: string;
}

/** Untimed load so that every process has its JIT warm before the first measured round. */
export async function prime(t: Target, seconds: number, maxRequests: number): Promise<void> {
  if (seconds <= 0) return;
  await runLoad({ url: `${t.front.url}${INFER_PATH}`, body: INFER_BODY, headers: t.headers, connections: 32, durationS: seconds, maxRequests });
}

export async function measureCell(t: Target, connections: number, o: CellOptions): Promise<Cell> {
  const url = `${t.front.url}${INFER_PATH}`;
  if (o.warmupS > 0) {
    await runLoad({ url, body: INFER_BODY, headers: t.headers, connections, durationS: o.warmupS, maxRequests: o.maxRequests });
  }
  // Read before the CPU samples start and after they end: the INFO connection is not in the window.
  const scripts0 = t.redis && (await scriptCalls(t.redis.port));
  const front0 = sampleCpu(t.front.pid);
  const back0: CpuSample | undefined = t.backend && sampleCpu(t.backend.pid);
  const redis0: CpuSample | undefined = t.redis && sampleCpu(t.redis.pid);
  const machine0 = sampleMachine();
  const self0 = process.cpuUsage();
  const r = await runLoad({ url, body: INFER_BODY, headers: t.headers, connections, durationS: o.durationS, maxRequests: o.maxRequests });
  const self = process.cpuUsage(self0);
  const machineMs = machineBusyMs(machine0, sampleMachine());
  const front = cpuDelta(front0, sampleCpu(t.front.pid));
  const back = t.backend && back0 ? cpuDelta(back0, sampleCpu(t.backend.pid)) : undefined;
  const redis = t.redis && redis0 ? cpuDelta(redis0, sampleCpu(t.redis.pid)) : undefined;
  const scripts = t.redis && scripts0 !== undefined ? (await scriptCalls(t.redis.port)) - scripts0 : undefined;

  const n = Math.max(r.completed, 1);
  const wallMs = r.wallS * 1000;
  const frontPer = front.ms / n;
  const backPer = back ? back.ms / n : undefined;
  const redisPer = redis ? redis.ms / n : undefined;
  const selfMs = (self.user + self.system) / 1000;
  const otherMs = machineMs === undefined ? undefined : machineMs - front.ms - (back?.ms ?? 0) - (redis?.ms ?? 0) - selfMs;
  return {
    target: t.id,
    connections,
    completed: r.completed,
    wallS: r.wallS,
    rps: r.rps,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    histogramP50Ms: r.histogramP50Ms,
    histogramP99Ms: r.histogramP99Ms,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    statusCodes: r.statusCodes,
    frontCpuMsPerReq: frontPer,
    frontCores: wallMs > 0 ? front.ms / wallMs : 0,
    ...(back && backPer !== undefined ? { backendCpuMsPerReq: backPer, backendCores: wallMs > 0 ? back.ms / wallMs : 0 } : {}),
    ...(redis && redisPer !== undefined ? { redisCpuMsPerReq: redisPer, redisCores: wallMs > 0 ? redis.ms / wallMs : 0 } : {}),
    ...(scripts !== undefined ? { redisScriptsPerReq: scripts / n } : {}),
    totalCpuMsPerReq: frontPer + (backPer ?? 0) + (redisPer ?? 0),
    loadgenCpuMsPerReq: selfMs / n,
    ...(otherMs !== undefined && wallMs > 0 ? { otherCores: Math.max(0, otherMs / wallMs) } : {}),
    cpuSource: [front, back, redis].filter((d) => d !== undefined).map((d) => d.source).join('/'),
  };
}
