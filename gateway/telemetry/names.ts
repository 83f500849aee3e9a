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
} as const;
/** The model attribute of a request whose model is not in the table (never the client's string). */
export const UNKNOWN_MODEL = '(unknown)';

export const ATTR = {
  model: 'model',
  version: 'model_version',
  code: 'code',
  outcome: 'outcome',
} as const;

