/**
 * One HTTP/1.1 exchange over a fresh TCP socket, bytes exactly as given: a hostile client sends
 * request lines, headers and bodies that well-behaved clients (undici, fetch) refuse to write
 * (percent-encoding garbage, raw bytes in paths, huge or repeated headers). `Connection: close`
 * and a Content-Length are added unless given; the answer is read until the server closes.
 */
import { connect } from 'node:net';

export interface RawRequest {
  readonly method: string;
  /** The request target, sent as is (may hold anything but CR/LF/space). */
  readonly path: string;
  /** Header lines in order; a name may repeat. */
  readonly headers?: readonly (readonly [string, string])[];
  readonly body?: Buffer | string;
}

export interface RawResponse {
  readonly status: number;
  /** Lower-cased names; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  /** Milliseconds from the first byte written to the last byte read. */
  readonly elapsedMs: number;
}

function dechunk(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  let p = 0;
  for (;;) {
    const eol = data.indexOf('\r\n', p);
    if (eol === -1) throw new Error('chunked body ends inside a chunk size');
    const size = parseInt(data.toString('latin1', p, eol).split(';')[0] ?? '', 16);
    if (!Number.isFinite(size)) throw new Error('bad chunk size');
    if (size === 0) return Buffer.concat(parts);
    parts.push(data.subarray(eol + 2, eol + 2 + size));
    p = eol + 2 + size + 2;
  }
}

export function rawRequest(port: number, req: RawRequest, timeoutMs = 10_000): Promise<RawResponse> {
  const body = req.body === undefined ? Buffer.alloc(0) : Buffer.from(req.body);
  const headers = [...(req.headers ?? [])];
  const has = (name: string) => headers.some(([n]) => n.toLowerCase() === name);
  if (!has('host')) headers.unshift(['Host', `127.0.0.1:${port}`]);
  if (!has('connection')) headers.push(['Connection', 'close']);
  if (!has('content-length') && !has('transfer-encoding') && (body.length > 0 || req.method === 'POST' || req.method === 'PUT')) {
    headers.push(['Content-Length', String(body.length)]);
  }
  const head = `${req.method} ${req.path} HTTP/1.1\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
  return new Promise<RawResponse>((resolve, reject) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer within ${timeoutMs} ms to ${req.method} ${req.path.slice(0, 80)}`));
    }, timeoutMs);
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const data = Buffer.concat(chunks);
      const end = data.indexOf('\r\n\r\n');
      if (end === -1) {
        reject(new Error(`the server closed without an answer (${data.length} bytes) to ${req.method} ${req.path.slice(0, 80)}`));
        return;
      }
      const lines = data.toString('latin1', 0, end).split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1]);
      const hs: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        hs[name] = hs[name] === undefined ? value : `${hs[name]}, ${value}`;
      }
      let rest: Buffer = data.subarray(end + 4);
      if (/chunked/i.test(hs['transfer-encoding'] ?? '')) rest = dechunk(rest);
      else if (hs['content-length'] !== undefined) rest = rest.subarray(0, Number(hs['content-length']));
      resolve({ status, headers: hs, body: rest, elapsedMs: performance.now() - started });
    };
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', finish);
    socket.on('close', finish);
    // A server may answer and close before it has read the whole body (a refusal from the headers):
    // the write then fails, and the answer already read is what counts.
    socket.on('error', () => finish());
    socket.write(head, 'latin1');
    if (body.length > 0) socket.write(body);
  });
}
