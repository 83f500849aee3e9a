/**
 * The webhook message of a drift status change (alerts.webhookUrl, gateway/alerts.ts): which model
 * version, from what to what, and the evidence — the features and outputs that moved, each with its
 * PSI, its status and the bin that moved most — so whoever reads the channel knows what shifted
 * without opening a dashboard.
 */
import { escapeMrkdwn, type SlackMessage } from '../alert-message.js';
import type { DriftFigure, DriftReport } from './monitor.js';
import type { DriftStatus } from './statistics.js';

/** Features listed in a message at most (the worst first). */
const LISTED = 10;
const SECTION_MAX = 3000;

const clip = (s: string, n: number): string => (s.length <= n ? s : `${s.slice(0, n - 1)}…`);
const share = (x: number): string => `${(100 * x).toFixed(1)} %`;

function evidence(f: DriftFigure): string {
  const top = f.top[0];
  const moved = top === undefined ? '' : `; most moved: ${escapeMrkdwn(top.bin)} ${share(top.reference)} → ${share(top.live)}`;
  return `${escapeMrkdwn(f.name)}: ${f.status}, PSI ${f.psi.toFixed(3)}, JS ${f.js.toFixed(3)}${moved}`;
}

export function driftAlertMessage(report: DriftReport, from: DriftStatus): SlackMessage {
  const target = `${escapeMrkdwn(report.model)} version ${escapeMrkdwn(report.version)}`;
  const moved = [...report.features, ...report.outputs]
    .filter((f) => f.status === 'drift' || f.status === 'warning')
    .sort((a, b) => b.psi - a.psi);
  const lines = moved.slice(0, LISTED).map(evidence);
  if (moved.length > LISTED) lines.push(`… and ${moved.length - LISTED} more`);
  const text = `Drift: ${target} is now ${report.status} (was ${from}) over the last ${report.window.samples} samples${lines.length > 0 ? `: ${lines.join('; ')}` : ''}.`;
  return {
    text: clip(text, SECTION_MAX),
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: clip(`Drift: ${report.model} v${report.version} ${from} → ${report.status}`, 150) } },
      {
        type: 'section',
        text: { type: 'mrkdwn', text: clip(`*Window:* ${report.window.samples} samples (${report.window.kind} ${report.window.size}, ${report.window.mode}) against the ${report.reference.kind} reference\n${lines.map((l) => `• ${l}`).join('\n') || 'no feature or output is drifting'}`, SECTION_MAX) },
      },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `evaluated ${escapeMrkdwn(report.evaluatedAt)} · GET /admin/models/${escapeMrkdwn(report.model)}/drift?version=${escapeMrkdwn(report.version)}` }] },
    ],
  };
}
