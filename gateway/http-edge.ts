/**
 * What Node's HTTP server would otherwise answer by itself, answered the gateway's way: each of these
 * is a bare status with an empty body (or a silently closed socket) unless someone listens. Errors the
 * parser raises are error-handler.ts clientErrorHandler; errors the router raises, frameworkErrors.
 *
 * - `Expect: 100-continue`: Node invites the body at once. Here the invitation waits until the body
 *   is actually read, so a request refused from its headers (401, 403, 404, 415) never has its
 *   client upload the body first (RFC 9110 §10.1.1: the server may answer with the final status).
 * - Any other expectation: 417 EXPECTATION_FAILED, in JSON.
 * - CONNECT: the gateway is not a tunnel; 400 in JSON rather than a socket closed without a word.
 * - Host: checked by hostRefusal (server.ts, first hook) rather than by Node, whose 400 has no body.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { answerOnSocket } from './error-handler.js';
import { GatewayError } from './errors.js';

function sendRaw(res: ServerResponse, ge: GatewayError): void {
  const body = JSON.stringify(ge.toJSON());
  res.shouldKeepAlive = false;
  res.writeHead(ge.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function installEdgeAnswers(server: Server): void {
  server.on('checkContinue', function continueWhenRead(req: IncomingMessage, res: ServerResponse) {
    // The body parser starts the stream flowing: that, and only that, is the moment to invite the
    // body. A response already on its way (a refusal) means the body is not wanted: Node drains or
    // drops it, and 100 Continue after a final status would corrupt the connection.
    req.once('resume', () => {
      if (!res.headersSent) res.writeContinue();
    });
    server.emit('request', req, res);
  });
  server.on('checkExpectation', function unmetExpectation(_req: IncomingMessage, res: ServerResponse) {
    sendRaw(res, new GatewayError('EXPECTATION_FAILED', 'only 100-continue is supported'));
  });
  server.on('connect', function noTunnels(_req: IncomingMessage, socket: Duplex) {
    answerOnSocket(socket, new GatewayError('BAD_REQUEST', 'CONNECT is not served'));
  });
}

/**
 * RFC 9112 §3.2: an HTTP/1.1 request without a Host header, or any request with more than one, is
 * answered 400. Node's own check (requireHostHeader) answers without a body and does not look for
 * a second Host (its `headers` keeps the first); this one is turned off in server.ts.
 */
export function hostRefusal(req: IncomingMessage): GatewayError | undefined {
  const raw = req.rawHeaders;
  let seen = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') {
      if (seen) return new GatewayError('BAD_REQUEST', 'Host is given more than once');
      seen = true;
    }
  }
  if (!seen && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) return new GatewayError('BAD_REQUEST', 'an HTTP/1.1 request needs a Host header');
  return undefined;
}
