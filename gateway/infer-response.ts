/**
 * Encodes an adapter's answer as the protocol's response: JSON, or the binary tensor extension for
 * the outputs the client asked to receive as binary (request `parameters.binary_data_output`, or an
 * output's `parameters.binary_data`; the output's own setting wins).
 */
import type { InferRequest, InferResponse, InferTensor } from '../adapters/adapter.js';
import { encodeBinaryResponse } from '../adapters/binary.js';
import { toJsonData } from '../adapters/tensors.js';

export interface EncodedResponse {
  readonly body: string | Buffer;
  /** Set when the body uses the binary extension: the JSON header's length in bytes. */
  readonly headerLength?: number;
}

function binaryOutputs(req: InferRequest, outputs: readonly InferTensor[]): Set<string> | undefined {
  const all = req.parameters?.binary_data_output === true;
  let set: Set<string> | undefined;
  for (const o of outputs) {
    const asked = req.outputs?.find((r) => r.name === o.name)?.parameters?.binary_data;
    if (asked === true || (asked === undefined && all)) (set ??= new Set()).add(o.name);
  }
  return set;
}

export function encodeInferResponse(
  resp: InferResponse,
  req: InferRequest,
  modelName: string,
  modelVersion: string,
): EncodedResponse {
  const binary = binaryOutputs(req, resp.outputs);
  const head: Record<string, unknown> = { model_name: modelName, model_version: modelVersion };
  if (req.id !== undefined) head.id = req.id;
  if (resp.parameters !== undefined) head.parameters = resp.parameters;
  if (binary === undefined) {
    head.outputs = resp.outputs.map((o) => ({
      name: o.name,
      datatype: o.datatype,
      shape: o.shape,
      data: toJsonData(o.datatype, o.data),
    }));
    return { body: JSON.stringify(head) };
  }
  return encodeBinaryResponse(head, resp.outputs, binary);
}
