/**
 * Output minimisation: a client receives only the outputs its model's metadata declares, and of
 * those only the ones it named when it named any. A backend that adds outputs of its own (an
 * embedding, logits, a debugging tensor) must not leak them through the gateway, whatever the
 * adapter and whichever encoding (JSON or binary) the answer takes, so the handler trims every
 * answer here before it is encoded or observed. Undeclared outputs are counted
 * (`breakwater.outputs.dropped`): a backend that answers them is misconfigured or worse, and an
 * operator should know. Outputs that are declared but were not asked for are trimmed without being
 * counted: adapters ask their backend for the selection, but a backend may ignore it.
 *
 * Cheap: the declared names are a Set built once per metadata object (a version loads its metadata
 * once), and the usual answer, every output kept, is returned as it is, without a copy.
 */
import type { InferRequest, InferResponse, ModelMetadata, RequestedOutput } from '../adapters/adapter.js';

const declared = new WeakMap<ModelMetadata, ReadonlySet<string>>();

/** The output names the model declares: tensor outputs only (non-tensor ones cannot be carried). */
function declaredNames(md: ModelMetadata): ReadonlySet<string> {
  let names = declared.get(md);
  if (names === undefined) {
    names = new Set(md.outputs.map((o) => o.name));
    declared.set(md, names);
  }
  return names;
}

function kept(name: string, names: ReadonlySet<string>, asked: readonly RequestedOutput[] | undefined): boolean {
  if (!names.has(name)) return false;
  if (asked === undefined) return true;
  // A request names a handful of outputs: a scan costs less than building a Set per request.
  for (let i = 0; i < asked.length; i++) if (asked[i].name === name) return true;
  return false;
}

/**
 * The answer a client may receive: the backend's outputs that `md` declares and `req` asked for
 * (all declared ones when it named none). `resp` itself when nothing is dropped.
 */
export function minimiseOutputs(resp: InferResponse, md: ModelMetadata, req: InferRequest): InferResponse {
  const names = declaredNames(md);
  const asked = req.outputs;
  const outputs = resp.outputs;
  let i = 0;
  while (i < outputs.length && kept(outputs[i].name, names, asked)) i++;
  if (i === outputs.length) return resp;
  const keep = outputs.slice(0, i);
  for (i++; i < outputs.length; i++) if (kept(outputs[i].name, names, asked)) keep.push(outputs[i]);
  return resp.parameters === undefined ? { outputs: keep } : { outputs: keep, parameters: resp.parameters };
}

/** How many of the backend's outputs the model does not declare (asked only once something was dropped). */
export function undeclaredOutputs(resp: InferResponse, md: ModelMetadata): number {
  const names = declaredNames(md);
  let n = 0;
  for (const o of resp.outputs) if (!names.has(o.name)) n++;
  return n;
}
