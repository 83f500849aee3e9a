/**
 * Progressive delivery (docs/rollouts.md): per model, a canary moved along declared steps while its
 * own behaviour holds up against the stable version's, and pulled by itself when it does not.
 *
 * Every replica:
 * - mirrors the rollout records (scope `rollout`, gateway/state/mirrored-scope.ts) into a local
 *   table the request path and the observer read: which version is the canary, the step's counter
 *   key, and the share of the canary's requests to compare with stable;
 * - counts what it serves of the canary and of stable (an observer) and what the comparison copies
 *   find (copies of sampled canary requests sent to stable after the answer, through a ShadowMirror
 *   of its own: bounded, never awaited, off the request path), and adds the counts to the shared
 *   store every `rollout.flushMs` (figures.ts);
 * - tries every `rollout.intervalMs` to hold each running rollout's lease (the store's `acquire`,
 *   one holder, `rollout.leaseMs`): exactly one replica drives a rollout at a time, and another
 *   takes over within a lease when it dies.
 *
 * The replica holding a rollout's lease (controller.ts) judges the criteria on the merged figures
 * and moves the record (compare-and-set on the revision it read, so a person's pause and the
 * controller's advance cannot both land), then the routes (TrafficRoutes.set), then says so
 * (audit log, webhook). A decision is written before it is acted on, and every tick first makes the
 * routes match the record: a controller that dies in between leaves the next one to finish, never
 * to repeat a step.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { InferResponse } from '../../adapters/adapter.js';
import type { ShadowTarget } from '../../policies/policy.js';
import type { Alerts } from '../alerts.js';
import type { AuditLog, AuditReceipt } from '../audit/audit-log.js';
import { ConfigError, parseRollout, type GatewayConfig, type RolloutConfig, type RolloutSettings } from '../config.js';
import type { KillSwitch } from '../control/kill-switch.js';
import type { TrafficRoutes } from '../control/traffic-routes.js';
import type { DriftMonitors } from '../drift/monitor.js';
import { clip, GatewayError } from '../errors.js';
import type { Observer, RequestEnd } from '../observers.js';
import { ShadowMirror, type MirrorCall } from '../shadow.js';
import { MirroredScope, storeUnavailable } from '../state/mirrored-scope.js';
import type { StateStore } from '../state/store.js';
import { percentile } from '../telemetry/arm-figures.js';
import type { RolloutGaugeRow } from '../telemetry/metrics.js';
import { judge, type CriterionResult, type DriftComparison } from './criteria.js';
import { overallStatus } from '../drift/statistics.js';
import { PendingFigures, readFigures, stepKey, type SideFigures, type StepFigures } from './figures.js';
import { pairedClasses } from './labels.js';
import {
  aborted, advanced, asRolloutRecord, isActive, paused, promoted, resumed, routesMatch, routesOf, ROLLOUT_SCOPE, started,
  type RolloutAction, type RolloutDecision, type RolloutRecord,
} from './record.js';
import { rolloutAlertMessage } from './rollout-alert.js';

/** The lease scope: one holder per model. */
export const LEASE_SCOPE = 'rollout-lease';
/** Who the rollout's own changes are by (the audit log's actor, the routes' updatedBy). */
export const ROLLOUT_ACTOR = 'breakwater';
/** Copies to stable in a row that fail before they are suspended for a while (shadow-breaker.ts). */
const SUSPEND_AFTER = 5;

/** What the request path and the observer read of a model under rollout. */
interface Active {
  readonly id: string;
  readonly key: string;
  readonly canary: string;
  readonly stable: string;
  /** Share of the canary's requests copied to stable (0: no comparison). */
  readonly rate: number;
  readonly target: ShadowTarget | undefined;
}

/** A comparison copy as the infer route knows it once the primary call has started. */
export type CompareCall = Omit<MirrorCall, 'target'>;

export interface RolloutsOptions {
  readonly store: StateStore;
  readonly log: Logger;
  readonly config: GatewayConfig;
  readonly routes: TrafficRoutes;
  readonly audit: AuditLog;
  readonly alerts?: Alerts;
  readonly killSwitch?: Pick<KillSwitch, 'kill'>;
  readonly isKilled?: (model: string, version: string) => boolean;
  readonly drift?: Pick<DriftMonitors, 'report' | 'comparable'>;
  /** This replica's name, the lease holder's id. */
  readonly replica: string;
  readonly random?: () => number;
  readonly now?: () => number;
}

/** What an admin change answers: the rollout after it, and where its audit record went. */
export interface RolloutChange {
  readonly rollout: RolloutView;
  readonly audit: AuditReceipt;
}

/** GET /admin/models/{m}/rollout. */
export interface RolloutView {
  readonly model: string;
  readonly id: string;
  readonly revision: number;
  readonly canary: string;
  readonly stable: string;
  readonly state: RolloutRecord['state'];
  readonly note: string | null;
  readonly source: RolloutRecord['source'];
  readonly startedAt: string;
  readonly startedBy: string;
  readonly endedAt: string | null;
  readonly weight: number;
  readonly step: {
    readonly index: number;
    readonly of: number;
    readonly weight: number;
    readonly minDurationMs: number;
    readonly minRequests: number;
    readonly startedAt: string;
    readonly elapsedMs: number;
    readonly requests: number;
  };
  readonly steps: RolloutConfig['steps'];
  readonly criteria: readonly CriterionResult[];
  readonly figures: { readonly step: FiguresView; readonly rollout: FiguresView };
  readonly decisions: readonly (Omit<RolloutDecision, 'at'> & { readonly at: string })[];
  /** Whether this replica holds the rollout's lease (drives it). */
  readonly drivenHere: boolean;
}

interface SideView {
  readonly requests: number;
  readonly reached: number;
  readonly errors: number;
  readonly guarded: number;
  readonly p99Ms: number | null;
}

interface FiguresView {
  readonly canary: SideView;
  readonly stable: SideView;
  readonly compared: { readonly rows: number; readonly disagreed: number; readonly classes: Record<string, { canary: number; stable: number }> };
}

function sideView(f: SideFigures): SideView {
  return { requests: f.requests, reached: f.reached, errors: f.errors, guarded: f.guarded, p99Ms: f.reached === 0 ? null : percentile(f.latency, f.reached, 0.99) };
}

function figuresView(f: StepFigures): FiguresView {
  const classes: Record<string, { canary: number; stable: number }> = {};
  for (const [k, c] of f.compared.classes) classes[k] = { canary: c.canary, stable: c.stable };
  return { canary: sideView(f.canary), stable: sideView(f.stable), compared: { rows: f.compared.rows, disagreed: f.compared.disagreed, classes } };
}

const iso = (ms: number): string => new Date(ms).toISOString();

export function specSha256(spec: unknown): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex');
}

/** The figures keys of every step so far. */
function keysUpTo(r: RolloutRecord): string[] {
  return Array.from({ length: r.step + 1 }, (_, i) => stepKey(r.id, i));
}

export class Rollouts {
  readonly #opts: RolloutsOptions;
  readonly #store: StateStore;
  readonly #log: Logger;
  readonly #settings: RolloutSettings;
  readonly #mirror: MirroredScope<RolloutRecord>;
  readonly #pending: PendingFigures;
  readonly #copies: ShadowMirror;
  readonly #random: () => number;
  readonly #now: () => number;
  #config: GatewayConfig;
  #active: ReadonlyMap<string, Active> = new Map();
  /** Models whose lease this replica held at its last try. */
  readonly #held = new Set<string>();
  /** Per rollout, the controller's looks in a row that found the canary drifting from stable. */
  readonly #driftStreaks = new Map<string, number>();
  #flushTimer: NodeJS.Timeout | undefined;
  #tickTimer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #closed = false;

  private constructor(opts: RolloutsOptions) {
    this.#opts = opts;
    this.#store = opts.store;
    this.#log = opts.log;
    this.#config = opts.config;
    this.#settings = opts.config.rollout;
    this.#random = opts.random ?? Math.random;
    this.#now = opts.now ?? Date.now;
    this.#pending = new PendingFigures(opts.store, opts.log);
    this.#copies = new ShadowMirror({
      log: opts.log,
      isKilled: opts.isKilled,
      onCompared: (model, canary, stable) => this.#compared(model, canary, stable),
    });
    this.#mirror = new MirroredScope<RolloutRecord>(opts.store, {
      scope: ROLLOUT_SCOPE,
      reconcileMs: opts.config.state.reconcileMs,
      log: opts.log,
      parse: (_model, value) => {
        const r = asRolloutRecord(value);
        if (r === undefined) throw new Error('not a rollout record');
        return r;
      },
      onChange: (records) => this.#rebuild(records),
    });
  }

  /** Reads the stored rollouts, starts the configuration's, and the timers. */
  static async start(opts: RolloutsOptions): Promise<Rollouts> {
    const r = new Rollouts(opts);
    await r.#mirror.start();
    await r.#startDeclared();
    r.#flushTimer = setInterval(() => void r.#pending.flush(), r.#settings.flushMs);
    r.#flushTimer.unref();
    r.#tickTimer = setInterval(() => void r.tick(), r.#settings.intervalMs);
    r.#tickTimer.unref();
    return r;
  }

  #rebuild(records: ReadonlyMap<string, RolloutRecord>): void {
    const active = new Map<string, Active>();
    for (const [model, r] of records) {
      if (!isActive(r) || this.#config.models[model] === undefined) continue;
      const d = r.spec.criteria.disagreement;
      const rate = d === undefined || r.weight === 0 ? 0 : Math.min(1, d.budget / (r.weight / 100));
      const target: ShadowTarget | undefined = d === undefined ? undefined : Object.freeze({ version: r.stable, mode: 'after', timeoutMs: d.timeoutMs, maxConcurrent: d.maxConcurrent, suspendAfter: SUSPEND_AFTER });
      active.set(model, Object.freeze({ id: r.id, key: stepKey(r.id, r.step), canary: r.canary, stable: r.stable, rate, target }));
    }
    this.#active = active;
    // Class names are kept per step being counted; older steps' go.
    this.#pending.retain(new Set([...active.values()].map((a) => a.key)));
  }

  // ── the request path ────────────────────────────────────────────────────────────────────────

  /**
   * Whether this request, served by `version`, is to be compared with stable (a canary under
   * rollout, sampled): one map lookup for every other request.
   */
  sampled(model: string, version: string): boolean {
    const a = this.#active.get(model);
    if (a === undefined || a.target === undefined || version !== a.canary) return false;
    return a.rate >= 1 || this.#random() < a.rate;
  }

  /**
   * After the primary call has started, for a request `sampled` chose: copied to stable once the
   * answer is sent, and both answers' classes counted. Returns at once; never throws.
   */
  compare(call: CompareCall): void {
    const a = this.#active.get(call.model);
    if (a === undefined || a.target === undefined) return;
    this.#copies.mirror({ ...call, target: a.target });
  }

  #compared(model: string, canary: InferResponse, stable: InferResponse): void {
    const a = this.#active.get(model);
    if (a === undefined) return;
    const classes = pairedClasses(canary, stable);
    if (classes !== undefined) this.#pending.compared(a.key, classes.canary, classes.stable);
  }

  /** Counts what each replica serves of a model under rollout (after the answer). */
  observer(): Observer {
    return {
      name: 'rollout figures',
      onEnd: (e: RequestEnd) => {
        const a = this.#active.get(e.model);
        if (a === undefined || e.fault === 'gateway') return;
        const side = e.version === a.canary ? 'c' : e.version === a.stable ? 's' : undefined;
        if (side === undefined) return;
        const guarded = (e.annotations?.guardsFired?.length ?? 0) > 0 || e.code === 'INPUT_REJECTED';
        this.#pending.served(a.key, side, e.fault !== 'client', e.fault === 'backend', guarded, e.ms);
      },
    };
  }

  /** Each rollout's canary weight and state, for the gauges (telemetry/metrics.ts). */
  gaugeRows(): RolloutGaugeRow[] {
    const state = { running: 0, paused: 1, promoted: 2, aborted: 3 } as const;
    return [...this.#mirror.entries.values()].filter((r) => this.#config.models[r.model] !== undefined).map((r) => ({ model: r.model, version: r.canary, weight: r.weight, state: state[r.state] }));
  }

  /** The version a promotion made stable, while the configuration still names the one it replaced. */
  promotedStable(model: string): string | undefined {
    const r = this.#mirror.get(model);
    return r?.state === 'promoted' && r.stable === this.#config.models[model]?.stable ? r.canary : undefined;
  }

  // ── the admin API ───────────────────────────────────────────────────────────────────────────

  #modelConfig(model: string) {
    const mc = this.#config.models[model];
    if (mc === undefined) throw new GatewayError('MODEL_NOT_FOUND', clip(model));
    return mc;
  }

  async show(model: string): Promise<RolloutView> {
    this.#modelConfig(model);
    const read = await this.#mirror.read(model);
    const r = asRolloutRecord(read?.value);
    if (read === undefined || r === undefined) throw new GatewayError('ROLLOUT_NOT_FOUND', clip(model));
    return this.#view(r, read.revision);
  }

  async #view(r: RolloutRecord, revision: number): Promise<RolloutView> {
    let step: StepFigures;
    let whole: StepFigures;
    try {
      [step, whole] = await Promise.all([readFigures(this.#store, [stepKey(r.id, r.step)]), readFigures(this.#store, keysUpTo(r))]);
    } catch (err) {
      throw storeUnavailable(err);
    }
    const s = r.spec.steps[r.step];
    const now = this.#now();
    return {
      model: r.model,
      id: r.id,
      revision,
      canary: r.canary,
      stable: r.stable,
      state: r.state,
      note: r.note ?? null,
      source: r.source,
      startedAt: iso(r.startedAt),
      startedBy: r.startedBy,
      endedAt: r.endedAt === undefined ? null : iso(r.endedAt),
      weight: r.weight,
      step: {
        index: r.step, of: r.spec.steps.length, weight: s.weight, minDurationMs: s.minDurationMs, minRequests: s.minRequests,
        startedAt: iso(r.stepStartedAt), elapsedMs: (r.endedAt ?? now) - r.stepStartedAt, requests: step.canary.requests,
      },
      steps: r.spec.steps,
      criteria: judge({ criteria: r.spec.criteria, step, rollout: whole, drift: await this.#driftComparison(r, false) }),
      figures: { step: figuresView(step), rollout: figuresView(whole) },
      decisions: r.decisions.map((d) => ({ ...d, at: iso(d.at) })),
      drivenHere: this.#held.has(r.model),
    };
  }

  /** Starts a rollout (PUT /admin/models/{m}/rollout); INVALID_ROLLOUT names every problem. */
  async begin(model: string, input: unknown, by: string, reason: string, source: 'admin' | 'config' = 'admin'): Promise<RolloutChange> {
    const mc = this.#modelConfig(model);
    let spec: RolloutConfig;
    try {
      spec = parseRollout(input, mc);
    } catch (e) {
      throw new GatewayError('INVALID_ROLLOUT', e instanceof ConfigError ? e.problems.join('; ') : String(e));
    }
    // After a promotion the promoted version is the one serving as stable, until the file says so too.
    const stable = spec.stable ?? this.promotedStable(model) ?? mc.stable;
    const live = this.#opts.routes.live(model);
    const problems: string[] = [];
    if (live.traffic?.unleash !== undefined) problems.push(`the routes of ${model} are driven by the Unleash flag ${JSON.stringify(live.traffic.unleash.flag)}; a rollout sets weights itself (reset the routes first)`);
    const others = (live.traffic?.routes ?? []).filter((x) => x.weight > 0 && x.version !== stable && x.version !== spec.canary).map((x) => x.version);
    if (others.length > 0) problems.push(`the routes of ${model} send traffic to other versions (${others.join(', ')}); a rollout splits between ${stable} and ${spec.canary} only (reset the routes first)`);
    if (this.#opts.isKilled?.(model, spec.canary) === true) problems.push(`version ${spec.canary} is stopped by the kill switch`);
    if (spec.criteria.drift !== undefined && this.#opts.drift?.comparable(model, spec.canary, stable) === 'no') {
      problems.push(`criteria.drift: the drift references of versions ${spec.canary} and ${stable} bin their values differently, so their live windows cannot be compared (build both profiles from the same data)`);
    }
    if (this.#opts.isKilled?.(model, stable) === true) problems.push(`version ${stable} is stopped by the kill switch`);
    if (problems.length > 0) throw new GatewayError('INVALID_ROLLOUT', problems.join('; '));
    const at = this.#now();
    const record = started({
      id: `${model}-${at.toString(36)}-${randomUUID().slice(0, 8)}`,
      model,
      canary: spec.canary,
      stable,
      spec,
      base: { rules: live.traffic?.rules ?? [], ...(live.traffic?.shadow === undefined ? {} : { shadow: live.traffic.shadow }) },
      source,
      specSha256: specSha256(input),
      startedAt: at,
      startedBy: by,
    }, reason);
    const done = await this.#mirror.change(model, undefined, (current) => {
      const r = asRolloutRecord(current);
      if (r !== undefined && isActive(r)) throw new GatewayError('ROLLOUT_CONFLICT', `rollout ${r.id} of version ${r.canary} is ${r.state}; abort or promote it first`);
      return record;
    });
    await this.#applyRoutes(record, `rollout ${record.id} started: ${reason}`);
    const receipt = await this.#audit(record, record.decisions[record.decisions.length - 1], done.revision);
    return { rollout: await this.#view(record, done.revision), audit: receipt };
  }

  /** A person's pause, resume, promote or abort. */
  async act(model: string, action: Exclude<RolloutAction, 'start' | 'advance'>, by: string, reason: string): Promise<RolloutChange> {
    this.#modelConfig(model);
    const at = this.#now();
    let next: RolloutRecord | undefined;
    const done = await this.#mirror.change(model, undefined, (current) => {
      const r = asRolloutRecord(current);
      if (r === undefined) throw new GatewayError('ROLLOUT_NOT_FOUND', clip(model));
      if (!isActive(r)) throw new GatewayError('ROLLOUT_CONFLICT', `rollout ${r.id} has ended (${r.state})`);
      if (action === 'pause' && r.state !== 'running') throw new GatewayError('ROLLOUT_CONFLICT', `rollout ${r.id} is ${r.state}, not running`);
      if (action === 'resume' && r.state !== 'paused') throw new GatewayError('ROLLOUT_CONFLICT', `rollout ${r.id} is ${r.state}, not paused`);
      next = action === 'pause' ? paused(r, at, by, reason) : action === 'resume' ? resumed(r, at, by, reason) : action === 'promote' ? promoted(r, at, by, reason) : aborted(r, at, by, reason);
      return next;
    });
    const r = next as unknown as RolloutRecord;
    await this.#applyRoutes(r, `rollout ${r.id} ${action}: ${reason}`);
    const decision = r.decisions[r.decisions.length - 1];
    const receipt = await this.#audit(r, decision, done.revision);
    if (action !== 'resume') this.#alert(r, decision);
    return { rollout: await this.#view(r, done.revision), audit: receipt };
  }

  // ── the controller ──────────────────────────────────────────────────────────────────────────

  /** One pass over every rollout this replica can drive; concurrent calls share it. */
  tick(): Promise<void> {
    this.#ticking ??= this.#tickOnce().finally(() => (this.#ticking = undefined));
    return this.#ticking;
  }

  async #tickOnce(): Promise<void> {
    if (this.#closed) return;
    for (const [model, r] of this.#mirror.entries) {
      if (this.#config.models[model] === undefined) continue;
      try {
        if (isActive(r)) await this.#drive(model);
        else await this.#settle(model, r);
      } catch (err) {
        this.#log.warn({ err, model, rollout: r.id }, 'rollout: this evaluation failed; the next one tries again');
      }
    }
  }

  /** Takes or renews the model's lease; false when another replica holds it. */
  async #lease(model: string): Promise<boolean> {
    const { granted } = await this.#store.acquire(LEASE_SCOPE, model, this.#opts.replica, 1, this.#settings.leaseMs);
    if (granted) {
      if (!this.#held.has(model)) this.#log.info({ model }, 'rollout: this replica drives the rollout');
      this.#held.add(model);
    } else {
      this.#held.delete(model);
    }
    return granted;
  }

  /**
   * An ended rollout whose routes are not yet the ones it ended with (the controller that decided
   * stopped before writing them): written, unless a person has changed the routes since.
   */
  async #settle(model: string, r: RolloutRecord): Promise<void> {
    const live = this.#opts.routes.live(model);
    if (routesMatch(r, live.traffic) || live.updatedBy !== ROLLOUT_ACTOR) return;
    if (r.endedAt !== undefined && this.#now() - r.endedAt > 3_600_000) return;
    if (!(await this.#lease(model))) return;
    await this.#applyRoutes(r, `rollout ${r.id} ${r.state}: finishing its last decision`);
  }

  async #drive(model: string): Promise<void> {
    if (!(await this.#lease(model))) return;
    const read = await this.#mirror.read(model);
    const r = asRolloutRecord(read?.value);
    if (read === undefined || r === undefined) return;
    if (!isActive(r)) return this.#settle(model, r);
    const live = this.#opts.routes.live(model);
    if (!routesMatch(r, live.traffic)) {
      if (live.source === 'admin' && live.updatedBy !== ROLLOUT_ACTOR && r.state === 'running') {
        const why = `the routes were changed by ${live.updatedBy} (${live.reason ?? ''}); the rollout no longer sets them until it is resumed`;
        return this.#decide(model, read.revision, paused(r, this.#now(), ROLLOUT_ACTOR, why));
      }
      if (r.state === 'running') await this.#applyRoutes(r, `rollout ${r.id} step ${r.step + 1} of ${r.spec.steps.length}`);
    }
    if (r.state !== 'running') return;
    if (this.#opts.isKilled?.(model, r.canary) === true) {
      return this.#decide(model, read.revision, aborted(r, this.#now(), ROLLOUT_ACTOR, `version ${r.canary} was stopped by the kill switch`));
    }
    const [step, whole] = await Promise.all([readFigures(this.#store, [stepKey(r.id, r.step)]), readFigures(this.#store, keysUpTo(r))]);
    const results = judge({ criteria: r.spec.criteria, step, rollout: whole, drift: await this.#driftComparison(r, true) });
    const now = this.#now();
    const failed = results.filter((c) => c.verdict === 'fail');
    if (failed.length > 0) {
      const kill = failed.some((c) => c.killSwitch) && this.#opts.killSwitch !== undefined;
      const reason = `${failed.map((c) => c.criterion).join(', ')} failed: ${failed.map((c) => c.detail).join('; ')}`;
      let killed = false;
      if (kill) {
        // First, so the canary stops at once on every replica, whatever happens to this one next.
        try {
          const change = await this.#opts.killSwitch?.kill({ scope: 'version', model, version: r.canary, mode: 'rollback', target: r.stable }, ROLLOUT_ACTOR, `rollout ${r.id}: ${reason}`);
          killed = true;
          // The kill is a record of its own, like one made through the kill switch's API.
          if (change !== undefined) {
            await this.#opts.audit.record({
              actor: ROLLOUT_ACTOR, via: 'rollout', action: 'kill.version', target: { kind: 'model', id: model },
              revision: change.revision, before: change.before, after: change.after, reason: change.reason, details: { kill: change.kill, rollout: r.id },
            });
          }
        } catch (err) {
          this.#log.warn({ err, model, version: r.canary }, 'rollout: the kill switch could not stop the canary; its weight goes to 0 regardless');
        }
      }
      return this.#decide(model, read.revision, aborted(r, now, ROLLOUT_ACTOR, reason, results, killed));
    }
    const s = r.spec.steps[r.step];
    const elapsed = now - r.stepStartedAt;
    const requests = step.canary.requests;
    if (elapsed >= s.minDurationMs && requests >= s.minRequests && results.every((c) => c.verdict === 'pass')) {
      const last = r.step === r.spec.steps.length - 1;
      return this.#decide(model, read.revision, last ? promoted(r, now, ROLLOUT_ACTOR, `every step passed every criterion; version ${r.canary} is now stable`, results) : advanced(r, now, results));
    }
    if (elapsed >= s.minDurationMs + r.spec.pauseAfterMs) {
      const waiting = results.filter((c) => c.verdict === 'wait').map((c) => `${c.criterion}: ${c.detail}`);
      const short = requests < s.minRequests ? [`${requests} of ${s.minRequests} canary requests`] : [];
      const why = `too little traffic to judge step ${r.step + 1} after ${Math.round(elapsed / 1000)} s: ${[...short, ...waiting].join('; ')}; resume to wait longer, or promote or abort`;
      return this.#decide(model, read.revision, paused(r, now, ROLLOUT_ACTOR, why, results));
    }
  }

  /** Writes a controller's decision against the revision it read, then acts on it and says so. */
  async #decide(model: string, revision: number, next: RolloutRecord): Promise<void> {
    let done;
    try {
      done = await this.#mirror.change(model, revision, () => next);
    } catch (err) {
      if (err instanceof GatewayError && err.code === 'REVISION_CONFLICT') return; // someone acted first: judge again next tick
      throw err;
    }
    const decision = next.decisions[next.decisions.length - 1];
    this.#log.info({ model, rollout: next.id, action: decision.action, weight: next.weight, reason: decision.reason }, 'rollout: decided');
    await this.#applyRoutes(next, `rollout ${next.id} ${decision.action}: ${decision.reason}`);
    await this.#audit(next, decision, done.revision);
    if (decision.action !== 'advance') this.#alert(next, decision);
  }

  async #applyRoutes(r: RolloutRecord, reason: string): Promise<void> {
    const change = await this.#opts.routes.set(r.model, routesOf(r), ROLLOUT_ACTOR, reason.slice(0, 1000));
    await this.#opts.audit.record({
      actor: ROLLOUT_ACTOR,
      via: 'rollout',
      action: 'traffic.set',
      target: { kind: 'model', id: r.model },
      revision: change.revision,
      before: change.before,
      after: change.after,
      reason: change.reason,
      details: { rollout: r.id },
    });
  }

  #audit(r: RolloutRecord, d: RolloutDecision, revision: number): Promise<AuditReceipt> {
    return this.#opts.audit.record({
      actor: d.by,
      via: d.by === ROLLOUT_ACTOR ? 'automatic' : 'admin:traffic',
      action: `rollout.${d.action}`,
      target: { kind: 'model', id: r.model },
      revision,
      before: { weight: d.weightBefore },
      after: { weight: d.weightAfter, state: r.state, step: r.step },
      reason: d.reason,
      details: { rollout: r.id, canary: r.canary, stable: r.stable, ...(d.evidence === undefined ? {} : { evidence: d.evidence }), ...(d.killed === true ? { killed: true } : {}) },
    });
  }

  #alert(r: RolloutRecord, d: RolloutDecision): void {
    this.#opts.alerts?.post(() => rolloutAlertMessage(r, d), { action: `rollout ${r.model}@${r.canary} ${d.action}`, revision: 0 });
  }

  /**
   * The canary's live drift window against stable's (the drift monitor's comparison of two
   * versions). `look`: the controller's look, which counts the looks in a row that found a drift;
   * a GET only reads the count.
   */
  async #driftComparison(r: RolloutRecord, look: boolean): Promise<DriftComparison | 'not-comparable' | undefined> {
    const d = this.#opts.drift;
    const on = r.spec.criteria.drift?.on;
    if (d === undefined || on === undefined) return undefined;
    let report;
    try {
      report = await d.report(r.model, r.canary, r.stable);
    } catch (err) {
      this.#log.debug({ err, model: r.model }, 'rollout: the drift comparison failed; judged at the next look');
      return undefined;
    }
    if (report === 'not-comparable') return 'not-comparable';
    if (report === 'unknown-version' || report === undefined) return undefined;
    const inputs = overallStatus(report.features.map((f) => f.raw));
    const outputs = overallStatus(report.outputs.map((f) => f.raw));
    const drifting = on.some((p) => (p === 'inputs' ? inputs : outputs) === 'drift');
    let streak = drifting ? this.#driftStreaks.get(r.id) ?? 0 : 0;
    if (look) {
      streak = drifting ? streak + 1 : 0;
      this.#driftStreaks.set(r.id, streak);
    }
    const maxPsi = (xs: readonly { psi: number }[]) => xs.reduce((m, f) => Math.max(m, Number.isFinite(f.psi) ? f.psi : 0), 0);
    return {
      inputs, outputs,
      psi: { inputs: maxPsi(report.features), outputs: maxPsi(report.outputs) },
      samples: { canary: report.window.samples, stable: report.reference.rows },
      streak,
      confirmations: this.#config.models[r.model]?.drift?.thresholds.confirmations ?? 1,
    };
  }

  /** Starts each rollout the configuration declares, once (a stored one with the same spec is left as it is). */
  async #startDeclared(): Promise<void> {
    for (const [model, mc] of Object.entries(this.#config.models)) {
      if (mc.rollout === undefined) continue;
      try {
        const r = asRolloutRecord((await this.#mirror.read(model))?.value);
        if (r !== undefined && (isActive(r) || r.specSha256 === specSha256(mc.rollout))) continue;
        await this.begin(model, mc.rollout, ROLLOUT_ACTOR, 'declared in the configuration (models.<m>.rollout)', 'config');
      } catch (err) {
        // Another replica started it first, or the store does not answer (the next reload tries again).
        if (!(err instanceof GatewayError && (err.code === 'ROLLOUT_CONFLICT' || err.code === 'REVISION_CONFLICT'))) this.#log.warn({ err, model }, 'rollout: the configuration\'s rollout could not be started');
      }
    }
  }

  /** A reloaded configuration: its new rollouts start, the local table follows its models. */
  async reconfigure(config: GatewayConfig): Promise<void> {
    this.#config = config;
    this.#rebuild(this.#mirror.entries);
    await this.#startDeclared();
  }

  /** Figures not yet added are added (as far as the store allows); leases are given back. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#flushTimer);
    clearInterval(this.#tickTimer);
    await this.#ticking?.catch(() => undefined);
    await this.#copies.idle();
    await this.#pending.flush();
    await Promise.allSettled([...this.#held].map((m) => this.#store.release(LEASE_SCOPE, m, this.#opts.replica)));
    await this.#mirror.close();
  }
}
