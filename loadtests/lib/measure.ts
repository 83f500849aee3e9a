/**
 * One cell of the benchmark: a target at a connection count. A warm-up run (discarded), then the
 * measured run bracketed by CPU samples of the process under test, its backend (if any) and the
 * load generator itself.
 */
import { cpuDelta, machineBusyMs, sampleCpu, sampleMachine, type CpuSample } from './cpu.js';
import { runLoad, type LoadResult } from './load.js';
import type { Target, TargetId } from './targets.js';

export const INFER_PATH = '/v2/models/iris/infer';
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
  /** front + backend. */
  readonly totalCpuMsPerReq: number;
  /** The load generator's (this process's) CPU per request. */
  readonly loadgenCpuMsPerReq: number;
  /**
   * Cores that other programs kept busy during the window: the machine's busy time minus that of the
   * front, the backend and the load generator, over wall time. High values mean a noisy measurement.
   */
  readonly otherCores?: number;
  readonly cpuSource: string;
}

/** Untimed load so that every process has its JIT warm before the first measured round. */
export async function prime(t: Target, seconds: number, maxRequests: number): Promise<void> {
  if (seconds <= 0) return;
  await runLoad({ url: `${t.front.url}${INFER_PATH}`, body: INFER_BODY, connections: 32, durationS: seconds, maxRequests });
}

export async function measureCell(t: Target, connections: number, o: CellOptions): Promise<Cell> {
  const url = `${t.front.url}${INFER_PATH}`;
  if (o.warmupS > 0) {
    await runLoad({ url, body: INFER_BODY, connections, durationS: o.warmupS, maxRequests: o.maxRequests });
  }
  const front0 = sampleCpu(t.front.pid);
  const back0: CpuSample | undefined = t.backend && sampleCpu(t.backend.pid);
  const machine0 = sampleMachine();
  const self0 = process.cpuUsage();
  const r = await runLoad({ url, body: INFER_BODY, connections, durationS: o.durationS, maxRequests: o.maxRequests });
  const self = process.cpuUsage(self0);
  const machineMs = machineBusyMs(machine0, sampleMachine());
  const front = cpuDelta(front0, sampleCpu(t.front.pid));
  const back = t.backend && back0 ? cpuDelta(back0, sampleCpu(t.backend.pid)) : undefined;

  const n = Math.max(r.completed, 1);
  const wallMs = r.wallS * 1000;
  const frontPer = front.ms / n;
  const backPer = back ? back.ms / n : undefined;
  const selfMs = (self.user + self.system) / 1000;
  const otherMs = machineMs === undefined ? undefined : machineMs - front.ms - (back?.ms ?? 0) - selfMs;
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
    totalCpuMsPerReq: frontPer + (backPer ?? 0),
    loadgenCpuMsPerReq: selfMs / n,
    ...(otherMs !== undefined && wallMs > 0 ? { otherCores: Math.max(0, otherMs / wallMs) } : {}),
    cpuSource: back ? `${front.source}/${back.source}` : front.source,
  };
}
