/**
 * One request to each target before any load: a 200 with outputs, and the same outputs everywhere
 * (across both phases: the first answer seen is the reference).
 *
 * A target that sends a bearer token ((f)) is also checked for what it adds: the 200 answer carries
 * the `RateLimit` header (the rate-limit policy ran), the same request without the token is refused
 * with 401, and the charge went to the target's Redis (it holds counters afterwards).
 */
import { INFER_BODY, INFER_PATH } from './measure.js';
import { dbSize } from './redis.js';
import type { Target } from './targets.js';

export interface SmokeReference {
  label: string;
  outputs: string;
}

function infer(t: Target, headers: Readonly<Record<string, string>> | undefined): Promise<Response> {
  return fetch(`${t.front.url}${INFER_PATH}`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: INFER_BODY, signal: AbortSignal.timeout(10_000),
  });
}

/** (f)'s extra checks; throws when one fails. */
async function smokeIdentity(t: Target, res: Response): Promise<void> {
  const limit = res.headers.get('ratelimit');
  const policy = res.headers.get('ratelimit-policy');
  if (limit === null) throw new Error(`${t.label}: the 200 answer has no RateLimit header (the rate-limit policy did not run)`);
  const anonymous = await infer(t, undefined);
  const text = await anonymous.text();
  if (anonymous.status !== 401) {
    throw new Error(`${t.label}: without the token the request answered HTTP ${anonymous.status}, not 401: ${text.slice(0, 300)}`);
  }
  let keys: number | undefined;
  if (t.redis !== undefined) {
    keys = await dbSize(t.redis.port);
    if (keys === 0) throw new Error(`${t.label}: Redis holds no keys after a 200 answer (the charge did not reach it)`);
  }
  console.log(`smoke ${t.label}: with the token 200, RateLimit: ${limit}; RateLimit-Policy: ${policy ?? '(none)'}; ` +
    `without the token 401 (${anonymous.headers.get('www-authenticate') ?? 'no WWW-Authenticate'})` +
    `${keys === undefined ? '' : `; ${keys} key(s) in Redis`}`);
}

/** Returns the reference (the first target's outputs unless one was given). Throws on a non-200. */
export async function smoke(targets: readonly Target[], reference?: SmokeReference): Promise<SmokeReference | undefined> {
  let ref = reference;
  for (const t of targets) {
    const res = await infer(t, t.headers);
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${t.label}: smoke request answered HTTP ${res.status}: ${text.slice(0, 500)}`);
    const outputs = JSON.stringify((JSON.parse(text) as { outputs?: unknown }).outputs);
    if (outputs === undefined) throw new Error(`${t.label}: smoke answer has no outputs: ${text.slice(0, 500)}`);
    if (ref === undefined) {
      ref = { label: t.label, outputs };
      console.log(`smoke ${t.label}: ${text.slice(0, 300)}`);
    } else if (outputs !== ref.outputs) {
      console.log(`!!! ${t.label}: outputs differ from ${ref.label}: ${outputs.slice(0, 300)}`);
    } else {
      console.log(`smoke ${t.label}: 200, same outputs as ${ref.label}`);
    }
    if (t.headers?.authorization !== undefined) await smokeIdentity(t, res);
  }
  return ref;
}
