/**
 * The replay loop and the drift client against a real HTTP server on port 0 that stands in for the
 * gateway: it answers infer requests after a short delay and counts them, so the tests see what
 * reached the server when each poll came.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Pool } from 'undici';
import { DriftClient, DriftUnavailable } from './drift-client.js';
import { replayStream } from './drift-replay.js';

interface Seen { inFlight: number; maxInFlight: number; answered: number; bodies: string[]; resets: string[]; failAt: number }
const seen: Seen = { inFlight: 0, maxInFlight: 0, answered: 0, bodies: [], resets: [], failAt: -1 };
let server: Server;
let pool: Pool;

function handle(req: IncomingMessage, res: ServerResponse): void {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    const json = (status: number, value: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
    if (req.url === '/v2/models/m/infer') {
      seen.inFlight++;
      seen.maxInFlight = Math.max(seen.maxInFlight, seen.inFlight);
      const index = seen.bodies.length;
      seen.bodies.push(body);
      setTimeout(() => {
        seen.inFlight--;
        seen.answered++;
        if (index === seen.failAt) json(400, { error: 'bad tensor', code: 'BAD_REQUEST' });
        else json(200, { outputs: [{ name: 'out', data: [index] }] });
      }, 1 + (index % 3));
    } else if (req.url === '/admin/models/m/drift' && req.method === 'GET') {
      json(200, { status: seen.answered >= 20 ? 'drift' : 'ok', window: { samples: seen.answered }, features: [], outputs: [] });
    } else if (req.url === '/admin/models/m/drift/reset' && req.method === 'POST') {
      seen.resets.push(body);
      json(200, { reset: true });
    } else {
      json(404, { error: 'not found', code: 'NOT_FOUND' });
    }
  });
}

async function* linesOf(n: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < n; i++) yield Buffer.from(`{"i":${i}}`);
}

function reset(): void {
  Object.assign(seen, { inFlight: 0, maxInFlight: 0, answered: 0, bodies: [], resets: [], failAt: -1 });
}

describe('drift replay over HTTP', () => {
  before(async () => {
    server = createServer(handle);
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { connections: 4 });
  });
  after(async () => {
    await pool.close();
    await new Promise<void>((res) => server.close(() => res()));
  });

  it('sends every line in order of blocks, at most `concurrency` in flight, and polls after each block is answered', async () => {
    reset();
    const polls: { at: number; answered: number; inFlight: number }[] = [];
    const answers = new Map<number, string>();
    const requested: number[] = [];
    const r = await replayStream(linesOf(53), {
      pool, model: 'm', concurrency: 4, pollEvery: 10, deadline: Date.now() + 30_000,
      poll: async (at) => void polls.push({ at, answered: seen.answered, inFlight: seen.inFlight }),
      onRequest: (i) => requested.push(i),
      answersFrom: 50,
      onAnswer: (i, body) => answers.set(i, body),
    });
    assert.equal(r.requests, 53);
    assert.deepEqual(polls.map((p) => p.at), [10, 20, 30, 40, 50, 53], 'a last, partial block is polled too');
    assert.ok(polls.every((p) => p.answered === p.at && p.inFlight === 0), 'a poll sees exactly the requests answered so far');
    assert.ok(seen.maxInFlight <= 4 && seen.maxInFlight >= 2, `max in flight ${seen.maxInFlight}`);
    assert.deepEqual(requested, Array.from({ length: 53 }, (_, i) => i));
    assert.deepEqual(new Set(seen.bodies), new Set(Array.from({ length: 53 }, (_, i) => `{"i":${i}}`)), 'each line sent as is');
    assert.deepEqual([...answers.keys()].sort(), [50, 51, 52], 'answers handed over from `answersFrom` on only');
  });

  it('stops at `limit`', async () => {
    reset();
    const r = await replayStream(linesOf(100), { pool, model: 'm', concurrency: 4, pollEvery: 7, deadline: Date.now() + 30_000, limit: 30 });
    assert.equal(r.requests, 30);
    assert.equal(seen.bodies.length, 30);
  });

  it('stops on an answer that is not 200, naming the request and the gateway\'s error', async () => {
    reset();
    seen.failAt = 12;
    await assert.rejects(replayStream(linesOf(40), { pool, model: 'm', concurrency: 2, pollEvery: 10, deadline: Date.now() + 30_000 }),
      /request 12 to m answered HTTP 400: \{"error":"bad tensor","code":"BAD_REQUEST"\}/);
    assert.ok(seen.bodies.length <= 20, 'the next block is never sent');
    // The other worker's request is still being answered: let it finish before the next test counts.
    for (let i = 0; i < 200 && seen.inFlight > 0; i++) await new Promise((res) => setTimeout(res, 5));
  });

  it('stops past its deadline', async () => {
    reset();
    await assert.rejects(replayStream(linesOf(40), { pool, model: 'm', concurrency: 2, pollEvery: 10, deadline: Date.now() - 1 }), /passed its deadline after 0 requests/);
  });

  it('reads the drift status and resets the window through the admin API', async () => {
    reset();
    const client = new DriftClient(pool);
    assert.deepEqual(await client.status('m'), { status: 'ok', window: { samples: 0 }, features: [], outputs: [] });
    await client.reset('m', 'next stream');
    assert.deepEqual(seen.resets, ['{"reason":"next stream"}']);
  });

  it('a 404 from the drift endpoint stops with a message saying the monitor is missing', async () => {
    const client = new DriftClient(pool);
    await assert.rejects(client.status('other'), (e: unknown) => {
      assert.ok(e instanceof DriftUnavailable);
      assert.match(e.message, /^GET \/admin\/models\/other\/drift answered 404 \(\{"error":"not found","code":"NOT_FOUND"\}\): this gateway has no drift endpoint, or drift is not enabled for the model/);
      assert.match(e.message, /--no-drift-check/);
      return true;
    });
    await assert.rejects(client.reset('other', 'x'), DriftUnavailable);
  });
});
