/**
 * The strict JSON parser is the oracle of the hostile-input suite (test/hostile-input.*.test.ts):
 * these tests are what lets its verdicts be trusted. It must read every valid JSON text as
 * JSON.parse does, and refuse exactly the texts two conforming parsers may read differently.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isStrictJson, parseStrictJson, strictEqual, StrictJsonError, type StrictJson, type StrictJsonFault } from './helpers/strict-json.js';

const SEED = 8_2026;

function faultOf(input: Uint8Array | string): StrictJsonFault | undefined {
  try {
    parseStrictJson(input);
    return undefined;
  } catch (e) {
    assert.ok(e instanceof StrictJsonError, String(e));
    return e.fault;
  }
}

/** Plain-object view of a strict value, for comparing with JSON.parse's. */
function plain(v: StrictJson): string {
  return JSON.stringify(v);
}

describe('accepts what RFC 8259 allows, as JSON.parse reads it', () => {
  const valid = [
    '{}', '[]', '0', '-0', '1.5e-3', '-12E+2', 'true', 'false', 'null', '"x"', ' \t\n\r{"a" : [ 1 , {"b":null} ] }\n',
    '"\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00"', '{"a":{"a":{"a":1}}}', '[{"a":1},{"a":2}]', '"é😀"',
  ];
  for (const text of valid) {
    test(`accepts ${JSON.stringify(text)}`, () => {
      assert.equal(plain(parseStrictJson(text)), JSON.stringify(JSON.parse(text)));
      assert.equal(plain(parseStrictJson(Buffer.from(text))), JSON.stringify(JSON.parse(text)));
    });
  }

  test('agrees with JSON.parse on any JSON value (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.boolean(), (v, pretty) => {
        const text = JSON.stringify(v, null, pretty ? 2 : undefined);
        assert.equal(plain(parseStrictJson(Buffer.from(text, 'utf8'))), JSON.stringify(JSON.parse(text)));
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  test('objects have no prototype: __proto__, constructor and prototype are data', () => {
    const v = parseStrictJson('{"__proto__":{"polluted":true},"constructor":{"prototype":1}}') as Record<string, StrictJson>;
    assert.equal(Object.getPrototypeOf(v), null);
    assert.deepEqual(Object.keys(v), ['__proto__', 'constructor']);
    assert.equal(Object.getPrototypeOf(v['__proto__']), null);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test('nesting 100 000 levels deep is parsed and compared without exhausting the stack', () => {
    const n = 100_000;
    const text = `${'{"a":['.repeat(n)}1${']}'.repeat(n)}`;
    const a = parseStrictJson(text);
    const b = parseStrictJson(Buffer.from(text));
    assert.ok(strictEqual(a, b));
    const other = parseStrictJson(`${'{"a":['.repeat(n)}2${']}'.repeat(n)}`);
    assert.ok(!strictEqual(a, other));
  });
});

describe('refuses what parsers read differently', () => {
  const cases: [string, string | Buffer, StrictJsonFault][] = [
    ['a duplicate key at the top', '{"a":1,"a":2}', 'duplicate-key'],
    ['a duplicate key with the same value', '{"a":1,"a":1}', 'duplicate-key'],
    ['a duplicate key spelled with an escape', '{"a":1,"\\u0061":2}', 'duplicate-key'],
    ['a duplicate key deep inside arrays', '{"x":[[{"y":[{"k":1,"j":2,"k":3}]}]]}', 'duplicate-key'],
    ['a duplicate __proto__', '{"__proto__":1,"__proto__":2}', 'duplicate-key'],
    ['a lone high surrogate escape', '"\\uD800"', 'lone-surrogate'],
    ['a lone low surrogate escape', '"\\uDC00"', 'lone-surrogate'],
    ['a high surrogate followed by a letter escape', '"\\uD800\\u0041"', 'lone-surrogate'],
    ['a high surrogate followed by text', '{"k\\uDBFFx":1}', 'lone-surrogate'],
    ['a surrogate pair reversed', '"\\uDE00\\uD83D"', 'lone-surrogate'],
    ['an overlong encoding of "/"', Buffer.from([0x22, 0xc0, 0xaf, 0x22]), 'invalid-utf8'],
    ['an overlong NUL', Buffer.from([0x22, 0xc0, 0x80, 0x22]), 'invalid-utf8'],
    ['a lone continuation byte', Buffer.from([0x22, 0x80, 0x22]), 'invalid-utf8'],
    ['a truncated sequence', Buffer.from([0x22, 0xe2, 0x82, 0x22]), 'invalid-utf8'],
    ['a surrogate encoded in UTF-8 (CESU)', Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]), 'invalid-utf8'],
    ['a byte that never occurs in UTF-8', Buffer.from([0x22, 0xff, 0x22]), 'invalid-utf8'],
    ['a code point beyond U+10FFFF', Buffer.from([0x22, 0xf4, 0x90, 0x80, 0x80, 0x22]), 'invalid-utf8'],
    ['a byte order mark', Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]), 'bom'],
  ];
  for (const [what, input, fault] of cases) {
    test(what, () => assert.equal(faultOf(input), fault));
  }

  const syntax = [
    '', ' ', '{', '[1,]', '{"a":1,}', '{a:1}', "{'a':1}", '[01]', '[+1]', '[.5]', '[1.]', '[0x10]', '[NaN]',
    '[Infinity]', '[-]', '[1e]', '"\\x41"', '"\\u12"', '"a\u0001b"', '"a\nb"', '[1] [2]', '{"a" 1}', '// c\n{}',
    '/* c */{}', '[tru]', '[nul]', '{"a":1}}', '[1]]', '{"a":[}', '\u00a0{}', '"unterminated',
  ];
  for (const text of syntax) {
    test(`syntax: ${JSON.stringify(text)}`, () => assert.equal(faultOf(text), 'syntax'));
  }

  test('any object given one of its keys twice is refused, at any depth (property)', () => {
    const key = fc.string({ maxLength: 6 });
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), key, fc.jsonValue({ maxDepth: 2 }), fc.nat(8), (v, k, dup, depth) => {
        let text = `{${JSON.stringify(k)}:${JSON.stringify(dup)},${JSON.stringify(k)}:${JSON.stringify(v)}}`;
        for (let d = 0; d < depth; d++) text = d % 2 === 0 ? `[${text}]` : `{"w${d}":${text}}`;
        assert.equal(faultOf(text), 'duplicate-key');
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  test('text handed in as a string with an unpaired surrogate is refused', () => {
    assert.equal(faultOf('"\uD800"'), 'invalid-utf8');
    assert.equal(isStrictJson('"\uD83D\uDE00"'), true);
  });
});
