/**
 * The baseline: the simplest JSON pass-through proxy, run as its own process by the benchmark.
 * Fastify with its default JSON body parser; each request is re-serialised and sent with an undici
 * keep-alive Pool (same size as the gateway's default, 64) to the upstream's same path; the
 * upstream's status and parsed JSON body are returned. No validation, no logging, no timeouts
 * beyond the libraries' defaults.
 *
 *   node dist/loadtests/lib/bare-proxy.js --upstream http://127.0.0.1:9000 [--port N] [--host H] [--connections 64]
 */
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import { Pool } from 'undici';

const { values } = parseArgs({
  options: {
    upstream: { type: 'string' },
    port: { type: 'string', default: process.env.PORT ?? '0' },
    host: { type: 'string', default: process.env.HOST ?? '127.0.0.1' },
    connections: { type: 'string', default: '64' },
  },
});
if (values.upstream === undefined) {
  process.stderr.write('bare-proxy: --upstream URL is required\n');
  process.exit(2);
}

const pool = new Pool(new URL(values.upstream).origin, {
  connections: Number(values.connections),
  pipelining: 1,
  keepAliveTimeout: 4000,
});
const app = Fastify({ logger: false });

app.route({
  method: ['GET', 'POST'],
  url: '/*',
  async handler(request, reply) {
    const res = await pool.request({
      method: request.method as 'GET' | 'POST',
      path: request.url,
      headers: request.method === 'POST' ? { 'content-type': 'application/json' } : {},
      body: request.method === 'POST' ? JSON.stringify(request.body) : undefined,
    });
    const text = await res.body.text();
    reply.code(res.statusCode);
    return text === '' ? reply.send() : reply.send(JSON.parse(text));
  },
});

const shutdown = () => {
  const force = setTimeout(() => process.exit(0), 2000);
  force.unref();
  void app.close().then(() => pool.close()).finally(() => process.exit(0));
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);

await app.listen({ port: Number(values.port), host: values.host });
