/**
 * One phase of the benchmark, start to finish: start its children, smoke-test and prime every
 * target, load them in rounds (targets in order, every other round reversed, each at every connection
 * count), then stop every child of the phase and check that none of their processes is left, so that
 * the next phase has the cores to itself.
 */
import { measureCell, prime, type Cell } from './measure.js';
import { startPhase, type PhaseSpec } from './phases.js';
import { stopChildren, type Child } from './processes.js';
import type { Settings } from './settings.js';
import { smoke, type SmokeReference } from './smoke.js';
import { workerCount, type Target } from './targets.js';

export interface PhaseProcess {
  readonly name: string;
  readonly pid: number;
  readonly url: string;
}

export interface PhaseResult {
  readonly spec: PhaseSpec;
  /** Worker processes per breakwater child ("auto" resolved on this machine). */
  readonly workersPerChild: number;
  readonly labels: Partial<Record<Target['id'], string>>;
  readonly processes: readonly PhaseProcess[];
  readonly cells: readonly Cell[];
  readonly smoke: SmokeReference | undefined;
}

function cellLine(round: number, t: Target, c: Cell): string {
  const back = c.backendCpuMsPerReq === undefined ? '' : ` backend ${(c.backendCpuMsPerReq * 1000).toFixed(1)} µs/req`;
  const redis = c.redisCpuMsPerReq === undefined ? ''
    : ` Redis ${(c.redisCpuMsPerReq * 1000).toFixed(1)} µs/req (${(c.redisCores ?? 0).toFixed(2)} cores, ${(c.redisScriptsPerReq ?? NaN).toFixed(2)} scripts/req)`;
  const bad = c.non2xx + c.errors + c.timeouts > 0
    ? `  !!! ${c.non2xx} non-2xx, ${c.errors} errors, ${c.timeouts} timeouts ${JSON.stringify(c.statusCodes)}` : '';
  return `round ${round} ${t.label} @${c.connections}: ${c.rps.toFixed(0)} req/s p50 ${c.p50Ms.toFixed(2)} ms p99 ${c.p99Ms.toFixed(2)} ms ` +
    `CPU ${(c.frontCpuMsPerReq * 1000).toFixed(1)} µs/req (${c.frontCores.toFixed(2)} cores)${back}${redis} [${c.cpuSource}]` +
    `${c.otherCores === undefined ? '' : ` other ${c.otherCores.toFixed(2)} cores`}${bad}`;
}

export async function runPhase(
  spec: PhaseSpec, s: Settings, workDir: string, connections: readonly number[], reference?: SmokeReference,
): Promise<PhaseResult> {
  const workers = workerCount(spec.workers);
  console.log(`\n=== ${spec.title} (server.workers: ${JSON.stringify(spec.workers)} = ${workers} process(es) per breakwater child) ===`);
  const started: Child[] = [];
  let failed = false;
  try {
    const targets = await startPhase(spec, { workDir, logLevel: s.logLevel, readyTimeoutMs: s.readyTimeoutMs, auditMaxLossMs: s.auditMaxLossMs }, started);
    for (const c of started) console.log(`${c.name}: pid ${c.pid} at ${c.url}`);
    const ref = await smoke(targets, reference);
    for (const t of targets) await prime(t, s.primeS, s.maxRequests);

    const cells: Cell[] = [];
    for (let round = 1; round <= s.rounds; round++) {
      // Every other round in reverse order (ABBA): a pair of adjacent targets compared with each
      // other ((g0)/(g), (k0)/(k)) is measured first and second equally often, so a steady drift of
      // the machine's speed during the run does not favour one of them.
      for (const t of round % 2 === 1 ? targets : [...targets].reverse()) {
        for (const n of connections) {
          const c = await measureCell(t, n, s);
          cells.push(c);
          console.log(cellLine(round, t, c));
        }
      }
    }
    return {
      spec,
      workersPerChild: workers,
      labels: Object.fromEntries(targets.map((t) => [t.id, t.label])),
      processes: started.map((c) => ({ name: c.name, pid: c.pid, url: c.url })),
      cells,
      smoke: ref,
    };
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    try {
      await stopChildren(started);
      console.log(`${spec.title}: all ${started.length} children and their workers stopped`);
    } catch (e) {
      // Do not hide the error that brought us here behind this one.
      if (!failed) throw e;
      console.error(`while stopping ${spec.title}: ${(e as Error).message}`);
    }
  }
}
