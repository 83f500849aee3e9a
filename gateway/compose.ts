/**
 * The composition root: the one place that builds every part of a running gateway from a
 * configuration, wires the parts together, and owns their start and close order. Nothing else
 * creates a store, a policy chain or an admin feature; `policies/` and `adapters/` only receive
 * what they need (test/layering.test.ts keeps it so).
 *
 * Start order: telemetry, the shared store, identity, flags, the mirrored scopes (opt-outs, live
 * routes), the policy chain (Envoy filter order: readiness, who is calling (within the request
 * limits), may they, which version
 * serves them, then the caller's opt-outs, then how much may they take), the model table, then
 * what runs after the answer (observers) and the admin features. Close runs in reverse, the store
 * last: a part never outlives what it depends on.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { createAuthPolicy, type AuthPolicy } from '../policies/authenticate.js';
import { createScopePolicy } from '../policies/authorize.js';
import { PolicyChain } from '../policies/chain.js';
import { GuardFigures } from '../policies/guards/guard-events.js';
import { errorCode, guardWarnings } from '../policies/guards/guard-log.js';
import { optOutsRetainPayload } from './retention.js';
import { ExtractionWatchers } from './extraction-watch.js';
import { driftAlertMessage } from './drift/drift-alert.js';
import { DriftMonitors } from './drift/monitor.js';
import { driftFeature } from './routes/admin-drift.js';
import { guardsFeature } from './routes/admin-guards.js';
import { createInputGuardsPolicy } from '../policies/guards/input-guards.js';
import { SqueezeGuard } from '../policies/guards/squeeze-guard.js';
import { createKillSwitchPolicy, type KillSwitchPolicy } from '../policies/kill-switch.js';
import { createOptOutPolicy } from '../policies/opt-out.js';
import type { Policy } from '../policies/policy.js';
import { createRateLimitPolicy } from '../policies/rate-limit.js';
import { withRequestLimits } from '../policies/request-limit.js';
import { createStoreFailMode, type StoreFailMode } from '../policies/store-fail-mode.js';
import { createTrafficPolicy, effectiveTraffic } from '../policies/traffic-split.js';
import { createUnleashSource } from '../policies/unleash.js';
import { accessLogObserver } from './access-log.js';
import { AuditLog } from './audit/audit-log.js';
import { decisionObserver } from './audit/decisions.js';
import { openTrail } from './audit/open-trail.js';
import { SubjectKeys } from './audit/subject-keys.js';
import { readChains } from './audit/read-chains.js';
import { auditTrailFeature } from './routes/admin-audit-trail.js';
import type { AuditTrail } from './audit/trail.js';
import type { ModelTable } from '../adapters/registry.js';
import type { GatewayConfig, MirrorStart } from './config.js';
import { createHash } from 'node:crypto';
import { Eraser } from './control/erasure.js';
import { Fleet } from './control/fleet.js';
import { killAlerts } from './control/kill-alerts.js';
import { KillSwitch } from './control/kill-switch.js';
import { createAlerts } from './alerts.js';
import { KnownGood } from './control/known-good.js';
import { OPT_OUTS_SCOPE, OptOutRegistry } from './control/opt-out-registry.js';
import { TrafficRoutes } from './control/traffic-routes.js';
import { Observers, type Observer } from './observers.js';
import { Readiness, readinessPolicy } from './readiness.js';
import type { ServerFeature } from './routes/admin.js';
import { auditFeature } from './routes/admin-audit.js';
import { fleetFeature, killFeature } from './routes/admin-kill.js';
import { trafficFeature } from './routes/admin-traffic.js';
import { rolloutFeature } from './routes/admin-rollout.js';
import { Rollouts } from './rollout/rollouts.js';
import { REPLICA } from './replica.js';
import { GATEWAY_VERSION } from './version.js';
import { optOutsFeature } from './routes/opt-outs.js';
import { profileLoader } from './profile/loader.js';
import { Serving } from './serving.js';
import { ShadowMirror } from './shadow.js';
import { createStore } from './state/create-store.js';
import { MemoryStore } from './state/memory-store.js';
import type { StateStore } from './state/store.js';
import { ArmFigures } from './telemetry/arm-figures.js';
import { createMetrics, metricsObserver, type GatewayMetrics } from './telemetry/metrics.js';

/** Everything a running gateway is made of; server.ts builds the HTTP surface over it. */
export interface Composed {
  readonly serving: Serving;
  readonly store: StateStore;
  readonly metrics: GatewayMetrics;
  /** The policy chain of the prediction routes. */
  readonly chain: PolicyChain;
  /** Identifies callers of the admin and self-service routes (and GET /v2's), within the per-address limit. */
  readonly authenticate: AuthPolicy;
  /** What runs once a prediction request has ended. */
  readonly observers: Observers;
  /** Admin and self-service routes. */
  readonly features: readonly ServerFeature[];
  readonly shadow: ShadowMirror;
  readonly readiness: Readiness;
  /** Where every change is recorded. */
  readonly audit: AuditLog;
  /** What the kill switch stops, as the request path reads it (undefined: killSwitch.enabled false). */
  readonly kills: KillSwitchPolicy | undefined;
  /** The kill state and its changes (undefined: killSwitch.enabled false). */
  readonly killSwitch: KillSwitch | undefined;
  readonly fleet: Fleet;
  /** The squeezing guard, run by the infer route after the answer. */
  readonly squeeze: SqueezeGuard;
  /** Progressive delivery: canary comparisons on the request path, the controller, the admin API. */
  readonly rollouts: Rollouts;
  /** Applies a validated configuration: the model table first, then every part that follows it. */
  reload(next: GatewayConfig): Promise<void>;
  /** Closes every part in reverse start order; in-flight backend calls get at most `waitMs`. */
  close(waitMs?: number): Promise<void>;
}

interface Part {
  readonly name: string;
  close(waitMs: number): Promise<unknown>;
}

/** Sections wired once, at start; a reload says so rather than half-apply them. */
const RESTART_SECTIONS = ['auth', 'state', 'rateLimits', 'unleash', 'server', 'killSwitch', 'fleet', 'alerts', 'rollout'] as const;

/** The SHA-256 of a validated configuration, as the fleet shows it (replicas running the same one agree). */
export function configHash(config: GatewayConfig): string {
  return createHash('sha256').update(JSON.stringify(config)).digest('hex');
}

/** One `model` record per version the table serves: its model file's SHA-256 and its artefacts' sources (a profile's SHA-256). */
async function recordVersions(trail: AuditTrail, table: ModelTable): Promise<void> {
  for (const [name, m] of table.models) {
    for (const [version, sv] of m.versions) {
      await trail.durable('model', { model: name, version, backend: m.config.versions[version]?.backend.kind, modelSha256: sv.artifactSha256 ?? null, artifacts: JSON.parse(sv.artifactSources) as unknown });
    }
  }
}

async function closeAll(parts: Part[], log: Logger, waitMs: number): Promise<void> {
  for (const p of parts.reverse()) {
    try {
      await p.close(waitMs);
    } catch (err) {
      log.warn({ err, part: p.name }, 'closing a part failed');
    }
  }
}

export interface ComposeOptions {
  /**
   * Observers added after the gateway's own (metrics, figures, access log): what an embedding
   * application or a test watches. They get what every observer gets, under the same rules.
   */
  readonly observers?: readonly Observer[];
}

export async function compose(config: GatewayConfig, log: Logger, opts: ComposeOptions = {}): Promise<Composed> {
  const parts: Part[] = [];
  const started = <T extends { close(): Promise<unknown> }>(name: string, part: T): T => {
    parts.push({ name, close: () => part.close() });
    return part;
  };
  try {
    const metrics = createMetrics();
    const store = started('state store', await createStore(config.state, log));
    // Only Redis can be out of reach at start: a per-process store is the copy itself, and the
    // primary that relays for its workers lives and dies with them.
    const startOf = (mode: MirrorStart): MirrorStart => (store.kind === 'redis' ? mode : 'open');
    const { snapshotDir } = config.state;
    const readiness = new Readiness();

    const auth = started('authentication', await createAuthPolicy(config.auth, { log }));
    // Flag-driven splits read a local copy of Unleash's flags; start-up waits briefly for it,
    // never for an unreachable Unleash.
    const unleash = config.unleash === undefined ? undefined : started('unleash', await createUnleashSource(config.unleash, log));
    // Always present (a model without a split costs one map lookup) so a reload can add splits.
    const traffic = createTrafficPolicy(effectiveTraffic(config), { variants: unleash });
    const optOuts = started('opt-outs', new OptOutRegistry(store, {
      log,
      reconcileMs: config.state.reconcileMs,
      start: startOf(config.state.mirrors.optOuts),
      snapshotFile: join(snapshotDir, `${OPT_OUTS_SCOPE}.json`),
    }));
    await optOuts.start();
    let current = config;
    const routes = started('traffic routes', await TrafficRoutes.start({
      store,
      log,
      config,
      onChange: (overrides) => traffic.update(effectiveTraffic(current, overrides)),
      mirror: { start: startOf(config.state.mirrors.traffic), snapshotDir },
    }));
    if (startOf(config.state.mirrors.optOuts) !== 'open') readiness.add('opt-outs', () => optOuts.ready);
    // The kill switch: its policy is in the chain from the start, its state is read once the model
    // table is loaded (a rollback target must be a version that can answer). Until the state has
    // been read (closed start), the gateway is not ready: a replica starting while a kill is in
    // force must not serve the killed version for a moment.
    const ks = config.killSwitch;
    const kills = ks.enabled ? createKillSwitchPolicy() : undefined;
    let killSwitch: KillSwitch | undefined;
    const killStart = startOf(config.state.mirrors.killSwitch);
    if (kills !== undefined && killStart !== 'open') readiness.add('kill switch', () => killSwitch?.ready ?? false);
    if (!ks.enabled) log.warn('killSwitch.enabled is false: no model or version of this gateway can be stopped at run time (the kill switch API answers 404)');
    if (startOf(config.state.mirrors.traffic) !== 'open') readiness.add('traffic routes', () => routes.ready);

    const policies: Policy[] = [];
    if (readiness.hasChecks) policies.push(readinessPolicy(readiness));
    // Routing after authorization: a caller refused a model never learns which arm it would get.
    // Opt-outs right after the split, so they override it (stable, fallback).
    const rl = config.rateLimits;
    const rowLimits = rl.rules.length > 0 || rl.tenantConcurrency !== undefined;
    // Request limits need a subject: with insecureNoAuth everyone is the one anonymous principal.
    const requestLimits = !config.auth.insecureNoAuth && (rl.requests.perSubject.limit > 0 || rl.requests.failedAuthPerAddress.limit > 0);
    if (!config.auth.insecureNoAuth) {
      // Secure by default: turning a request limit off is allowed (a gateway behind another that
      // limits), but said at start-up, like every setting that opens a door.
      if (rl.requests.perSubject.limit === 0) {
        log.warn('rateLimits.requests.perSubject.limit is 0: requests that fail before the row quotas (unknown models, 4xx) are not limited; a subject can probe model names and error behaviour at line rate');
      }
      if (rl.requests.failedAuthPerAddress.limit === 0) {
        log.warn('rateLimits.requests.failedAuthPerAddress.limit is 0: failed authentications are not limited per address; a client can guess tokens at line rate');
      }
    }
    let limitsFallback: MemoryStore | undefined;
    let failures: StoreFailMode | undefined;
    if (rowLimits || requestLimits) {
      // The per-replica stand-in for a shared store that does not answer (failMode local), and one
      // fail mode for every limit (one warning per outage).
      limitsFallback = started('rate-limit fallback', new MemoryStore());
      failures = createStoreFailMode(rl.failMode, store, limitsFallback, log);
    }
    // Every request counted, failed authentications per address: around authentication, so the
    // prediction routes and the admin caller guard both count (policies/request-limit.ts).
    const identity = requestLimits && failures !== undefined ? withRequestLimits(auth, rl.requests, { failures }) : { predictions: auth, callers: auth };
    policies.push(identity.predictions, createScopePolicy(config.auth), traffic, createOptOutPolicy({ optOuts, experiments: traffic }));
    // Last of the request phase: it sees where the split and the opt-outs sent the request, and
    // overrides them (policies/kill-switch.ts).
    if (kills !== undefined) policies.push(kills);
    if (rowLimits && failures !== undefined) {
      policies.push(createRateLimitPolicy(rl, { store, log, fallback: failures.fallback, failures }));
    }
    // Input guards after the quotas: a refused input has cost its rows, so probing the guards is not free.
    // Always in the chain (a reload may turn guards on); a model without guards costs one property read.
    const guardFigures = new GuardFigures(metrics);
    const extraction = new ExtractionWatchers(store, log);
    if (config.auth.insecureNoAuth) {
      const watched = Object.entries(config.models).filter(([, m]) => (m.guards?.extraction?.mode ?? 'off') !== 'off').map(([n]) => n);
      if (watched.length > 0) log.warn({ models: watched }, 'guards.extraction is on while auth.insecureNoAuth is true: every caller is the same anonymous subject, so the extraction guard judges (and throttles, coarsens or denies) all traffic as one caller');
    }
    parts.push({ name: 'extraction guard', close: () => extraction.close() });
    policies.push(createInputGuardsPolicy({ events: guardFigures, log, retains: optOutsRetainPayload, extraction }));
    const squeezeWarnings = guardWarnings(log);
    const squeeze = new SqueezeGuard({
      events: guardFigures,
      timed: (m, v, s) => metrics.recordSqueeze(m, v, s),
      onError: (model, e) => squeezeWarnings(model, { model, guard: 'squeeze', code: errorCode(e) }, 'the squeeze guard failed; the request was judged without it'),
    });

    // Each version's reference profile (input guards) loads and reloads with its model.
    const serving = await Serving.start(config, log, metrics, [profileLoader()]);
    metrics.observeBackends(() => serving.table.allVersions());
    await extraction.follow(serving.table, config);
    parts.push({ name: 'models', close: (waitMs) => serving.close(waitMs) });

    const fleet = started('fleet', new Fleet(store, log, {
      id: REPLICA,
      gatewayVersion: GATEWAY_VERSION,
      configHash: configHash(config),
      heartbeatMs: config.fleet.heartbeatMs,
      expireAfterMs: config.fleet.expireAfterMs,
    }));
    let knownGood: KnownGood | undefined;
    // Built after the kill switch (it acts through it); known-good tracking asks it for a promoted stable version.
    let rollouts: Rollouts | undefined;
    if (kills !== undefined) {
      knownGood = started('known-good versions', new KnownGood(store, log, { afterMs: ks.knownGoodAfterMs, config: () => current, isKilled: kills.isKilled, stableOf: (m) => rollouts?.promotedStable(m) }));
      killSwitch = started('kill switch', await KillSwitch.start({
        store, log, config, policy: kills, serving, knownGood,
        start: killStart, snapshotDir, shared: store.kind === 'redis',
        onApplied: (revision, at) => fleet.applied(revision, at),
      }));
      knownGood.start();
    }
    await fleet.start();

    const figures = new ArmFigures();
    const shadow = new ShadowMirror({ metrics, log, isKilled: kills?.isKilled });
    // One audit log for every change; records the store could not take yet are retried, and
    // flushed (as far as the store allows) when the gateway closes.
    // The signed, file-backed trail (docs/audit.md): every audit record durable in it before it is
    // acknowledged, one decision record per prediction, the configuration and model versions loaded.
    let trail: AuditTrail | undefined;
    let subjectKeys: SubjectKeys | undefined;
    let decisions: ReturnType<typeof decisionObserver> | undefined;
    if (config.audit === undefined) {
      log.warn('audit is not configured: changes are recorded in the shared store\'s log only, unsigned, and predictions are not recorded (audit.dir, audit.signingKeyFile: docs/audit.md)');
    } else {
      trail = await openTrail(config.audit, { replica: REPLICA, store, log });
      const opened = trail;
      parts.push({ name: 'audit trail', close: () => opened.close() });
      subjectKeys = started('audit subject keys', new SubjectKeys(store, log));
      await subjectKeys.start();
      await trail.durable('config', { sha256: configHash(config), gatewayVersion: GATEWAY_VERSION });
      await recordVersions(trail, serving.table);
      if (config.audit.predictions) {
        const keys = subjectKeys;
        decisions = decisionObserver({ trail, pseudonym: (t, s) => keys.pseudonym(t, s), cachedPseudonym: (t, s) => keys.cached(t, s), maxPending: config.audit.maxPending, log, payloads: (m) => current.models[m]?.auditPayloads === true });
        const observed = decisions;
        parts.push({ name: 'audit decision records', close: () => observed.idle() });
      }
    }
    const audit = new AuditLog(store, log, REPLICA, trail);
    parts.push({ name: 'audit log', close: () => audit.close() });
    // A subject the extraction guard flags is an automatic action with its evidence (the subject as
    // its audit pseudonym when the trail is on; named only in the guard's own admin list otherwise).
    const flagKeys = subjectKeys;
    extraction.onFlagged = (model, version, subject, verdict) => {
      void (async () => {
        const pseudonym = flagKeys === undefined ? undefined : await flagKeys.pseudonym(undefined, subject).catch(() => undefined);
        await audit.record({
          actor: 'breakwater', via: 'automatic', action: 'guards.extraction.flag', target: { kind: 'model', id: model },
          after: { flagged: true },
          details: { version, ...(pseudonym === undefined ? {} : { subject: pseudonym }), score: verdict.score, signals: verdict.signals, scores: verdict.scores, rows: verdict.rows, cells: verdict.cells },
        });
      })().catch((err: unknown) => log.warn({ err }, 'audit: an extraction flag could not be recorded'));
    };
    // Alerts to people (alerts.webhookUrl), in the background: kills and restores, drift changes.
    const alerts = config.alerts.webhookUrl === undefined ? undefined : started('alerts', createAlerts({ webhookUrl: config.alerts.webhookUrl, timeoutMs: config.alerts.timeoutMs, retries: config.alerts.retries, log }));
    // Live drift of inputs and outputs (docs/drift.md): an observer, windows merged through the store.
    const drift = new DriftMonitors({
      store,
      log,
      onChange(report, from) {
        alerts?.post(() => driftAlertMessage(report, from), { action: `drift ${report.model}@${report.version} ${from}->${report.status}`, revision: 0 });
        void audit.record({
          actor: 'breakwater',
          via: 'automatic',
          action: 'drift.status',
          target: { kind: 'model', id: report.model },
          before: from,
          after: report.status,
          details: { version: report.version, window: report.window.samples, moved: [...report.features, ...report.outputs].filter((f) => f.status !== 'ok' && f.status !== 'insufficient').map((f) => ({ name: f.name, status: f.status, psi: f.psi })) },
        }).catch(() => undefined);
      },
    });
    drift.follow(serving.table, config);
    metrics.observeDrift(() => drift.gaugeRows());
    parts.push({ name: 'drift monitor', close: () => drift.close() });
    // Progressive delivery (docs/rollouts.md): after the routes, the kill switch and drift it acts on and reads.
    rollouts = started('rollouts', await Rollouts.start({
      store, log, config, routes, audit, alerts, killSwitch, isKilled: kills?.isKilled, drift, replica: REPLICA,
    }));
    const rollout = rollouts;
    metrics.observeRollouts(() => rollout.gaugeRows());
    const observers = new Observers([
      metricsObserver(metrics),
      figures.observer(),
      drift.observer(),
      rollout.observer(),
      accessLogObserver(() => serving.config.logging.accessLog),
      ...(decisions === undefined ? [] : [decisions]),
      ...(opts.observers ?? []),
    ], log);
    // Kills and restores told to people, with apply times.
    const onChange = alerts === undefined ? undefined : killAlerts({ alerts, fleet, log });
    const features: ServerFeature[] = [
      trafficFeature({ serving, routes, figures, audit, shadowFigures: (m) => shadow.figures(m), guardFigures: (m) => guardFigures.of(m), kills: (m) => killSwitch?.killsOf(m) ?? [] }),
      optOutsFeature({ registry: optOuts, audit, eraser: new Eraser({ store, registry: optOuts, fallback: limitsFallback, config: () => current, auditKeys: subjectKeys }) }),
      auditFeature(audit),
      ...(config.audit === undefined || subjectKeys === undefined ? [] : [(() => {
        const keys = subjectKeys;
        const dir = config.audit.dir;
        return auditTrailFeature({ chains: () => readChains(dir), pseudonym: (t, s) => keys.existingPseudonym(t, s) });
      })()]),
      guardsFeature({ extraction, audit }),
      driftFeature({ serving, drift, audit }),
      rolloutFeature({ rollouts: rollout }),
      fleetFeature({ fleet }),
      ...(killSwitch === undefined ? [] : [killFeature({ kill: killSwitch, fleet, audit, onChange })]),
    ];

    return {
      serving,
      store,
      metrics,
      chain: new PolicyChain(policies),
      authenticate: identity.callers,
      observers,
      features,
      shadow,
      readiness,
      audit,
      kills,
      killSwitch,
      fleet,
      squeeze,
      rollouts: rollout,
      async reload(next: GatewayConfig): Promise<void> {
        for (const section of RESTART_SECTIONS) {
          if (JSON.stringify(next[section]) !== JSON.stringify(current[section])) {
            log.warn({ section }, 'this section changed; it takes effect at the next restart (a reload applies models and logging)');
          }
        }
        await serving.reload(next);
        // The trail records what is now in force: the configuration and every version loaded.
        if (trail !== undefined) {
          await trail.durable('config', { sha256: configHash(next), gatewayVersion: GATEWAY_VERSION, reload: true });
          await recordVersions(trail, serving.table);
        }
        // After the new model table is in: a split never points at a version that is not served yet.
        current = next;
        traffic.update(effectiveTraffic(next, routes.overrides));
        figures.retain(serving.table.models);
        guardFigures.retain(Object.keys(next.models));
        await extraction.follow(serving.table, next);
        drift.follow(serving.table, next);
        killSwitch?.reconfigure(next);
        await rollout.reconfigure(next);
        fleet.setConfigHash(configHash(next));
        routes.reconfigure(next).catch((e: unknown) => log.warn({ err: e }, 'traffic: re-reading stored routes after a reload failed'));
      },
      close: (waitMs = Infinity) => closeAll(parts, log, waitMs),
    };
  } catch (e) {
    await closeAll(parts, log, 0);
    throw e;
  }
}
