/**
 * The extraction detector without a store, on a clock the caller gives: the same signals
 * (extraction-signals.ts), windows and flag rule (extraction-rule.ts) as the gateway's monitor
 * (extraction-monitor.ts), for replaying a trace of queries with simulated time (the evaluation,
 * `npm run eval:guards`) and for tests. One process, one "replica": every row of a subject is seen
 * here, so the verdict after each call is what the merged counts would give a monitor at once.
 */
import { isFlagged, judge, nullRates, UNFLAGGED, DEFAULT_RULE, type NullRates, type RuleSettings, type Verdict } from './extraction-rule.js';
import { QueryTrace, SignalCounts, type ExtractionSignals } from './extraction-signals.js';

/** How evidence decays: counters are kept per window of `windowMs`, and the last `windows` count. */
export interface WindowSettings {
  readonly windowMs: number;
  readonly windows: number;
}

interface WindowCounts {
  readonly window: number;
  readonly counts: SignalCounts;
  readonly cells: Map<number, number>;
}

interface Replayed {
  trace: QueryTrace | undefined;
  /** Oldest first, the live windows that had rows. */
  windows: WindowCounts[];
}

export class ExtractionDetector<R> {
  readonly #signals: ExtractionSignals<R>;
  readonly #win: WindowSettings;
  readonly #rule: RuleSettings;
  readonly #nulls: NullRates;
  readonly #subjects = new Map<string, Replayed>();
  readonly #total = new SignalCounts();

  constructor(signals: ExtractionSignals<R>, windows: WindowSettings, rule: RuleSettings = DEFAULT_RULE) {
    this.#signals = signals;
    this.#win = windows;
    this.#rule = rule;
    this.#nulls = nullRates(signals.settings, rule);
  }

  /** Records the subject's rows at `nowMs` (non-decreasing per subject); true when it is flagged after them. */
  observe(subject: string, rows: readonly R[], nowMs: number): boolean {
    const s = this.#subject(subject);
    const w = this.#window(s, nowMs);
    s.trace ??= new QueryTrace(this.#signals.settings.columns);
    s.trace.recordRows(this.#signals, rows, w.counts, w.cells);
    return this.#judge(s);
  }

  /** Rows of a caller opted out of tracking: counted; nothing derived from them kept, its recent queries dropped. */
  observeCounts(subject: string, rows: number, nowMs: number): boolean {
    const s = this.#subject(subject);
    s.trace = undefined;
    const w = this.#window(s, nowMs);
    w.counts.rows += rows;
    w.counts.untracked += rows;
    return this.#judge(s);
  }

  /** The subject's verdict over the windows live at `nowMs`. */
  status(subject: string, nowMs: number): Verdict {
    const s = this.#subjects.get(subject);
    if (s === undefined) return UNFLAGGED;
    this.#expire(s, Math.floor(nowMs / this.#win.windowMs));
    const cells = new Set<number>();
    for (const w of s.windows) for (const id of w.cells.keys()) cells.add(id);
    this.#sum(s);
    this.#total.cells = cells.size;
    return judge(this.#total, this.#nulls, this.#rule);
  }

  /** Forgets the subject: unflagged, its counters and recent queries gone. */
  clear(subject: string): void {
    this.#subjects.delete(subject);
  }

  #subject(subject: string): Replayed {
    let s = this.#subjects.get(subject);
    if (s === undefined) {
      s = { trace: undefined, windows: [] };
      this.#subjects.set(subject, s);
    }
    return s;
  }

  #expire(s: Replayed, current: number): void {
    while (s.windows.length > 0 && s.windows[0].window <= current - this.#win.windows) s.windows.shift();
  }

  #window(s: Replayed, nowMs: number): WindowCounts {
    const current = Math.floor(nowMs / this.#win.windowMs);
    this.#expire(s, current);
    const last = s.windows.at(-1);
    if (last !== undefined && last.window === current) return last;
    const w = { window: current, counts: new SignalCounts(), cells: new Map<number, number>() };
    s.windows.push(w);
    return w;
  }

  #sum(s: Replayed): void {
    this.#total.clear();
    for (const w of s.windows) this.#total.add(w.counts);
  }

  #judge(s: Replayed): boolean {
    this.#sum(s);
    return isFlagged(this.#total, this.#nulls, this.#rule);
  }
}
