/**
 * How the extraction signals (extraction-signals.ts) see a row of a model version: its OOD score and
 * its encoding, both from the version's profile (ood.ts, encoder.ts). One definition for the
 * gateway's monitors (gateway/extraction-watch.ts) and the evaluation's replay of traces
 * (eval/run-guards.ts), so the replay measures what the gateway would.
 */
import { encode } from './encoder.js';
import type { RowScorer } from './extraction-signals.js';
import type { RowValues } from './features.js';
import { oodScore } from './ood.js';
import type { Profile } from './profile.js';

/** Scores and encodes a row from the profile's own OOD model, into one buffer reused per call (per scorer). */
export function scorerOf(profile: Profile): RowScorer<RowValues> {
  const spec = profile.ood.encoder;
  const encoded = new Float64Array(spec.columns);
  const scored = { score: 0, encoded };
  return (row) => {
    encode(spec, row, encoded);
    scored.score = oodScore(profile.ood, row);
    return scored;
  };
}
