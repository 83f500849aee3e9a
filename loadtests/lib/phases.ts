/**
 * The benchmark's two phases: which children each starts and which targets it loads.
 *
 * Phase 1, "one process each": every breakwater child runs `server.workers: 1`, like the bare proxy,
 * so processes are compared like with like (the CPU-per-request check lives here).
 * Phase 2, "one worker per core": B, G and O again, as new processes with `server.workers: "auto"`,
 * so that both deployments compared by the throughput check can use every core (P is not needed).
 * The phases run one after the other, never at the same time: they would compete for the cores.
 */
import type { Child } from './processes.js';
import {
  LABELS, prepareModel, proxyBackend, startBareProxy, startGateway, type ChildOptions, type Target, type TargetId, type Workers,
} from './targets.js';

export type PhaseNumber = 1 | 2;

export interface PhaseSpec {
  readonly phase: PhaseNumber;
  readonly title: string;
  /** `server.workers` of every breakwater child of the phase. */
  readonly workers: Workers;
  /** Load order within a round. */
  readonly targets: readonly TargetId[];
}

export const PHASES: readonly PhaseSpec[] = [
  { phase: 1, title: 'Phase 1: one process each', workers: 1, targets: ['a', 'b', 'c', 'd', 'e'] },
  { phase: 2, title: 'Phase 2: one worker per core', workers: 'auto', targets: ['c*', 'd*'] },
];

const target = (id: TargetId, front: Child, backend?: Child): Target => ({ id, label: LABELS[id], front, ...(backend ? { backend } : {}) });

/**
 * Starts the children of a phase, pushing each onto `started` as soon as it is spawned (so that the
 * caller can stop them all even when a later one fails to start), and returns the phase's targets.
 */
export async function startPhase(spec: PhaseSpec, o: ChildOptions, started: Child[]): Promise<Target[]> {
  const onnx = prepareModel(o.workDir);
  const w = spec.workers;
  if (spec.phase === 1) {
    const B = await startGateway({ name: 'p1-B-backend', workers: w, backend: onnx }, o, started);
    const [P, G, O, E] = await Promise.all([
      startBareProxy('p1-P-bare-proxy', B, o, started),
      startGateway({ name: 'p1-G-gateway-proxy', workers: w, backend: proxyBackend(B) }, o, started),
      startGateway({ name: 'p1-O-gateway-onnx', workers: w, backend: onnx }, o, started),
      startGateway({ name: 'p1-E-gateway-proxy-accesslog', workers: w, accessLog: true, backend: proxyBackend(B) }, o, started),
    ]);
    return [target('a', B), target('b', P, B), target('c', G, B), target('d', O), target('e', E, B)];
  }
  const B = await startGateway({ name: 'p2-B-backend', workers: w, backend: onnx }, o, started);
  const [G, O] = await Promise.all([
    startGateway({ name: 'p2-G-gateway-proxy', workers: w, backend: proxyBackend(B) }, o, started),
    startGateway({ name: 'p2-O-gateway-onnx', workers: w, backend: onnx }, o, started),
  ]);
  return [target('c*', G, B), target('d*', O)];
}
