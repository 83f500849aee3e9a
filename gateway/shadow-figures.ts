/**
 * What a replica counts of one model's shadow copies (gateway/shadow.ts counts, the admin API shows
 * them as `GET /admin/models/{m}`'s shadow figures).
 */
import type { ShadowTarget } from '../policies/policy.js';

/**
 * This replica's figures for one model, since its shadow target (version or mode) last changed
 * here, or since the process started. `sent` copies end as agreed, disagreed, errors, timeouts or
 * (parallel mode, primary failed) skipped.primaryFailed. Never sent: `dropped`, skipped.optedOut,
 * skipped.primaryFailed in after mode, and errors before the call (shadow version not served or not
 * ready, request not valid for it). Latencies are means over the compared pairs (agreed +
 * disagreed), null before the first.
 */
export interface ShadowFigures {
  readonly version: string;
  readonly mode: ShadowTarget['mode'];
  /** When these figures started (ISO 8601). */
  readonly since: string;
  readonly inFlight: number;
  readonly sent: number;
  readonly agreed: number;
  readonly disagreed: number;
  readonly errors: number;
  readonly timeouts: number;
  /** Never sent for want of room or while suspended. */
  readonly dropped: number;
  /** Of `dropped`: while the breaker was open; and whether it is open now. */
  readonly suspended: number;
  readonly suspendedNow: boolean;
  readonly skipped: { readonly optedOut: number; readonly primaryFailed: number };
  readonly latencyMs: { readonly shadowMean: number | null; readonly primaryMean: number | null };
}

/** The running counts behind ShadowFigures, for one shadow target; a new target starts a new tally. */
export class ShadowTally {
  readonly since = new Date().toISOString();
  sent = 0;
  agreed = 0;
  disagreed = 0;
  errors = 0;
  timeouts = 0;
  dropped = 0;
  suspended = 0;
  optedOut = 0;
  primaryFailed = 0;
  /** Summed over the compared pairs, for the means. */
  shadowMs = 0;
  primaryMs = 0;

  constructor(
    readonly version: string,
    readonly mode: ShadowTarget['mode'],
  ) {}

  figures(inFlight: number, suspendedNow: boolean): ShadowFigures {
    const compared = this.agreed + this.disagreed;
    return {
      version: this.version,
      mode: this.mode,
      since: this.since,
      inFlight,
      sent: this.sent,
      agreed: this.agreed,
      disagreed: this.disagreed,
      errors: this.errors,
      timeouts: this.timeouts,
      dropped: this.dropped,
      suspended: this.suspended,
      suspendedNow,
      skipped: { optedOut: this.optedOut, primaryFailed: this.primaryFailed },
      latencyMs: {
        shadowMean: compared === 0 ? null : this.shadowMs / compared,
        primaryMean: compared === 0 ? null : this.primaryMs / compared,
      },
    };
  }
}
