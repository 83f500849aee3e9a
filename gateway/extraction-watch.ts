/**
 * The extraction guard's monitors (policies/guards/extraction-monitor.ts), one per model version
 * whose model has `guards.extraction` on, each in its own store scope (`extraction:<model>:<version>`)
 * so every replica serving that version shares its counts. Kept in step with the model table: made
 * when a table with such a version is served, replaced when the version's profile changes, closed
 * when it goes. The guard policy reaches them through `ExtractionWatch` (memory only), the admin
 * routes through `ExtractionAdmin`.
 *
 * Throttling a flagged subject charges a per-subject, per-model counter of rows per minute in the
 * shared store (`charge`, like the quotas): only flagged subjects pay that call.
 */
import type { Verdict } from '../policies/guards/extraction-rule.js';
import type { Logger } from 'pino';
import { guardWarnings } from '../policies/guards/guard-log.js';
import { ExtractionMonitor } from '../policies/guards/extraction-monitor.js';
import { scorerOf } from '../policies/guards/extraction-scorer.js';
import { ExtractionSignals, signalSettings } from '../policies/guards/extraction-signals.js';
import type { RowValues } from '../policies/guards/features.js';
import type { ExtractionWatch } from '../policies/guards/input-guards.js';
import type { Profile } from '../policies/guards/profile.js';
import type { ModelTable } from '../adapters/registry.js';
import type { GatewayConfig } from './config.js';
import type { ExtractionAdmin } from './routes/admin-guards.js';
import type { StateStore } from './state/store.js';

interface Watched {
  readonly profile: Profile;
  readonly monitor: ExtractionMonitor<RowValues>;
}

const THROTTLE_WINDOW_MS = 60_000;

export class ExtractionWatchers implements ExtractionWatch, ExtractionAdmin {
  readonly #store: StateStore;
  readonly #warn: ReturnType<typeof guardWarnings>;
  readonly #watched = new Map<string, Watched>();

  constructor(store: StateStore, log: Logger) {
    this.#store = store;
    this.#warn = guardWarnings(log);
  }

  #onFlagged: ((model: string, version: string, subject: string, verdict: Verdict) => void) | undefined;

  /** Who hears of each subject this replica flags (the audit log); set once, after the monitors may have started. */
  set onFlagged(fn: (model: string, version: string, subject: string, verdict: Verdict) => void) {
    this.#onFlagged = fn;
  }

  /** Starts, replaces or closes monitors to match the table's versions and their profiles. */
  async follow(table: ModelTable, config: GatewayConfig): Promise<void> {
    const wanted = new Map<string, { model: string; version: string; profile: Profile }>();
    for (const sv of table.allVersions()) {
      const mode = config.models[sv.model]?.guards?.extraction?.mode;
      const profile = sv.artifacts.get('profile') as Profile | undefined;
      if (mode === undefined || mode === 'off' || profile === undefined) continue;
      wanted.set(`${sv.model}\0${sv.version}`, { model: sv.model, version: sv.version, profile });
    }
    const closing: Promise<void>[] = [];
    for (const [key, w] of this.#watched) {
      if (wanted.get(key)?.profile === w.profile) continue;
      this.#watched.delete(key);
      closing.push(w.monitor.close());
    }
    await Promise.all(closing);
    for (const [key, { model, version, profile }] of wanted) {
      if (this.#watched.has(key)) continue;
      const g = config.models[model]?.guards?.extraction;
      const monitor = await ExtractionMonitor.start<RowValues>({
        store: this.#store,
        scope: `extraction:${model}:${version}`,
        signals: new ExtractionSignals(signalSettings(profile), scorerOf(profile)),
        windowMs: g?.windowMs ?? 3_600_000,
        windows: g?.windows ?? 24,
        onFlagged: (subject, verdict) => this.#onFlagged?.(model, version, subject, verdict),
        onError: (e, during) => this.#warn(`${model}\0${during}`, { model, version, during, err: e }, 'extraction guard: a store call failed (counts may be late or lost; requests are not affected)'),
      });
      this.#watched.set(key, { profile, monitor });
    }
  }

  observe(model: string, version: string, profile: Profile, subject: string, rows: readonly RowValues[] | undefined, count: number): boolean {
    const w = this.#watched.get(`${model}\0${version}`);
    if (w === undefined || w.profile !== profile) return false;
    return rows === undefined ? w.monitor.observeCounts(subject, count) : w.monitor.observe(subject, rows);
  }

  async throttle(model: string, subject: string, rows: number, perMinute: number): Promise<{ allowed: boolean; retryAfterS: number }> {
    const r = await this.#store.charge(`extraction:${model}`, [{ key: `throttle:${subject}`, limit: perMinute, windowMs: THROTTLE_WINDOW_MS }], rows);
    return { allowed: r.allowed, retryAfterS: Math.max(1, Math.ceil((r.counters[0]?.resetMs ?? THROTTLE_WINDOW_MS) / 1000)) };
  }

  flagged(): unknown[] {
    const out: unknown[] = [];
    for (const [key, w] of this.#watched) {
      const [model, version] = key.split('\0');
      for (const f of w.monitor.flagged()) out.push({ model, version, ...f });
    }
    return out;
  }

  async clear(subject: string): Promise<{ cleared: number }> {
    const monitors = [...this.#watched.values()];
    await Promise.all(monitors.map((w) => w.monitor.clear(subject)));
    return { cleared: monitors.length };
  }

  async close(): Promise<void> {
    const all = [...this.#watched.values()];
    this.#watched.clear();
    await Promise.all(all.map((w) => w.monitor.close()));
  }
}
