/**
 * The extraction part of the evaluation: a model's trace (eval/sets/README.md) replayed against the
 * extraction detector (policies/guards/extraction-detector.ts) with a simulated clock, each line at
 * its `t`, not sent through HTTP. The detector judges with the same signals, windows and flag rule
 * as the gateway's monitor; its signals come from the model's profile as the gateway builds them
 * (`signalSettings`, `scorerOf`), with the configuration's default windows. A row is a query: a
 * request of 8 rows is 8.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { guardsSchema } from '../../gateway/config-schema.js';
import { ExtractionDetector, type WindowSettings } from '../../policies/guards/extraction-detector.js';
import type { SignalName } from '../../policies/guards/extraction-rule.js';
import { scorerOf } from '../../policies/guards/extraction-scorer.js';
import { ExtractionSignals, signalSettings } from '../../policies/guards/extraction-signals.js';
import type { Profile } from '../../policies/guards/profile.js';
import { rowsOf, type ModelSpec } from './models.js';
import { readJsonLines, type Subjects, type TraceLine } from './sets.js';

const EXTRACTION_CONFIG = guardsSchema.properties.extraction.properties;
/** `models.<m>.guards.extraction.windowMs` and `.windows` as the configuration defaults them. */
export const DEFAULT_WINDOWS: WindowSettings = Object.freeze({ windowMs: EXTRACTION_CONFIG.windowMs.default, windows: EXTRACTION_CONFIG.windows.default });

/** One subject of a replayed trace. */
export interface SubjectOutcome {
  readonly subject: string;
  readonly role: 'benign' | 'attacker';
  readonly kind: string;
  /** Rows (queries) it sent in the whole trace. */
  readonly rows: number;
  /** Rows it had sent when first flagged; undefined: never flagged. */
  readonly flaggedAfter: number | undefined;
  /** The signals that fired when it was first flagged. */
  readonly signals: readonly SignalName[];
  /** The highest score (0..1, 1 fires) each signal reached over the trace: how close a caller came. */
  readonly peak: Readonly<Partial<Record<SignalName, number>>>;
}

type Replayed = { -readonly [K in 'rows' | 'flaggedAfter' | 'signals']: SubjectOutcome[K] } & { peak: Partial<Record<SignalName, number>> };

/** Replays `lines` (time order) against a fresh detector built from `profile`; one outcome per subject of `subjects`. */
export function replayTrace(profile: Profile, spec: ModelSpec, lines: readonly TraceLine[], subjects: Subjects, windows: WindowSettings = DEFAULT_WINDOWS): SubjectOutcome[] {
  const detector = new ExtractionDetector(new ExtractionSignals(signalSettings(profile), scorerOf(profile)), windows);
  const state = new Map<string, Replayed>();
  for (const name of Object.keys(subjects)) state.set(name, { rows: 0, flaggedAfter: undefined, signals: [], peak: {} });
  for (const line of lines) {
    const s = state.get(line.subject);
    if (s === undefined) throw new Error(`the trace has subject ${line.subject}, which the subjects file does not list`);
    const rows = rowsOf(spec, line.request);
    s.rows += rows.length;
    const flagged = detector.observe(line.subject, rows, line.t);
    const verdict = detector.status(line.subject, line.t);
    for (const [name, score] of Object.entries(verdict.scores) as [SignalName, number][]) s.peak[name] = Math.max(s.peak[name] ?? 0, score);
    if (flagged && s.flaggedAfter === undefined) {
      s.flaggedAfter = s.rows;
      s.signals = verdict.signals;
    }
  }
  return Object.entries(subjects).map(([subject, { role, kind }]) => {
    const s = state.get(subject) as Replayed;
    return { subject, role, kind, ...s };
  });
}

/** A model's trace and subjects from `<dir>/extraction/` (eval/sets/README.md); undefined when it has no trace. */
export function readTrace(dir: string, model: string): { lines: TraceLine[]; subjects: Subjects } | undefined {
  const trace = [`${model}.trace.jsonl.gz`, `${model}.trace.jsonl`].map((f) => join(dir, 'extraction', f)).find((p) => existsSync(p));
  if (trace === undefined) return undefined;
  return { lines: readJsonLines<TraceLine>(trace), subjects: JSON.parse(readFileSync(join(dir, 'extraction', `${model}.subjects.json`), 'utf8')) as Subjects };
}
