/**
 * The emergency cut-out (docs/kill-switch.md): operators stop a version, a model or everything,
 * and every replica applies it from memory within milliseconds.
 *
 * The kill state (gateway/control/kill-state.ts) is one record of the shared store, mirrored in
 * every replica (gateway/state/mirrored-scope.ts): a change is a compare-and-set there, applied
 * here at once and announced; the other replicas re-read it on the announcement, and every
 * `killSwitch.reconcileMs` in case they missed it (pub/sub is at most once). The mirror starts
 * `closed` by default, so a replica starting while a kill is in force applies it before it reports
 * ready. A replica that cannot confirm the state for `killSwitch.staleAfterMs` keeps the last one
 * it knew (`onStoreLoss: keep`) or refuses every prediction (`deny`).
 *
 * Applying a state compiles it into the request path's table (policies/kill-switch.ts) and tells
 * the fleet record which revision this replica now enforces (gateway/control/fleet.ts).
 *
 * Rollback targets are chosen when the kill is made, by the replica that takes it, and stored in
 * the kill: every replica then sends the traffic to the same version. In order: the target the
 * operator named, the model's `killSwitch.rollbackTo`, its known-good version
 * (gateway/control/known-good.ts), else the highest ready version below the stable one. A named
 * target (the first three) that is not loaded and ready refuses the kill (409
 * ROLLBACK_TARGET_UNAVAILABLE) rather than silently picking another: weights never move onto a
 * version nobody chose or that cannot answer.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { KillSwitchPolicy } from '../../policies/kill-switch.js';
import type { GatewayConfig, KillSwitchConfig, MirrorStart } from '../config.js';
import { clip, GatewayError } from '../errors.js';
import type { Serving } from '../serving.js';
import { MirroredScope } from '../state/mirrored-scope.js';
import type { StateStore } from '../state/store.js';
import {
  compileKillTable, EMPTY_KILL_STATE, KILL_STATE_KEY, killedVersions, keyOf, killKey, parseKillState, withKill, withoutKill,
  type KillEntry, type KillMode, type KillScope, type KillState,
} from './kill-state.js';
import type { KnownGood } from './known-good.js';

export const KILL_SCOPE = 'kill';

/**
 * Tries of a kill or restore whose store command timed out (`state.commandTimeoutMs`, tuned for the
 * request path, can be short for a busy store): at 3 a.m. a retry here beats a 503 to retype.
 * Safe: each try is a compare-and-set against the state read again (a kill that landed unanswered
 * is replaced by the same kill; a restore that did is recognised below).
 */
const CHANGE_TRIES = 4;

function storeTimedOut(e: unknown): boolean {
  return e instanceof GatewayError && e.code === 'STATE_STORE_UNAVAILABLE';
}

/** What a kill or restore did; the admin API answers with it and the audit log keeps it. */
export interface KillChange {
  readonly action: 'kill' | 'restore';
  /** The kill state's revision after the change. */
  readonly revision: number;
  readonly kill: KillEntry;
  readonly at: string;
  readonly by: string;
  readonly reason: string;
  /** The kills in force before and after. */
  readonly before: readonly KillEntry[];
  readonly after: readonly KillEntry[];
}

export interface KillRequest {
  readonly scope: KillScope;
  readonly model?: string;
  readonly version?: string;
  readonly mode: KillMode;
  readonly target?: string;
}

export interface KillSwitchOptions {
  readonly store: StateStore;
  readonly log: Logger;
  readonly config: GatewayConfig;
  readonly policy: KillSwitchPolicy;
  readonly serving: Serving;
  readonly knownGood: KnownGood;
  readonly start: MirrorStart;
  readonly snapshotDir: string;
  /** Whether the copy can be out of date at all (false for a store in this process). */
  readonly shared: boolean;
  /** A new revision is enforced here (the fleet record says so). */
  readonly onApplied: (revision: number, at: number) => void;
}

/** A restore found its kill already removed by an earlier try that timed out. */
class RestoredUnanswered extends Error {}

/** Versions compared as numbers when both are, else as strings. */
function compareVersions(a: string, b: string): number {
  const na = Number(a);
  const nb = Number(b);
  if (a !== '' && b !== '' && Number.isFinite(na) && Number.isFinite(nb)) return na - nb;
  return a < b ? -1 : a > b ? 1 : 0;
}

export class KillSwitch {
  readonly #opts: KillSwitchOptions;
  readonly #log: Logger;
  readonly #mirror: MirroredScope<KillState>;
  #config: GatewayConfig;
  #state: KillState = EMPTY_KILL_STATE;
  #applied = -1;
  #stale = false;
  #staleTimer: NodeJS.Timeout | undefined;

  private constructor(opts: KillSwitchOptions) {
    this.#opts = opts;
    this.#log = opts.log.child({ component: 'kill-switch' });
    this.#config = opts.config;
    const ks = opts.config.killSwitch;
    this.#mirror = new MirroredScope<KillState>(opts.store, {
      scope: KILL_SCOPE,
      reconcileMs: ks.reconcileMs,
      log: opts.log,
      parse: (_key, value) => parseKillState(value),
      onChange: (entries) => this.#apply(entries.get(KILL_STATE_KEY) ?? EMPTY_KILL_STATE),
      start: opts.start,
      snapshotFile: join(opts.snapshotDir, `${KILL_SCOPE}.json`),
    });
  }

  static async start(opts: KillSwitchOptions): Promise<KillSwitch> {
    const k = new KillSwitch(opts);
    await k.#mirror.start();
    if (k.#applied < 0) k.#apply(EMPTY_KILL_STATE);
    if (opts.shared) {
      const ks = opts.config.killSwitch;
      k.#staleTimer = setInterval(() => k.#checkStale(ks), Math.max(50, Math.min(ks.reconcileMs, Math.floor(ks.staleAfterMs / 4))));
      k.#staleTimer.unref();
    }
    return k;
  }

  /** False while the state starts closed and has not been read: the gateway must not serve. */
  get ready(): boolean {
    return this.#mirror.ready;
  }

  /** The kill state this replica enforces. */
  get state(): KillState {
    return this.#state;
  }

  /** True while this replica cannot confirm the state and refuses predictions for it (onStoreLoss deny). */
  get stale(): boolean {
    return this.#stale;
  }

  /** The kills concerning `model` (its own, its versions', and a fleet-wide one). */
  killsOf(model: string): KillEntry[] {
    return this.#state.kills.filter((k) => k.scope === 'all' || k.model === model);
  }

  /** Re-reads the stored state now (a failure keeps the copy). */
  async reconcile(): Promise<void> {
    await this.#mirror.reconcile();
  }

  #apply(state: KillState, force = false): void {
    // The revision names the content (it grows with every change): a reconcile that read the same
    // state again (every reconcileMs) rebuilds nothing.
    if (!force && state.revision === this.#applied) {
      this.#state = state;
      return;
    }
    const changed = state.revision !== this.#applied;
    this.#state = state;
    this.#opts.policy.update(this.#compile(state));
    if (changed) {
      this.#applied = state.revision;
      this.#opts.onApplied(state.revision, Date.now());
      if (state.revision > 0) this.#log.info({ revision: state.revision, kills: state.kills.length }, 'kill switch: state applied');
    }
  }

  #checkStale(ks: KillSwitchConfig): void {
    const confirmed = this.#mirror.confirmedAt;
    const age = Date.now() - confirmed;
    const stale = confirmed > 0 && age > ks.staleAfterMs;
    if (stale === this.#stale) return;
    this.#stale = stale;
    if (!stale) this.#log.info({ revision: this.#state.revision }, 'kill switch: the kill state is confirmed again');
    else if (ks.onStoreLoss === 'keep') this.#log.warn({ staleForMs: age, revision: this.#state.revision }, 'kill switch: the store has not confirmed the kill state; enforcing the last state known (onStoreLoss: keep)');
    else this.#log.error({ staleForMs: age }, 'kill switch: the store has not confirmed the kill state; refusing every prediction until it does (onStoreLoss: deny)');
    if (ks.onStoreLoss === 'deny') this.#opts.policy.update(this.#compile(this.#state));
  }

  #compile(state: KillState) {
    return compileKillTable(state, this.#config, this.#stale && this.#config.killSwitch.onStoreLoss === 'deny');
  }

  /** A reloaded configuration: the same kills, compiled against its models. */
  reconfigure(config: GatewayConfig): void {
    this.#config = config;
    this.#apply(this.#state, true);
  }

  #versionsOf(model: string): string[] {
    const mc = this.#config.models[model];
    if (mc === undefined) throw new GatewayError('MODEL_NOT_FOUND', clip(model));
    return Object.keys(mc.versions);
  }

  /**
   * The versions of each model that can answer now: loaded, and their backend answering its
   * readiness probe (cached by the adapter for `healthIntervalMs`). Asked before the
   * compare-and-set, whose choice must be synchronous.
   */
  async #readyVersions(models: readonly string[]): Promise<Map<string, Set<string>>> {
    const out = new Map<string, Set<string>>();
    await Promise.all(models.map(async (m) => {
      const ready = new Set<string>();
      const sm = this.#opts.serving.table.models.get(m);
      await Promise.all([...(sm?.versions ?? new Map()).entries()].map(async ([v, sv]) => {
        if (sv.metadata !== undefined && (await sv.adapter.ready().catch(() => false))) ready.add(v);
      }));
      out.set(m, ready);
    }));
    return out;
  }

  /**
   * The version that answers for `model` once `killing` (and what `state` already stops) is
   * stopped. Throws ROLLBACK_TARGET_UNAVAILABLE when there is none that is ready.
   */
  #target(model: string, state: KillState, killing: ReadonlySet<string>, named: string | undefined, knownGood: string | undefined, ready: ReadonlySet<string>): string {
    const versions = this.#versionsOf(model);
    const killed = killedVersions(compileKillTable(state, this.#config), this.#config, model);
    const candidates: [string | undefined, string][] = [
      [named, 'the target named'],
      [this.#config.models[model]?.killSwitch?.rollbackTo, 'killSwitch.rollbackTo'],
      [knownGood, 'the known-good version'],
    ];
    for (const [v, source] of candidates) {
      if (v === undefined) continue;
      if (!versions.includes(v)) {
        if (source === 'the target named') throw new GatewayError('VERSION_NOT_FOUND', `${clip(model)} has no version ${clip(v)}`);
        continue;
      }
      if (killing.has(v) || killed.has(v)) {
        if (source === 'the target named') throw new GatewayError('ROLLBACK_TARGET_UNAVAILABLE', `version ${v} is stopped itself; name another target or use "mode": "deny"`);
        continue;
      }
      if (!ready.has(v)) {
        throw new GatewayError('ROLLBACK_TARGET_UNAVAILABLE', `${model} version ${v} (${source}) is not loaded and ready; name another "target" or use "mode": "deny"`);
      }
      return v;
    }
    const stable = this.#config.models[model]?.stable ?? '';
    const below = versions
      .filter((v) => compareVersions(v, stable) < 0 && !killing.has(v) && !killed.has(v) && ready.has(v))
      .sort(compareVersions);
    const v = below.at(-1);
    if (v === undefined) {
      throw new GatewayError('ROLLBACK_TARGET_UNAVAILABLE', `${model} has no ready version below its stable version ${stable} to roll back to, and names none (killSwitch.rollbackTo); name a "target" or use "mode": "deny"`);
    }
    return v;
  }

  /** Puts a kill in force for every replica; answers once it is stored, applied here and announced. */
  async kill(req: KillRequest, by: string, reason: string): Promise<KillChange> {
    const models = req.scope === 'all' ? Object.keys(this.#config.models) : [req.model as string];
    for (const m of models) this.#versionsOf(m);
    if (req.scope === 'version' && !this.#versionsOf(req.model as string).includes(req.version as string)) {
      throw new GatewayError('VERSION_NOT_FOUND', `${clip(req.model as string)} has no version ${clip(req.version as string)}`);
    }
    const rollback = req.mode === 'rollback';
    // Read before the compare-and-set (the choice itself must be synchronous).
    const knownGood = new Map<string, string | undefined>();
    if (rollback) for (const m of models) knownGood.set(m, await this.#opts.knownGood.of(m));
    const ready = rollback ? await this.#readyVersions(models) : new Map<string, Set<string>>();
    const readyOf = (m: string): ReadonlySet<string> => ready.get(m) ?? new Set();
    const at = new Date().toISOString();
    let entry: KillEntry | undefined;
    let before: readonly KillEntry[] = [];
    let after: readonly KillEntry[] = [];
    await this.#retried(() => this.#mirror.change(KILL_STATE_KEY, undefined, (stored) => {
      const current = stored === undefined || stored === null ? EMPTY_KILL_STATE : parseKillState(stored);
      const key = killKey(req.scope, req.model, req.version);
      // The state without this key's current kill: re-killing replaces it (e.g. rollback → deny).
      const base = withoutKill(current, key)?.state ?? current;
      const fields = { scope: req.scope, ...(req.model === undefined ? {} : { model: req.model }), ...(req.version === undefined ? {} : { version: req.version }), mode: req.mode, by, at, reason };
      let made: { state: KillState; entry: KillEntry };
      if (!rollback) {
        made = withKill(current, fields);
      } else if (req.scope === 'all') {
        const targets: Record<string, string> = {};
        const problems: string[] = [];
        for (const m of models) {
          try {
            targets[m] = this.#target(m, base, new Set(), undefined, knownGood.get(m), readyOf(m));
          } catch (e) {
            problems.push(e instanceof GatewayError ? (e.detail ?? e.code) : String(e));
          }
        }
        if (problems.length > 0) throw new GatewayError('ROLLBACK_TARGET_UNAVAILABLE', problems.join('; '));
        made = withKill(current, { ...fields, targets });
      } else {
        const m = req.model as string;
        const all = this.#versionsOf(m);
        // A model kill stops every version but the target; the target is chosen among them.
        const target = this.#target(m, base, req.scope === 'version' ? new Set([req.version as string]) : new Set(), req.target, knownGood.get(m), readyOf(m));
        if (req.scope === 'model' && all.length === 1) {
          throw new GatewayError('ROLLBACK_TARGET_UNAVAILABLE', `${m} has one version only; use "mode": "deny"`);
        }
        made = withKill(current, { ...fields, target });
      }
      before = current.kills;
      after = made.state.kills;
      entry = made.entry;
      return made.state;
    }));
    const kill = entry as unknown as KillEntry;
    return { action: 'kill', revision: kill.revision, kill, at, by, reason, before, after };
  }

  /** Lifts a kill: the routes that stood before it (split, rules, shadow: never changed by it) serve again. */
  async restore(scope: KillScope, model: string | undefined, version: string | undefined, by: string, reason: string): Promise<KillChange> {
    if (model !== undefined) {
      const versions = this.#versionsOf(model);
      if (version !== undefined && !versions.includes(version)) throw new GatewayError('VERSION_NOT_FOUND', `${clip(model)} has no version ${clip(version)}`);
    }
    const key = killKey(scope, model, version);
    const at = new Date().toISOString();
    let removed: KillEntry | undefined;
    let before: readonly KillEntry[] = [];
    let after: KillState = EMPTY_KILL_STATE;
    // What this replica knew of the kill: the answer when a try that timed out had in fact landed.
    const known = this.#state.kills.find((k) => keyOf(k) === key);
    let unanswered = false;
    await this.#retried(() => this.#mirror.change(KILL_STATE_KEY, undefined, (stored) => {
      const current = stored === undefined || stored === null ? EMPTY_KILL_STATE : parseKillState(stored);
      const lifted = withoutKill(current, key);
      if (lifted === undefined && unanswered && known !== undefined) {
        // An earlier try removed it without an answer: done (nothing more to write).
        before = [...current.kills, known];
        after = current;
        removed = known;
        throw new RestoredUnanswered();
      }
      if (lifted === undefined) {
        const what = scope === 'all' ? 'no fleet-wide kill is' : scope === 'model' ? `no kill of model ${model} is` : `no kill of ${model} version ${version} is`;
        throw new GatewayError('NOT_KILLED', `${what} in force`);
      }
      before = current.kills;
      after = lifted.state;
      removed = lifted.removed;
      return lifted.state;
    }), () => (unanswered = true)).catch((e: unknown) => {
      if (!(e instanceof RestoredUnanswered)) throw e;
    });
    return { action: 'restore', revision: after.revision, kill: removed as unknown as KillEntry, at, by, reason, before, after: after.kills };
  }

  /** Runs a change, again after a store timeout (CHANGE_TRIES in all, short pauses). */
  async #retried<T>(change: () => Promise<T>, onTimeout?: () => void): Promise<T> {
    for (let i = 1; ; i++) {
      try {
        return await change();
      } catch (e) {
        if (!storeTimedOut(e) || i >= CHANGE_TRIES) throw e;
        onTimeout?.();
        this.#log.warn({ try: i }, 'kill switch: the store did not answer a change in time; trying again');
        await sleep(25 * 2 ** i);
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#staleTimer);
    await this.#mirror.close();
  }
}
