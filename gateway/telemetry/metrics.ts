/**
 * Metrics, recorded through the OpenTelemetry metrics API. Until an SDK is registered the API is a
 * no-op, so recording costs almost nothing; exporters are wired in one place (main) when configured.
 * Metric and attribute names are constants here so dashboards and tests refer to one spelling.
 */
import { metrics, type Attributes, type Counter, type Histogram } from '@opentelemetry/api';
import type { GuardEvents } from '../../policies/guards/guard-events.js';
import type { Adapter } from '../../adapters/adapter.js';
import type { BackendEvents } from '../../adapters/backend-guard.js';
import { BREAKER_STATE_VALUE } from '../../adapters/circuit-breaker.js';
import type { Observer } from '../observers.js';

export { ATTR, METER_NAME, METRIC, UNKNOWN_MODEL } from './names.js';
import { ATTR, METER_NAME, METRIC } from './names.js';

/**
 * What became of a mirrored request (gateway/shadow.ts): compared (agree, disagree), failed (error,
 * timeout), not sent for lack of room (dropped), or not sent or not compared because the caller
 * opted out or the primary failed (skipped).
 */
export type ShadowOutcome = 'agree' | 'disagree' | 'error' | 'timeout' | 'dropped' | 'skipped';

/** A served version as the backend gauges read it (adapters/registry.ts ServedVersion is one). */
export interface GuardedVersion {
  readonly model: string;
  readonly version: string;
  readonly adapter: Pick<Adapter, 'guardFigures'>;
}

/** Load shedding and breaker changes are counted as they happen (BackendEvents); the gauges are read. */
export interface GatewayMetrics extends BackendEvents, GuardEvents {
  recordInfer(model: string, version: string, seconds: number, errorCode: string | undefined): void;
  recordReload(ok: boolean): void;
  /** `version` is the shadow version; `seconds` the shadow call's duration, when one was made. */
  recordShadow(model: string, version: string, outcome: ShadowOutcome, seconds: number | undefined): void;
  /** `count` outputs of an answer from `version` that its metadata does not declare, dropped (declared-outputs.ts). */
  recordOutputsDropped(model: string, version: string, count: number): void;
  /**
   * Reads the in-flight, queue-depth and breaker-state gauges of the versions `versions()` yields
   * at each collection (the current model table): nothing is recorded per request for them.
   */
  observeBackends(versions: () => Iterable<GuardedVersion>): void;
  /** Seconds the squeezing guard's extra inference took for one sampled request. */
  recordSqueeze(model: string, version: string, seconds: number): void;
  /** Reads the drift gauges from the monitors' last evaluations at each collection (gateway/drift/monitor.ts). */
  observeDrift(rows: () => Iterable<DriftGaugeRow>): void;
  /** Each rollout's weight and state, read when metrics are collected. */
  observeRollouts(rows: () => Iterable<RolloutGaugeRow>): void;
}

/** A rollout as the gauges show it. */
export interface RolloutGaugeRow {
  readonly model: string;
  readonly version: string;
  readonly weight: number;
  /** 0 running, 1 paused, 2 promoted, 3 aborted. */
  readonly state: number;
}

/** One feature's (or output's, or `*` the overall) figures of a version's last drift evaluation. */
export interface DriftGaugeRow {
  readonly model: string;
  readonly version: string;
  readonly feature: string;
  /** -1 insufficient, 0 ok, 1 warning, 2 drift. */
  readonly status: number;
  readonly psi: number | undefined;
  readonly js: number | undefined;
  readonly samples: number;
}

/** Instruments are created per call so a MeterProvider registered later (tests, main) is used. */
export function createMetrics(): GatewayMetrics {
  const meter = metrics.getMeter(METER_NAME);
  const requests: Counter = meter.createCounter(METRIC.requests, { description: 'Inference requests, by model, version and outcome code' });
  const errors: Counter = meter.createCounter(METRIC.errors, { description: 'Inference requests that failed, by error code' });
  const duration: Histogram = meter.createHistogram(METRIC.duration, {
    description: 'Inference request duration at the gateway',
    unit: 's',
    advice: { explicitBucketBoundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] },
  });
  const reloads: Counter = meter.createCounter(METRIC.reloads, { description: 'Configuration reloads, by outcome' });
  const shadowRequests: Counter = meter.createCounter(METRIC.shadowRequests, {
    description: 'Mirrored (shadow) requests, by model, shadow version and outcome',
  });
  const shadowDuration: Histogram = meter.createHistogram(METRIC.shadowDuration, {
    description: 'Duration of shadow calls, from their start to their answer or failure',
    unit: 's',
    advice: { explicitBucketBoundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] },
  });
  // By model and version only: output names come from the backend, and one that misbehaves must not
  // create a time series per name it makes up.
  const outputsDropped: Counter = meter.createCounter(METRIC.outputsDropped, {
    description: 'Outputs a backend answered that the model does not declare, dropped before the client saw them',
  });
  const shed: Counter = meter.createCounter(METRIC.backendShed, {
    description: 'Calls refused before reaching a remote backend (503 OVERLOADED, or BACKEND_UNAVAILABLE while its breaker is open), by reason',
  });
  const transitions: Counter = meter.createCounter(METRIC.backendBreakerTransitions, {
    description: 'Changes of a remote backend\'s circuit breaker, by the state changed to',
  });
  const guardOutcomes: Counter = meter.createCounter(METRIC.guardOutcomes, {
    description: 'Input guards\' verdicts, by model, version, guard and outcome (pass, flag, reject, route, error, skipped, throttle, coarsen, deny)',
  });
  const squeezeDuration: Histogram = meter.createHistogram(METRIC.guardSqueezeDuration, {
    description: 'The squeezing guard\'s extra inference, per sampled request',
    unit: 's',
    advice: { explicitBucketBoundaries: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25] },
  });
  return {
    outcome(model, version, guard, outcome) {
      guardOutcomes.add(1, { [ATTR.model]: model, [ATTR.version]: version, [ATTR.guard]: guard, [ATTR.outcome]: outcome });
    },
    recordSqueeze(model, version, seconds) {
      squeezeDuration.record(seconds, { [ATTR.model]: model, [ATTR.version]: version });
    },
    backendShed(model, version, reason) {
      shed.add(1, { [ATTR.model]: model, [ATTR.version]: version, [ATTR.reason]: reason });
    },
    backendBreakerChanged(model, version, to) {
      transitions.add(1, { [ATTR.model]: model, [ATTR.version]: version, [ATTR.state]: to });
    },
    observeBackends(versions) {
      const inFlight = meter.createObservableGauge(METRIC.backendInFlight, { description: 'Calls in flight to a remote backend' });
      const queued = meter.createObservableGauge(METRIC.backendQueueDepth, { description: 'Calls waiting for a slot of a remote backend' });
      const state = meter.createObservableGauge(METRIC.backendBreakerState, {
        description: 'A remote backend\'s circuit breaker: 0 closed, 1 half-open (probing), 2 open',
      });
      meter.addBatchObservableCallback((result) => {
        for (const v of versions()) {
          const f = v.adapter.guardFigures?.();
          if (f === undefined) continue;
          const attrs: Attributes = { [ATTR.model]: v.model, [ATTR.version]: v.version };
          result.observe(inFlight, f.inFlight, attrs);
          result.observe(queued, f.queued, attrs);
          result.observe(state, BREAKER_STATE_VALUE[f.breaker.state], attrs);
        }
      }, [inFlight, queued, state]);
    },
    observeRollouts(rows) {
      const weight = meter.createObservableGauge(METRIC.rolloutWeight, { description: 'The canary\'s weight in force, percent of the model\'s unpinned traffic' });
      const state = meter.createObservableGauge(METRIC.rolloutState, { description: 'Rollout state: 0 running, 1 paused, 2 promoted, 3 aborted' });
      meter.addBatchObservableCallback((result) => {
        for (const r of rows()) {
          const attrs: Attributes = { [ATTR.model]: r.model, [ATTR.version]: r.version };
          result.observe(weight, r.weight, attrs);
          result.observe(state, r.state, attrs);
        }
      }, [weight, state]);
    },
    observeDrift(rows) {
      const psi = meter.createObservableGauge(METRIC.driftPsi, { description: 'Population stability index of a feature or output, live window vs reference' });
      const js = meter.createObservableGauge(METRIC.driftJs, { description: 'Jensen-Shannon distance of a feature or output, live window vs reference' });
      const status = meter.createObservableGauge(METRIC.driftStatus, { description: 'Drift status: -1 insufficient data, 0 ok, 1 warning, 2 drift (feature "*": overall)' });
      const samples = meter.createObservableGauge(METRIC.driftSamples, { description: 'Samples in the live drift window, merged across replicas' });
      meter.addBatchObservableCallback((result) => {
        for (const r of rows()) {
          const attrs: Attributes = { [ATTR.model]: r.model, [ATTR.version]: r.version, [ATTR.feature]: r.feature };
          result.observe(status, r.status, attrs);
          result.observe(samples, r.samples, attrs);
          if (r.psi !== undefined) result.observe(psi, r.psi, attrs);
          if (r.js !== undefined) result.observe(js, r.js, attrs);
        }
      }, [psi, js, status, samples]);
    },
    recordInfer(model, version, seconds, errorCode) {
      const attrs: Attributes = { [ATTR.model]: model, [ATTR.version]: version, [ATTR.code]: errorCode ?? 'OK' };
      requests.add(1, attrs);
      duration.record(seconds, attrs);
      if (errorCode !== undefined) errors.add(1, attrs);
    },
    recordReload(ok) {
      reloads.add(1, { [ATTR.outcome]: ok ? 'success' : 'failure' });
    },
    recordShadow(model, version, outcome, seconds) {
      const attrs: Attributes = { [ATTR.model]: model, [ATTR.version]: version, [ATTR.outcome]: outcome };
      shadowRequests.add(1, attrs);
      if (seconds !== undefined) shadowDuration.record(seconds, attrs);
    },
    recordOutputsDropped(model, version, count) {
      outputsDropped.add(count, { [ATTR.model]: model, [ATTR.version]: version });
    },
  };
}

/** Every ended prediction request, refusals included, as metrics. */
export function metricsObserver(m: GatewayMetrics): Observer {
  return {
    name: 'metrics',
    onEnd(e) {
      m.recordInfer(e.model, e.version, e.ms / 1000, e.code);
      if (e.droppedOutputs > 0) m.recordOutputsDropped(e.model, e.version, e.droppedOutputs);
    },
  };
}
