import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isGatewayError, type ErrorCode } from '../gateway/errors.js';
import { parseUnambiguousJson, scanJson } from './json-scan.js';

const DEPTH = 8;

/** The scan as the gateway runs it: on the text JSON.parse accepted. */
function scan(text: string, depth = DEPTH): void {
  JSON.parse(text);
  scanJson(text, depth);
}

function refused(text: string, code: ErrorCode, rule: RegExp, depth = DEPTH): void {
  assert.throws(() => scan(text, depth), (e: unknown) => {
    assert.ok(isGatewayError(e), String(e));
    assert.equal(e.code, code, `${text}: ${e.message}`);
    assert.equal(e.status, 400);
    assert.match(e.detail ?? '', rule);
    return true;
  }, text);
}

const ambiguous = (text: string, rule: RegExp) => refused(text, 'AMBIGUOUS_JSON', rule);
const DUPLICATE = /same key twice/;
const SURROGATE = /lone surrogate/;
const PROTOTYPE = /prototype keys/;

describe('what the scan accepts', () => {
  test('escaped quotes and backslashes in keys and values, and structural characters inside strings', () => {
    scan(String.raw`{"k\"":1,"k\\":2,"k":3,"\\\"":"\"]}[{,:\\","v":["a\"b","\\",",]",{"q":"}"}]}`);
    scan(String.raw`{"a\\":1,"a\\\\":2}`);
    scan(String.raw`{"\/":"\b\f\n\r\t\/","\\/":1}`);
  });

  test('valid surrogate pairs, escaped or as UTF-8, and other \\u escapes', () => {
    scan(String.raw`{"e":"\ud83d\ude00","E":"\uD83D\uDE00 \u00e9\u20AC\u0000","raw":"😀"}`);
    scan(String.raw`{"\ud83d\ude00":1,"😀x":2}`);
    scan(String.raw`["\uFFFF","\uE000","\uD7FF"]`);
  });

  test('unicode keys, compared as text: distinct ones pass', () => {
    scan('{"é":1,"e":2,"ü":3,"日本":4,"日":5}');
  });

  test('empty objects and arrays, numbers with exponents, literals', () => {
    scan('{}');
    scan('[]');
    scan('{"a":{},"b":[],"c":[{}],"d":[[]],"e":[1e-7,-2.5E+10,0,-0,1E400],"f":true,"g":null,"h":false}');
    scan(' \n{ "a" : [ 1 , 2 ] , "b" :{ "c" : "d" } }\t');
  });

  test('the same key in sibling and nested objects is not a duplicate', () => {
    scan('{"a":{"a":{"a":1}},"b":{"a":1},"c":[{"a":1},{"a":2,"b":{"a":3}}]}');
    scan('{"inputs":[{"name":"x","parameters":{"p":1}},{"name":"y","parameters":{"p":1}}],"parameters":{"p":1}}');
  });

  test('many distinct keys in one object (past the pairwise compares)', () => {
    scan(JSON.stringify(Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, i]))));
  });

  test('nesting up to the limit, the top-level value counting 1', () => {
    scan('[[[[[[[[1]]]]]]]]', 8);
    scan('{"a":{"a":{"a":{"a":{"a":{"a":{"a":{}}}}}}}}', 8);
    scan('{"inputs":[{"data":[[[[1]]]]}]}', 7);
  });

  test('large arrays of scalars, flat and in rows, with strings among them', () => {
    const flat = Array.from({ length: 50_000 }, (_, i) => Math.fround(Math.sin(i)));
    scan(JSON.stringify({ inputs: [{ name: 'x', data: flat }] }));
    const rows = Array.from({ length: 200 }, (_, r) => flat.slice(r * 100, r * 100 + 100));
    scan(JSON.stringify({ inputs: [{ name: 'x', data: rows }, { name: 's', data: rows.map((row) => [String(row[0]), '[{"}]']) }] }));
  });

  test('a refusal leaves nothing behind for the next scan', () => {
    const many = `{${Array.from({ length: 40 }, (_, i) => `"k${i}":1`).join(',')}`;
    ambiguous(`{"x":${many},"k1":2}}`, DUPLICATE);
    scan(`{"x":${many}},"k1":2}`);
    ambiguous(String.raw`{"\u0061":1,"a":2}`, DUPLICATE);
    scan('{"a":1,"b":{"a":2}}');
  });
});

describe('what the scan refuses', () => {
  test('a key twice in one object, at any depth', () => {
    ambiguous('{"a":1,"a":2}', DUPLICATE);
    ambiguous('{"inputs":[{"name":"x","name":"y"}]}', DUPLICATE);
    ambiguous('{"parameters":{"p":1,"q":{"r":[{"s":1,"t":2,"s":3}]}}}', DUPLICATE);
    ambiguous('[[{}],[{"a":{"b":1,"b":1}}]]', DUPLICATE);
    ambiguous(`{${Array.from({ length: 40 }, (_, i) => `"k${i}":1`).join(',')},"k39":2}`, DUPLICATE);
  });

  test('a key twice when one is spelled with escapes', () => {
    ambiguous(String.raw`{"a":1,"\u0061":2}`, DUPLICATE);
    ambiguous(String.raw`{"\u0061":1,"a":2}`, DUPLICATE);
    ambiguous(String.raw`{"é":1,"\u00e9":2}`, DUPLICATE);
    ambiguous(String.raw`{"\ud83d\ude00":1,"😀":2}`, DUPLICATE);
    ambiguous(String.raw`{"a/":1,"a\/":2}`, DUPLICATE);
  });

  test('lone surrogate escapes in values and keys', () => {
    ambiguous(String.raw`{"a":"\ud800"}`, SURROGATE);
    ambiguous(String.raw`{"a":"x\uDBFFy"}`, SURROGATE);
    ambiguous(String.raw`{"a":"\udc00"}`, SURROGATE);
    ambiguous(String.raw`{"a":"\ude00\ud83d"}`, SURROGATE);
    ambiguous(String.raw`{"a":"\ud83d\u0041"}`, SURROGATE);
    ambiguous(String.raw`{"a":"\ud83d\ud83d\ude00"}`, SURROGATE);
    ambiguous(String.raw`{"a":"\ud83d\n"}`, SURROGATE);
    ambiguous(String.raw`{"\ud800":1}`, SURROGATE);
    ambiguous(String.raw`["ok","\\","\udfff"]`, SURROGATE);
  });

  test('prototype keys at any depth, plain or escaped', () => {
    for (const k of ['__proto__', 'constructor', 'prototype']) {
      ambiguous(`{"${k}":1}`, PROTOTYPE);
      ambiguous(`{"inputs":[{"parameters":{"${k}":{}}}]}`, PROTOTYPE);
    }
    ambiguous(String.raw`{"\u005f_proto__":{"x":1}}`, PROTOTYPE);
    ambiguous(String.raw`{"a":[{"construct\u006fr":1}]}`, PROTOTYPE);
    // As values they are plain strings.
    scan('{"name":"__proto__","v":["constructor","prototype"],"__proto":1,"constructors":2}');
  });

  test('a control character in a key (C parsers cut a key at NUL)', () => {
    ambiguous(String.raw`{"a\u0000":1}`, /control character/);
    ambiguous(String.raw`{"p":{"\u001f":1}}`, /control character/);
    scan(String.raw`{"a":"x\u0000y"}`);
  });

  test('nesting one level past the limit, arrays or objects', () => {
    refused('[[[[[[[[[1]]]]]]]]]', 'BAD_JSON', /deeper than 8/, 8);
    refused('{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{}}}}}}}}}', 'BAD_JSON', /deeper than 8/, 8);
    refused(`{"parameters":${'['.repeat(50_000)}${']'.repeat(50_000)}}`, 'BAD_JSON', /deeper than 64/, 64);
  });
});

describe('parseUnambiguousJson', () => {
  const bad = (bytes: Buffer, rule: RegExp) => assert.throws(() => parseUnambiguousJson(bytes, DEPTH, 'the body'), (e: unknown) => {
    assert.ok(isGatewayError(e));
    assert.equal(e.code, 'BAD_JSON');
    assert.match(e.detail ?? '', rule);
    return true;
  });
  const utf8 = (s: string, ...hex: string[]) => Buffer.concat([Buffer.from(s), ...hex.map((h) => Buffer.from(h, 'hex')), Buffer.from('"}')]);

  test('invalid UTF-8 is refused, wherever it is', () => {
    bad(utf8('{"a":"', 'ff'), /not valid UTF-8/);
    bad(utf8('{"a":"', 'c0af'), /not valid UTF-8/); // overlong '/'
    bad(utf8('{"a":"', 'eda080'), /not valid UTF-8/); // a surrogate encoded as UTF-8 (CESU-8)
    bad(utf8('{"a":"', 'e282'), /not valid UTF-8/); // truncated
    bad(utf8('{"', 'c3', '":"x'), /not valid UTF-8/); // in a key
    bad(Buffer.from('{"a":1}\xff', 'latin1'), /not valid UTF-8/);
  });

  test('valid UTF-8, U+FFFD itself included, parses', () => {
    assert.deepEqual(parseUnambiguousJson(utf8('{"a":"é😀', 'efbfbd'), DEPTH, 'the body'), { a: 'é😀\uFFFD' });
  });

  test('a syntax error is BAD_JSON; the ambiguity rules apply after parsing', () => {
    bad(Buffer.from('{"a":'), /not valid JSON/);
    assert.throws(() => parseUnambiguousJson(Buffer.from('{"a":1,"a":1}'), DEPTH, 'the body'), { code: 'AMBIGUOUS_JSON' });
  });
});
