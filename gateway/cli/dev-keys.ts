/**
 * The demo's development signing key and the tokens minted with it. Only `serve --demo` and
 * `breakwater token` use these: a real deployment verifies tokens from its own identity provider.
 * The key pair is made on first run in `.breakwater/` (git-ignored; the private key mode 0600).
 */
import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEV_DIR = fileURLToPath(new URL('../../../.breakwater/', import.meta.url));
export const DEV_PRIVATE_KEY = join(DEV_DIR, 'demo-jwt.key.pem');
export const DEV_PUBLIC_KEY = join(DEV_DIR, 'demo-jwt.pub.pem');
/** The demo's audit trail signing key (demo/breakwater.yaml `audit`), made with the JWT key. */
export const DEV_AUDIT_KEY = join(DEV_DIR, 'demo-audit.key.pem');
export const DEV_AUDIT_PUBLIC_KEY = join(DEV_DIR, 'demo-audit.pub.pem');
/** What demo/breakwater.yaml expects of the demo's tokens. */
export const DEMO_ISSUER = 'breakwater-demo';
export const DEMO_AUDIENCE = 'breakwater';
export const DEMO_KID = 'demo';

/** Creates the Ed25519 development key pair unless it exists; returns whether it was created. */
export function ensureDevKeys(): boolean {
  let made = false;
  for (const [priv, pub] of [[DEV_PRIVATE_KEY, DEV_PUBLIC_KEY], [DEV_AUDIT_KEY, DEV_AUDIT_PUBLIC_KEY]] as const) {
    if (existsSync(priv) && existsSync(pub)) continue;
    mkdirSync(DEV_DIR, { recursive: true, mode: 0o700 });
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
    made = true;
  }
  return made;
}

export interface TokenRequest {
  readonly subject: string;
  readonly tenant?: string;
  readonly scopes: readonly string[];
  readonly ttlSeconds: number;
  readonly issuer?: string;
  readonly audience?: string;
  readonly keyFile?: string;
  readonly kid?: string;
}

const b64url = (x: Buffer | string): string => Buffer.from(x).toString('base64url');

/** An EdDSA-signed JWT for the demo key (or another Ed25519 PKCS#8 key file). */
export function mintToken(r: TokenRequest): string {
  const key = createPrivateKey(readFileSync(r.keyFile ?? DEV_PRIVATE_KEY));
  if (key.asymmetricKeyType !== 'ed25519') throw new Error('the signing key must be an Ed25519 private key (PKCS#8 PEM)');
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'EdDSA', typ: 'JWT', kid: r.kid ?? DEMO_KID };
  const claims = {
    iss: r.issuer ?? DEMO_ISSUER,
    aud: r.audience ?? DEMO_AUDIENCE,
    sub: r.subject,
    ...(r.tenant === undefined ? {} : { tenant: r.tenant }),
    scope: r.scopes.join(' '),
    iat: now,
    exp: now + r.ttlSeconds,
  };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(sign(null, Buffer.from(input), key))}`;
}

/** "90s", "15m", "1h", "2d" or plain seconds. */
export function parseTtl(text: string): number {
  const m = /^(\d{1,7})([smhd]?)$/.exec(text);
  if (m === null) throw new Error(`--ttl must look like 90s, 15m, 1h or 2d, got "${text}"`);
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}
