/**
 * The configuration file's JSON Schema. Defaults live next to their field, with the reason for the
 * value. README.md's configuration reference is written from this file; keep the two together.
 */

const positiveInt = (def: number, max = 2 ** 31 - 1) => ({ type: 'integer', minimum: 1, maximum: max, default: def });

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
  },
} as const;

const modelSettings = {
  /** How NaN and ±Infinity in float inputs are treated (JSON strings "NaN", "Infinity", binary values). */
  nonFinite: { enum: ['reject', 'allow'], default: 'reject' },
  // Large enough for a 1000-row tabular batch; a typical image model needs raising it explicitly.
  maxBodyBytes: positiveInt(8 * 1024 * 1024, 1024 * 1024 * 1024),
  // Bounds the memory a single request can make the gateway allocate while decoding.
  maxElements: positiveInt(4_000_000, 1_000_000_000),
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
      propertyNames: { pattern: '^[A-Za-z0-9_.-]{1,64}$' },
      additionalProperties: version,
    },
    /** The version served when none is named; defaults to the highest numeric version. */
    stable: { type: 'string', minLength: 1 },
    ...modelSettings,
  },
} as const;

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['models'],
  properties: {
    server: {
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
      },
    },
    logging: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
        // One JSON line per inference. Off by default, as in Envoy: measured at about +10 µs of CPU
        // per request on the proxy path (npm run bench, target e); errors are logged either way.
        accessLog: { type: 'boolean', default: false },
      },
    },
    models: {
      type: 'object',
      minProperties: 1,
      propertyNames: { pattern: '^[A-Za-z0-9_.-]{1,128}$', not: { pattern: '^\\.' } },
      additionalProperties: model,
    },
  },
} as const;
