/**
 * The input guards of the payload phase (issue 10): after the request has been parsed and checked
 * against the model, before the backend is called. Per model (`models.<m>.guards`), each guard has
 * a mode:
 *   reject  → 422 INPUT_REJECTED naming the guard, never its score or threshold;
 *   flag    → served; `x-guard` names the guards that fired (contract, ood, extraction; the
 *             squeezing guard, which needs the answer, adds itself after the backend: squeeze-guard.ts);
 *   route   → served by `guards.routeTo` with x-route-reason `guard:<name>`;
 *   off     → not run.
 * A batch is judged by its worst row. Reject wins over route, route over flag.
 *
 * The extraction guard judges the caller, not the input: the monitor (extraction-monitor.ts) sees
 * the rows of every request and answers, from memory, whether the caller is flagged; its responses
 * are flag, throttle (a lower rate for that caller, across replicas), coarsen (the answer rounded or
 * reduced to a label, applied by the infer route from the `coarsen` annotation) and deny
 * (403 EXTRACTION_SUSPECTED).
 *
 * A guard that throws never fails the request: it is counted (`error`) and logged by code, unless
 * its mode is reject and `guards.failClosed` is set (503 GUARD_UNAVAILABLE).
 */
import type { Logger } from 'pino';
import type { GuardName, GuardsConfig } from '../../gateway/config.js';
import { GatewayError } from '../../gateway/errors.js';
import { CONTINUE, type Decision, type Policy, type PolicyContext } from '../policy.js';
import { checkContract } from './contract.js';
import type { GuardEvents, GuardOutcome } from './guard-events.js';
import { errorCode, guardWarnings } from './guard-log.js';
import { featureRows, type RowValues } from './features.js';
import { oodScore } from './ood.js';
import type { Profile } from './profile.js';

/** How an answer is coarsened for a caller flagged by the extraction guard (infer route). */
export interface Coarsen {
  readonly decimals: number;
  readonly labelOnly: boolean;
}

declare module '../policy.js' {
  interface Annotations {
    /** Guards that fired on this request, in the order of `x-guard`. */
    guardsFired?: readonly GuardName[];
    /** Set for a caller flagged by the extraction guard in coarsen mode. */
    coarsen?: Coarsen;
  }
}

export const GUARD_HEADER = 'x-guard';
export const ROUTE_REASON_PREFIX = 'guard:';

/** What the extraction guard needs of its monitor (extraction-monitor.ts): memory only, on the request path. */
export interface ExtractionWatch {
  /**
   * Records a request's rows for `subject` and answers whether the subject is flagged now. `rows`
   * is undefined for a caller opted out of tracking: only the count is recorded.
   */
  observe(model: string, version: string, profile: Profile, subject: string, rows: readonly RowValues[] | undefined, count: number): boolean;
  /** Charges a flagged subject's rows against its lower rate (throttle); true when there was room. */
  throttle(model: string, subject: string, rows: number, perMinute: number): Promise<{ readonly allowed: boolean; readonly retryAfterS: number }>;
}

export interface InputGuardsDeps {
  readonly events: GuardEvents;
  readonly log: Logger;
  /** Absent: no extraction guard can run (the gateway warns at start if one is configured). */
  readonly extraction?: ExtractionWatch;
  /** Whether this request's payload may be kept (gateway/retention.ts, from the chain's outcome bits). */
  readonly retains: (optOuts: number) => boolean;
}

type Mode = 'reject' | 'flag' | 'route' | 'off';

const modeOf = (g: GuardsConfig, name: 'contract' | 'ood'): Mode => (g[name]?.mode ?? 'off') as Mode;

export function createInputGuardsPolicy(deps: InputGuardsDeps): Policy {
  const { events, log, extraction } = deps;
  const warn = guardWarnings(log);
  const logFailure = (model: string, guard: GuardName, e: unknown): void =>
    warn(`${model}\0${guard}`, { model, guard, code: errorCode(e) }, 'an input guard failed; the request was judged without it');

  return {
    name: 'input-guards',
    phase: 'payload',
    evaluate(ctx: PolicyContext, routed): Decision | Promise<Decision> {
      const g = ctx.served?.config.guards;
      if (g === undefined) return CONTINUE;
      const contractMode = modeOf(g, 'contract');
      const oodMode = modeOf(g, 'ood');
      const extractionMode = g.extraction?.mode ?? 'off';
      if (contractMode === 'off' && oodMode === 'off' && extractionMode === 'off') return CONTINUE;
      const version = ctx.version;
      const request = ctx.request;
      if (version === undefined || request === undefined) return CONTINUE;
      const model = ctx.model;
      const profile = version.artifacts.get('profile') as Profile | undefined;

      let rows: RowValues[] | undefined;
      let rowsError: unknown;
      try {
        if (profile === undefined) throw new Error('no reference profile is loaded for this version');
        rows = featureRows(profile, request);
      } catch (e) {
        rowsError = e;
      }

      const fired: GuardName[] = [];
      let reject: GuardName | undefined;
      let route: GuardName | undefined;
      let failedClosed = false;
      const judge = (name: 'contract' | 'ood', mode: Mode, hit: (rs: RowValues[], p: Profile) => boolean): void => {
        if (mode === 'off') return;
        let outcome: GuardOutcome;
        try {
          if (rows === undefined || profile === undefined) throw rowsError;
          if (!hit(rows, profile)) {
            outcome = 'pass';
          } else {
            outcome = mode;
            if (mode === 'reject') reject ??= name;
            else {
              fired.push(name);
              if (mode === 'route') route ??= name;
            }
          }
        } catch (e) {
          outcome = 'error';
          logFailure(model, name, e);
          if (mode === 'reject' && g.failClosed) failedClosed = true;
        }
        events.outcome(model, version.version, name, outcome);
      };
      judge('contract', contractMode, (rs, p) => {
        const tolerance = g.contract?.tolerance ?? 0.05;
        for (let i = 0; i < rs.length; i++) if (checkContract(p, rs[i], tolerance) !== undefined) return true;
        return false;
      });
      judge('ood', oodMode, (rs, p) => {
        const threshold = p.calibration.ood;
        for (let i = 0; i < rs.length; i++) if (oodScore(p.ood, rs[i]) > threshold) return true;
        return false;
      });
      if (failedClosed) return { kind: 'deny', error: new GatewayError('GUARD_UNAVAILABLE') };
      if (reject !== undefined) return { kind: 'deny', error: new GatewayError('INPUT_REJECTED', `refused by the ${reject} guard`) };

      // The caller's pattern of queries (rows, not requests), recorded for every request that got here.
      let coarsen: Coarsen | undefined;
      let throttled: Promise<Decision> | undefined;
      if (extractionMode !== 'off' && extraction !== undefined && ctx.principal !== undefined && profile !== undefined) {
        const subject = ctx.principal.subject;
        let outcome: GuardOutcome = 'pass';
        try {
          const kept = deps.retains(routed?.optOuts ?? 0) ? rows : undefined;
          if (extraction.observe(model, version.version, profile, subject, kept, ctx.rows)) {
            outcome = extractionMode;
            fired.push('extraction');
            if (extractionMode === 'deny') {
              events.outcome(model, version.version, 'extraction', 'deny');
              return { kind: 'deny', error: new GatewayError('EXTRACTION_SUSPECTED') };
            }
            if (extractionMode === 'coarsen') {
              const c = g.extraction?.coarsen;
              coarsen = { decimals: c?.decimals ?? 1, labelOnly: c?.labelOnly ?? false };
            }
            if (extractionMode === 'throttle') {
              const perMinute = g.extraction?.throttleRowsPerMinute ?? 30;
              throttled = extraction.throttle(model, subject, ctx.rows, perMinute).then(
                (r): Decision => (r.allowed ? CONTINUE : { kind: 'deny', error: new GatewayError('RATE_LIMITED', 'this caller\'s rate is lowered', { headers: { 'retry-after': String(r.retryAfterS) } }) }),
                (e: unknown): Decision => {
                  logFailure(model, 'extraction', e);
                  return CONTINUE;
                },
              );
            }
          }
        } catch (e) {
          outcome = 'error';
          logFailure(model, 'extraction', e);
        }
        events.outcome(model, version.version, 'extraction', outcome);
      }

      if (fired.length === 0 && throttled === undefined) return CONTINUE;
      // x-guard is written by the infer route from `guardsFired` (the squeezing guard adds to it there).
      const annotations = { guardsFired: fired, ...(coarsen === undefined ? {} : { coarsen }) };
      let decision: Decision;
      if (route !== undefined && g.routeTo !== undefined && g.routeTo !== version.version) {
        decision = { kind: 'route', version: g.routeTo, reason: `${ROUTE_REASON_PREFIX}${route}`, annotations };
      } else {
        decision = { kind: 'continue', annotations };
      }
      if (throttled === undefined) return decision;
      return throttled.then((d) => (d.kind === 'deny' ? d : decision));
    },
  };
}
