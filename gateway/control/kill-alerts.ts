/**
 * Tells people of every kill and restore (gateway/alerts.ts, `alerts.webhookUrl`), with what an
 * incident channel needs: who, why, what, and how long each replica took to apply it. Run by the
 * replica that took the change, in the background: the admin answer never waits for it.
 *
 * The apply times come from the fleet (gateway/control/fleet.ts): the alert waits until every live
 * replica reports the change's revision, or `waitMs` (2 s, as `breakwater kill` does); a replica
 * that has not reported by then is listed as not confirmed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Alerts } from '../alerts.js';
import type { Fleet } from './fleet.js';
import type { KillChange } from './kill-switch.js';

const POLL_MS = 50;

export function killAlerts(deps: { readonly alerts: Alerts; readonly fleet: Fleet; readonly log: Logger; readonly waitMs?: number }): (change: KillChange) => void {
  const waitMs = deps.waitMs ?? 2000;
  async function report(change: KillChange): Promise<void> {
    const at = Date.parse(change.at);
    const deadline = Date.now() + waitMs;
    let replicas: { id: string; applyMs: number | null }[] = [];
    for (;;) {
      try {
        const list = await deps.fleet.list();
        replicas = list.map((r) => ({
          id: r.id,
          applyMs: r.kill.revision >= change.revision && r.kill.appliedAt !== null ? Math.max(0, Date.parse(r.kill.appliedAt) - at) : null,
        }));
      } catch {
        // The store does not answer: the alert still goes, with what is known.
      }
      if ((replicas.length > 0 && replicas.every((r) => r.applyMs !== null)) || Date.now() >= deadline) break;
      await sleep(POLL_MS);
    }
    deps.alerts.send({ action: change.action, entry: change.kill, by: change.by, reason: change.reason, at: change.at, revision: change.revision, replicas });
  }
  return (change) => {
    report(change).catch((err: unknown) => deps.log.warn({ err }, 'kill switch: the alert could not be prepared'));
  };
}
