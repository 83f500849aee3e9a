/**
 * The one JWS algorithm table (RFC 7518 §3.1): every algorithm the gateway verifies, its family, and
 * which key each kind of key may verify. The configuration schema (the names it accepts), the
 * configuration layer (the algorithm a key given by flag is pinned to) and the verifier
 * (policies/auth: the algorithms a configured or JWKS key is pinned to) all read it, so they cannot
 * disagree again (they once did: a P-521 key given by flag was pinned to ES256, which the verifier
 * rightly refused for that key).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';

/** By family: RSASSA (PKCS#1 v1.5 and PSS), ECDSA, EdDSA (RFC 8037), HMAC. */
const RSA = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const;
const ECDSA = ['ES256', 'ES384', 'ES512'] as const;
const EDDSA = ['EdDSA'] as const;
const HMAC = ['HS256', 'HS384', 'HS512'] as const;

/** Every algorithm name a configuration may give; a tuple so the schema's `enum` keeps the literals. */
export const JWT_ALGORITHMS = [...RSA, ...ECDSA, ...EDDSA, ...HMAC] as const;
/** What a public key may verify; a JWKS is public, so it offers no HMAC algorithm. */
export const ASYMMETRIC_ALGORITHMS = [...RSA, ...ECDSA, ...EDDSA] as const;
export const HMAC_ALGORITHMS: readonly JwtAlgorithm[] = HMAC;

export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];
export type AlgorithmFamily = 'rsa' | 'ecdsa' | 'eddsa' | 'hmac';

export const ALGORITHM_FAMILY: Readonly<Record<JwtAlgorithm, AlgorithmFamily>> = Object.freeze({
  ...familyOf(RSA, 'rsa'),
  ...familyOf(ECDSA, 'ecdsa'),
  ...familyOf(EDDSA, 'eddsa'),
  ...familyOf(HMAC, 'hmac'),
});

function familyOf<A extends JwtAlgorithm>(names: readonly A[], family: AlgorithmFamily): Record<A, AlgorithmFamily> {
  return Object.fromEntries(names.map((n) => [n, family])) as Record<A, AlgorithmFamily>;
}

/** RFC 7518 §3.3: RSA keys of 2048 bits or more. */
export const MIN_RSA_BITS = 2048;
/** A shared secret shorter than the hash it keys is guessable (RFC 7518 §3.2 asks for at least 256 bits). */
export const MIN_SECRET_BYTES = 32;

/** One kind of key and what it may verify. */
export interface KeyKind {
  /** How messages and docs name it. */
  readonly name: string;
  /** node:crypto's `asymmetricKeyType`, or `secret` for a shared secret. */
  readonly type: string;
  /** node:crypto's `namedCurve`, for EC keys: ES256/384/512 each name their curve (RFC 7518 §3.4). */
  readonly curve?: string;
  readonly algorithms: readonly JwtAlgorithm[];
  /**
   * The one algorithm a key given without a list (`--jwt-public-key`) is pinned to: the common one
   * of its family, as narrow as a key given with a list would usually be.
   */
  readonly inferred: JwtAlgorithm;
}

export const KEY_KINDS: readonly KeyKind[] = Object.freeze([
  { name: 'RSA', type: 'rsa', algorithms: RSA, inferred: 'RS256' },
  { name: 'EC P-256', type: 'ec', curve: 'prime256v1', algorithms: ['ES256'], inferred: 'ES256' },
  { name: 'EC P-384', type: 'ec', curve: 'secp384r1', algorithms: ['ES384'], inferred: 'ES384' },
  { name: 'EC P-521', type: 'ec', curve: 'secp521r1', algorithms: ['ES512'], inferred: 'ES512' },
  { name: 'Ed25519', type: 'ed25519', algorithms: EDDSA, inferred: 'EdDSA' },
  { name: 'Ed448', type: 'ed448', algorithms: EDDSA, inferred: 'EdDSA' },
  { name: 'secret', type: 'secret', algorithms: HMAC, inferred: 'HS256' },
] satisfies KeyKind[]);

/**
 * Key types node:crypto reads that no algorithm here may use, with the reason told to the operator.
 * An `rsa-pss` key (SPKI id-RSASSA-PSS) is not accepted by the verifier library; PS256/384/512
 * tokens verify with the plain RSA public key of the same pair.
 */
const REFUSED: Readonly<Record<string, string>> = {
  'rsa-pss': 'an RSA-PSS key is not supported: give the plain RSA public key (it verifies PS256/384/512 too)',
};

export function isJwtAlgorithm(alg: unknown): alg is JwtAlgorithm {
  return typeof alg === 'string' && Object.hasOwn(ALGORITHM_FAMILY, alg);
}

/** The kind of a public key, or why no algorithm may use it. */
export function keyKindOf(key: KeyObject): KeyKind | string {
  const type = String(key.asymmetricKeyType);
  const refused = REFUSED[type];
  if (refused !== undefined) return refused;
  if (type === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) return `an RSA key needs at least ${MIN_RSA_BITS} bits (this one has ${bits})`;
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const kind = KEY_KINDS.find((k) => k.type === type && (k.curve === undefined || k.curve === curve));
  if (kind !== undefined) return kind;
  if (type === 'ec') {
    // secp256k1 is not P-256, whatever its size (ES256K is not offered).
    const curves = KEY_KINDS.filter((k) => k.curve !== undefined).map((k) => k.name.replace(/^EC /, ''));
    return `EC curve ${curve ?? 'unknown'} has no JWS algorithm (use ${curves.slice(0, -1).join(', ')} or ${curves.at(-1)})`;
  }
  return `key type ${type} is not supported`;
}

/** The algorithms a public key's type allows, or a reason why it is not usable at all. */
export function algorithmsForPublicKey(key: KeyObject): readonly JwtAlgorithm[] | string {
  const kind = keyKindOf(key);
  return typeof kind === 'string' ? kind : kind.algorithms;
}

/** Parses a PEM public key (or certificate); a private key is refused, never turned into its public half. */
export function importPublicPem(pem: string): KeyObject | string {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) return 'is a private key: give the public key';
  try {
    return createPublicKey(pem);
  } catch {
    return 'is not a PEM public key or certificate';
  }
}
