/**
 * One call to the admin API from a `breakwater` subcommand (`traffic`, `kill`, `restore`): where the
 * gateway is (--url, env BREAKWATER_URL), which token (--token, env BREAKWATER_TOKEN), and how a
 * refusal reads. A refusal is the gateway's catalogue error (`{"code", "error"}`), reported as
 * `STATUS CODE: message` with exit code 1, so every subcommand answers a mistake the same way.
 */
import { CliError } from './args.js';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

/** The admin API of one gateway, as the options and environment name it. */
export interface AdminTarget {
  readonly base: string;
  readonly token: string | undefined;
}

export function adminTarget(values: { url?: string; token?: string }, env: NodeJS.ProcessEnv): AdminTarget {
  return { base: values.url ?? (env.BREAKWATER_URL || DEFAULT_URL), token: values.token ?? (env.BREAKWATER_TOKEN || undefined) };
}

export interface AdminCall {
  readonly method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  readonly path: string;
  readonly body?: unknown;
  /** Bound on the whole exchange (default 10 s: an admin change is stored and announced well within it). */
  readonly timeoutMs?: number;
}

/** The gateway answered with an error: its status and catalogue code, exit code 1. */
export class AdminApiError extends CliError {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  constructor(status: number, code: string, detail: string) {
    super(`${status} ${code}: ${detail}`, 1);
    this.name = 'AdminApiError';
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/** The gateway could not be reached, or did not answer in time (exit code 1). */
export class UnreachableError extends CliError {
  /** The request may have been sent and acted on: only its answer is missing. */
  readonly timedOut: boolean;
  constructor(base: string, cause: unknown, timeoutMs: number) {
    const e = cause as { name?: string; message?: string; cause?: { code?: string; message?: string } };
    const timedOut = e.name === 'TimeoutError';
    const why = timedOut ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.cause?.message ?? e.message ?? String(cause));
    super(`cannot reach the gateway at ${base}: ${why}`, 1);
    this.name = 'UnreachableError';
    this.timedOut = timedOut;
  }
}

/** Sends one call; resolves to the parsed JSON answer (or the text, when it is not JSON). */
export async function adminCall(target: AdminTarget, c: AdminCall): Promise<unknown> {
  const timeoutMs = c.timeoutMs ?? 10_000;
  let res: Response;
  let text: string;
  try {
    res = await fetch(new URL(c.path, target.base), {
      method: c.method,
      headers: {
        ...(target.token === undefined ? {} : { authorization: `Bearer ${target.token}` }),
        ...(c.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: c.body === undefined ? undefined : JSON.stringify(c.body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await res.text();
  } catch (e) {
    throw new UnreachableError(target.base, e, timeoutMs);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  if (!res.ok) {
    const e = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as { code?: unknown; error?: unknown };
    throw new AdminApiError(res.status, typeof e.code === 'string' ? e.code : '', typeof e.error === 'string' ? e.error : text);
  }
  return parsed;
}
