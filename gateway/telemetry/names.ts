/**
 * Metric and attribute names: one spelling for the gateway, its policies, dashboards and tests.
 * Part of the shared kernel (policies may import it; it imports nothing).
 */

export const METER_NAME = 'breakwater';
export const METRIC = {
  requests: 'breakwater.infer.requests',
  errors: 'breakwater.infer.errors',
  duration: 'breakwater.infer.duration',
  reloads: 'breakwater.config.reloads',
  shadowRequests: 'breakwater.shadow.requests',
  shadowDuration: 'breakwater.shadow.duration',
  outputsDropped: 'breakwater.outputs.dropped',
  // Remote backends' guards (adapters/backend-guard.ts), per model and version of the table.
  backendInFlight: 'breakwater.backend.in_flight',
  backendQueueDepth: 'breakwater.backend.queue_depth',
  /** Calls refused before reaching the backend, by `reason` (queue_full, queue_timeout, breaker_open). */
  backendShed: 'breakwater.backend.shed',
  /** 0 closed, 1 half-open, 2 open. */
  backendBreakerState: 'breakwater.backend.breaker_state',
  /** Changes of a breaker's state, by the `state` it changed to. */
  backendBreakerTransitions: 'breakwater.backend.breaker_transitions',
  /** Input guards' verdicts (policies/guards/), by `guard` and `outcome`, per model and version. */
  guardOutcomes: 'breakwater.guard.outcomes',
  /** Time the squeezing guard's extra inference took, per sampled request. */
  guardSqueezeDuration: 'breakwater.guard.squeeze_duration',
  /** Drift (gateway/drift/): per model, version and `feature` (an input feature or `<output>:class|score`; `*` overall). */
  driftPsi: 'breakwater.drift.psi',
  driftJs: 'breakwater.drift.js_distance',
  /** -1 insufficient, 0 ok, 1 warning, 2 drift. */
  driftStatus: 'breakwater.drift.status',
  /** Samples in the live window (merged across replicas). */
  driftSamples: 'breakwater.drift.window_samples',
  /** Rollouts (gateway/rollout/): the canary's weight in force, and the state (0 running, 1 paused, 2 promoted, 3 aborted), per model and canary version. */
  rolloutWeight: 'breakwater.rollout.weight',
  rolloutState: 'breakwater.rollout.state',
} as const;
/** The model attribute of a request whose model is not in the table (never the client's string). */
export const UNKNOWN_MODEL = '(unknown)';

export const ATTR = {
  model: 'model',
  version: 'model_version',
  code: 'code',
  outcome: 'outcome',
  reason: 'reason',
  state: 'state',
  guard: 'guard',
  feature: 'feature',
} as const;

