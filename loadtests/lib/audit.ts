/**
 * The audit trail's targets of the benchmark ((t0), (t); docs/audit.md): the iris model served
 * in-process (like (d)) with the JWT auth of (g0) (the same key, one bearer token on every request,
 * so every prediction has a subject that its decision record pseudonymises), and the memory store
 * (no `state` section, as in (g0) and (r): the subjects' pseudonym keys live in the store, and the
 * one subject's key is cached after its first request, the steady state of a real client):
 *  - (t0) has no `audit` section (the gateway warns at start-up that predictions are not recorded);
 *  - (t) has one: `dir` in the run's work directory, a fresh Ed25519 key pair made for the run (PEM
 *    files in the work directory, the public key in `publicKeyFiles`), every other setting at its
 *    default (maxLossMs 1000, checkpointMs 10000, predictions on): one decision record per
 *    prediction (SHA-256 of the canonical input and output tensors, the subject's HMAC), chained,
 *    written in batches and fsynced once a second to `<dir>/<replica>/<seq>.jsonl`.
 * The two configurations differ in `audit` alone.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The settings (t) leaves at their defaults (config-schema.ts auditSchema), for the report. */
export const AUDIT_DEFAULTS = { maxLossMs: 1000, checkpointMs: 10_000, predictions: true } as const;

export interface BenchAudit {
  /** The `audit` section of (t). */
  readonly section: { readonly dir: string; readonly signingKeyFile: string; readonly publicKeyFiles: readonly string[]; readonly maxLossMs?: number };
  /** The trail's root directory (one folder per replica under it). */
  readonly dir: string;
}

/**
 * A fresh Ed25519 key pair in <workDir>/audit-keys (the private key mode 0600) and the `audit`
 * section of (t), its trail under <workDir>/audit-trail (made by the gateway when it starts).
 */
export function prepareAudit(workDir: string, maxLossMs: number = AUDIT_DEFAULTS.maxLossMs): BenchAudit {
  const keys = join(workDir, 'audit-keys');
  mkdirSync(keys, { recursive: true, mode: 0o700 });
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const signingKeyFile = join(keys, 'audit.key.pem');
  const publicKeyFile = join(keys, 'audit.pub.pem');
  writeFileSync(signingKeyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }));
  const dir = join(workDir, 'audit-trail');
  // The default is left to the gateway (the section then says only what differs from it).
  return { section: { dir, signingKeyFile, publicKeyFiles: [publicKeyFile], ...(maxLossMs === AUDIT_DEFAULTS.maxLossMs ? {} : { maxLossMs }) }, dir };
}

/** What the gateway logs at start-up without an `audit` section (compose.ts): (t0)'s smoke test looks for it. */
export const AUDIT_OFF_WARNING = 'audit is not configured';
