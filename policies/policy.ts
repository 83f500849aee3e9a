/**
 * The one interface every safety control implements (Envoy's filter chain is the model): a policy
 * looks at the request context and returns a decision; it never touches the reply. Policies run in
 * order within their phase and the first deny ends the request (policies/chain.ts).
 *
 * Two phases: `request` policies run before the body is read (identity, authorization, routing:
 * an unauthenticated client never gets to upload a body), `payload` policies after the body has
 * been parsed and checked against the model (quotas charged by rows, input guards).
 *
 * Evaluation should read memory only (shared state reaches policies as local copies kept fresh in
 * the background); a policy that must ask a shared store (an exact quota) returns a promise.
 */
import type { InferRequest, ModelMetadata } from '../adapters/adapter.js';
import type { ModelConfig } from '../gateway/config.js';
import type { GatewayError } from '../gateway/errors.js';
import type { Principal } from './principal.js';

export type PolicyPhase = 'request' | 'payload';
/** What the request asks for: an inference, or model metadata and readiness. */
export type PolicyAction = 'infer' | 'metadata';

/**
 * What a policy sees of a served model version (adapters/registry.ts ServedVersion is one): facts
 * read from the model table the request holds, never copied into a policy's own tables, so a
 * reload changes them for every policy at once.
 */
export interface VersionView {
  readonly version: string;
  /** Undefined until the backend has answered once (a remote backend still starting). */
  readonly metadata: ModelMetadata | undefined;
  /**
   * Per-version artefacts (a reference profile, …) by name, loaded with the model table and swapped
   * with it on reload (adapters/registry.ts ArtifactLoader).
   */
  readonly artifacts: ReadonlyMap<string, unknown>;
}

/** What a policy sees of a served model (adapters/registry.ts ServedModel is one). */
export interface ModelView {
  readonly name: string;
  readonly config: ModelConfig;
  readonly stable: VersionView;
  readonly versions: ReadonlyMap<string, VersionView>;
}

/**
 * Notes policies leave on a request for the observers and headers (a guard's verdict in
 * monitor-only mode, …). Each control adds its own fields by declaration merging:
 *   declare module '../policies/policy.js' { interface Annotations { guard?: GuardVerdict } }
 * so every note is typed where it is read.
 */
export interface Annotations {}

export interface PolicyContext {
  /** The model asked for; it may not exist (identity is checked before existence). */
  readonly model: string;
  /** The model as the table this request holds serves it; undefined for an unknown model. */
  readonly served: ModelView | undefined;
  readonly action: PolicyAction;
  /** The version the client pinned with /versions/{v}, if any. */
  readonly pinnedVersion: string | undefined;
  /** Request headers, lower-cased (Node's IncomingHttpHeaders). */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly requestId: string;
  /**
   * The client's address (Fastify's request.ip: the socket's peer, or with server.trustProxy the
   * address the trusted proxies name), read only when a control needs it; undefined off HTTP.
   */
  readonly peer: Peer | undefined;
  /** Set by the authentication policy's decision; undefined without authentication. */
  principal: Principal | undefined;
  /** The version the request phase routed to: payload phase only. */
  version: VersionView | undefined;
  /** The parsed, validated request: payload phase only. */
  request: InferRequest | undefined;
  /** Rows the request asks to infer (the batch dimension): payload phase only. */
  rows: number;
}

/** Where a request came from; the Fastify request is one (its `ip` is read lazily, by a getter). */
export interface Peer {
  readonly ip: string;
}

/** Opt-out kinds as bits (policies/opt-out.ts): what a subject asked to be left out of. */
export const OPT_OUT = Object.freeze({
  /** Stable version only: never a canary, an A/B arm, a rule's version or a shadow copy. */
  experiments: 1,
  /** Served, but nothing derived from the payload is kept (logs, shadow, drift samples, records). */
  tracking: 2,
  /** Never answered by the model alone: the fallback version, or HUMAN_DECISION_REQUIRED. */
  automatedDecision: 4,
});
export type OptOutKind = keyof typeof OPT_OUT;
/** Bits that keep a request from being mirrored: no shadow copy, whatever a later route decision says. */
export const NO_SHADOW = OPT_OUT.experiments | OPT_OUT.tracking;

/** A copy of the request to send to another version and discard (traffic.shadow). */
export interface ShadowTarget {
  readonly version: string;
  readonly mode: 'after' | 'parallel';
  readonly timeoutMs: number;
  readonly maxConcurrent: number;
  /** Failed copies in a row before copies are suspended for a cool-down (0: never). */
  readonly suspendAfter: number;
}

/** What a passing policy may add: response headers, a principal, and work for when the request ends. */
export interface Continue {
  readonly kind: 'continue';
  readonly headers?: Readonly<Record<string, string>>;
  /** Only the authentication policy sets this. */
  readonly principal?: Principal;
  /** Runs once the request has ended, however it ended (e.g. returns a concurrency lease). */
  readonly release?: () => void;
  /** OPT_OUT bits of the caller (only the opt-out policy sets these); OR-ed into the outcome. */
  readonly optOuts?: number;
  /** Notes for the observers, merged into the outcome's. */
  readonly annotations?: Partial<Annotations>;
}

export type Decision =
  | Continue
  | { readonly kind: 'deny'; readonly error: GatewayError; readonly headers?: Readonly<Record<string, string>> }
  /**
   * Serve this version; `reason` is reported to the client (x-route-reason) and to the audit trail.
   * `shadow` mirrors the request; a later route decision replaces it (an opt-out clears it).
   * `optOuts` as on Continue (the opt-out policy routes and reports the caller's bits at once).
   */
  | { readonly kind: 'route'; readonly version: string; readonly reason: string; readonly shadow?: ShadowTarget; readonly optOuts?: number; readonly annotations?: Partial<Annotations> };

/**
 * Where the request stands after the policies before this one (the chain's outcome, read-only):
 * what a control that overrides routing (the kill switch) must see. Most policies ignore it.
 */
export interface Routed {
  readonly version: string;
  readonly reason: string;
  readonly shadow: ShadowTarget | undefined;
  readonly optOuts: number;
}

export interface Policy {
  readonly name: string;
  readonly phase: PolicyPhase;
  evaluate(ctx: PolicyContext, routed?: Routed): Decision | Promise<Decision>;
}

export const CONTINUE: Decision = Object.freeze({ kind: 'continue' });

/** The fields a request brings; the rest starts empty and is filled by the phases. */
export interface ContextInit {
  readonly model: string;
  readonly served: ModelView | undefined;
  readonly action: PolicyAction;
  readonly pinnedVersion?: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly requestId: string;
  readonly peer?: Peer;
}

/** A fresh context, always of the same shape (one hidden class on the request path). */
export function newContext(init: ContextInit): PolicyContext {
  return {
    model: init.model,
    served: init.served,
    action: init.action,
    pinnedVersion: init.pinnedVersion,
    headers: init.headers,
    requestId: init.requestId,
    peer: init.peer,
    principal: undefined,
    version: undefined,
    request: undefined,
    rows: 0,
  };
}
