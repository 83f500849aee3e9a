/**
 * In-process ONNX backend: one onnxruntime-node InferenceSession per model version.
 *
 * onnxruntime-node runs a session synchronously on the JS thread (its `run()` only defers the
 * native call with setImmediate), so a run cannot be interrupted once it starts and the binding
 * has no `terminate` run option. An abort therefore only wins when it comes before the native run
 * starts: the request then fails with BACKEND_TIMEOUT at once, and because its input tensors are
 * disposed on the way out, the pending run fails before computing anything (a late result, should
 * one still arrive, is disposed).
 */
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { GatewayError } from '../gateway/errors.js';
import type {
  Adapter, Datatype, InferOptions, InferRequest, InferResponse, InferTensor, ModelMetadata,
  TensorData, TensorMetadata, TypedTensorData,
} from './adapter.js';
import { elementCount, toTypedArray } from './tensors.js';

export interface OnnxBackendOptions {
  readonly kind: 'onnx';
  /** Absolute path to model.onnx. */
  readonly path: string;
  readonly intraOpThreads: number;
  readonly interOpThreads: number;
  readonly executionMode: 'sequential' | 'parallel';
  readonly graphOptimizationLevel: 'disabled' | 'basic' | 'extended' | 'all';
}

/** OIP datatype → onnxruntime tensor type. */
const ORT_TYPE: Record<Datatype, Tensor.Type> = {
  BOOL: 'bool', UINT8: 'uint8', UINT16: 'uint16', UINT32: 'uint32', UINT64: 'uint64',
  INT8: 'int8', INT16: 'int16', INT32: 'int32', INT64: 'int64',
  FP16: 'float16', FP32: 'float32', FP64: 'float64', BYTES: 'string',
};

/** onnxruntime type name → OIP datatype; types missing here (int4, uint4, …) have no OIP form. */
const OIP_TYPE: Readonly<Partial<Record<string, Datatype>>> = {
  bool: 'BOOL', uint8: 'UINT8', uint16: 'UINT16', uint32: 'UINT32', uint64: 'UINT64',
  int8: 'INT8', int16: 'INT16', int32: 'INT32', int64: 'INT64',
  float16: 'FP16', float32: 'FP32', float64: 'FP64', double: 'FP64', string: 'BYTES',
};

// --- Metadata

function toDims(shape: ReadonlyArray<number | string>): number[] {
  return shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1));
}

function timeoutError(signal: AbortSignal | undefined): GatewayError {
  return new GatewayError('BACKEND_TIMEOUT', undefined, { cause: signal?.reason });
}

function loadFailure(e: unknown): GatewayError {
  const text = e instanceof Error ? e.message : String(e);
  const detail = /doesn't exist|no such file|ENOENT/i.test(text) ? 'model file not found'
    : /protobuf parsing failed|ModelProto|invalid model/i.test(text) ? 'model file is not a valid ONNX model'
      : 'onnxruntime could not create a session for the model';
  return new GatewayError('MODEL_LOAD_FAILED', detail, { cause: e });
}

function dispose(values: Iterable<unknown>): void {
  for (const v of values) {
    if (v instanceof Tensor) v.dispose();
  }
}

export class OnnxAdapter implements Adapter {
  readonly kind = 'onnx';
  readonly #options: OnnxBackendOptions;
  #session: InferenceSession | undefined;
  #metadata: ModelMetadata | undefined;
  #tensorOutputs = new Set<string>();
  #loading: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  readonly #inflight = new Set<Promise<unknown>>();

  constructor(options: OnnxBackendOptions) {
    this.#options = options;
  }

  load(): Promise<void> {
    if (this.#closing) return Promise.reject(new GatewayError('MODEL_NOT_READY', 'the model version was closed'));
    this.#loading ??= this.#load().catch((e: unknown) => {
      this.#loading = undefined;
      throw e;
    });
    return this.#loading;
  }

  async #load(): Promise<void> {
    const o = this.#options;
    let session: InferenceSession;
    try {
      session = await InferenceSession.create(o.path, {
        intraOpNumThreads: o.intraOpThreads,
        interOpNumThreads: o.interOpThreads,
        executionMode: o.executionMode,
        graphOptimizationLevel: o.graphOptimizationLevel,
      });
    } catch (e) {
      throw loadFailure(e);
    }
    try {
      this.#metadata = this.#describe(session);
    } catch (e) {
      await session.release().catch(() => undefined);
      throw e;
    }
    if (this.#closing) {
      await session.release().catch(() => undefined);
      throw new GatewayError('MODEL_NOT_READY', 'the model version was closed');
    }
    this.#session = session;
  }

  #describe(session: InferenceSession): ModelMetadata {
    const inputs: TensorMetadata[] = [];
    for (const m of session.inputMetadata) {
      const datatype = m.isTensor ? OIP_TYPE[m.type] : undefined;
      if (!m.isTensor || datatype === undefined) {
        const what = m.isTensor ? `type ${m.type}` : 'a non-tensor type';
        throw new GatewayError('MODEL_LOAD_FAILED', `input "${m.name}" has ${what}, which the protocol cannot carry`);
      }
      inputs.push({ name: m.name, datatype, shape: toDims(m.shape) });
    }
    const outputs: TensorMetadata[] = [];
    const nonTensorOutputs: string[] = [];
    for (const m of session.outputMetadata) {
      const datatype = m.isTensor ? OIP_TYPE[m.type] : undefined;
      if (m.isTensor && datatype !== undefined) outputs.push({ name: m.name, datatype, shape: toDims(m.shape) });
      else nonTensorOutputs.push(m.name);
    }
    this.#tensorOutputs = new Set(outputs.map((t) => t.name));
    return { platform: 'onnx_onnxv1', inputs, outputs, ...(nonTensorOutputs.length > 0 ? { nonTensorOutputs } : {}) };
  }

  metadata(): ModelMetadata {
    if (this.#metadata === undefined) throw new GatewayError('MODEL_NOT_READY', 'the model version is not loaded');
    return this.#metadata;
  }

  async ready(): Promise<boolean> {
    return this.#session !== undefined && this.#closing === undefined;
  }

  async infer(request: InferRequest, options: InferOptions): Promise<InferResponse> {
    const session = this.#session;
    if (session === undefined || this.#closing) throw new GatewayError('MODEL_NOT_READY');
    // A run cannot be interrupted once started (it runs on this thread), so the deadline is checked
    // before it is queued; a caller's signal can still drop it while it waits for its turn.
    if (options.signal?.aborted || Date.now() >= options.deadline) throw timeoutError(options.signal);
    const fetches = request.outputs?.map((o) => o.name) ?? [...this.#tensorOutputs];
    for (const name of fetches) {
      if (!this.#tensorOutputs.has(name)) throw new GatewayError('UNKNOWN_OUTPUT', `"${name}"`);
    }
    const feeds: Record<string, Tensor> = {};
    try {
      for (const t of request.inputs) feeds[t.name] = this.#toTensor(t);
      const run = session.run(feeds, fetches, { tag: options.requestId });
      this.#inflight.add(run);
      const settled = run.then(() => undefined, () => undefined).finally(() => this.#inflight.delete(run));
      const results = await this.#race(run, options.signal);
      await settled;
      try {
        return { outputs: fetches.map((name) => this.#toOutput(name, results[name])) };
      } finally {
        dispose(Object.values(results));
      }
    } finally {
      dispose(Object.values(feeds));
    }
  }

  #toTensor(t: InferTensor): Tensor {
    const dims = [...t.shape];
    // Validated data is in the datatype's onnxruntime form here (BOOL 0/1 bytes, FP16 bits, …).
    const data = toTypedArray(t.datatype, t.data);
    if (data.length !== elementCount(dims)) throw new GatewayError('SHAPE_DATA_MISMATCH', `input "${t.name}"`);
    try {
      return new Tensor(ORT_TYPE[t.datatype], data, dims);
    } catch (e) {
      throw new GatewayError('INTERNAL', `input "${t.name}" could not be converted`, { cause: e });
    }
  }

  /** Resolves with the run's outputs, or rejects with BACKEND_TIMEOUT if `signal` aborts first. */
  async #race(run: Promise<InferenceSession.ReturnType>, signal: AbortSignal | undefined): Promise<InferenceSession.ReturnType> {
    let onAbort: () => void = () => undefined;
    const aborted = signal === undefined ? undefined : new Promise<never>((_, reject) => {
      onAbort = () => reject(timeoutError(signal));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await (aborted === undefined ? run : Promise.race([run, aborted]));
    } catch (e) {
      if (e instanceof GatewayError) {
        run.then((late) => dispose(Object.values(late)), () => undefined);
        throw e;
      }
      throw new GatewayError('BACKEND_ERROR', 'onnxruntime failed to run the model', { cause: e });
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  #toOutput(name: string, value: unknown): InferTensor {
    const datatype = value instanceof Tensor ? OIP_TYPE[value.type] : undefined;
    if (!(value instanceof Tensor) || datatype === undefined) {
      throw new GatewayError('BACKEND_BAD_RESPONSE', `output "${name}" is not a tensor the protocol can carry`);
    }
    const data: TensorData = datatype === 'BYTES' ? [...(value.data as string[])] : (value.data as TypedTensorData);
    return { name, datatype, shape: [...value.dims], data };
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await this.#loading?.catch(() => undefined);
    await Promise.allSettled([...this.#inflight]);
    const session = this.#session;
    this.#session = undefined;
    await session?.release().catch(() => undefined);
  }
}
