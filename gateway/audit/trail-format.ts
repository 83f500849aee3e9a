/**
 * The audit trail's format on disk (docs/audit.md): what every replica writes, and what
 * `breakwater audit verify` checks. Pure: no I/O.
 *
 * A replica's trail is one hash chain: entry n carries the hash of entry n − 1 (`prev`), its own
 * sequence number (1, 2, 3… without gap) and its `hash`, the SHA-256 of the canonical JSON of every
 * other field. Editing, deleting, inserting or reordering an entry breaks the chain at that entry.
 * A chain can still be cut short, or rewritten whole by whoever can write its files; so each
 * replica periodically signs its chain head with an Ed25519 key (a **checkpoint**, itself an entry
 * of the chain and published to the shared store), and the other replicas **countersign** the
 * checkpoints they see (an entry of their own chains): a cut tail misses a checkpoint that other
 * replicas' chains or the store remember, and a rewritten chain needs a key its writer does not
 * hold.
 *
 * Files are JSON lines. Each file starts with a `file-start` line stating the chain state it
 * continues from (the next sequence number and the hash before it), so a file can be verified on
 * its own and files can be shipped and rotated independently.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

export const TRAIL_FORMAT = 1;
/** The `prev` of a chain's first entry. */
export const GENESIS = '0'.repeat(64);

export type TrailKind =
  /** An admin action (traffic, opt-outs, erasure, kill switch, rollouts, guards): the AuditRecord. */
  | 'admin'
  /** Something the gateway did by itself (a rollout decision, a drift status change, …): the AuditRecord. */
  | 'automatic'
  /** A configuration loaded or reloaded: its SHA-256. */
  | 'config'
  /** A model version loaded: its artefacts' SHA-256. */
  | 'model'
  /** One decision record per prediction. */
  | 'prediction'
  /** This replica's signed chain head. */
  | 'checkpoint'
  /** Another replica's checkpoint, as this one saw it and signed it. */
  | 'countersign';

export interface TrailEntry {
  readonly v: 1;
  readonly replica: string;
  readonly seq: number;
  readonly prev: string;
  /** When the entry was made (ISO 8601, the replica's clock). */
  readonly at: string;
  readonly kind: TrailKind;
  readonly body: unknown;
  readonly hash: string;
}

/** The first line of every trail file: the chain state the file continues from. */
export interface FileStart {
  readonly v: 1;
  readonly type: 'file-start';
  readonly replica: string;
  /** The sequence number of the file's first entry. */
  readonly seq: number;
  /** The hash of the entry before it (GENESIS for a chain's first file). */
  readonly prev: string;
  readonly at: string;
}

/** What a checkpoint signs: a replica's chain head. */
export interface CheckpointClaim {
  readonly replica: string;
  readonly seq: number;
  readonly hash: string;
  readonly at: string;
}

/** The body of a `checkpoint` entry, and of a countersignature's subject. */
export interface Checkpoint extends CheckpointClaim {
  /** The signing key's id (keyId of its public key). */
  readonly keyId: string;
  /** Ed25519 signature of canonicalJson(claim), base64. */
  readonly signature: string;
}

/** The body of a `countersign` entry: another replica's checkpoint and this replica's signature of it. */
export interface Countersign {
  readonly checkpoint: Checkpoint;
  readonly keyId: string;
  readonly signature: string;
}

/** JSON with object keys sorted at every depth and no whitespace: one text per value, whoever writes it. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const s = JSON.stringify(value);
    return s === undefined ? 'null' : s;
  }
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += (i === 0 ? '' : ',') + canonicalJson(value[i] === undefined ? null : value[i]);
    return `${out}]`;
  }
  const o = value as Record<string, unknown>;
  const keys = Object.keys(o).sort();
  let out = '{';
  let first = true;
  for (const k of keys) {
    const v = o[k];
    if (v === undefined) continue;
    out += `${first ? '' : ','}${JSON.stringify(k)}:${canonicalJson(v)}`;
    first = false;
  }
  return `${out}}`;
}

export function sha256Hex(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The hash an entry must carry: SHA-256 of the canonical JSON of every field but `hash`. */
export function entryHash(e: Omit<TrailEntry, 'hash'>): string {
  return sha256Hex(canonicalJson({ v: e.v, replica: e.replica, seq: e.seq, prev: e.prev, at: e.at, kind: e.kind, body: e.body }));
}

/** The entry after the chain head `{seq, hash}`. */
export function nextEntry(head: { readonly seq: number; readonly hash: string }, replica: string, kind: TrailKind, body: unknown, at: string): TrailEntry {
  const e = { v: TRAIL_FORMAT, replica, seq: head.seq + 1, prev: head.hash, at, kind, body } as const;
  return { ...e, hash: entryHash(e) };
}

/** A public key's id: the first 16 hex digits of the SHA-256 of its SPKI DER. */
export function keyIdOf(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return sha256Hex(pub.export({ type: 'spki', format: 'der' })).slice(0, 16);
}

export function privateKeyFromPem(pem: string): KeyObject {
  const k = createPrivateKey(pem);
  if (k.asymmetricKeyType !== 'ed25519') throw new Error(`the audit signing key must be Ed25519 (it is ${k.asymmetricKeyType ?? 'unknown'})`);
  return k;
}

export function publicKeyFromPem(pem: string): KeyObject {
  const k = createPublicKey(pem);
  if (k.asymmetricKeyType !== 'ed25519') throw new Error(`an audit public key must be Ed25519 (it is ${k.asymmetricKeyType ?? 'unknown'})`);
  return k;
}

export function signClaim(claim: CheckpointClaim, key: KeyObject): Checkpoint {
  const c = { replica: claim.replica, seq: claim.seq, hash: claim.hash, at: claim.at };
  return { ...c, keyId: keyIdOf(key), signature: sign(null, Buffer.from(canonicalJson(c)), key).toString('base64') };
}

/** Whether `cp` is signed by `key` (its claim as it stands). */
export function checkpointSigned(cp: Checkpoint, key: KeyObject): boolean {
  const c = { replica: cp.replica, seq: cp.seq, hash: cp.hash, at: cp.at };
  try {
    return verify(null, Buffer.from(canonicalJson(c)), key, Buffer.from(cp.signature, 'base64'));
  } catch {
    return false;
  }
}

export function countersign(cp: Checkpoint, key: KeyObject): Countersign {
  return { checkpoint: cp, keyId: keyIdOf(key), signature: sign(null, Buffer.from(canonicalJson(cp)), key).toString('base64') };
}

export function countersignatureValid(c: Countersign, key: KeyObject): boolean {
  try {
    return verify(null, Buffer.from(canonicalJson(c.checkpoint)), key, Buffer.from(c.signature, 'base64'));
  } catch {
    return false;
  }
}
