/**
 * The one interface every model backend implements. The gateway validates a request against
 * `metadata()` before it calls `infer`, so an adapter may assume names, datatypes, shapes and values
 * are already consistent with its own metadata. Adapters throw `GatewayError` with a backend code
 * (BACKEND_UNAVAILABLE / BACKEND_TIMEOUT / BACKEND_BAD_RESPONSE / BACKEND_ERROR, and OVERLOADED when
 * a remote backend's guard sheds the call) and keep the underlying failure as `cause`; they never
 * return a backend's own error text to the caller.
 */

import type { BackendGuardFigures } from './backend-guard.js';

export const DATATYPES = [
  'BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64',
  'FP16', 'FP32', 'FP64', 'BYTES',
] as const;
export type Datatype = (typeof DATATYPES)[number];

export interface TensorMetadata {
  readonly name: string;
  readonly datatype: Datatype;
  /** -1 marks a dynamic dimension. */
  readonly shape: readonly number[];
}

export interface ModelMetadata {
  readonly platform: string;
  readonly inputs: readonly TensorMetadata[];
  readonly outputs: readonly TensorMetadata[];
  /** Outputs the backend has but the protocol cannot carry (e.g. scikit-learn ZipMap); never fetched. */
  readonly nonTensorOutputs?: readonly string[];
}

/**
 * Tensor contents, flat and row-major. Either a typed array of the datatype's natural width
 * (BOOL: Uint8Array of 0/1, FP16: Uint16Array of IEEE half bit patterns, INT64: BigInt64Array,
 * UINT64: BigUint64Array), or a plain array of JSON values already checked for the datatype
 * (numbers; booleans for BOOL; strings for BYTES; decimal strings for 64-bit integers beyond 2^53;
 * "NaN"/"Infinity"/"-Infinity" for non-finite floats where the model allows them).
 */
export type TypedTensorData =
  | Uint8Array | Uint16Array | Uint32Array | BigUint64Array
  | Int8Array | Int16Array | Int32Array | BigInt64Array
  | Float32Array | Float64Array;
export type TensorData = TypedTensorData | readonly unknown[];

export interface InferTensor {
  readonly name: string;
  readonly datatype: Datatype;
  readonly shape: readonly number[];
  readonly data: TensorData;
  readonly parameters?: Readonly<Record<string, unknown>>;
}

export interface RequestedOutput {
  readonly name: string;
  readonly parameters?: Readonly<Record<string, unknown>>;
}

export interface InferRequest {
  readonly id?: string;
  readonly inputs: readonly InferTensor[];
  /**
   * Outputs the client asked for; absent means all tensor outputs. An adapter asks its backend for
   * them; the gateway trims whatever comes back to them (gateway/declared-outputs.ts).
   */
  readonly outputs?: readonly RequestedOutput[];
  readonly parameters?: Readonly<Record<string, unknown>>;
  /**
   * The client's original JSON body, when it was plain JSON. A pass-through adapter may forward it
   * as is instead of serialising `inputs` again (the gateway has already validated its contents).
   */
  readonly rawJson?: Buffer;
}

export interface InferResponse {
  readonly outputs: readonly InferTensor[];
  readonly parameters?: Readonly<Record<string, unknown>>;
}

/**
 * The caller's remaining time in milliseconds, sent to HTTP backends and honoured on the way in
 * (like Envoy's x-envoy-expected-rq-timeout-ms): a chain of gateways shares one deadline.
 */
export const TIMEOUT_HEADER = 'x-request-timeout-ms';

export interface InferOptions {
  /**
   * Absolute time (ms since epoch, Date.now() clock) by which the answer is due. Every adapter
   * enforces it itself (no timer is set on its behalf), so the request path pays for one timer.
   */
  readonly deadline: number;
  /** Lets a caller give up early (optional: most calls are bounded by the deadline alone). */
  readonly signal?: AbortSignal;
  /** The request id, for the backend's logs. */
  readonly requestId: string;
}

export interface Adapter {
  /** The adapter kind, as named in the configuration (`onnx`, `oip-http`). */
  readonly kind: string;
  /** Loads the model or checks the backend; rejects with a GatewayError if it cannot serve. */
  load(): Promise<void>;
  /** Metadata of the loaded model; only called after `load()` resolved. */
  metadata(): ModelMetadata;
  infer(request: InferRequest, options: InferOptions): Promise<InferResponse>;
  /** Whether the backend can serve now (cheap; may use a cached health probe). */
  ready(): Promise<boolean>;
  /** Releases sessions, sockets and timers. Idempotent. */
  close(): Promise<void>;
  /** Load shedding and circuit breaker figures, for adapters that guard a remote backend (backend-guard.ts). */
  guardFigures?(): BackendGuardFigures;
}
