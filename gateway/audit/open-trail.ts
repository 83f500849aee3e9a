/**
 * The audit trail of a running gateway, from its `audit` section (docs/audit.md): the signing key
 * and the listed public keys read and checked, the file sink, the writer started; a configuration
 * without the section gets none (warned by compose.ts). A key that cannot be read, or is not
 * Ed25519, stops the start: a trail that cannot sign is not evidence.
 */
import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { AuditConfig } from '../config.js';
import type { StateStore } from '../state/store.js';
import { AuditTrail } from './trail.js';
import { keyIdOf, privateKeyFromPem, publicKeyFromPem } from './trail-format.js';
import { FileTrailSink } from './trail-sink.js';

function readKey<T>(file: string, what: string, parse: (pem: string) => T): T {
  try {
    return parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`audit: ${what} ${file} cannot be used: ${(e as Error).message}`);
  }
}

/** The listed public keys by id. */
export function publicKeysOf(files: readonly string[]): Map<string, KeyObject> {
  return new Map(files.map((f) => readKey(f, 'the public key', publicKeyFromPem)).map((k) => [keyIdOf(k), k]));
}

export async function openTrail(config: AuditConfig, opts: { replica: string; store: StateStore; log: Logger }): Promise<AuditTrail> {
  const key = readKey(config.signingKeyFile, 'the signing key (audit.signingKeyFile)', privateKeyFromPem);
  const publicKeys = publicKeysOf(config.publicKeyFiles);
  if (!publicKeys.has(keyIdOf(key))) {
    opts.log.warn({ keyId: keyIdOf(key) }, 'audit: this replica\'s signing key is not among audit.publicKeyFiles: the other replicas will not countersign its checkpoints, and `breakwater audit verify` needs its public key given');
  }
  const sink = new FileTrailSink({ dir: config.dir, replica: opts.replica, maxFileBytes: config.maxFileBytes, rotateMs: config.rotateMs });
  const trail = new AuditTrail({
    replica: opts.replica, sink, key, publicKeys,
    checkpointMs: config.checkpointMs, maxLossMs: config.maxLossMs, maxPending: config.maxPending,
    store: opts.store, log: opts.log.child({ component: 'audit-trail' }),
  });
  await trail.start();
  return trail;
}
