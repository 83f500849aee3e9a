/**
 * One request to each target before any load: a 200 with outputs, and the same outputs everywhere
 * (across both phases: the first answer seen is the reference).
 */
import { INFER_BODY, INFER_PATH } from './measure.js';
import type { Target } from './targets.js';

export interface SmokeReference {
  label: string;
  outputs: string;
}

/** Returns the reference (the first target's outputs unless one was given). Throws on a non-200. */
export async function smoke(targets: readonly Target[], reference?: SmokeReference): Promise<SmokeReference | undefined> {
  let ref = reference;
  for (const t of targets) {
    const res = await fetch(`${t.front.url}${INFER_PATH}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: INFER_BODY, signal: AbortSignal.timeout(10_000),
    });
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
  }
  return ref;
}
