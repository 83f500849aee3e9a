/**
 * The configuration file's JSON Schema. Defaults live next to their field, with the reason for the
 * value. README.md's configuration reference is written from this file; keep the two together.
 */
import { ASYMMETRIC_ALGORITHMS, JWT_ALGORITHMS, MIN_SECRET_BYTES } from './jwt-algorithms.js';

/** adapters/json-scan.ts's depth when none is given (the binary codec's own callers). */
export const DEFAULT_MAX_JSON_DEPTH = 64;

const positiveInt = (def: number, max = 2 ** 31 - 1) => ({ type: 'integer', minimum: 1, maximum: max, default: def }) as const;

export const onnxBackendSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['kind', 'path'],
  properties: {
    kind: { const: 'onnx' },
    /** Relative paths resolve against the configuration file's folder. */
    path: { type: 'string', minLength: 1 },
    // One intra-op thread per session: the gateway serves many requests at once on few cores, and
    // onnxruntime's default (one thread per core) makes concurrent sessions fight for them.
    intraOpThreads: positiveInt(1, 256),
    interOpThreads: positiveInt(1, 256),
    executionMode: { enum: ['sequential', 'parallel'], default: 'sequential' },
    graphOptimizationLevel: { enum: ['disabled', 'basic', 'extended', 'all'], default: 'all' },
  },
} as const;

/**
 * Defaults of a remote backend's load shedding and circuit breaker, here so the adapter built by
 * hand (tests, embedding) gets the same ones as the configuration.
 */
export const BACKEND_GUARD_DEFAULTS = Object.freeze({
  // Envoy's default for pending requests per cluster: a burst of a few hundred clients at once is
  // ordinary and must wait its turn; the wait, not the length, is what bounds a queued call.
  queue: 1024,
  queueTimeoutMs: 1000,
  // A few failures in a row are a pattern, not noise; a client alone rarely makes five in a row.
  breakerFailures: 5,
  breakerCooldownMs: 5000,
  breakerMaxCooldownMs: 60_000,
});

export const oipHttpBackendSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['kind', 'url', 'model'],
  properties: {
    kind: { const: 'oip-http' },
    url: { type: 'string', pattern: '^https?://[^/?#]+/?$' },
    /** The model's name at the backend, which may differ from ours. */
    model: { type: 'string', minLength: 1 },
    version: { type: 'string', minLength: 1 },
    // A loopback or same-zone backend connects in well under a second; longer means it is gone.
    connectTimeoutMs: positiveInt(1000, 600_000),
    // Upper bound for one inference at this backend; the request's own deadline may be shorter.
    timeoutMs: positiveInt(10_000, 3_600_000),
    // Enough sockets for 2 cores' worth of concurrency without opening one per request.
    connections: positiveInt(64, 10_000),
    // Below the common 5 s server default so we never reuse a socket the backend is closing.
    keepAliveTimeoutMs: positiveInt(4000, 600_000),
    // Readiness is probed at most this often; the request path never waits for a probe.
    healthIntervalMs: positiveInt(1000, 600_000),
    // Inference calls in flight are capped at `connections` (adapters/admission.ts); calls past it
    // wait in a FIFO queue of this many, then get 503 OVERLOADED.
    queue: { type: 'integer', minimum: 0, maximum: 100_000, default: BACKEND_GUARD_DEFAULTS.queue },
    // Well below inferTimeoutMs: a call that cannot start within a second is better refused at once
    // (the client may retry elsewhere) than held until its deadline.
    queueTimeoutMs: positiveInt(BACKEND_GUARD_DEFAULTS.queueTimeoutMs, 600_000),
    // Backend faults in a row that open the circuit breaker (adapters/circuit-breaker.ts); 0: never.
    breakerFailures: { type: 'integer', minimum: 0, maximum: 10_000, default: BACKEND_GUARD_DEFAULTS.breakerFailures },
    // How long an open breaker refuses calls before it lets one probe through; each failed probe
    // doubles it, up to breakerMaxCooldownMs.
    breakerCooldownMs: positiveInt(BACKEND_GUARD_DEFAULTS.breakerCooldownMs, 600_000),
    breakerMaxCooldownMs: positiveInt(BACKEND_GUARD_DEFAULTS.breakerMaxCooldownMs, 3_600_000),
  },
} as const;

const modelSettings = {
  /** How NaN and ±Infinity in float inputs are treated (JSON strings "NaN", "Infinity", binary values). */
  nonFinite: { enum: ['reject', 'allow'], default: 'reject' },
  // Large enough for a 1000-row tabular batch; a typical image model needs raising it explicitly.
  maxBodyBytes: positiveInt(8 * 1024 * 1024, 1024 * 1024 * 1024),
  // Bounds the memory a single request can make the gateway allocate while decoding.
  maxElements: positiveInt(4_000_000, 1_000_000_000),
  // Off: an empty batch (a 0 in a shape) is forwarded only to a model whose owner says it copes
  // with one; many backends crash or answer garbage. On, it allows 0 in a dynamic batch dimension only.
  allowEmptyBatch: { type: 'boolean', default: false },
  // Deepest nesting of a request's JSON (the body's object is 1, a tensor's nested data of rank r
  // reaches 3 + r): 64 admits data of rank 61, beyond any model, and keeps a backend's recursive
  // parser far from its stack limit. 4 is the least a request needs.
  maxJsonDepth: { type: 'integer', minimum: 4, maximum: 1000, default: DEFAULT_MAX_JSON_DEPTH },
  // Members the protocol does not define (top level, an input, a requested output): `refuse` (400),
  // or `drop` them from what is forwarded, which re-serialises the body instead of passing it on.
  unknownMembers: { enum: ['refuse', 'drop'], default: 'refuse' },
  // The request's deadline: a client never waits longer for an answer than this.
  inferTimeoutMs: positiveInt(30_000, 3_600_000),
} as const;

const version = {
  type: 'object',
  additionalProperties: false,
  required: ['backend'],
  properties: {
    // Checked again against the kind's own schema (below) so that messages name the kind's fields
    // and its defaults are filled; Ajv fills no defaults inside oneOf.
    backend: {
      type: 'object',
      required: ['kind'],
      properties: { kind: { enum: ['onnx', 'oip-http'] } },
    },
    // The version's reference profile for the input guards (`breakwater profile` writes it; gateway/
    // profile/loader.ts reads it with the model and refuses one that does not fit). Relative paths
    // resolve against the configuration file's folder.
    profile: { type: 'string', minLength: 1 },
  },
} as const;

/**
 * Keys that name an object's prototype machinery in JavaScript: never a model or version name (a
 * lookup by such a name would find Object.prototype's members), never a key of an admin body or of
 * this file (config.ts and routes/admin-request.ts refuse them anywhere).
 */
export const PROTOTYPE_KEYS = ['__proto__', 'constructor', 'prototype'] as const;

/** Names that end up in x-route-reason: safe header characters, no spaces. */
const reasonName = { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' } as const;

/**
 * A model's traffic split (policies/traffic-split.ts). What a schema cannot say (weights summing to
 * 100, versions that exist, exactly one of claim/header per rule) is checked in config.ts.
 */
export const trafficSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['routes'],
  properties: {
    routes: {
      type: 'array',
      minItems: 1,
      // A split is evaluated on every request: a handful of arms, not a table.
      maxItems: 32,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['version', 'weight'],
        properties: {
          version: { type: 'string', minLength: 1 },
          // Percent, whole numbers: 1% of traffic is the finest step an operator needs.
          weight: { type: 'integer', minimum: 0, maximum: 100 },
          // Reported as x-route-reason; without it `arm:<version>` (`stable` for the stable version).
          name: reasonName,
        },
      },
    },
    rules: {
      type: 'array',
      maxItems: 64,
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'version'],
        properties: {
          name: reasonName,
          version: { type: 'string', minLength: 1 },
          // Verified identity only: the subject, the tenant, or a scope the principal holds.
          claim: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'equals'],
            properties: { name: { enum: ['sub', 'tenant', 'scope'] }, equals: { type: 'string', minLength: 1 } },
          },
          // Exact comparison, never a pattern (no regex from configuration). Node lower-cases
          // request header names, so a name with capitals could never match.
          header: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'equals'],
            properties: {
              name: { type: 'string', pattern: "^[a-z0-9!#$%&'*+.^_`|~-]{1,64}$" },
              equals: { type: 'string', minLength: 1, maxLength: 256 },
            },
          },
        },
      },
    },
    // Mirrors a sampled share of the model's unpinned traffic to a version and discards its answer
    // (gateway/shadow.ts): compared with the primary's (agreement, latency), never returned.
    shadow: {
      type: 'object',
      additionalProperties: false,
      required: ['version', 'percent'],
      properties: {
        version: { type: 'string', minLength: 1 },
        // Share of requests mirrored, per request (not sticky): 0.01 % steps.
        percent: { type: 'number', minimum: 0, maximum: 100, multipleOf: 0.01 },
        // `after`: sent once the primary has answered (never competes with it); `parallel`: sent at
        // the same time (comparable latency, shares the backend's time with the primary).
        mode: { enum: ['after', 'parallel'], default: 'after' },
        // Its own deadline, independent of the primary's.
        timeoutMs: { type: 'integer', minimum: 1, maximum: 600_000, default: 2000 },
        // Mirrors in flight per replica; past it a mirror is dropped (counted), never queued.
        maxConcurrent: { type: 'integer', minimum: 1, maximum: 10_000, default: 16 },
        // Copies in a row that fail (error or timeout) before the shadow is suspended for a
        // cool-down (1 s doubling to 30 s; gateway/shadow-breaker.ts): a dead shadow then costs a few calls
        // a second, not one per request. 0 never suspends.
        suspendAfter: { type: 'integer', minimum: 0, maximum: 10_000, default: 5 },
      },
    },
    // Drive the split from an Unleash flag whose variants name versions (policies/unleash.ts);
    // while the flag is off or Unleash has never answered, `routes` apply.
    unleash: {
      type: 'object',
      additionalProperties: false,
      required: ['flag'],
      properties: { flag: { type: 'string', minLength: 1, maxLength: 255 } },
    },
  },
} as const;

/**
 * What subjects who opted out of automated decisions get (policies/opt-out.ts): a fallback version
 * (a rules model, a human-review backend), or else a refusal that tells them how to get a human
 * decision.
 */
export const fallbackSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    version: { type: 'string', minLength: 1 },
    // Shown in the HUMAN_DECISION_REQUIRED refusal: a URL, an address, a procedure.
    humanDecision: { type: 'string', minLength: 1, maxLength: 512 },
  },
} as const;

/** Per model: the version a kill rolls back to (gateway/control/kill-switch.ts). */
export const modelKillSwitchSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    // Else the last known-good version (tracked in the shared store), else the highest ready
    // version below the stable one.
    rollbackTo: { type: 'string', minLength: 1 },
  },
} as const;

/** A guard's mode (policies/guards/input-guards.ts): refuse, serve and say so, serve from `routeTo`, or not run. */
const guardMode = { enum: ['reject', 'flag', 'route', 'off'], default: 'off' } as const;

/**
 * Per model: the input guards (policies/guards/). Every guard is off unless configured; a guard
 * that is not off needs a reference profile on every version (`versions.<v>.profile`, built by
 * `breakwater profile`), checked in config.ts.
 */
export const guardsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    // The false-positive rate `breakwater profile` calibrates each threshold to, on held-out data.
    targetFpr: { type: 'number', exclusiveMinimum: 0, maximum: 0.5, default: 0.01 },
    // A guard that throws or runs out of time never fails the request (it is counted and logged by
    // code), unless this is set and the guard's mode is reject: then the request is refused, 503.
    failClosed: { type: 'boolean', default: false },
    // Bounds the squeezing guard's extra inference (it never extends the request's own deadline).
    timeoutMs: positiveInt(250, 60_000),
    // The version `route` mode serves (a more robust or rule-based one); required when a mode is route.
    routeTo: { type: 'string', minLength: 1 },
    contract: {
      type: 'object',
      additionalProperties: false,
      properties: {
        mode: guardMode,
        // Values re-measured in the real world land just outside the reference's range: a numeric value
        // passes within tolerance × (max − min) beyond [min, max] (or within the profile's own bounds,
        // the spacing of its most extreme values, where they reach further).
        tolerance: { type: 'number', minimum: 0, maximum: 10, default: 0.05 },
      },
    },
    ood: { type: 'object', additionalProperties: false, properties: { mode: guardMode } },
    squeeze: {
      type: 'object',
      additionalProperties: false,
      properties: {
        mode: guardMode,
        // It costs one more inference: run it on this share of requests…
        sampleRate: { type: 'number', minimum: 0, maximum: 1, default: 1 },
        // …or, when > 0, only when the answer's top two probabilities are closer than this.
        borderline: { type: 'number', minimum: 0, maximum: 1, default: 0 },
      },
    },
    extraction: {
      type: 'object',
      additionalProperties: false,
      properties: {
        mode: { enum: ['flag', 'throttle', 'coarsen', 'deny', 'off'], default: 'off' },
        // Evidence is kept per time window and forgotten as windows expire: a flag decays after
        // windowMs × windows without new evidence. A day by default: an attacker who paces its
        // queries below what the rule needs within the horizon is never flagged, and copying a model
        // takes thousands of queries, so the horizon must outlast a patient attack, not a burst.
        windowMs: positiveInt(3_600_000, 86_400_000),
        windows: positiveInt(24, 168),
        // throttle: a flagged subject's rows per minute, across replicas.
        throttleRowsPerMinute: positiveInt(30, 1_000_000),
        // coarsen: scores rounded to this many decimals, or the label (argmax) only.
        coarsen: {
          type: 'object',
          additionalProperties: false,
          properties: {
            decimals: { type: 'integer', minimum: 0, maximum: 6, default: 1 },
            labelOnly: { type: 'boolean', default: false },
          },
          default: {},
        },
      },
    },
  },
} as const;

/**
 * Live drift monitoring of a model's inputs and outputs (gateway/drift/, docs/drift.md): every
 * version is compared with its reference profile's bins (`versions.<v>.profile`), or without one with
 * a baseline of its own first production samples, over windows merged across replicas.
 */
export const driftSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    enabled: { type: 'boolean', default: true },
    // Share of requests counted (opted-out subjects' requests never are).
    sampleRate: { type: 'number', minimum: 0, maximum: 1, default: 1 },
    // The live window: the last `samples` rows of all replicas, or the last `seconds`; sliding (the
    // window moves with every block of samples) or tumbling (judged once full, then started afresh).
    window: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        samples: positiveInt(1000, 10_000_000),
        seconds: { type: 'integer', minimum: 10, maximum: 604_800 },
        mode: { enum: ['sliding', 'tumbling'], default: 'sliding' },
      },
    },
    // Without a profile: the version's first `samples` rows after start or reset are its reference.
    baseline: {
      type: 'object',
      additionalProperties: false,
      required: ['samples'],
      properties: { samples: { type: 'integer', minimum: 100, maximum: 10_000_000 } },
    },
    // Alarms on effect size (PSI) that is also significant after a Bonferroni correction over every
    // feature and output, on at least minSamples rows, confirmed on consecutive evaluations.
    thresholds: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        psiWarning: { type: 'number', exclusiveMinimum: 0, default: 0.1 },
        psiDrift: { type: 'number', exclusiveMinimum: 0, default: 0.2 },
        alpha: { type: 'number', exclusiveMinimum: 0, maximum: 0.5, default: 0.01 },
        minSamples: positiveInt(500, 10_000_000),
        confirmations: positiveInt(2, 100),
      },
    },
    // How often a replica adds its counts to the shared store (at most; sooner when half a window is waiting).
    flushMs: positiveInt(1000, 60_000),
    // How often a replica judges the merged windows (the admin endpoint also judges on demand).
    evaluateMs: positiveInt(1000, 600_000),
  },
} as const;


/** A criterion judged by a statistical comparison needs a minimum sample: required, never defaulted. */
const minSamples = { type: 'integer', minimum: 10, maximum: 10_000_000 } as const;
/** How sure a failing verdict must be (one-sided): 0.99 = a 1 % chance of aborting a canary no worse than allowed. */
const confidence = { type: 'number', minimum: 0.5, maximum: 0.9999, default: 0.99 } as const;

/**
 * A model's progressive rollout (gateway/rollout/, docs/rollouts.md): the canary moves through the
 * steps' weights while every criterion holds, and is pulled (weight 0) as soon as one fails.
 * What a schema cannot say (steps increasing to 100, versions, a criterion at least) is in config.ts.
 */
export const rolloutSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['canary', 'steps', 'criteria'],
  properties: {
    canary: { type: 'string', minLength: 1 },
    // The version the canary is compared with and takes its share from; default the model's stable one.
    stable: { type: 'string', minLength: 1 },
    steps: {
      type: 'array',
      minItems: 1,
      maxItems: 20,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['weight', 'minRequests'],
        properties: {
          // Percent of the model's unpinned traffic the canary gets at this step.
          weight: { type: 'integer', minimum: 1, maximum: 100 },
          // A step lasts at least this long AND until the canary answered minRequests in it.
          minDurationMs: { type: 'integer', minimum: 0, maximum: 30 * 86_400_000, default: 60_000 },
          minRequests: { type: 'integer', minimum: 1, maximum: 100_000_000 },
        },
      },
    },
    criteria: {
      type: 'object',
      additionalProperties: false,
      properties: {
        // Failures of the canary's model or backend (5xx, not client mistakes) against stable's.
        errorRate: {
          type: 'object',
          additionalProperties: false,
          required: ['minSamples'],
          properties: { maxIncrease: { type: 'number', minimum: 0, maximum: 1, default: 0.01 }, confidence, minSamples, killSwitch: { type: 'boolean', default: true } },
        },
        // The canary's p99 against stable's: at most maxRatio times it, plus slackMs (tiny latencies jitter).
        latencyP99: {
          type: 'object',
          additionalProperties: false,
          required: ['minSamples'],
          properties: { maxRatio: { type: 'number', minimum: 1, maximum: 100, default: 1.5 }, slackMs: { type: 'number', minimum: 0, maximum: 60_000, default: 5 }, minSamples },
        },
        // Requests an input guard flagged, routed or rejected, against stable's.
        guards: {
          type: 'object',
          additionalProperties: false,
          required: ['minSamples'],
          properties: { maxIncrease: { type: 'number', minimum: 0, maximum: 1, default: 0.02 }, confidence, minSamples, killSwitch: { type: 'boolean', default: true } },
        },
        // The drift monitor's verdict (models.<m>.drift) on the canary's inputs and outputs, against stable's.
        drift: {
          type: 'object',
          additionalProperties: false,
          properties: { on: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['inputs', 'outputs'] }, default: ['inputs', 'outputs'] } },
        },
        // Rows whose predicted class differs from stable's answer to the same input (copies to stable).
        disagreement: {
          type: 'object',
          additionalProperties: false,
          required: ['minSamples'],
          properties: {
            maxRate: { type: 'number', minimum: 0, maximum: 1, default: 0.05 },
            // The largest change in one class's share of the predictions (canary against stable on the same rows).
            maxClassShift: { type: 'number', minimum: 0, maximum: 1, default: 0.05 },
            confidence,
            minSamples,
            // Copies to stable, as a share of all the model's traffic (the canary's requests are
            // sampled at budget / canary weight, at most all of them): the cost stays this small at every step.
            budget: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.01 },
            maxConcurrent: { type: 'integer', minimum: 1, maximum: 1024, default: 8 },
            timeoutMs: { type: 'integer', minimum: 1, maximum: 600_000, default: 5000 },
          },
        },
      },
    },
    // A step whose canary is still short of its minimum requests this long after its minimum
    // duration is paused (too little traffic to judge), never promoted on no evidence.
    pauseAfterMs: { type: 'integer', minimum: 1000, maximum: 30 * 86_400_000, default: 600_000 },
  },
} as const;

/** How rollouts are driven (gateway/rollout/controller.ts). */
export const rolloutSettingsSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    // How often the controlling replica judges every running rollout.
    intervalMs: { type: 'integer', minimum: 100, maximum: 600_000, default: 1000 },
    // How often each replica adds its canary counts to the shared store (at most half an interval: fresh figures at every judgement).
    flushMs: { type: 'integer', minimum: 50, maximum: 60_000, default: 500 },
    // The controller's lease; another replica takes over this long after the holder stops renewing.
    leaseMs: { type: 'integer', minimum: 500, maximum: 600_000, default: 3000 },
  },
} as const;

const model = {
  type: 'object',
  additionalProperties: false,
  required: ['versions'],
  properties: {
    versions: {
      type: 'object',
      minProperties: 1,
      propertyNames: { pattern: '^[A-Za-z0-9_.-]{1,64}$', not: { enum: PROTOTYPE_KEYS } },
      additionalProperties: version,
    },
    /** The version served when none is named; defaults to the highest numeric version. */
    stable: { type: 'string', minLength: 1 },
    /** Without it every unpinned request goes to `stable`. */
    traffic: trafficSchema,
    fallback: fallbackSchema,
    killSwitch: modelKillSwitchSchema,
    guards: guardsSchema,
    drift: driftSchema,
    rollout: rolloutSchema,
    // With an audit trail, this model's decision records also hold the input and output tensors
    // (never for a caller opted out of tracking). Off: digests only.
    auditPayloads: { type: 'boolean', default: false },
    ...modelSettings,
  },
} as const;

export const authSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    // Named as what it is: without authentication anyone reaching the port can call every model.
    // Never a default; the gateway warns at start-up when it is on.
    insecureNoAuth: { type: 'boolean', default: false },
    // Both required unless insecureNoAuth (config.ts).
    issuer: { type: 'string', minLength: 1 },
    audience: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } }] },
    // Clocks drift; more than a few minutes of tolerance would stretch a token's life noticeably.
    clockSkewSeconds: { type: 'integer', minimum: 0, maximum: 300, default: 30 },
    // A real token is well under 2 KiB; anything much larger is an attack on the parser.
    maxTokenBytes: { type: 'integer', minimum: 256, maximum: 65536, default: 8192 },
    tenantClaim: { type: 'string', minLength: 1, default: 'tenant' },
    // Scopes come from this one claim (a space-separated string or an array of strings), never
    // merged with another: were `scope` and `scp` both read, a user whose issuer lets them add a
    // custom claim could grant themselves admin scopes. Azure AD and Okta put them in `scp`.
    scopeClaim: { type: 'string', minLength: 1, default: 'scope' },
    // Model metadata reveals inputs and outputs: by default only callers allowed to predict see it.
    metadataRequiresScope: { type: 'boolean', default: true },
    // Verified tokens are remembered until they expire, so a token's signature is checked once.
    cacheSize: { type: 'integer', minimum: 0, maximum: 1_000_000, default: 10_000 },
    keys: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['algorithms'],
        // Exactly one of publicKey, publicKeyFile, secret, secretFile (config.ts); files resolve
        // against the configuration file's folder and are read once, at start (policies/auth/keys.ts).
        properties: {
          kid: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,128}$' },
          publicKey: { type: 'string', minLength: 1 },
          publicKeyFile: { type: 'string', minLength: 1 },
          // HS* only, and only when named here: a shared secret lets whoever holds it mint tokens.
          secret: { type: 'string', minLength: MIN_SECRET_BYTES },
          secretFile: { type: 'string', minLength: 1 },
          algorithms: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: JWT_ALGORITHMS } },
        },
      },
      default: [],
    },
    jwks: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      properties: {
        url: { type: 'string', pattern: '^https?://' },
        // Asymmetric algorithms only: a JWKS is public, so an HS key in it would be a public secret.
        algorithms: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ASYMMETRIC_ALGORITHMS }, default: ['RS256', 'ES256', 'EdDSA'] },
        refreshIntervalMs: { type: 'integer', minimum: 1000, maximum: 86_400_000, default: 300_000 },
        // An unknown kid triggers a refetch (key rotation), at most this often.
        cooldownMs: { type: 'integer', minimum: 0, maximum: 3_600_000, default: 30_000 },
        timeoutMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 2000 },
      },
    },
  },
} as const;

export const stateSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    // Without it, state lives in one process: the gateway's, or with server.workers > 1 the
    // primary's, which its workers share (one host only; several hosts need Redis).
    redisUrl: { type: 'string', pattern: '^rediss?://' },
    keyPrefix: { type: 'string', pattern: '^[A-Za-z0-9:_-]{0,32}$', default: 'bw:' },
    // A rate-limit check must not hold a request: past this, the store counts as unavailable.
    commandTimeoutMs: { type: 'integer', minimum: 5, maximum: 10_000, default: 100 },
    connectTimeoutMs: { type: 'integer', minimum: 50, maximum: 60_000, default: 1000 },
    // Each replica reserves quota from Redis in blocks (up to 64 units, shrinking near a limit)
    // and hands it out locally: most requests never wait for Redis. Limits still hold across
    // replicas; a replica whose traffic stops may leave up to a block unused until the window ends.
    // Off: every request charges Redis itself.
    quotaBlocks: { type: 'boolean', default: true },
    // Shared records (routes, opt-outs) reach every replica by a change notification within a
    // second; notifications are at most once, so each replica also re-reads them this often.
    reconcileMs: { type: 'integer', minimum: 100, maximum: 3_600_000, default: 5000 },
    // How each mirrored scope starts when the shared store does not answer at start-up: `open`
    // serves from an empty copy until the store answers, `closed` refuses predictions
    // (GATEWAY_NOT_READY) until it has read the scope once, `snapshot` serves this replica's last
    // copy from snapshotDir (closed without one). Opt-outs default to `snapshot`: a replica that
    // cannot know who opted out must not serve them as if nobody had. Routes default to `open`:
    // the configuration file's routes are a complete answer. Without state.redisUrl (or a
    // worker relay) nothing is shared and every scope is open.
    mirrors: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        optOuts: { enum: ['open', 'closed', 'snapshot'], default: 'snapshot' },
        traffic: { enum: ['open', 'closed', 'snapshot'], default: 'open' },
        // The kill switch defaults to `closed`: a replica that cannot know what is killed must not
        // serve a version an on-call engineer stopped (docs/kill-switch.md).
        killSwitch: { enum: ['open', 'closed', 'snapshot'], default: 'closed' },
      },
    },
    // Where `snapshot` scopes keep their copy; relative to the configuration file's folder.
    // Files are written 0600 (a scope may name subjects).
    snapshotDir: { type: 'string', minLength: 1, default: '.breakwater/state' },
  },
} as const;

/** An Unleash server whose flags may drive splits (policies/unleash.ts). */
export const unleashSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['url'],
  properties: {
    // The client API root, e.g. http://unleash.internal:4242/api
    url: { type: 'string', pattern: '^https?://' },
    appName: { type: 'string', minLength: 1, default: 'breakwater' },
    // A client token; read from this environment variable (never from the file itself).
    apiTokenEnv: { type: 'string', pattern: '^[A-Z_][A-Z0-9_]*$', default: 'UNLEASH_API_TOKEN' },
    refreshIntervalMs: { type: 'integer', minimum: 1000, maximum: 3_600_000, default: 15_000 },
    // A client API response (GET /api/client/features) served until the server first answers;
    // relative to the configuration file's folder.
    bootstrapFile: { type: 'string', minLength: 1 },
  },
} as const;

/** The request limits' names in RateLimit headers (policies/request-limit.ts); no rule may take them. */
export const REQUEST_LIMIT_NAMES = Object.freeze({ perSubject: 'requests', failedAuthPerAddress: 'auth-failures' });

/** A request limit: `limit` requests per `windowMs` (fixed windows, like the rules); 0 is off. */
const requestLimit = (limit: number) => ({
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    limit: { type: 'integer', minimum: 0, maximum: 1_000_000_000, default: limit },
    windowMs: { type: 'integer', minimum: 1000, maximum: 86_400_000, default: 60_000 },
  },
}) as const;

export const rateLimitSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    // When the shared store is unreachable: `local` keeps limiting per replica (logged, counted),
    // `closed` refuses (503), `open` stops limiting and must be chosen explicitly (warned at start).
    failMode: { enum: ['local', 'closed', 'open'], default: 'local' },
    rules: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'by', 'limit', 'windowMs'],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' },
          by: { enum: ['subject', 'tenant'] },
          // Each model gets its own counter; '*' applies the rule to every model.
          models: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 }, default: ['*'] },
          // In rows (a batch of 1,000 costs 1,000), per window.
          limit: { type: 'integer', minimum: 1, maximum: 1_000_000_000 },
          windowMs: { type: 'integer', minimum: 100, maximum: 31 * 86_400_000 },
        },
      },
    },
    // Request limits (policies/request-limit.ts): every request counted, failed ones included, apart
    // from the row rules, so model names and error behaviour cannot be probed for free. On by
    // default with limits far above what a well-behaved client sends; `limit: 0` turns one off.
    requests: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // Every authenticated request of a subject: predictions, metadata, admin and self-service,
        // whatever it is answered (404, 400, 403…). 1,000 a second sustained over the window.
        perSubject: requestLimit(60_000),
        // Failed authentications (401: no, bad or expired token) from one client address (an IPv6
        // address's /64). Past it, requests from the address whose token is not already verified
        // are refused without looking at the token, until the window ends.
        failedAuthPerAddress: requestLimit(300),
      },
    },
    tenantConcurrency: {
      type: 'object',
      additionalProperties: false,
      required: ['limit'],
      properties: {
        limit: { type: 'integer', minimum: 1, maximum: 1_000_000 },
        // A replica that dies mid-request frees its slots after this.
        leaseTtlMs: { type: 'integer', minimum: 1000, maximum: 3_600_000, default: 60_000 },
      },
    },
  },
} as const;

export const serverSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    // Loopback by default: exposing the gateway is a deliberate act (a flag or HOST).
    host: { type: 'string', minLength: 1, default: '127.0.0.1' },
    port: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
    // Time for a client to send its headers: short, against slow-loris clients.
    headersTimeoutMs: positiveInt(10_000, 600_000),
    // Time for a client to send the whole request.
    requestTimeoutMs: positiveInt(60_000, 3_600_000),
    // Below typical load-balancer idle timeouts (60 s) so the LB never reuses a socket we close.
    keepAliveTimeoutMs: positiveInt(5_000, 600_000),
    // 0 = unlimited is not offered: a cap protects the process's file descriptors.
    maxConnections: positiveInt(10_000, 1_000_000),
    // Time in-flight requests get to finish on SIGTERM before the process exits anyway.
    shutdownGraceMs: positiveInt(10_000, 600_000),
    // Reload when the file changes (SIGHUP always reloads).
    watchConfig: { type: 'boolean', default: false },
    // Worker processes sharing the port. One by default (predictable memory: each worker holds
    // its own model sessions); raise it to use more cores, or set "auto" for one per core.
    workers: { anyOf: [{ type: 'integer', minimum: 1, maximum: 256 }, { const: 'auto' }], default: 1 },
    // What GET /v2 (server metadata) says as `version`: the exact build only to a caller with a
    // valid token (`authenticated`), to everyone (`always`) or to nobody (`never`); the others get
    // a neutral value (the field stays: the protocol requires it). A build version tells an
    // attacker which advisories apply.
    advertiseVersion: { enum: ['authenticated', 'always', 'never'], default: 'authenticated' },
    // Addresses or CIDRs of the proxies in front of the gateway whose X-Forwarded-For is believed
    // (Fastify's trustProxy, proxy-addr syntax: `10.0.0.0/8`, `loopback`…). Empty (the default):
    // the client address is the socket's peer. Behind a load balancer without it every client has
    // the balancer's address, and the per-address limit (rateLimits.requests.failedAuthPerAddress)
    // is shared by all of them. "Believe anyone" is not offered: any client could then name any
    // address; nor a hop count (Fastify cannot check the immediate peer with one).
    trustProxy: { type: 'array', maxItems: 256, items: { type: 'string', minLength: 1, maxLength: 64 }, default: [] },
  },
} as const;

export const loggingSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
    // One JSON line per inference. Off by default, as in Envoy: measured at about +10 µs of CPU
    // per request on the proxy path (npm run bench, target e); errors are logged either way.
    accessLog: { type: 'boolean', default: false },
  },
} as const;

/** The emergency cut-out (gateway/control/kill-switch.ts, docs/kill-switch.md). */
export const killSwitchSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    // Off only for a gateway no one may stop at run time (a benchmark's baseline): warned at start.
    enabled: { type: 'boolean', default: true },
    // A kill is announced and applied within milliseconds; a replica that missed the announcement
    // (pub/sub dropped) re-reads the kill state this often. One small record: cheap to re-read.
    reconcileMs: { type: 'integer', minimum: 50, maximum: 60_000, default: 1000 },
    // Without a confirmation from the store for this long, the replica's copy counts as stale.
    staleAfterMs: { type: 'integer', minimum: 100, maximum: 3_600_000, default: 10_000 },
    // What a stale replica does: `keep` serving under the last kill state it knew (a store outage
    // does not stop the service), or `deny` every prediction (MODEL_KILLED) until it can confirm.
    onStoreLoss: { enum: ['keep', 'deny'], default: 'keep' },
    // A stable version that served this long without a kill becomes the model's known-good version.
    knownGoodAfterMs: { type: 'integer', minimum: 1000, maximum: 30 * 86_400_000, default: 600_000 },
  },
} as const;

/** Replicas announce themselves through the shared store (gateway/control/fleet.ts). */
export const fleetSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    heartbeatMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 1000 },
    // A replica whose last heartbeat is older leaves the list (its record expires in the store).
    expireAfterMs: { type: 'integer', minimum: 300, maximum: 600_000, default: 5000 },
  },
} as const;

/** Where kills and restores are announced to people (gateway/alerts.ts): Slack-compatible JSON. */
export const alertsSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    // A secret (Slack's carry their token in the path): only its origin is ever logged.
    webhookUrl: { type: 'string', pattern: '^https?://' },
    timeoutMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 2000 },
    retries: { type: 'integer', minimum: 0, maximum: 10, default: 3 },
  },
} as const;


/**
 * The tamper-evident audit trail (gateway/audit/trail.ts, docs/audit.md). Without this section the
 * admin log lives in the shared store only and predictions are not recorded (warned at start-up).
 */
export const auditSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['dir', 'signingKeyFile'],
  properties: {
    // Where this replica writes its chain (a folder per replica under it); relative to the configuration file.
    dir: { type: 'string', minLength: 1 },
    // The Ed25519 private key (PEM) that signs this replica's checkpoints: a file the trail's writer
    // cannot be made to rewrite; `breakwater audit keygen` writes one.
    signingKeyFile: { type: 'string', minLength: 1 },
    // The public keys (PEM files) whose checkpoints verify: every replica's. Its own is added.
    publicKeyFiles: { type: 'array', maxItems: 1024, items: { type: 'string', minLength: 1 }, default: [] },
    // How often each replica signs its chain head and publishes it for the others to countersign.
    checkpointMs: { type: 'integer', minimum: 100, maximum: 3_600_000, default: 10_000 },
    // Prediction records are written in batches: at most this long after the answer (0: each one at once).
    maxLossMs: { type: 'integer', minimum: 0, maximum: 60_000, default: 1000 },
    // A file is closed and a new one started past this size or age.
    maxFileBytes: { type: 'integer', minimum: 4096, maximum: 2 ** 40, default: 64 * 1024 * 1024 },
    rotateMs: { type: 'integer', minimum: 1000, maximum: 30 * 86_400_000, default: 3_600_000 },
    // One decision record per prediction (digests of the input and output tensors, never the payload).
    predictions: { type: 'boolean', default: true },
    // Prediction records waiting to be written, at most: past it new ones are dropped (a chain cannot lose an entry it made), counted and logged.
    maxPending: { type: 'integer', minimum: 100, maximum: 10_000_000, default: 100_000 },
  },
} as const;

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['models'],
  properties: {
    server: serverSchema,
    logging: loggingSchema,
    auth: authSchema,
    state: stateSchema,
    rateLimits: rateLimitSchema,
    unleash: unleashSchema,
    killSwitch: killSwitchSchema,
    fleet: fleetSchema,
    alerts: alertsSchema,
    rollout: rolloutSettingsSchema,
    audit: auditSchema,
    models: {
      type: 'object',
      minProperties: 1,
      propertyNames: { pattern: '^[A-Za-z0-9_.-]{1,128}$', not: { anyOf: [{ pattern: '^\\.' }, { enum: PROTOTYPE_KEYS }] } },
      additionalProperties: model,
    },
  },
} as const;
