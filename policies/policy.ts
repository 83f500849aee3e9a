/**
 * The one interface every safety control implements (Envoy's filter chain is the model): a policy
 * looks at the request context and returns a decision; it never touches the reply. Policies run in
 * order and the first deny ends the request (policies/chain.ts). Evaluation is synchronous and
 * reads memory only: shared state reaches policies as local copies kept fresh in the background.
 */
import type { GatewayError } from '../gateway/errors.js';

export interface PolicyContext {
  /** The model asked for (exists: unknown models are rejected before the chain). */
  readonly model: string;
  /** The version the client pinned with /versions/{v}, if any. */
  readonly pinnedVersion: string | undefined;
  /** The model's stable version. */
  readonly stableVersion: string;
  /** Request headers, lower-cased (Node's IncomingHttpHeaders). */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

export type Decision =
  | { readonly kind: 'continue' }
  | { readonly kind: 'deny'; readonly error: GatewayError }
  /** Serve this version; `reason` is reported to the client (x-route-reason) and to the audit trail. */
  | { readonly kind: 'route'; readonly version: string; readonly reason: string };

export interface Policy {
  readonly name: string;
  evaluate(ctx: PolicyContext): Decision;
}

export const CONTINUE: Decision = Object.freeze({ kind: 'continue' });
