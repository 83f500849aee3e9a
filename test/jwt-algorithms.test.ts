/**
 * The one JWS algorithm table (gateway/jwt-algorithms.ts) as both layers read it: for every kind of
 * key in the table, the configuration layer (the algorithm a key given by `--jwt-public-key` is
 * pinned to, the secret/public-key rule) and the verifier (policies/auth) agree, and a token signed
 * with each allowed algorithm verifies. Tokens are signed with node:crypto alone, never with the
 * library under test. A P-521 key given by flag once got ES256, which the verifier refused.
 */
import assert from 'node:assert/strict';
import { constants, createHmac, generateKeyPairSync, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { applyOverrides, buildConfig, ConfigError, type AuthKeyConfig, type GatewayConfig } from '../gateway/config.js';
import { ALGORITHM_FAMILY, JWT_ALGORITHMS, KEY_KINDS, type JwtAlgorithm, type KeyKind } from '../gateway/jwt-algorithms.js';
import type { RunningGateway } from '../gateway/main.js';
import { loadConfiguredKeys } from '../policies/auth/keys.js';
import { TokenVerifier } from '../policies/auth/verify.js';
import { ROW_STATS_METADATA, rowStatsHandler, startFakeOipBackend, type FakeOipBackend } from './helpers/backends.js';
import { startInProcess, writeTempFile } from './helpers/gateway.js';
import { b64url, nowSeconds } from './helpers/tokens.js';

const ISS = 'https://issuer.test/';
const AUD = 'breakwater';
const MODELS = { m: { versions: { '1': { backend: { kind: 'onnx', path: 'm.onnx' } } } } };

type Signing = { readonly publicKey: KeyObject; readonly privateKey: KeyObject } | { readonly secret: Buffer };

/** A key of each kind in the table; a kind added without one here fails the first test. */
const MAKE: Readonly<Record<string, () => Signing>> = {
  RSA: () => generateKeyPairSync('rsa', { modulusLength: 2048 }),
  'EC P-256': () => generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  'EC P-384': () => generateKeyPairSync('ec', { namedCurve: 'P-384' }),
  'EC P-521': () => generateKeyPairSync('ec', { namedCurve: 'P-521' }),
  Ed25519: () => generateKeyPairSync('ed25519'),
  Ed448: () => generateKeyPairSync('ed448'),
  secret: () => ({ secret: Buffer.from(randomBytes(32).toString('hex')) }),
};

/** Key types node:crypto reads that no algorithm may use: both layers refuse them. */
const REFUSED: Readonly<Record<string, () => KeyObject>> = {
  'RSA of 1024 bits': () => generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey,
  'RSA-PSS': () => generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).publicKey,
  'EC secp256k1': () => generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey,
  X25519: () => generateKeyPairSync('x25519').publicKey,
};

const pemOf = (key: KeyObject) => key.export({ type: 'spki', format: 'pem' }) as string;

/** A JWS made by node:crypto per RFC 7518 §3 (PSS salt = hash length, ECDSA as r‖s). */
function sign(alg: JwtAlgorithm, key: Signing, claims: Record<string, unknown> = {}): string {
  const now = nowSeconds();
  const input = `${b64url({ alg, typ: 'JWT' })}.${b64url({ iss: ISS, aud: AUD, sub: 'alice', iat: now, exp: now + 300, ...claims })}`;
  const data = Buffer.from(input);
  const hash = `sha${alg.slice(2)}`;
  let signature: Buffer;
  if ('secret' in key) signature = createHmac(hash, key.secret).update(input).digest();
  else if (ALGORITHM_FAMILY[alg] === 'eddsa') signature = cryptoSign(null, data, key.privateKey);
  else if (ALGORITHM_FAMILY[alg] === 'ecdsa') signature = cryptoSign(hash, data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  else if (alg.startsWith('PS')) signature = cryptoSign(hash, data, { key: key.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(alg.slice(2)) / 8 });
  else signature = cryptoSign(hash, data, key.privateKey);
  return `${input}.${signature.toString('base64url')}`;
}

function keyConfig(key: Signing, algorithms: readonly JwtAlgorithm[]): AuthKeyConfig {
  return 'secret' in key ? { secret: key.secret.toString('utf8'), algorithms } : { publicKey: pemOf(key.publicKey), algorithms };
}

function configWith(keys: AuthKeyConfig[]): GatewayConfig {
  return buildConfig({ auth: { issuer: ISS, audience: AUD, keys }, models: MODELS }, '/base');
}

/** The configuration built with `--jwt-public-key` set to a file holding `pem`. */
async function configWithFlagKey(pem: string): Promise<GatewayConfig> {
  const file = await writeTempFile('key.pem', pem);
  return buildConfig(applyOverrides({ auth: { issuer: ISS, audience: AUD }, models: MODELS }, { jwtPublicKeyFile: file }), '/base');
}

async function verifierFor(cfg: GatewayConfig): Promise<TokenVerifier> {
  return new TokenVerifier(cfg.auth, await loadConfiguredKeys(cfg.auth.keys), undefined);
}

/** Where each layer says yes to a key with one algorithm: the config layer, and the verifier's loading. */
async function verdicts(key: Signing, alg: JwtAlgorithm): Promise<{ config: boolean; auth: boolean }> {
  let cfg: GatewayConfig;
  try {
    cfg = configWith([keyConfig(key, [alg])]);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    // What the config layer refuses is never loaded, so ask the verifier's loading on its own.
    const auth = await loadConfiguredKeys([keyConfig(key, [alg])]).then(() => true, () => false);
    return { config: false, auth };
  }
  return { config: true, auth: await loadConfiguredKeys(cfg.auth.keys).then(() => true, () => false) };
}

describe('every kind of key in the table', () => {
  const keys = new Map<KeyKind, Signing>();
  before(() => {
    for (const kind of KEY_KINDS) {
      const make = MAKE[kind.name];
      assert.ok(make !== undefined, `no test key for the table's "${kind.name}"`);
      keys.set(kind, make());
    }
  });

  test('the config layer and the verifier accept exactly the algorithms of its row, and refuse the rest', async () => {
    for (const [kind, key] of keys) {
      for (const alg of JWT_ALGORITHMS) {
        const v = await verdicts(key, alg);
        assert.equal(v.auth, kind.algorithms.includes(alg), `${kind.name} with ${alg}: the verifier`);
        // The config layer cannot see a PEM key's type (files are read at load), but it never refuses what the verifier allows.
        if (v.auth) assert.ok(v.config, `${kind.name} with ${alg}: refused by the config layer, allowed by the verifier`);
        if (kind.type === 'secret' || ALGORITHM_FAMILY[alg] === 'hmac') assert.equal(v.config, v.auth, `${kind.name} with ${alg}: secret or not`);
      }
    }
  });

  test('a key given by flag is pinned to its row\'s inferred algorithm, which the verifier loads and verifies', async () => {
    for (const [kind, key] of keys) {
      if ('secret' in key) continue; // a secret is never given by flag
      assert.ok(kind.algorithms.includes(kind.inferred), kind.name);
      const cfg = await configWithFlagKey(pemOf(key.publicKey));
      assert.deepEqual(cfg.auth.keys.at(-1)?.algorithms, [kind.inferred], kind.name);
      const principal = await (await verifierFor(cfg)).verify(sign(kind.inferred, key));
      assert.equal(principal.subject, 'alice', kind.name);
    }
  });

  test('a token of each algorithm of its row verifies; another hash with the same key, or the key as an HMAC secret, does not', async () => {
    for (const [kind, key] of keys) {
      const verifier = await verifierFor(configWith([keyConfig(key, kind.algorithms)]));
      for (const alg of kind.algorithms) assert.equal((await verifier.verify(sign(alg, key))).subject, 'alice', `${kind.name} ${alg}`);
      const others: [JwtAlgorithm, Signing][] = [];
      if (kind.type === 'ec') for (const alg of ['ES256', 'ES384', 'ES512'] as const) if (!kind.algorithms.includes(alg)) others.push([alg, key]);
      if (!('secret' in key)) others.push(['HS256', { secret: Buffer.from(pemOf(key.publicKey)) }]);
      for (const [alg, forged] of others) {
        assert.throws(() => verifier.verify(sign(alg, forged)), { code: 'UNAUTHENTICATED' }, `${kind.name} ${alg}`);
      }
    }
  });
});

test('a key no algorithm may use is refused by both layers, for the same reason', async () => {
  for (const [name, make] of Object.entries(REFUSED)) {
    const pem = pemOf(make());
    const byConfig = await configWithFlagKey(pem).then(() => assert.fail(`${name}: accepted by flag`), (e: unknown) => e);
    assert.ok(byConfig instanceof ConfigError, name);
    const byAuth = await loadConfiguredKeys([{ publicKey: pem, algorithms: ['RS256'] }]).then(() => assert.fail(`${name}: loaded`), (e: Error) => e);
    const reason = /auth\.keys\.0: (.*)$/m.exec(byAuth.message)?.[1];
    assert.ok(reason !== undefined && byConfig.problems[0]?.includes(reason), `${name}: ${byConfig.message} / ${byAuth.message}`);
  }
});

describe('a P-521 key given by --jwt-public-key, end to end', () => {
  let backend: FakeOipBackend;
  let gw: RunningGateway;
  const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' });
  const claims = { scope: 'predict:stats' };

  before(async () => {
    backend = await startFakeOipBackend(ROW_STATS_METADATA, rowStatsHandler);
    const file = await writeTempFile('p521.pem', pemOf(p521.publicKey));
    const models = { stats: { versions: { '1': { backend: { kind: 'oip-http', url: backend.url, model: 'row-stats' } } } } };
    gw = await startInProcess(applyOverrides({ auth: { issuer: ISS, audience: AUD }, models }, { jwtPublicKeyFile: file }) as Record<string, unknown>);
  });
  after(async () => {
    await gw?.close();
    await backend?.close();
  });

  async function status(token: string): Promise<number> {
    const body = JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] });
    const res = await request(`${gw.url}/v2/models/stats/infer`, { method: 'POST', body, headers: { authorization: `Bearer ${token}` } });
    await res.body.dump();
    return res.statusCode;
  }

  test('verifies an ES512 token and refuses ES256, whether signed by that key or by a P-256 key', async () => {
    assert.equal(await status(sign('ES512', p521, claims)), 200);
    assert.equal(await status(sign('ES256', p521, claims)), 401);
    assert.equal(await status(sign('ES256', generateKeyPairSync('ec', { namedCurve: 'P-256' }), claims)), 401);
  });
});
