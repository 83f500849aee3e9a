/**
 * Sends set records to a gateway over HTTP, as a client would, and keeps what the guards said:
 * the status and the `x-guard` header (the guards that fired, comma-separated), and how long the
 * answer took.
 */
import { Agent, request } from 'undici';
import { mapConcurrent } from './served-models.js';
import type { SetRecord } from './sets.js';

export interface Answer {
  readonly status: number;
  readonly guards: readonly string[];
  /** Milliseconds from sending to the whole answer read. */
  readonly ms: number;
}

/** Posts each record's request to /v2/models/<model>/infer, `concurrency` at a time; answers in record order. */
export async function sendRecords(url: string, records: readonly SetRecord[], agent: Agent, concurrency: number): Promise<Answer[]> {
  return mapConcurrent(records, concurrency, async (r) => {
    const started = process.hrtime.bigint();
    const res = await request(`${url}/v2/models/${encodeURIComponent(r.model)}/infer`, {
      method: 'POST',
      body: JSON.stringify(r.request),
      headers: { 'content-type': 'application/json' },
      dispatcher: agent,
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    await res.body.arrayBuffer();
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const header = res.headers['x-guard'];
    const value = Array.isArray(header) ? header.join(',') : header ?? '';
    return { status: res.statusCode, guards: value.split(',').map((g) => g.trim()).filter((g) => g !== ''), ms };
  });
}
