/**
 * The on-call engineer's controls (scope admin:kill-switch), docs/kill-switch.md:
 *   POST   /admin/models/{m}/kill                {mode?: rollback|deny, target?, reason}
 *   DELETE /admin/models/{m}/kill                {reason}
 *   POST   /admin/models/{m}/versions/{v}/kill   {target?, reason}
 *   DELETE /admin/models/{m}/versions/{v}/kill   {reason}
 *   POST   /admin/kill                           {mode: deny|rollback, reason}   every model at once
 *   DELETE /admin/kill                           {reason}
 *   GET    /admin/kill                           the kills in force, and what every live replica applied
 *   GET    /admin/fleet                          the live replicas
 * A change answers once it is stored, applied on this replica and announced, with the kill state's
 * revision; each replica's fleet record then says when it applied it (`breakwater kill` waits on
 * that). Every change is one record of the audit log, and shows in the model's history.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ADMIN_SCOPES } from '../../policies/principal.js';
import type { AuditLog, AuditReceipt } from '../audit/audit-log.js';
import type { Fleet, ReplicaRecord } from '../control/fleet.js';
import type { KillMode } from '../control/kill-state.js';
import type { KillChange, KillSwitch } from '../control/kill-switch.js';
import { clip, GatewayError } from '../errors.js';
import { storeUnavailable } from '../state/mirrored-scope.js';
import type { CallerGuard, ServerFeature } from './admin.js';
import { callerOf, jsonBody, onlyFields, reasonOf } from './admin-request.js';

export interface KillFeatureDeps {
  readonly kill: KillSwitch;
  readonly fleet: Fleet;
  readonly audit: AuditLog;
  /** Told of every change once it is made (alerts); must not throw or block. */
  readonly onChange?: (change: KillChange) => void;
}

interface ModelParams { name: string }
interface VersionParams { name: string; version: string }

function modeOf(body: Record<string, unknown>, fallback: KillMode | undefined): KillMode {
  const m = body.mode;
  if (m === undefined && fallback !== undefined) return fallback;
  if (m !== 'rollback' && m !== 'deny') throw new GatewayError('BAD_REQUEST', '"mode" must be "rollback" or "deny"');
  return m;
}

function targetOf(body: Record<string, unknown>): string | undefined {
  const t = body.target;
  if (t === undefined) return undefined;
  if (typeof t !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(t)) throw new GatewayError('BAD_REQUEST', '"target" must be a version name');
  return t;
}

async function liveReplicas(fleet: Fleet): Promise<ReplicaRecord[]> {
  try {
    return await fleet.list();
  } catch (e) {
    throw storeUnavailable(e);
  }
}

/** GET /admin/fleet: there whether or not the kill switch is on (its scope still guards it). */
export function fleetFeature(deps: { readonly fleet: Fleet }): ServerFeature {
  return {
    admin(admin: FastifyInstance, guard: CallerGuard) {
      admin.get('/fleet', { preHandler: guard.require(ADMIN_SCOPES.killSwitch) }, async function showFleet() {
        return { replicas: await liveReplicas(deps.fleet) };
      });
    },
  };
}

export function killFeature(deps: KillFeatureDeps): ServerFeature {
  const { kill, fleet, audit } = deps;

  async function recorded(change: KillChange, request: FastifyRequest, reply: FastifyReply): Promise<KillChange & { audit: AuditReceipt }> {
    const k = change.kill;
    const receipt = await audit.record({
      actor: change.by,
      via: ADMIN_SCOPES.killSwitch,
      action: `kill.${change.action === 'kill' ? k.scope : `restore-${k.scope}`}`,
      target: k.scope === 'all' ? { kind: 'gateway', id: '*' } : { kind: 'model', id: k.model as string },
      revision: change.revision,
      before: change.before,
      after: change.after,
      reason: change.reason,
      details: { kill: k, replica: fleet.id },
    });
    reply.header('x-kill-revision', String(change.revision));
    try {
      deps.onChange?.(change);
    } catch (err) {
      request.log.warn({ err }, 'kill switch: a change listener failed');
    }
    return { ...change, audit: receipt };
  }

  const replicas = () => liveReplicas(fleet);

  return {
    admin(admin: FastifyInstance, guard: CallerGuard) {
      const allowed = { preHandler: guard.require(ADMIN_SCOPES.killSwitch) };

      admin.get('/kill', allowed, async function showKills() {
        const state = kill.state;
        return { revision: state.revision, stale: kill.stale, kills: state.kills, replicas: await replicas() };
      });

      admin.post('/kill', allowed, async function killAll(request, reply) {
        const body = jsonBody(request);
        onlyFields(body, ['mode', 'reason']);
        const reason = reasonOf(body, true);
        const mode = modeOf(body, undefined);
        return recorded(await kill.kill({ scope: 'all', mode }, callerOf(request).subject, reason), request, reply);
      });

      admin.delete('/kill', allowed, async function restoreAll(request, reply) {
        const body = jsonBody(request);
        onlyFields(body, ['reason']);
        return recorded(await kill.restore('all', undefined, undefined, callerOf(request).subject, reasonOf(body, true)), request, reply);
      });

      admin.post<{ Params: ModelParams }>('/models/:name/kill', allowed, async function killModel(request, reply) {
        const body = jsonBody(request);
        onlyFields(body, ['mode', 'target', 'reason']);
        const reason = reasonOf(body, true);
        const mode = modeOf(body, 'rollback');
        const target = targetOf(body);
        if (mode === 'deny' && target !== undefined) throw new GatewayError('BAD_REQUEST', '"target" goes with "mode": "rollback" only');
        return recorded(await kill.kill({ scope: 'model', model: request.params.name, mode, target }, callerOf(request).subject, reason), request, reply);
      });

      admin.delete<{ Params: ModelParams }>('/models/:name/kill', allowed, async function restoreModel(request, reply) {
        const body = jsonBody(request);
        onlyFields(body, ['reason']);
        return recorded(await kill.restore('model', request.params.name, undefined, callerOf(request).subject, reasonOf(body, true)), request, reply);
      });

      admin.post<{ Params: VersionParams }>('/models/:name/versions/:version/kill', allowed, async function killVersion(request, reply) {
        const body = jsonBody(request);
        onlyFields(body, ['target', 'reason']);
        const reason = reasonOf(body, true);
        const { name, version } = request.params;
        const target = targetOf(body);
        if (target === version) throw new GatewayError('BAD_REQUEST', `"target" must be another version than ${clip(version)}`);
        return recorded(await kill.kill({ scope: 'version', model: name, version, mode: 'rollback', target }, callerOf(request).subject, reason), request, reply);
      });

      admin.delete<{ Params: VersionParams }>('/models/:name/versions/:version/kill', allowed, async function restoreVersion(request, reply) {
        const body = jsonBody(request);
        onlyFields(body, ['reason']);
        const { name, version } = request.params;
        return recorded(await kill.restore('version', name, version, callerOf(request).subject, reasonOf(body, true)), request, reply);
      });
    },
  };
}
