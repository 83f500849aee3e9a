/**
 * The evaluation's models served by a real gateway child process (`breakwater serve --config`),
 * and a client that asks it for class probabilities. Everything the generator learns about a model
 * (SimBA's flips, the extraction attackers' answers) comes through this HTTP API only, as a
 * black-box attacker would see it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { stringify } from 'yaml';
import { ASSETS } from '../../test/helpers/assets.js';
import { spawnGateway, stopWithin, type ChildGateway } from '../../test/helpers/gateway.js';
import { argmax, probabilities, requestOf, type ModelSpec, type Row } from './models.js';

/** Settings added to each model's entry (`model`) and to its version "1" (`version`). */
export interface ConfigExtras {
  readonly model?: (spec: ModelSpec) => Record<string, unknown>;
  readonly version?: (spec: ModelSpec) => Record<string, unknown>;
}

/** The gateway configuration serving `specs` (version "1" each), plus any settings per model. */
export function gatewayConfig(specs: readonly ModelSpec[], extras: ConfigExtras = {}): Record<string, unknown> {
  return {
    auth: { insecureNoAuth: true },
    server: { host: '127.0.0.1', port: 0 },
    logging: { accessLog: false },
    // The generator queries far faster than any caller the default request limit is set for.
    rateLimits: { requests: { perSubject: { limit: 0 } } },
    models: Object.fromEntries(specs.map((spec) => [spec.name, {
      versions: { '1': { backend: { kind: 'onnx', path: join(ASSETS, 'models', spec.file) }, ...extras.version?.(spec) } },
      ...(spec.nonFinite ? { nonFinite: 'allow' } : {}),
      ...extras.model?.(spec),
    }])),
  };
}

/** A running gateway child and the temporary folder holding its configuration. */
export interface ServedGateway {
  readonly url: string;
  stop(): Promise<void>;
}

/** Starts `breakwater serve --config` on a loopback port with this configuration. */
export async function serveGateway(config: Record<string, unknown>): Promise<ServedGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'bw-eval-'));
  const file = join(dir, 'breakwater.yaml');
  writeFileSync(file, stringify(config));
  let gw: ChildGateway;
  try {
    gw = await spawnGateway(['serve', '--config', file], { timeoutMs: 30_000 });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    url: gw.url,
    stop: async () => {
      await stopWithin(gw);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Asks a served model for class probabilities, counting every row sent (a query). */
export class ModelClient {
  queries = 0;
  private readonly path: string;

  constructor(url: string, readonly spec: ModelSpec, private readonly agent: Agent) {
    this.path = `${url}/v2/models/${spec.name}/infer`;
  }

  /** Class probabilities for each row (batched up to the model's largest batch). */
  async probabilities(rows: readonly Row[]): Promise<number[][]> {
    const out: number[][] = [];
    for (let i = 0; i < rows.length; i += this.spec.maxBatch) {
      const batch = rows.slice(i, i + this.spec.maxBatch);
      out.push(...await this.send(batch));
    }
    return out;
  }

  /** The predicted class of each row. */
  async labels(rows: readonly Row[]): Promise<number[]> {
    return (await this.probabilities(rows)).map(argmax);
  }

  private async send(rows: readonly Row[]): Promise<number[][]> {
    this.queries += rows.length;
    const res = await request(this.path, {
      method: 'POST',
      body: JSON.stringify({ ...requestOf(this.spec, rows), outputs: [{ name: this.spec.output }] }),
      headers: { 'content-type': 'application/json' },
      dispatcher: this.agent,
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`${this.spec.name}: HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
    const output = (JSON.parse(text) as { outputs: { name: string; data: number[] }[] }).outputs.find((o) => o.name === this.spec.output);
    if (output === undefined) throw new Error(`${this.spec.name}: the answer has no output ${this.spec.output}`);
    const width = output.data.length / rows.length;
    return rows.map((_, r) => probabilities(this.spec, output.data.slice(r * width, (r + 1) * width)));
  }
}

/** Runs `work` on each item with at most `concurrency` in flight; results in item order. */
export async function mapConcurrent<T, R>(items: readonly T[], concurrency: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return out;
}
