/**
 * The SHA-256 written in Lua (it runs inside Redis, which offers only SHA-1) against node:crypto,
 * on a real Redis: every length around the padding boundaries, multi-KB inputs, UTF-8 text and
 * arbitrary bytes. A chain hashed in Redis must verify in Node, byte for byte.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { sharedTestRedis } from '../../test/helpers/redis.js';
import { SHA256_LUA } from './redis-sha256.js';

/** Hashes every ARGV in one call. */
const HASH_ALL = `${SHA256_LUA}
local out = {}
for i = 1, #ARGV do out[i] = sha256(ARGV[i]) end
return out
`;

let redis: Redis;

before(async () => {
  redis = new Redis(await sharedTestRedis());
});

after(() => redis.disconnect());

async function check(inputs: readonly Buffer[]): Promise<void> {
  const got = (await redis.eval(HASH_ALL, 0, ...inputs)) as string[];
  assert.equal(got.length, inputs.length);
  for (const [i, input] of inputs.entries()) {
    assert.equal(got[i], createHash('sha256').update(input).digest('hex'), `${input.length} bytes: ${input.subarray(0, 24).toString('hex')}…`);
  }
}

test('matches node:crypto on every length from 0 to 200 bytes (the 55/56 and 63/64/65 padding boundaries, one to four blocks)', async () => {
  await check(Array.from({ length: 201 }, (_, n) => Buffer.from('a'.repeat(n))));
});

test('matches node:crypto on the FIPS 180-4 test vectors', async () => {
  const got = (await redis.eval(HASH_ALL, 0, 'abc', 'abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')) as string[];
  assert.deepEqual(got, [
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
  ]);
});

test('matches node:crypto on multi-KB inputs, up to and beyond the largest log entry', async () => {
  await check([1000, 4095, 4096, 4097, 8192, 8192 + 64, 20_000].map((n) => Buffer.from('{"k":"'.padEnd(n, 'xyz'))));
});

test('matches node:crypto on non-ASCII UTF-8 text (2-, 3- and 4-byte characters) and on arbitrary bytes', async () => {
  const texts = ['é', 'ñandú ✓', '日本語のテキスト', '𝄞 music 🎵', 'mixed: ü€𐍈'.repeat(40)].map((t) => Buffer.from(t, 'utf8'));
  const bytes = Array.from({ length: 40 }, (_, i) => randomBytes(i * 37));
  const edges = [Buffer.alloc(64, 0), Buffer.alloc(64, 0xff), Buffer.from([0x80]), Buffer.alloc(119, 0x80), Buffer.alloc(120, 0x7f)];
  await check([...texts, ...bytes, ...edges]);
});
