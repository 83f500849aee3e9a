/**
 * The webhook message of a rollout decision a person should hear of (alerts.webhookUrl): an abort
 * with the criteria that failed and their figures, a promotion, a pause for want of traffic or
 * because someone else changed the routes. Caller-typed text is escaped (alert-message.ts).
 */
import { escapeMrkdwn, type SlackMessage } from '../alert-message.js';
import type { CriterionResult } from './criteria.js';
import type { RolloutDecision, RolloutRecord } from './record.js';

const SECTION_MAX = 3000;
const clip = (s: string, n: number): string => (s.length <= n ? s : `${s.slice(0, n - 1)}…`);

function line(c: CriterionResult): string {
  return `${c.criterion}: ${c.verdict} (canary ${String(c.canary)}, stable ${String(c.stable)}; ${escapeMrkdwn(c.limit)}) ${escapeMrkdwn(c.detail)}`;
}

export function rolloutAlertMessage(r: RolloutRecord, d: RolloutDecision): SlackMessage {
  const target = `${escapeMrkdwn(r.model)} version ${escapeMrkdwn(r.canary)}`;
  const verb = d.action === 'abort' ? 'aborted' : d.action === 'promote' ? 'promoted' : d.action === 'pause' ? 'paused' : d.action;
  const failed = (d.evidence ?? []).filter((c) => c.verdict === 'fail');
  const shown = failed.length > 0 ? failed : d.evidence ?? [];
  const text = `Rollout of ${target} ${verb} at ${d.weightBefore} % (step ${d.step + 1} of ${r.spec.steps.length}) by ${escapeMrkdwn(d.by)}: ${escapeMrkdwn(d.reason)}.${d.killed === true ? ' The canary was also stopped by the kill switch.' : ''}${failed.length > 0 ? ` ${failed.map(line).join('; ')}` : ''}`;
  return {
    text: clip(text, SECTION_MAX),
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: clip(`Rollout ${verb}: ${r.model} v${r.canary} (stable v${r.stable})`, 150) } },
      { type: 'section', text: { type: 'mrkdwn', text: clip(`*Why:* ${escapeMrkdwn(d.reason)}\n*Weight:* ${d.weightBefore} % → ${d.weightAfter} %${d.killed === true ? ' · the canary is stopped (kill switch, rollback to stable)' : ''}\n${shown.map((c) => `• ${line(c)}`).join('\n')}`, SECTION_MAX) } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `rollout ${escapeMrkdwn(r.id)} · GET /admin/models/${escapeMrkdwn(r.model)}/rollout` }] },
    ],
  };
}
