/**
 * Verification keys: PEM public keys and shared secrets from the configuration, each pinned to
 * algorithms its type can actually use (the table in gateway/jwt-algorithms.ts). A token's `alg` is only
 * ever tried against a key whose list holds it, so an RSA public key can never be used as an HMAC
 * secret (algorithm confusion) and a P-256 key never checks an ES384 signature.
 */
import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { AuthKeyConfig } from '../../gateway/config.js';
import { algorithmsForPublicKey, HMAC_ALGORITHMS, importPublicPem, MIN_SECRET_BYTES, type JwtAlgorithm } from '../../gateway/jwt-algorithms.js';

/** A key a token may be verified with. */
export interface TrustedKey {
  /** Matched against a token's `kid` by equality only; never a path or URL. */
  readonly kid: string | undefined;
  /** Pinned: the configured list, every one of which fits the key's type. */
  readonly algorithms: ReadonlySet<JwtAlgorithm>;
  /** What the verifier is given: an SPKI PEM for public keys, the raw bytes of a secret. */
  readonly material: string | Buffer;
  /** Where it came from, for logs: `auth.keys.<i>` or `jwks`. */
  readonly source: string;
  /**
   * Set once the key has left its JWKS. A retired key verifies nothing, and tokens it verified
   * earlier are no longer answered from the cache.
   */
  retired: boolean;
}

/** The configured algorithms if every one fits the key type; otherwise the problem. */
function pin(wanted: readonly JwtAlgorithm[], fits: readonly JwtAlgorithm[], what: string): ReadonlySet<JwtAlgorithm> | string {
  const misfits = wanted.filter((a) => !fits.includes(a));
  if (misfits.length > 0) return `${misfits.join(', ')} cannot be used with ${what} (it allows ${fits.join(', ')})`;
  return new Set(wanted);
}

/** A secret file usually ends in a newline that is no part of the secret. */
function secretBytes(text: Buffer): Buffer {
  let end = text.length;
  if (end > 0 && text[end - 1] === 0x0a) end--;
  if (end > 0 && text[end - 1] === 0x0d) end--;
  return text.subarray(0, end);
}

/**
 * Loads every configured key (files are read once, here). Throws an Error listing each problem by
 * its path: a key that does not fit its algorithms is a configuration mistake, found at start-up.
 */
export async function loadConfiguredKeys(keys: readonly AuthKeyConfig[]): Promise<TrustedKey[]> {
  const problems: string[] = [];
  const out: TrustedKey[] = [];
  for (const [i, k] of keys.entries()) {
    const at = `auth.keys.${i}`;
    const loaded = await loadOne(k, at).catch((e: unknown) => `cannot read its file: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    if (typeof loaded === 'string') problems.push(`${at}: ${loaded}`);
    else out.push(loaded);
  }
  if (problems.length > 0) throw new Error(`invalid auth keys:\n  - ${problems.join('\n  - ')}`);
  return out;
}

async function loadOne(k: AuthKeyConfig, at: string): Promise<TrustedKey | string> {
  if (k.secret !== undefined || k.secretFile !== undefined) {
    const bytes = k.secret !== undefined ? Buffer.from(k.secret, 'utf8') : secretBytes(await readFile(k.secretFile as string));
    if (bytes.length < MIN_SECRET_BYTES) return `a secret needs at least ${MIN_SECRET_BYTES} bytes`;
    const algorithms = pin(k.algorithms, HMAC_ALGORITHMS, 'a secret');
    if (typeof algorithms === 'string') return algorithms;
    return { kid: k.kid, algorithms, material: bytes, source: at, retired: false };
  }
  const pem = k.publicKey !== undefined ? k.publicKey : await readFile(k.publicKeyFile as string, 'utf8');
  const key = importPublicPem(pem);
  if (typeof key === 'string') return `${k.publicKey !== undefined ? 'publicKey' : 'publicKeyFile'} ${key}`;
  const fits = algorithmsForPublicKey(key);
  if (typeof fits === 'string') return fits;
  const algorithms = pin(k.algorithms, fits, `an ${describeKey(key)} key`);
  if (typeof algorithms === 'string') return algorithms;
  return { kid: k.kid, algorithms, material: toSpkiPem(key), source: at, retired: false };
}

export function describeKey(key: KeyObject): string {
  const t = key.asymmetricKeyType;
  if (t === 'ec') return `EC ${key.asymmetricKeyDetails?.namedCurve ?? ''}`.trim();
  return t === 'rsa' ? 'RSA' : String(t);
}

/** Certificates and PKCS#1 become plain SPKI, the one form the verifier is handed. */
export function toSpkiPem(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }) as string;
}
