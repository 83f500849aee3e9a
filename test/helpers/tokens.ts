/**
 * A token issuer for tests: real keys made here with node:crypto, tokens signed with node:crypto
 * alone (not with the library under test, so a bug there cannot cancel out), the public key as PEM
 * and as a JWKS. `sign` also takes headers and raw payloads, to forge the bad tokens tests need.
 */
import { constants, createHmac, generateKeyPairSync, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto';
import type { AuthKeyConfig } from '../../gateway/config.js';

export type TestAlgorithm = 'RS256' | 'PS256' | 'ES256' | 'ES384' | 'EdDSA' | 'HS256';

export interface IssuerOptions {
  readonly alg: TestAlgorithm;
  /** Put in every token's header and the JWK; `null` leaves it out. Default: a random one. */
  readonly kid?: string | null;
  /** Claims every token gets unless `sign` overrides them (e.g. iss, aud, sub). */
  readonly claims?: Readonly<Record<string, unknown>>;
  /** HS256 only: the shared secret (default: 32 random bytes, hex). */
  readonly secret?: string;
}

export interface Jwk {
  readonly kty: string;
  readonly kid?: string;
  readonly alg?: string;
  readonly use?: string;
  readonly [k: string]: unknown;
}

export interface Issuer {
  readonly alg: TestAlgorithm;
  readonly kid: string | undefined;
  /** SPKI PEM of the public key; undefined for HS256. */
  readonly publicKeyPem: string | undefined;
  /** HS256 only. */
  readonly secret: string | undefined;
  /** The public key as a JWK (kid, alg, use: sig); undefined for HS256, whose key is never published. */
  readonly jwk: Jwk | undefined;
  /** `{keys: [jwk]}` (empty for HS256). */
  readonly jwks: { keys: Jwk[] };
  /** The `auth.keys` entry that trusts this issuer. */
  readonly keyConfig: AuthKeyConfig;
  /**
   * Signs `{iat: now, exp: now + 300, ...opts.claims, ...claims}`; a claim given as undefined is
   * left out. `header` is merged over `{alg, typ: 'JWT', kid}` (the signature is always made with
   * the issuer's own algorithm and key, whatever `header.alg` says).
   */
  sign(claims?: Readonly<Record<string, unknown>>, header?: Readonly<Record<string, unknown>>): string;
  /** Signs a payload given as raw JSON text (for values JSON.stringify cannot write, like 1e999). */
  signRaw(payloadJson: string, header?: Readonly<Record<string, unknown>>): string;
}

export function b64url(value: string | Buffer | object): string {
  const buf = typeof value === 'string' || Buffer.isBuffer(value) ? Buffer.from(value as string) : Buffer.from(JSON.stringify(value));
  return buf.toString('base64url');
}

/** An HS* token signed with any bytes as the secret (e.g. an RSA public key's PEM: algorithm confusion). */
export function hmacToken(header: object, payload: object, secret: string | Buffer, hash: 'sha256' | 'sha384' | 'sha512' = 'sha256'): string {
  const input = `${b64url(header)}.${b64url(payload)}`;
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`;
}

/** An `alg: none` token: no signature at all. */
export function unsignedToken(payload: object, header: object = { alg: 'none', typ: 'JWT' }): string {
  return `${b64url(header)}.${b64url(payload)}.`;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function keyPair(alg: TestAlgorithm): { publicKey: KeyObject; privateKey: KeyObject } {
  switch (alg) {
    case 'RS256':
    case 'PS256':
      return generateKeyPairSync('rsa', { modulusLength: 2048 });
    case 'ES256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'ES384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' });
    case 'EdDSA':
      return generateKeyPairSync('ed25519');
    case 'HS256':
      throw new Error('HS256 has no key pair');
  }
}

function signer(alg: TestAlgorithm, privateKey: KeyObject | undefined, secret: string | undefined): (input: string) => Buffer {
  const data = (input: string) => Buffer.from(input, 'utf8');
  switch (alg) {
    case 'HS256':
      return (input) => createHmac('sha256', secret as string).update(input).digest();
    case 'RS256':
      return (input) => cryptoSign('sha256', data(input), privateKey as KeyObject);
    case 'PS256':
      return (input) => cryptoSign('sha256', data(input), { key: privateKey as KeyObject, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    case 'ES256':
      return (input) => cryptoSign('sha256', data(input), { key: privateKey as KeyObject, dsaEncoding: 'ieee-p1363' });
    case 'ES384':
      return (input) => cryptoSign('sha384', data(input), { key: privateKey as KeyObject, dsaEncoding: 'ieee-p1363' });
    case 'EdDSA':
      return (input) => cryptoSign(null, data(input), privateKey as KeyObject);
  }
}

export function makeIssuer(opts: IssuerOptions): Issuer {
  const kid = opts.kid === null ? undefined : (opts.kid ?? `k-${randomBytes(4).toString('hex')}`);
  const symmetric = opts.alg === 'HS256';
  const secret = symmetric ? (opts.secret ?? randomBytes(32).toString('hex')) : undefined;
  const pair = symmetric ? undefined : keyPair(opts.alg);
  const publicKeyPem = pair?.publicKey.export({ type: 'spki', format: 'pem' }) as string | undefined;
  const exported = pair?.publicKey.export({ format: 'jwk' });
  const jwk: Jwk | undefined = exported === undefined ? undefined : {
    ...exported,
    kty: String(exported.kty),
    ...(kid !== undefined ? { kid } : {}),
    alg: opts.alg,
    use: 'sig',
  };
  const signInput = signer(opts.alg, pair?.privateKey, secret);
  const signRaw = (payloadJson: string, header: Readonly<Record<string, unknown>> = {}): string => {
    const h = { alg: opts.alg, typ: 'JWT', ...(kid !== undefined ? { kid } : {}), ...header };
    const input = `${b64url(h)}.${b64url(payloadJson)}`;
    return `${input}.${signInput(input).toString('base64url')}`;
  };
  const keyConfig: AuthKeyConfig = symmetric
    ? { ...(kid !== undefined ? { kid } : {}), secret, algorithms: ['HS256'] }
    : { ...(kid !== undefined ? { kid } : {}), publicKey: publicKeyPem, algorithms: [opts.alg] };
  return {
    alg: opts.alg,
    kid,
    publicKeyPem,
    secret,
    jwk,
    jwks: { keys: jwk === undefined ? [] : [jwk] },
    keyConfig,
    sign(claims = {}, header = {}) {
      const now = nowSeconds();
      return signRaw(JSON.stringify({ iat: now, exp: now + 300, ...opts.claims, ...claims }), header);
    },
    signRaw,
  };
}
