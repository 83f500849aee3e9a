/**
 * The content hash of a version's model artifact. A reload reuses a loaded version only when its
 * backend configuration and this hash are both unchanged, so a model.onnx replaced in place (as
 * on-call does) is loaded anew, and a broken replacement is refused like any broken model. The hash
 * also names exactly what served a prediction, for the audit trail.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { BackendConfig } from '../gateway/config.js';
import { GatewayError } from '../gateway/errors.js';

/** Big reads: hashing is bound by the disk, and model files run to gigabytes. */
const CHUNK_BYTES = 1 << 20;

/**
 * SHA-256 (hex) of the model file of an in-process backend; undefined for a remote one (its
 * model lives elsewhere). The file is streamed through the hash, never held in memory.
 */
export async function artifactSha256(backend: BackendConfig): Promise<string | undefined> {
  if (backend.kind !== 'onnx') return undefined;
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(backend.path, { highWaterMark: CHUNK_BYTES })) hash.update(chunk as Buffer);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // Worded like onnx.ts's load failures: the same problem whichever step meets it first.
    throw new GatewayError('MODEL_LOAD_FAILED', code === 'ENOENT' ? 'model file not found' : `model file cannot be read (${code ?? 'error'})`, { cause: e });
  }
  return hash.digest('hex');
}
