/**
 * One bounded HTTP exchange over an undici dispatcher: the whole answer (headers and body) within
 * `timeoutMs`, a size cap on the body, an optional caller signal, and transport failures mapped onto
 * catalogue codes. It drives undici's dispatch handler directly rather than `request()`: no
 * AbortController, body stream or async iteration per call, which profiling showed to be most of
 * the proxy's own cost. Details never name the backend's address; that stays in `cause`.
 */
import type { Dispatcher } from 'undici';
import { GatewayError, isGatewayError } from '../gateway/errors.js';

export interface ExchangeOptions {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: string | Buffer;
  readonly headers?: Readonly<Record<string, string>>;
  /** Bounds the whole exchange, from the call until the body's last byte. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  /** Largest 2xx body accepted; beyond it the answer is BACKEND_BAD_RESPONSE. */
  readonly maxBytes: number;
  /** Non-2xx bodies are cut to this many bytes (they are only logged). */
  readonly maxErrorBytes: number;
}

export interface ExchangeReply {
  readonly status: number;
  readonly body: Buffer;
}

export const isOk = (status: number): boolean => status >= 200 && status < 300;

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN',
  'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED']);
const BAD_RESPONSE_CODES = new Set(['UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_HEADERS_OVERFLOW', 'UND_ERR_INFO']);

/** The first `code` on the error, its `cause` chain or an AggregateError's members (happy eyeballs). */
function errorCode(e: unknown, depth = 0): string | undefined {
  if (typeof e !== 'object' || e === null || depth > 4) return undefined;
  const { code, name, cause, errors } = e as { code?: unknown; name?: unknown; cause?: unknown; errors?: unknown };
  if (typeof code === 'string') return code;
  if (name === 'HTTPParserError') return 'HPE_UNKNOWN'; // undici leaves `code` unset for some parse errors
  if (Array.isArray(errors)) return errorCode(errors[0], depth + 1);
  return errorCode(cause, depth + 1);
}

/** Maps a transport failure; the detail names the class only: address and errno stay in `cause`. */
export function transportError(e: unknown): GatewayError {
  if (isGatewayError(e)) return e;
  const code = errorCode(e) ?? 'unknown';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new GatewayError('BACKEND_TIMEOUT', 'the backend stopped sending', { cause: e });
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return new GatewayError('BACKEND_UNAVAILABLE', 'connect timed out', { cause: e });
  if (UNAVAILABLE_CODES.has(code)) return new GatewayError('BACKEND_UNAVAILABLE', 'could not reach the backend', { cause: e });
  if (code.startsWith('HPE_') || BAD_RESPONSE_CODES.has(code)) {
    return new GatewayError('BACKEND_BAD_RESPONSE', 'the answer is not valid HTTP', { cause: e });
  }
  if (code === 'UND_ERR_INVALID_ARG') return new GatewayError('INTERNAL', undefined, { cause: e });
  return new GatewayError('BACKEND_ERROR', 'the call failed', { cause: e });
}

/** The caller gave up (client gone, or the gateway's deadline). A GatewayError reason is kept. */
export function abortError(reason: unknown, cause: unknown = reason): GatewayError {
  if (isGatewayError(reason)) return reason;
  return new GatewayError('BACKEND_TIMEOUT', 'the call was cancelled', { cause });
}

export function exchange(dispatcher: Dispatcher, o: ExchangeOptions): Promise<ExchangeReply> {
  return new Promise<ExchangeReply>((resolve, reject) => {
    if (o.signal?.aborted) return reject(abortError(o.signal.reason));
    let controller: Dispatcher.DispatchController | undefined;
    let settled = false;
    let status = 0;
    let cap = o.maxBytes;
    let size = 0;
    const chunks: Buffer[] = [];

    const settle = (error: GatewayError | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (o.signal !== undefined) o.signal.removeEventListener('abort', onAbort);
      if (error !== undefined) reject(error);
      else resolve({ status, body: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size) });
    };
    /** Gives up: settles now and tears the exchange down (its socket is not reused). */
    const stop = (error: GatewayError): void => {
      settle(error);
      controller?.abort(error);
    };
    const timer = setTimeout(() => stop(new GatewayError('BACKEND_TIMEOUT', `no answer within ${o.timeoutMs} ms`)), o.timeoutMs);
    const onAbort = (): void => stop(abortError(o.signal?.reason));
    o.signal?.addEventListener('abort', onAbort, { once: true });

    dispatcher.dispatch({
      method: o.method,
      path: o.path,
      body: o.body,
      headers: o.headers,
      headersTimeout: o.timeoutMs,
      bodyTimeout: o.timeoutMs,
    }, {
      onRequestStart(c) {
        controller = c;
        // Gave up while the request waited for a free connection: do not send it at all.
        if (settled) c.abort(new Error('exchange abandoned before it started'));
      },
      onResponseStart(_c, statusCode, headers) {
        status = statusCode;
        if (!isOk(statusCode)) cap = o.maxErrorBytes;
        else if (Number(headers['content-length']) > cap) {
          stop(new GatewayError('BACKEND_BAD_RESPONSE', `response body is larger than ${cap} bytes`));
        }
      },
      onResponseData(_c, chunk) {
        if (settled) return;
        if (size + chunk.length <= cap) {
          size += chunk.length;
          chunks.push(chunk);
        } else if (isOk(status)) {
          stop(new GatewayError('BACKEND_BAD_RESPONSE', `response body is larger than ${cap} bytes`));
        } else {
          // An error body is only logged: keep its head and drop the connection instead of draining it.
          chunks.push(chunk.subarray(0, cap - size));
          size = cap;
          settle(undefined);
          controller?.abort(new Error('error body truncated'));
        }
      },
      onResponseEnd() {
        settle(undefined);
      },
      onResponseError(_c, error) {
        settle(transportError(error));
      },
    });
  });
}
