/**
 * The kill state: what operators stopped, as one small record of the shared store (scope `kill`,
 * key `state`), and how a replica turns it into the table the request path reads
 * (policies/kill-switch.ts KillTable). Pure: no I/O, no clock.
 *
 * One record rather than one per kill: every change is one compare-and-set on it, so the whole
 * state has one revision (counted in the record itself, so an announcement, a reconcile and a
 * snapshot all carry it), and "replica X has applied revision 7" means exactly one thing.
 */
import type { GatewayConfig } from '../config.js';
import type { KillTable, ModelKill } from '../../policies/kill-switch.js';

export type KillMode = 'rollback' | 'deny';
export type KillScope = 'all' | 'model' | 'version';

/** One kill in force. */
export interface KillEntry {
  readonly scope: KillScope;
  readonly model?: string;
  readonly version?: string;
  readonly mode: KillMode;
  /** scope model or version, mode rollback: the version that answers instead. */
  readonly target?: string;
  /** scope all, mode rollback: per model, the version that answers. */
  readonly targets?: Readonly<Record<string, string>>;
  readonly by: string;
  readonly at: string;
  readonly reason: string;
  /** The state's revision this kill was made at. */
  readonly revision: number;
}

export interface KillState {
  /** Grows by one with every kill and restore (0: never changed). */
  readonly revision: number;
  readonly kills: readonly KillEntry[];
}

export const EMPTY_KILL_STATE: KillState = Object.freeze({ revision: 0, kills: Object.freeze([]) });

/** The one key of the one record. */
export const KILL_STATE_KEY = 'state';

/** Where a kill sits: one per model, one per version, one for everything. */
export function killKey(scope: KillScope, model?: string, version?: string): string {
  return scope === 'all' ? 'all' : scope === 'model' ? `model:${model}` : `version:${model}/${version}`;
}

export function keyOf(e: KillEntry): string {
  return killKey(e.scope, e.model, e.version);
}

const str = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/** A stored value as a KillState; throws for anything else (the mirror leaves it out and counts it). */
export function parseKillState(value: unknown): KillState {
  const v = value as Partial<KillState> | null;
  if (v === null || typeof v !== 'object' || !Number.isSafeInteger(v.revision) || !Array.isArray(v.kills)) throw new Error('not a kill state');
  for (const k of v.kills as unknown[]) {
    const e = k as Partial<KillEntry> | null;
    if (e === null || typeof e !== 'object' || !['all', 'model', 'version'].includes(e.scope as string) || !['rollback', 'deny'].includes(e.mode as string)) {
      throw new Error('not a kill entry');
    }
    if (e.scope !== 'all' && !str(e.model)) throw new Error('a kill entry without its model');
    if (e.scope === 'version' && !str(e.version)) throw new Error('a version kill without its version');
  }
  return v as KillState;
}

/** The state after `entry` is put in force (replacing a kill of the same key). */
export function withKill(state: KillState, entry: Omit<KillEntry, 'revision'>): { state: KillState; entry: KillEntry } {
  const revision = state.revision + 1;
  const full: KillEntry = { ...entry, revision };
  const key = keyOf(full);
  return { state: { revision, kills: [...state.kills.filter((k) => keyOf(k) !== key), full] }, entry: full };
}

/** The state after the kill at `key` is lifted; undefined when there is none. */
export function withoutKill(state: KillState, key: string): { state: KillState; removed: KillEntry } | undefined {
  const removed = state.kills.find((k) => keyOf(k) === key);
  if (removed === undefined) return undefined;
  return { state: { revision: state.revision + 1, kills: state.kills.filter((k) => k !== removed) }, removed };
}

/** Per killed version of a model, where its requests go (undefined: refused), before chasing. */
interface Draft {
  deny: boolean;
  why: string;
  redirect: Map<string, string | undefined>;
}

/**
 * The table for the request path: per model with anything killed, whether it is denied, and for
 * each killed version the live version that answers instead. Kills apply in revision order (a
 * newer kill of the same versions wins); a redirect to a version that is itself killed is followed
 * to where that one goes, and a version with nowhere left to go is refused. A kill naming a model
 * or version the configuration no longer has is ignored (a reload removed it). `stale`: this
 * replica cannot confirm the state, and onStoreLoss is deny: everything is refused.
 */
export function compileKillTable(state: KillState, config: GatewayConfig, stale = false): KillTable {
  const drafts = new Map<string, Draft>();
  const draft = (model: string): Draft => {
    let d = drafts.get(model);
    if (d === undefined) drafts.set(model, (d = { deny: false, why: '', redirect: new Map() }));
    return d;
  };
  const models = Object.keys(config.models);
  if (stale) {
    const out = new Map<string, ModelKill>();
    for (const m of models) out.set(m, { deny: true, detail: 'this replica cannot confirm which models are stopped (killSwitch.onStoreLoss: deny)', redirect: new Map() });
    return out;
  }
  const ordered = [...state.kills].sort((a, b) => a.revision - b.revision);
  for (const k of ordered) {
    const scoped = k.scope === 'all' ? models : k.model !== undefined && config.models[k.model] !== undefined ? [k.model] : [];
    for (const m of scoped) {
      const versions = Object.keys(config.models[m]?.versions ?? {});
      const d = draft(m);
      if (k.scope === 'version') {
        if (k.version === undefined || !versions.includes(k.version)) continue;
        const target = k.mode === 'rollback' && k.target !== undefined && versions.includes(k.target) ? k.target : undefined;
        d.redirect.set(k.version, target);
        continue;
      }
      const target = k.scope === 'all' ? k.targets?.[m] : k.target;
      if (k.mode === 'deny' || target === undefined || !versions.includes(target)) {
        d.deny = true;
        d.why = k.scope === 'all' ? 'every model is stopped by its operators' : 'this model is stopped by its operators';
        continue;
      }
      for (const v of versions) if (v !== target) d.redirect.set(v, target);
      // The target of a newer kill answers again, even if an older kill had stopped it.
      d.redirect.delete(target);
    }
  }
  const out = new Map<string, ModelKill>();
  for (const [m, d] of drafts) {
    if (d.deny) {
      out.set(m, { deny: true, detail: d.why, redirect: new Map() });
      continue;
    }
    if (d.redirect.size === 0) continue;
    const resolved = new Map<string, string | undefined>();
    for (const v of d.redirect.keys()) {
      // Follow redirects to a version that is not killed; a loop or a dead end is refused.
      let at: string | undefined = v;
      for (let hops = 0; at !== undefined && d.redirect.has(at) && hops <= d.redirect.size; hops++) at = d.redirect.get(at);
      resolved.set(v, at !== undefined && !d.redirect.has(at) ? at : undefined);
    }
    out.set(m, { deny: false, detail: 'this version is stopped by its operators and has no version to answer instead', redirect: resolved });
  }
  return out;
}

/** The versions of `model` the state stops (killed outright, or redirected away from). */
export function killedVersions(table: KillTable, config: GatewayConfig, model: string): Set<string> {
  const k = table.get(model);
  if (k === undefined) return new Set();
  if (k.deny) return new Set(Object.keys(config.models[model]?.versions ?? {}));
  return new Set(k.redirect.keys());
}
