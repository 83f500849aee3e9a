/**
 * The message of a kill-switch alert, in the shape Slack's incoming webhooks take (and Mattermost,
 * Rocket.Chat and most chat tools accept): `text` for notifications and clients without blocks,
 * `blocks` for the channel. It says who, why, what, and how long each replica took to apply it, so
 * whoever reads the channel at 3 a.m. needs nothing else to know what happened.
 *
 * Everything a caller typed (reason, names) is escaped: in Slack's mrkdwn `<...>` makes links and
 * `<!channel>` pings a whole channel, so `&`, `<` and `>` are sent as entities, as Slack asks.
 */
import { actionVerb, describeKill, type WireKillEntry } from './kill-describe.js';

/** A kill or restore, as the alert reports it. */
export interface KillAlert {
  readonly action: 'kill' | 'restore';
  /** The kill entry made or lifted (KillEntry of the admin API). */
  readonly entry: WireKillEntry;
  readonly by: string;
  readonly reason: string;
  /** When the change was made (ISO 8601). */
  readonly at: string;
  /** The kill state's revision after the change. */
  readonly revision: number;
  /** Each live replica and how long it took to apply the change; null: not confirmed when the alert was made. */
  readonly replicas: readonly { readonly id: string; readonly applyMs: number | null }[];
}

export type SlackTextObject = { readonly type: 'plain_text' | 'mrkdwn'; readonly text: string };
export type SlackBlock =
  | { readonly type: 'header'; readonly text: SlackTextObject }
  | { readonly type: 'section'; readonly text: SlackTextObject }
  | { readonly type: 'context'; readonly elements: readonly SlackTextObject[] };

export interface SlackMessage {
  readonly text: string;
  readonly blocks: readonly SlackBlock[];
}

/** Slack's limits: a header's text 150 characters, a section's 3000. */
const HEADER_MAX = 150;
const SECTION_MAX = 3000;
const REASON_MAX = 500;
/** Replicas named one by one; a larger fleet is summarised (the unconfirmed ones first). */
const REPLICAS_LISTED = 20;

export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function applyTime(ms: number | null): string {
  return ms === null ? 'not confirmed' : `${Math.round(ms)} ms`;
}

/** `3 of 3 replicas applied it: a 12 ms, b 31 ms` with the unconfirmed ones named first. */
function replicaSummary(alert: KillAlert): { headline: string; lines: string[] } {
  const all = [...alert.replicas].sort((a, b) => Number(a.applyMs !== null) - Number(b.applyMs !== null) || (a.id < b.id ? -1 : 1));
  const applied = all.filter((r) => r.applyMs !== null).length;
  const headline = all.length === 0 ? 'no replica listed' : `${applied} of ${all.length} replicas applied it`;
  const lines = all.slice(0, REPLICAS_LISTED).map((r) => `${escapeMrkdwn(r.id)}: ${applyTime(r.applyMs)}`);
  if (all.length > REPLICAS_LISTED) lines.push(`… and ${all.length - REPLICAS_LISTED} more`);
  return { headline, lines };
}

/** The webhook body of one alert. */
export function alertMessage(alert: KillAlert): SlackMessage {
  const what = escapeMrkdwn(describeKill(alert.entry));
  const who = escapeMrkdwn(alert.by);
  const why = escapeMrkdwn(clip(alert.reason, REASON_MAX));
  const verb = actionVerb(alert.action);
  const replicas = replicaSummary(alert);
  const text = `Kill switch: ${who} ${verb} ${what} (revision ${alert.revision}). Why: ${why}. ${replicas.headline}${replicas.lines.length > 0 ? `: ${replicas.lines.join(', ')}` : ''}.`;
  return {
    text: clip(text, SECTION_MAX),
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: clip(`Kill switch: ${describeKill(alert.entry)} ${verb}`, HEADER_MAX) } },
      { type: 'section', text: { type: 'mrkdwn', text: clip(`*What:* ${what}\n*Who:* ${who}\n*Why:* ${why}`, SECTION_MAX) } },
      { type: 'section', text: { type: 'mrkdwn', text: clip(`*Replicas:* ${replicas.headline}\n${replicas.lines.map((l) => `• ${l}`).join('\n')}`, SECTION_MAX) } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `revision ${alert.revision} · ${escapeMrkdwn(alert.at)}` }] },
    ],
  };
}
