/**
 * Replays a drift stream through a gateway over HTTP, as production traffic would reach it: each
 * line POSTed as is to /v2/models/<model>/infer over keep-alive connections (an undici Pool, at most
 * `concurrency` requests in flight), in blocks of `pollEvery` requests. After every block has been
 * answered, and before the next is sent, `poll` is awaited (the runner's GET of the drift endpoint),
 * so a poll always sees exactly the requests answered so far. Every answer must be 200: anything
 * else stops the replay (an evaluation on refused requests would measure nothing). Bounded in time
 * by `deadline`, and in count by the stream (or `limit`).
 */
import type { Dispatcher } from 'undici';

export interface ReplayOptions {
  /** A dispatcher bound to the gateway's origin (an undici Pool). */
  readonly pool: Dispatcher;
  readonly model: string;
  readonly concurrency: number;
  /** Requests per block; `poll` runs after each block (and after the last, partial one). */
  readonly pollEvery: number;
  /** Epoch milliseconds past which the replay stops with an error. */
  readonly deadline: number;
  /** Stop after this many requests (a --quick run's shorter controls). */
  readonly limit?: number;
  readonly poll?: (answered: number) => Promise<void>;
  /** Each request line, in order, before it is sent (the runner bins the rows for the true PSI). */
  readonly onRequest?: (index: number, line: Buffer) => void;
  /** Each answer's body from request `answersFrom` on (index order is not guaranteed within a block). */
  readonly onAnswer?: (index: number, body: string) => void;
  readonly answersFrom?: number;
}

export interface ReplayResult {
  readonly requests: number;
  /** Wall-clock seconds of the whole replay, polls included. */
  readonly seconds: number;
  /** Seconds spent awaiting polls. */
  readonly pollSeconds: number;
}

const HEADERS = { 'content-type': 'application/json' };

export async function replayStream(lines: AsyncIterable<Buffer>, opts: ReplayOptions): Promise<ReplayResult> {
  const path = `/v2/models/${encodeURIComponent(opts.model)}/infer`;
  const limit = opts.limit ?? Infinity;
  const answersFrom = opts.answersFrom ?? Infinity;
  const started = process.hrtime.bigint();
  let pollNs = 0n;
  let sent = 0;

  const send = async (index: number, body: Buffer): Promise<void> => {
    const res = await opts.pool.request({ path, method: 'POST', headers: HEADERS, body, headersTimeout: 30_000, bodyTimeout: 30_000 });
    if (res.statusCode !== 200) {
      const text = await res.body.text();
      throw new Error(`request ${index} to ${opts.model} answered HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
    }
    if (index >= answersFrom && opts.onAnswer !== undefined) opts.onAnswer(index, await res.body.text());
    else await res.body.dump();
  };

  const sendBlock = async (block: readonly Buffer[], first: number): Promise<void> => {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < block.length) {
        const k = next++;
        await send(first + k, block[k]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(opts.concurrency, block.length) }, worker));
  };

  const flush = async (block: Buffer[]): Promise<void> => {
    if (Date.now() > opts.deadline) throw new Error(`the replay of ${opts.model} passed its deadline after ${sent} requests`);
    await sendBlock(block, sent);
    sent += block.length;
    if (opts.poll !== undefined) {
      const t = process.hrtime.bigint();
      await opts.poll(sent);
      pollNs += process.hrtime.bigint() - t;
    }
  };

  let block: Buffer[] = [];
  for await (const line of lines) {
    if (sent + block.length >= limit) break;
    opts.onRequest?.(sent + block.length, line);
    block.push(line);
    if (block.length === opts.pollEvery) {
      await flush(block);
      block = [];
    }
  }
  if (block.length > 0) await flush(block);
  return { requests: sent, seconds: Number(process.hrtime.bigint() - started) / 1e9, pollSeconds: Number(pollNs) / 1e9 };
}
