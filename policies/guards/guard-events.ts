/**
 * What the input guards report (policies/guards/): each guard's verdict per model and version, to
 * the metrics (gateway/telemetry/metrics.ts) and to this replica's per-version figures shown by
 * `GET /admin/models/{m}`. Counted by the guard itself, as it decides, so a refusal (which ends the
 * request with an error) is counted like a pass.
 */
import type { GuardName } from '../../gateway/config.js';

/**
 * pass: judged and passed; flag/reject/route: fired in that mode; error: the guard threw or timed
 * out (served, or refused when failClosed); skipped: not sampled (squeeze) or no payload kept
 * (extraction for a caller opted out of tracking); throttle/coarsen/deny: extraction's responses.
 */
export type GuardOutcome = 'pass' | 'flag' | 'reject' | 'route' | 'error' | 'skipped' | 'throttle' | 'coarsen' | 'deny';

export interface GuardEvents {
  outcome(model: string, version: string, guard: GuardName, outcome: GuardOutcome): void;
}

/** Per version, per guard, per outcome: how many requests. */
export type GuardCounts = Record<string, Partial<Record<GuardOutcome, number>>>;

/** This replica's counts, for the admin view; forwards each event to `next` (the metrics). */
export class GuardFigures implements GuardEvents {
  readonly #counts = new Map<string, Map<string, GuardCounts>>();
  readonly #next: GuardEvents | undefined;

  constructor(next?: GuardEvents) {
    this.#next = next;
  }

  outcome(model: string, version: string, guard: GuardName, outcome: GuardOutcome): void {
    let versions = this.#counts.get(model);
    if (versions === undefined) this.#counts.set(model, (versions = new Map()));
    let counts = versions.get(version);
    if (counts === undefined) versions.set(version, (counts = {}));
    const byOutcome = (counts[guard] ??= {});
    byOutcome[outcome] = (byOutcome[outcome] ?? 0) + 1;
    this.#next?.outcome(model, version, guard, outcome);
  }

  /** A model's counts by version (empty when no guard has judged it on this replica). */
  of(model: string): Record<string, GuardCounts> {
    return Object.fromEntries(this.#counts.get(model) ?? []);
  }

  /** Forgets models that are no longer served (after a reload). */
  retain(models: ReadonlySet<string> | Iterable<string>): void {
    const keep = new Set(models);
    for (const m of this.#counts.keys()) if (!keep.has(m)) this.#counts.delete(m);
  }
}
