/** Who is calling, from a verified token. Nothing client-supplied becomes a principal unverified. */
export interface Principal {
  /** The token's `sub`. */
  readonly subject: string;
  /** From the configured tenant claim; undefined when the token carries none. */
  readonly tenant: string | undefined;
  /** From the one claim named by auth.scopeClaim (`scope`): space-separated, or an array. */
  readonly scopes: ReadonlySet<string>;
  /** `exp`, in ms since the epoch. */
  readonly expiresAt: number;
}

/** Scopes of the admin actions (kill switch, traffic, opt-outs, audit, guards, drift), fixed so tokens stay portable. */
export const ADMIN_SCOPES = {
  killSwitch: 'admin:kill-switch',
  traffic: 'admin:traffic',
  optOuts: 'admin:opt-outs',
  audit: 'admin:audit',
  guards: 'admin:guards',
  drift: 'admin:drift',
} as const;

/** The scope that lets a principal call (or read the metadata of) `model`. */
export function predictScope(model: string): string {
  return `predict:${model}`;
}

export function mayPredict(p: Principal, model: string): boolean {
  return p.scopes.has('predict:*') || p.scopes.has(predictScope(model));
}
