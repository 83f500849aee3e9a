/**
 * The one format of an audit record (format 1). Every part that records anything writes this shape
 * through the one writer (audit-log.ts): who (actor, and the scope or route that let them), did
 * what (action), to what (target), when, on which replica, why (reason), and what it changed
 * (before, after, the record's new revision). Actions are `<area>.<verb>`: traffic.set,
 * traffic.reset, opt-outs.set, opt-outs.clear, subject.erase (and the kill switch, guards and
 * rollouts to come).
 */
import { createHash } from 'node:crypto';

export type AuditTargetKind = 'model' | 'subject' | 'gateway';

export interface AuditRecord {
  readonly format: 1;
  /** When the action was taken (ISO 8601, the acting replica's clock). */
  readonly at: string;
  /** hostname:pid of the replica that took it. */
  readonly replica: string;
  /** The caller's subject, or `breakwater` for what the gateway does by itself. */
  readonly actor: string;
  /** What allowed it: the admin scope used, `self` (a subject's own route), or `automatic`. */
  readonly via: string;
  readonly action: string;
  readonly target: { readonly kind: AuditTargetKind; readonly id: string };
  /** The changed record's revision after the change (compare-and-set; If-Match takes it). */
  readonly revision?: number;
  readonly before?: unknown;
  readonly after?: unknown;
  readonly reason?: string;
  /** Anything else the action needs said (counts, the evidence of an automatic action…). */
  readonly details?: Readonly<Record<string, unknown>>;
  /** Set when before/after were too large for one log entry: their SHA-256 stands in for them. */
  readonly digests?: { readonly before?: string; readonly after?: string };
}

/** What a caller gives; the writer adds format, time and replica. */
export type AuditInput = Omit<AuditRecord, 'format' | 'at' | 'replica' | 'digests'>;

function sha256(v: unknown): string {
  return createHash('sha256').update(JSON.stringify(v) ?? 'undefined').digest('hex');
}

/**
 * The record as it fits one log entry (`maxBytes` of JSON): a traffic table with dozens of rules
 * can be larger, and then its before/after are replaced by their SHA-256 (the live routes and the
 * configuration file still hold them). Whatever is left out is said, never silently cut.
 */
export function fitRecord(r: AuditRecord, maxBytes: number): AuditRecord {
  if (Buffer.byteLength(JSON.stringify(r)) <= maxBytes) return r;
  const { before, after, ...rest } = r;
  const digested: AuditRecord = { ...rest, digests: { before: sha256(before), after: sha256(after) } };
  if (Buffer.byteLength(JSON.stringify(digested)) <= maxBytes) return digested;
  // Only a reason or details of kilobytes get here: keep who, what, when and the digests.
  const { reason, details, ...bare } = digested;
  return { ...bare, digests: { ...digested.digests }, details: { truncated: true, reasonSha256: sha256(reason), detailsSha256: sha256(details) } };
}
