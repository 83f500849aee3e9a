/**
 * The rollout targets of the benchmark ((o0), (o); docs/rollouts.md): the iris model in-process with
 * its profile and drift monitoring, as (r), but served as two versions (the same ONNX file and the
 * same profile under version 1, stable, and version 2) split stable 90 / canary 10:
 *  - (o0) declares that split itself (`models.iris.traffic`), and no rollout;
 *  - (o) declares a rollout of version 2 (`models.iris.rollout`) with every criterion on, the
 *    disagreement sample at its default budget; the rollout sets the routes itself, to the same
 *    two arms with the same weights and names as (o0)'s, and holds them for the whole run: its first
 *    step lasts longer than any run (minDurationMs the most the schema allows, minRequests far above
 *    what a run sends) and every criterion with a minimum sample needs more than a run gives, so it
 *    never advances, pauses or aborts. (The two versions are the same model, so nothing would fail
 *    anyway: every compared row agrees, the error and guard rates and p99s are alike.)
 * Both run with `auth.insecureNoAuth` like (r): anonymous callers get a random bucket per request,
 * so about one request in ten is served by the canary (a bearer token would hash every request of
 * the benchmark's one subject into the same arm), and the memory store (the rollout's figures are
 * added to it every rollout.flushMs, 500 ms; the controller judges every second).
 */

/** 30 days: the longest step the schema allows (rolloutSchema, minDurationMs). */
const FOREVER_MS = 30 * 86_400_000;
/** Far above what a run sends (the schema's maxima: 100,000,000 requests, 10,000,000 samples). */
const NEVER_REQUESTS = 100_000_000;
const NEVER_SAMPLES = 10_000_000;

export const BENCH_CANARY = {
  stable: '1',
  canary: '2',
  /** The canary's share at the rollout's first step, and (o0)'s split: the same arms, names and weights. */
  weight: 10,
} as const;

/**
 * `models.iris.traffic` of (o0): the arms a rollout of version 2 at 10 % sets (gateway/rollout/record.ts
 * routesOf: `stable` then `canary`), written out, so that (o0) and (o) route alike.
 */
export const BENCH_SPLIT = {
  routes: [
    { version: BENCH_CANARY.stable, weight: 100 - BENCH_CANARY.weight, name: 'stable' },
    { version: BENCH_CANARY.canary, weight: BENCH_CANARY.weight, name: 'canary' },
  ],
} as const;

/** The x-route-reason of an answer routed by that split (the arm's name). */
export const BENCH_SPLIT_REASONS: readonly string[] = BENCH_SPLIT.routes.map((r) => r.name);

/**
 * `models.iris.rollout` of (o): every criterion (errorRate, latencyP99, guards, drift, disagreement
 * with its budget at the default, 0.01: one request in a hundred of the model's traffic, i.e. one
 * canary request in ten at weight 10, is copied to stable and the two answers compared).
 */
export const BENCH_ROLLOUT = {
  canary: BENCH_CANARY.canary,
  stable: BENCH_CANARY.stable,
  steps: [
    { weight: BENCH_CANARY.weight, minDurationMs: FOREVER_MS, minRequests: NEVER_REQUESTS },
    { weight: 100, minDurationMs: FOREVER_MS, minRequests: NEVER_REQUESTS },
  ],
  criteria: {
    errorRate: { minSamples: NEVER_SAMPLES },
    latencyP99: { minSamples: NEVER_SAMPLES },
    guards: { minSamples: NEVER_SAMPLES },
    drift: {},
    disagreement: { minSamples: NEVER_SAMPLES },
  },
} as const;

/** The disagreement criterion's default budget (config-schema.ts rolloutSchema), which (o) keeps. */
export const DEFAULT_DISAGREEMENT_BUDGET = 0.01;
