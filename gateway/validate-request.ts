/**
 * Checks a parsed request against the model's metadata, so that adapters can trust names,
 * datatypes and shapes. The lookups are built once per metadata object and cached, since metadata
 * changes only when a model version is (re)loaded and the request path must not rebuild them.
 */
import type { InferRequest, ModelMetadata } from '../adapters/adapter.js';
import { GatewayError } from './errors.js';
import { quoteName } from './infer-request.js';

interface MetadataIndex {
  readonly inputs: ReadonlyMap<string, number>;
  readonly outputs: ReadonlySet<string>;
  readonly nonTensorOutputs: ReadonlySet<string>;
  /** Model input indices whose dim 0 is dynamic, when there are two or more (else empty). */
  readonly batchInputs: readonly number[];
}

const indexes = new WeakMap<ModelMetadata, MetadataIndex>();

function indexOf(md: ModelMetadata): MetadataIndex {
  let index = indexes.get(md);
  if (index !== undefined) return index;
  const inputs = new Map<string, number>();
  const batchInputs: number[] = [];
  for (let i = 0; i < md.inputs.length; i++) {
    inputs.set(md.inputs[i].name, i);
    if (md.inputs[i].shape.length > 0 && md.inputs[i].shape[0] === -1) batchInputs.push(i);
  }
  index = {
    inputs,
    outputs: new Set(md.outputs.map((o) => o.name)),
    nonTensorOutputs: new Set(md.nonTensorOutputs ?? []),
    // One dynamic input has nothing to agree with.
    batchInputs: batchInputs.length > 1 ? batchInputs : [],
  };
  indexes.set(md, index);
  return index;
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/**
 * `allowEmptyBatch` (the model's configuration): a 0 is accepted in the batch (first) dimension of an
 * input whose metadata declares it dynamic. Every other zero-size dimension is EMPTY_TENSOR: a tensor
 * with no elements says nothing a model was trained on, and whether a backend copes with one (many
 * crash, some answer garbage) must be the model owner's decision, not a side effect of the gateway.
 */
export function validateAgainstMetadata(req: InferRequest, md: ModelMetadata, allowEmptyBatch = false): void {
  const index = indexOf(md);
  // Request input index per model input; -1 while not given.
  const given = new Int32Array(md.inputs.length).fill(-1);
  for (let r = 0; r < req.inputs.length; r++) {
    const input = req.inputs[r];
    const m = index.inputs.get(input.name);
    if (m === undefined) throw new GatewayError('UNKNOWN_INPUT', `input ${quoteName(input.name)}`);
    if (given[m] !== -1) throw new GatewayError('DUPLICATE_INPUT', `input ${quoteName(input.name)}`);
    given[m] = r;
    const expected = md.inputs[m];
    if (input.datatype !== expected.datatype) {
      throw new GatewayError(
        'DATATYPE_MISMATCH',
        `input ${quoteName(input.name)}: expected ${expected.datatype}, got ${input.datatype}`,
      );
    }
    const shape = input.shape;
    let ok = shape.length === expected.shape.length;
    // The first zero-size dimension the model does not take; -1 while none. In the same pass.
    let empty = -1;
    for (let d = 0; ok && d < shape.length; d++) {
      const want = expected.shape[d];
      const dim = shape[d];
      ok = want === -1 || want === dim;
      if (dim === 0 && empty === -1 && (d !== 0 || want !== -1 || !allowEmptyBatch)) empty = d;
    }
    if (!ok) {
      throw new GatewayError(
        'SHAPE_MISMATCH',
        `input ${quoteName(input.name)}: expected ${shapeText(expected.shape)}, got ${shapeText(shape)}`,
      );
    }
    if (empty !== -1) {
      throw new GatewayError(
        'EMPTY_TENSOR',
        empty === 0 && expected.shape[0] === -1
          ? `input ${quoteName(input.name)} has an empty batch, which this model does not take`
          : `input ${quoteName(input.name)} has a zero-size dimension ${empty}`,
      );
    }
  }
  for (let m = 0; m < given.length; m++) {
    if (given[m] === -1) throw new GatewayError('MISSING_INPUT', `input ${quoteName(md.inputs[m].name)}`);
  }
  const batch = index.batchInputs;
  for (let b = 1; b < batch.length; b++) {
    const first = req.inputs[given[batch[0]]];
    const other = req.inputs[given[batch[b]]];
    if (other.shape[0] !== first.shape[0]) {
      throw new GatewayError(
        'BATCH_MISMATCH',
        `input ${quoteName(first.name)} has batch ${first.shape[0]}, input ${quoteName(other.name)} has ${other.shape[0]}`,
      );
    }
  }
  const outputs = req.outputs;
  if (outputs === undefined) return;
  for (let o = 0; o < outputs.length; o++) {
    const name = outputs[o].name;
    if (index.nonTensorOutputs.has(name)) {
      throw new GatewayError('UNKNOWN_OUTPUT', `output ${quoteName(name)} is not a tensor and cannot be returned`);
    }
    if (!index.outputs.has(name)) throw new GatewayError('UNKNOWN_OUTPUT', `output ${quoteName(name)}`);
  }
}
