/**
 * Walking back from a prediction (docs/audit.md): given every replica's chain, the decision record
 * of one request and the state that produced it, in words an auditor can follow:
 *
 * - the decision: which replica and version served it, why (route reason), each control's outcome
 *   (guards, opt-out bits, coarsening), status, digests;
 * - the configuration in force on that replica (its last `config` record before the request) and
 *   the served version's artefacts (its last `model` record: model file and profile SHA-256);
 * - the changes that led to the state the request met, from every replica's chain, in time order:
 *   who set the model's routes, which rollout step was in force, who killed and who restored, the
 *   drift status changes, with their reasons and evidence — each with its replica and sequence
 *   number, so it can be checked against the chain.
 *
 * Pure: the caller reads the chains (trail-sink.ts readTrail) and, ideally, verifies them first.
 */
import type { AuditRecord } from './audit-record.js';
import type { DecisionRecord } from './decisions.js';
import type { TrailEntry } from './trail-format.js';

/** Where an entry is in the trail. */
export interface Located<T> {
  readonly replica: string;
  readonly seq: number;
  readonly at: string;
  readonly body: T;
}

export interface RequestTrace {
  readonly requestId: string;
  readonly decision: Located<DecisionRecord>;
  readonly config: Located<{ sha256: string }> | null;
  readonly version: Located<{ model: string; version: string; modelSha256: string | null; artifacts: unknown }> | null;
  /** The model's routes in force when the request was served (the last routes change before it). */
  readonly routes: Located<AuditRecord> | null;
  /** The last rollout decision on the model before the request, and the kills in force then. */
  readonly rollout: Located<AuditRecord> | null;
  readonly kills: readonly Located<AuditRecord>[];
  /** Every change of the model (or of every model) up to the request, oldest first. */
  readonly history: readonly Located<AuditRecord>[];
}

const located = <T>(e: TrailEntry): Located<T> => ({ replica: e.replica, seq: e.seq, at: e.at, body: e.body as T });

function concerns(r: AuditRecord, model: string): boolean {
  return (r.target.kind === 'model' && r.target.id === model) || (r.target.kind === 'gateway' && r.action.startsWith('kill.'));
}

/** The trace of `requestId`, or undefined when no chain holds its decision record. */
export function traceRequest(chains: ReadonlyMap<string, readonly TrailEntry[]>, requestId: string): RequestTrace | undefined {
  let decision: TrailEntry | undefined;
  for (const list of chains.values()) {
    decision = list.find((e) => e.kind === 'prediction' && (e.body as DecisionRecord).requestId === requestId);
    if (decision !== undefined) break;
  }
  if (decision === undefined) return undefined;
  const d = decision.body as DecisionRecord;
  const when = Date.parse(decision.at);
  const own = chains.get(decision.replica) ?? [];
  const before = own.filter((e) => e.seq < (decision as TrailEntry).seq);
  const config = before.filter((e) => e.kind === 'config').at(-1);
  const version = before.filter((e) => e.kind === 'model' && (e.body as { model: string; version: string }).model === d.model && (e.body as { version: string }).version === d.version).at(-1);
  // Changes come from every replica's chain; they are ordered by time (each replica's clock).
  const changes = [...chains.values()].flat()
    .filter((e) => (e.kind === 'admin' || e.kind === 'automatic') && Date.parse(e.at) <= when && concerns(e.body as AuditRecord, d.model))
    .sort((a, b) => Date.parse(a.at) - Date.parse(b.at) || (a.replica < b.replica ? -1 : 1) || a.seq - b.seq)
    .map((e) => located<AuditRecord>(e));
  const routes = changes.filter((c) => c.body.action.startsWith('traffic.')).at(-1) ?? null;
  const rollout = changes.filter((c) => c.body.action.startsWith('rollout.')).at(-1) ?? null;
  // Kills in force: each kill not restored before the request.
  const kills: Located<AuditRecord>[] = [];
  for (const c of changes) {
    if (c.body.action.startsWith('kill.restore')) kills.splice(0, kills.length, ...kills.filter((k) => !restores(c.body, k.body)));
    else if (c.body.action.startsWith('kill.')) kills.push(c);
  }
  return {
    requestId,
    decision: located<DecisionRecord>(decision),
    config: config === undefined ? null : located(config),
    version: version === undefined ? null : located(version),
    routes,
    rollout,
    kills,
    history: changes,
  };
}

/** Whether a restore lifts a kill: the same kill entry's scope, model and version (details.kill). */
function restores(restore: AuditRecord, kill: AuditRecord): boolean {
  const k = (r: AuditRecord) => (r.details as { kill?: { scope?: string; model?: string; version?: string } } | undefined)?.kill;
  const a = k(restore);
  const b = k(kill);
  return a !== undefined && b !== undefined && a.scope === b.scope && a.model === b.model && a.version === b.version;
}

/** The trace in words, one line per step (what `breakwater audit trace` prints). */
export function describeTrace(t: RequestTrace): string {
  const d = t.decision.body;
  const at = (l: Located<unknown>) => `${l.at} ${l.replica}#${l.seq}`;
  const lines = [
    `request ${t.requestId}: ${d.model} version ${d.version} (${d.reason}), status ${d.status}${d.code === null ? '' : ` ${d.code}`}, ${d.ms} ms, ${d.rows} row(s); served by ${t.decision.replica} at ${d.at} (record #${t.decision.seq})`,
    `  subject ${d.subject ?? 'anonymous'}${d.tenant === null ? '' : ` of tenant ${d.tenant}`}; guards fired: ${d.guards.length === 0 ? 'none' : d.guards.join(', ')}; opt-out bits ${d.optOuts}${d.coarsened ? '; answer coarsened' : ''}`,
    `  input sha256 ${d.input ?? '(not kept: opted out of tracking)'}; output sha256 ${d.output ?? '(none)'}`,
    `  configuration ${t.config === null ? 'unknown' : `${t.config.body.sha256} (${at(t.config)})`}`,
    `  version ${d.version}: ${t.version === null ? 'not recorded' : `model file ${t.version.body.modelSha256 ?? '(remote backend)'}, artefacts ${JSON.stringify(t.version.body.artifacts)} (${at(t.version)})`}`,
    `  routes in force: ${t.routes === null ? 'the configuration file\'s' : `${JSON.stringify((t.routes.body.after as { routes?: unknown } | null)?.routes ?? t.routes.body.after)} set by ${t.routes.body.actor} (${t.routes.body.reason ?? ''}) at ${at(t.routes)}`}`,
    `  rollout: ${t.rollout === null ? 'none' : `${t.rollout.body.action} by ${t.rollout.body.actor}: ${t.rollout.body.reason ?? ''} (${at(t.rollout)})`}`,
    `  kills in force: ${t.kills.length === 0 ? 'none' : t.kills.map((k) => `${k.body.action} by ${k.body.actor}: ${k.body.reason ?? ''} (${at(k)})`).join('; ')}`,
    '  the changes that led here, oldest first:',
    ...t.history.map((c) => `    ${at(c)} ${c.body.action} by ${c.body.actor} via ${c.body.via}: ${c.body.reason ?? ''}`),
  ];
  return `${lines.join('\n')}\n`;
}
