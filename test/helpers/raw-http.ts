/**
 * HTTP/1.1 spoken byte by byte over node:net, for requests no well-behaved client will send: two
 * Content-Type headers, no Host, a malformed request line, a header section past Node's limit. Each
 * exchange is bounded in time and read until the server closes (send `Connection: close`) or the
 * first complete answer has arrived.
 */
import { connect, type Socket } from 'node:net';

export interface RawAnswer {
  readonly status: number;
  /** Header names lower-cased; a repeated header keeps its last value. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** Everything the server wrote, interim answers (100 Continue) included. */
  readonly text: string;
}

/** A request with a Host and `Connection: close`, the given header lines, and the body with its length. */
export function rawRequest(line: string, headers: readonly string[] = [], body?: string | Buffer): string | Buffer {
  const head = `${line}\r\nHost: gateway.test\r\nConnection: close\r\n${headers.map((h) => `${h}\r\n`).join('')}`;
  if (body === undefined) return `${head}\r\n`;
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  return Buffer.concat([Buffer.from(`${head}Content-Length: ${bytes.length}\r\n\r\n`), bytes]);
}

/** Parses the final answer in `text` (latin1, as read; interim 1xx skipped), or undefined while it is incomplete. */
export function parseAnswer(text: string): RawAnswer | undefined {
  let rest = text;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end === -1) return undefined;
    const [statusLine = '', ...lines] = rest.slice(0, end).split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1]);
    if (status >= 100 && status < 200) {
      rest = rest.slice(end + 4);
      continue;
    }
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const colon = l.indexOf(':');
      headers[l.slice(0, colon).trim().toLowerCase()] = l.slice(colon + 1).trim();
    }
    const body = rest.slice(end + 4);
    const length = headers['content-length'];
    if (length !== undefined && Buffer.byteLength(body, 'latin1') < Number(length)) return undefined;
    return { status, headers, body: Buffer.from(body, 'latin1').toString('utf8'), text };
  }
}

/** Writes `bytes`, resolves with the answer once complete (or the server closed), rejects after `timeoutMs`. */
export function exchange(port: number, bytes: string | Buffer, timeoutMs = 5_000): Promise<RawAnswer> {
  return talk(port, (socket) => socket.write(bytes), timeoutMs);
}

/**
 * Opens a connection, lets `drive` write to it (it gets the text received so far on each chunk, as
 * `onData`), and resolves with the final answer.
 */
export function talk(port: number, drive: (socket: Socket) => void, timeoutMs = 5_000, onData?: (text: string, socket: Socket) => void): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    const finish = (err?: Error) => {
      clearTimeout(timer);
      socket.destroy();
      const answer = parseAnswer(text);
      if (answer !== undefined) resolve(answer);
      else reject(err ?? new Error(`no complete answer: ${JSON.stringify(text.slice(0, 300))}`));
    };
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms: ${JSON.stringify(text.slice(0, 300))}`)), timeoutMs);
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
      onData?.(text, socket);
      if (parseAnswer(text) !== undefined) finish();
    });
    socket.once('error', (e) => finish(e));
    socket.once('close', () => finish());
    socket.once('connect', () => drive(socket));
  });
}
