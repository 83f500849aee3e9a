/**
 * How a kill reads to a person, said once for every place that shows one: `breakwater kill` and
 * `kill status`, and the alert webhook's message. Takes the kill entry as the admin API describes it
 * (every field optional, since the CLI may read another gateway version's answer).
 */

/** A kill entry (KillEntry of the admin API), as far as a description needs it. */
export interface DescribedKill {
  readonly scope?: string;
  readonly model?: string;
  readonly version?: string;
  readonly mode?: string;
  readonly target?: string;
  readonly targets?: Readonly<Record<string, string>>;
}

/** A kill entry as the admin API answers it (KillEntry), every field optional: what the CLI and the alert read. */
export interface WireKillEntry extends DescribedKill {
  readonly by?: string;
  readonly at?: string;
  readonly reason?: string;
  readonly revision?: number;
}

/** `model titanic (mode rollback, target 1)`, `titanic version 3 (traffic to 1)`, `every model (mode deny)`. */
export function describeKill(e: DescribedKill): string {
  switch (e.scope) {
    case 'all': {
      const targets = e.targets === undefined ? [] : Object.entries(e.targets).map(([m, v]) => `${m} → ${v}`);
      return `every model (mode ${e.mode ?? '?'}${targets.length > 0 ? `: ${targets.join(', ')}` : ''})`;
    }
    case 'model':
      return `model ${e.model ?? '?'} (mode ${e.mode ?? '?'}${e.target === undefined ? '' : `, target ${e.target}`})`;
    case 'version':
      return `${e.model ?? '?'} version ${e.version ?? '?'}${e.target === undefined ? '' : ` (traffic to ${e.target})`}`;
    default:
      return JSON.stringify(e);
  }
}

/** The past tense of a change's action: `killed`, `restored`. */
export function actionVerb(action: string): string {
  return action === 'restore' ? 'restored' : action === 'kill' ? 'killed' : action;
}
