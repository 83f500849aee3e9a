/**
 * The drift runner's client of the gateway's drift admin API (issue 11, scope `admin:drift`; the
 * evaluation's gateway runs with auth.insecureNoAuth, whose anonymous caller holds every scope):
 * `GET /admin/models/{m}/drift` for the status, `POST /admin/models/{m}/drift/reset {"reason"}` to
 * start a new window before each stream. A 404 stops the run with a message saying what it means
 * (a gateway without the monitor, or drift not enabled for the model), not a stack of undefined reads.
 */
import type { Dispatcher } from 'undici';

/** The gateway (or its profile) has no drift monitor to evaluate: a finding the runner prints as is, without a stack. */
export class DriftUnavailable extends Error {
  override readonly name = 'DriftUnavailable';
}

export function endpointMissing(method: string, path: string, body: string): DriftUnavailable {
  return new DriftUnavailable(`${method} ${path} answered 404 (${body.slice(0, 200) || 'no body'}): this gateway has no drift endpoint, or drift is not enabled for the model. `
    + 'The evaluation needs issue 11\'s drift monitor, on for the model (models.<m>.drift); run with --no-drift-check to replay the streams without it.');
}

const TIMEOUTS = { headersTimeout: 30_000, bodyTimeout: 30_000 };

export class DriftClient {
  readonly #pool: Dispatcher;

  /** `pool`: a dispatcher bound to the gateway's origin. */
  constructor(pool: Dispatcher) {
    this.#pool = pool;
  }

  /** The drift endpoint's JSON answer for a model (checked by drift-polls.ts pollOf). */
  async status(model: string): Promise<unknown> {
    return this.#call('GET', `/admin/models/${encodeURIComponent(model)}/drift`);
  }

  async reset(model: string, reason: string): Promise<void> {
    await this.#call('POST', `/admin/models/${encodeURIComponent(model)}/drift/reset`, JSON.stringify({ reason }));
  }

  async #call(method: 'GET' | 'POST', path: string, body?: string): Promise<unknown> {
    const res = await this.#pool.request({
      path, method, ...TIMEOUTS,
      ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }),
    });
    const text = await res.body.text();
    if (res.statusCode === 404) throw endpointMissing(method, path, text);
    if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`${method} ${path} answered HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
    if (text === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new Error(`${method} ${path} answered HTTP ${res.statusCode} with a body that is not JSON: ${text.slice(0, 200)}`);
    }
  }
}
