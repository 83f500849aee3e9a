import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AuditRecord } from './audit-record.js';
import { describeTrace, traceRequest } from './trace.js';
import { GENESIS, nextEntry, type TrailEntry, type TrailKind } from './trail-format.js';

/** Chains of three replicas, built entry by entry at given times. */
function chains(steps: readonly [replica: string, at: number, kind: TrailKind, body: unknown][]): Map<string, TrailEntry[]> {
  const out = new Map<string, TrailEntry[]>();
  for (const [replica, at, kind, body] of steps) {
    const list = out.get(replica) ?? [];
    const head = list.at(-1) ?? { seq: 0, hash: GENESIS };
    list.push(nextEntry(head, replica, kind, body, new Date(at).toISOString()));
    out.set(replica, list);
  }
  return out;
}

const rec = (action: string, actor: string, extra: Partial<AuditRecord> = {}): AuditRecord => ({
  format: 1, at: '', replica: '', actor, via: actor === 'breakwater' ? 'automatic' : 'admin:traffic', action, target: { kind: 'model', id: 'titanic' }, reason: `${action} because`, ...extra,
});
const decision = (requestId: string, version: string, reason: string) => ({ requestId, at: '', tenant: 't', subject: 'p', model: 'titanic', version, reason, status: 200, code: null, fault: null, ms: 1.2, rows: 1, optOuts: 0, guards: [], coarsened: false, input: 'a'.repeat(64), output: 'b'.repeat(64) });
const kill = (version: string) => ({ kill: { scope: 'version', model: 'titanic', version } });

test('a request served during a canary rollout, after a kill and a restore, traced from three replicas\' chains', () => {
  const c = chains([
    ['r1', 1000, 'config', { sha256: 'c1' }],
    ['r1', 1001, 'model', { model: 'titanic', version: '2', modelSha256: 'm2', artifacts: [] }],
    ['r2', 1000, 'config', { sha256: 'c1' }],
    ['r2', 2000, 'automatic', rec('rollout.start', 'po-paula', { after: { weight: 20 } })],
    ['r2', 2001, 'automatic', rec('traffic.set', 'breakwater', { after: { routes: [{ version: '1', weight: 80 }, { version: '2', weight: 20 }] } })],
    ['r3', 3000, 'admin', rec('kill.version', 'oncall-omar', { details: kill('2') })],
    ['r1', 3500, 'prediction', decision('during-kill', '1', 'kill-switch')],
    ['r3', 4000, 'admin', rec('kill.restore-version', 'oncall-omar', { details: kill('2') })],
    ['r2', 5000, 'automatic', rec('rollout.advance', 'breakwater', { after: { weight: 50 } })],
    ['r2', 5001, 'automatic', rec('traffic.set', 'breakwater', { after: { routes: [{ version: '1', weight: 50 }, { version: '2', weight: 50 }] } })],
    ['r1', 6000, 'prediction', decision('req-42', '2', 'canary')],
    ['r3', 7000, 'admin', rec('traffic.reset', 'po-paula')],
  ]);
  const t = traceRequest(c, 'req-42')!;
  assert.equal(t.decision.replica, 'r1');
  assert.equal(t.decision.body.reason, 'canary');
  assert.equal(t.config?.body.sha256, 'c1');
  assert.equal(t.version?.body.modelSha256, 'm2');
  assert.deepEqual((t.routes?.body.after as { routes: unknown }).routes, [{ version: '1', weight: 50 }, { version: '2', weight: 50 }], 'the routes in force at the time, not a later reset');
  assert.equal(t.rollout?.body.action, 'rollout.advance');
  assert.deepEqual(t.kills, [], 'the kill was restored before the request');
  assert.deepEqual(t.history.map((h) => `${h.replica}:${h.body.action}`), ['r2:rollout.start', 'r2:traffic.set', 'r3:kill.version', 'r3:kill.restore-version', 'r2:rollout.advance', 'r2:traffic.set'], 'from every replica, in order, none after the request');
  const during = traceRequest(c, 'during-kill')!;
  assert.deepEqual(during.kills.map((k) => k.body.actor), ['oncall-omar'], 'the kill in force then');
  const text = describeTrace(t);
  assert.match(text, /request req-42: titanic version 2 \(canary\)/);
  assert.match(text, /kill\.version by oncall-omar/);
  assert.equal(traceRequest(c, 'nope'), undefined);
});
