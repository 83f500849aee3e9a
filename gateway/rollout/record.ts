/**
 * A rollout as the shared store keeps it (scope `rollout`, one record per model, compare-and-set on
 * its revision), and the routes each of its states stands for. Pure: the controller and the admin
 * API (rollouts.ts) read a record, compute the next one here, and write it with the revision they
 * read, so two replicas (or a controller and a person) never both move one rollout.
 *
 * The weights a rollout ever sets are its steps' and 0: the canary arm sits next to stable's in the
 * routes, so as it grows only the boundary between them moves (policies/traffic-split.ts): subjects
 * only ever move from stable to the canary, never back, until an abort gives the canary 0.
 */
import type { RolloutConfig, TrafficConfig } from '../config.js';
import type { CriterionResult } from './criteria.js';

export const ROLLOUT_SCOPE = 'rollout';
/** Decisions kept in the record (the audit log keeps every one). */
export const DECISIONS_KEPT = 100;

export type RolloutState = 'running' | 'paused' | 'promoted' | 'aborted';
export type RolloutAction = 'start' | 'advance' | 'pause' | 'resume' | 'promote' | 'abort';

export interface RolloutDecision {
  /** ms since the epoch. */
  readonly at: number;
  readonly action: RolloutAction;
  /** Who: a caller's subject, or `breakwater` (the controller, or the configuration). */
  readonly by: string;
  readonly reason: string;
  /** The step index after the decision, and the canary's weight before and after it. */
  readonly step: number;
  readonly weightBefore: number;
  readonly weightAfter: number;
  /** Every criterion's figures when the controller decided. */
  readonly evidence?: readonly CriterionResult[];
  /** The canary was also stopped through the kill switch. */
  readonly killed?: boolean;
}

export interface RolloutRecord {
  readonly format: 1;
  /** Unique per rollout: its figures' keys start with it. */
  readonly id: string;
  readonly model: string;
  readonly canary: string;
  readonly stable: string;
  readonly spec: RolloutConfig;
  /** Rules and shadow of the routes in force when it started: kept beside the rollout's own arms. */
  readonly base: { readonly rules: TrafficConfig['rules']; readonly shadow?: TrafficConfig['shadow'] };
  /** Where it came from; a rollout of the configuration file carries its SHA-256, started once. */
  readonly source: 'admin' | 'config';
  readonly specSha256: string;
  readonly state: RolloutState;
  readonly step: number;
  /** The canary's weight in force (the step's, 0 after an abort, 100 once promoted). */
  readonly weight: number;
  /** When the current step started (ms since the epoch); a resume starts it again. */
  readonly stepStartedAt: number;
  readonly startedAt: number;
  readonly startedBy: string;
  /** Why it is paused, or why it ended. */
  readonly note?: string;
  readonly endedAt?: number;
  readonly decisions: readonly RolloutDecision[];
}

/** A stored value as a record; undefined for anything else. */
export function asRolloutRecord(v: unknown): RolloutRecord | undefined {
  const r = v as Partial<RolloutRecord> | null;
  if (r === null || typeof r !== 'object' || r.format !== 1 || typeof r.id !== 'string' || typeof r.canary !== 'string' || typeof r.stable !== 'string') return undefined;
  if (!Array.isArray(r.decisions) || typeof r.step !== 'number' || typeof r.weight !== 'number' || r.spec === undefined) return undefined;
  return r as RolloutRecord;
}

export function isActive(r: RolloutRecord): boolean {
  return r.state === 'running' || r.state === 'paused';
}

/** The routes a record stands for: stable and canary side by side, the base's rules and shadow kept. */
export function routesOf(r: RolloutRecord): TrafficConfig {
  const promoted = r.state === 'promoted';
  return {
    routes: [
      { version: r.stable, weight: 100 - r.weight, name: promoted ? 'previous' : 'stable' },
      { version: r.canary, weight: r.weight, name: promoted ? 'promoted' : 'canary' },
    ],
    rules: r.base.rules,
    ...(r.base.shadow === undefined ? {} : { shadow: r.base.shadow }),
  };
}

/** Whether live routes are the ones a record stands for (weights of its two arms). */
export function routesMatch(r: RolloutRecord, live: TrafficConfig | null): boolean {
  if (live === null) return false;
  const want = routesOf(r).routes;
  return live.routes.length === want.length && want.every((w, i) => live.routes[i].version === w.version && live.routes[i].weight === w.weight);
}

function decided(r: RolloutRecord, d: RolloutDecision, next: Partial<RolloutRecord>): RolloutRecord {
  return { ...r, ...next, decisions: [...r.decisions, d].slice(-DECISIONS_KEPT) };
}

export function started(init: Omit<RolloutRecord, 'format' | 'state' | 'step' | 'weight' | 'stepStartedAt' | 'decisions'>, reason: string): RolloutRecord {
  const weight = init.spec.steps[0].weight;
  const at = init.startedAt;
  return {
    format: 1,
    ...init,
    state: 'running',
    step: 0,
    weight,
    stepStartedAt: at,
    decisions: [{ at, action: 'start', by: init.startedBy, reason, step: 0, weightBefore: 0, weightAfter: weight }],
  };
}

export function advanced(r: RolloutRecord, at: number, evidence: readonly CriterionResult[]): RolloutRecord {
  const step = r.step + 1;
  const weight = r.spec.steps[step].weight;
  return decided(r, { at, action: 'advance', by: 'breakwater', reason: `step ${r.step + 1} of ${r.spec.steps.length} passed every criterion`, step, weightBefore: r.weight, weightAfter: weight, evidence }, { step, weight, stepStartedAt: at });
}

export function promoted(r: RolloutRecord, at: number, by: string, reason: string, evidence?: readonly CriterionResult[]): RolloutRecord {
  const step = r.spec.steps.length - 1;
  return decided(r, { at, action: 'promote', by, reason, step, weightBefore: r.weight, weightAfter: 100, ...(evidence === undefined ? {} : { evidence }) }, { state: 'promoted', step, weight: 100, endedAt: at, note: reason });
}

export function aborted(r: RolloutRecord, at: number, by: string, reason: string, evidence?: readonly CriterionResult[], killed = false): RolloutRecord {
  return decided(r, { at, action: 'abort', by, reason, step: r.step, weightBefore: r.weight, weightAfter: 0, ...(evidence === undefined ? {} : { evidence }), ...(killed ? { killed } : {}) }, { state: 'aborted', weight: 0, endedAt: at, note: reason });
}

export function paused(r: RolloutRecord, at: number, by: string, reason: string, evidence?: readonly CriterionResult[]): RolloutRecord {
  return decided(r, { at, action: 'pause', by, reason, step: r.step, weightBefore: r.weight, weightAfter: r.weight, ...(evidence === undefined ? {} : { evidence }) }, { state: 'paused', note: reason });
}

/** A resumed step starts again: its minimum duration, and its figures are judged afresh from the same key. */
export function resumed(r: RolloutRecord, at: number, by: string, reason: string): RolloutRecord {
  const { note: _n, ...rest } = r;
  return decided(rest as RolloutRecord, { at, action: 'resume', by, reason, step: r.step, weightBefore: r.weight, weightAfter: r.weight }, { state: 'running', stepStartedAt: at });
}
