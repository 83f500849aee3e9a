/**
 * Real loopback HTTP backends for tests (node:http on 127.0.0.1, port 0): a fake Open Inference
 * Protocol v2 server that computes real answers, plus scripted misbehaviours (slow, garbage, error
 * status, reset mid-way) and a port nobody listens on. Used by adapter and gateway tests alike.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface OipTensorMetadataJson { name: string; datatype: string; shape: number[] }
export interface OipModelMetadataJson {
  name: string;
  versions?: string[];
  platform: string;
  inputs: OipTensorMetadataJson[];
  outputs: OipTensorMetadataJson[];
}
export interface OipTensorJson extends OipTensorMetadataJson { data: unknown[]; parameters?: Record<string, unknown> }
export interface OipInferRequestJson {
  id?: string;
  inputs: OipTensorJson[];
  outputs?: { name: string; parameters?: Record<string, unknown> }[];
  parameters?: Record<string, unknown>;
}
export interface OipInferResponseJson { outputs: OipTensorJson[]; parameters?: Record<string, unknown> }

/** One request as the backend received it, bytes included. */
export interface RecordedCall {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** Computes the answer; a thrown error becomes a 400 `{error}` like a real backend's rejection. */
export type InferHandler = (request: OipInferRequestJson, call: RecordedCall) => OipInferResponseJson | Promise<OipInferResponseJson>;

export type Misbehaviour =
  /** Holds the request: never answers (until close), or answers normally after `delayMs`. */
  | { readonly kind: 'slow'; readonly delayMs?: number }
  /** Answers `status` (200) with these bytes as the body; `chunked` omits content-length. */
  | { readonly kind: 'garbage'; readonly body: string | Buffer; readonly status?: number; readonly chunked?: boolean }
  /** Answers `status` with `body` as JSON, e.g. 500 `{error}`. */
  | { readonly kind: 'status'; readonly status: number; readonly body: unknown }
  /** Reads the whole request, then destroys the socket without answering. */
  | { readonly kind: 'reset' }
  /** Writes these bytes straight to the socket (not HTTP) and ends it. */
  | { readonly kind: 'raw'; readonly bytes: string };

export const slow = (delayMs?: number): Misbehaviour => ({ kind: 'slow', delayMs });
export const garbage = (body: string | Buffer = 'this is <not> JSON', status = 200, chunked = false): Misbehaviour =>
  ({ kind: 'garbage', body, status, chunked });
export const errorStatus = (status: number, error: string): Misbehaviour => ({ kind: 'status', status, body: { error } });
export const error500 = (error = 'internal failure'): Misbehaviour => errorStatus(500, error);
export const resetMidway: Misbehaviour = { kind: 'reset' };
export const notHttp = (bytes = 'SSH-2.0-OpenSSH_9.6\r\n\r\n'): Misbehaviour => ({ kind: 'raw', bytes });

export type Route = 'metadata' | 'ready' | 'infer';
/** A fixed misbehaviour, or one chosen per call (1-based; undefined → behave). */
export type Script = Misbehaviour | ((call: number) => Misbehaviour | undefined);

export interface TestBackend {
  /** Base URL, e.g. http://127.0.0.1:41234 */
  readonly url: string;
  /** Infer requests received so far. */
  calls(): number;
  close(): Promise<void>;
}

export interface FakeOipBackend extends TestBackend {
  readonly port: number;
  /** Every infer request, in arrival order. */
  inferCalls(): readonly RecordedCall[];
  /** TCP connections accepted so far (a leaking client opens ever more). */
  connections(): number;
  /** Changes how a route behaves from now on; undefined restores normal answers. */
  misbehave(route: Route, script: Script | undefined): void;
}

export interface FakeOipOptions {
  /** Also serve /versions/{version}/… routes (unversioned routes are always served). */
  readonly version?: string;
  readonly metadata?: Script;
  readonly ready?: Script;
  readonly infer?: Script;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function readAll(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length }).end(bytes);
}

const MODEL_ROUTE = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/ready|\/infer)?$/;

/** Starts a fake OIP v2 backend serving one model: metadata, health, readiness and infer. */
export async function startFakeOipBackend(
  metadata: OipModelMetadataJson,
  handler: InferHandler,
  options: FakeOipOptions = {},
): Promise<FakeOipBackend> {
  const scripts = new Map<Route, Script | undefined>([
    ['metadata', options.metadata], ['ready', options.ready], ['infer', options.infer],
  ]);
  const counts = new Map<Route, number>();
  const recorded: RecordedCall[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<Socket>();
  let accepted = 0;

  const misbehaviourFor = (route: Route): Misbehaviour | undefined => {
    const n = (counts.get(route) ?? 0) + 1;
    counts.set(route, n);
    const s = scripts.get(route);
    return typeof s === 'function' ? s(n) : s;
  };

  async function answer(route: Route, call: RecordedCall, res: ServerResponse, req: IncomingMessage): Promise<void> {
    const m = misbehaviourFor(route);
    if (m?.kind === 'slow') {
      if (m.delayMs === undefined) return; // hold the request until close()
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => { timers.delete(t); resolve(); }, m.delayMs);
        timers.add(t);
      });
      if (res.destroyed) return;
    } else if (m?.kind === 'reset' || m?.kind === 'raw') {
      if (m.kind === 'raw') req.socket.end(m.bytes);
      else req.socket.destroy();
      return;
    } else if (m?.kind === 'garbage') {
      const body = Buffer.from(m.body);
      if (!m.chunked) res.setHeader('content-length', body.length);
      res.writeHead(m.status ?? 200, { 'content-type': 'application/json' });
      for (let i = 0; i < body.length; i += 16 * 1024) res.write(body.subarray(i, i + 16 * 1024));
      res.end();
      return;
    } else if (m?.kind === 'status') {
      sendJson(res, m.status, m.body);
      return;
    }
    if (route === 'metadata') return sendJson(res, 200, metadata);
    if (route === 'ready') return sendJson(res, 200, { ready: true });
    let parsed: OipInferRequestJson;
    try {
      parsed = JSON.parse(call.body.toString('utf8')) as OipInferRequestJson;
    } catch {
      return sendJson(res, 400, { error: 'request body is not JSON' });
    }
    try {
      const out = await handler(parsed, call);
      sendJson(res, 200, { model_name: metadata.name, ...(parsed.id === undefined ? {} : { id: parsed.id }), ...out });
    } catch (e) {
      sendJson(res, 400, { error: (e as Error).message });
    }
  }

  const server = createServer((req, res) => {
    void (async () => {
      const body = await readAll(req);
      const path = req.url ?? '/';
      const call: RecordedCall = { method: req.method ?? 'GET', path, headers: req.headers, body };
      if (path === '/v2/health/live') return sendJson(res, 200, { live: true });
      if (path === '/v2/health/ready') return answer('ready', call, res, req);
      const match = MODEL_ROUTE.exec(path);
      const [, name, version, tail] = match ?? [];
      const versionOk = version === undefined || version === options.version;
      if (match === null || decodeURIComponent(name) !== metadata.name || !versionOk) {
        return sendJson(res, 404, { error: `unknown route ${path}` });
      }
      if (tail === '/infer' && req.method === 'POST') {
        recorded.push(call);
        return answer('infer', call, res, req);
      }
      if (req.method !== 'GET' || tail === '/infer') return sendJson(res, 405, { error: 'method not allowed' });
      return answer(tail === '/ready' ? 'ready' : 'metadata', call, res, req);
    })().catch(() => res.destroy());
  });
  server.on('connection', (s: Socket) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await listen(server);
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    calls: () => recorded.length,
    inferCalls: () => recorded,
    connections: () => accepted,
    misbehave: (route, script) => void scripts.set(route, script),
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closing;
    },
  };
}

/** A URL whose port was just bound and released: connecting to it is refused. */
export async function startDownBackend(): Promise<TestBackend> {
  const server = createServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return { url: `http://127.0.0.1:${port}`, calls: () => 0, close: async () => undefined };
}

// ---------------------------------------------------------------------------------------------
// A tiny model with exact answers, for contract and integration tests.

/**
 * "row-stats": input `x` FP32 [-1, 3]; outputs `sum` FP32 [-1] (row sums), `scaled` FP32 [-1, 3]
 * (2·x, answered as nested rows like many real backends do) and `positive` BOOL [-1, 3] (x > 0).
 */
export const ROW_STATS_METADATA: OipModelMetadataJson = {
  name: 'row-stats',
  versions: ['1'],
  platform: 'fake-oip',
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3] }],
  outputs: [
    { name: 'sum', datatype: 'FP32', shape: [-1] },
    { name: 'scaled', datatype: 'FP32', shape: [-1, 3] },
    { name: 'positive', datatype: 'BOOL', shape: [-1, 3] },
  ],
};

/** Checks the request like a strict backend would (throws → 400) and computes the outputs. */
export const rowStatsHandler: InferHandler = (req) => {
  const x = req.inputs?.find((t) => t.name === 'x');
  if (req.inputs?.length !== 1 || x === undefined) throw new Error('expected exactly the input x');
  const flat = (x.data as unknown[]).flat(8);
  const [rows, cols] = x.shape;
  if (x.datatype !== 'FP32' || x.shape.length !== 2 || cols !== 3 || flat.length !== rows * 3) {
    throw new Error('x must be FP32 [n, 3]');
  }
  if (!flat.every((v): v is number => typeof v === 'number')) throw new Error('x must hold numbers');
  const rowsOf = <T>(f: (v: number) => T): T[][] =>
    Array.from({ length: rows }, (_, r) => flat.slice(r * 3, r * 3 + 3).map(f));
  const all: OipTensorJson[] = [
    { name: 'sum', datatype: 'FP32', shape: [rows], data: rowsOf((v) => v).map((r) => r[0] + r[1] + r[2]) },
    { name: 'scaled', datatype: 'FP32', shape: [rows, 3], data: rowsOf((v) => v * 2) },
    { name: 'positive', datatype: 'BOOL', shape: [rows, 3], data: rowsOf((v) => v > 0).flat() },
  ];
  if (req.outputs === undefined) return { outputs: all };
  return {
    outputs: req.outputs.map((o) => {
      const t = all.find((a) => a.name === o.name);
      if (t === undefined) throw new Error(`unknown output ${o.name}`);
      return t;
    }),
  };
};
