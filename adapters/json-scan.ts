/**
 * Proves a client's JSON unambiguous before its bytes are forwarded (the plain-JSON pass-through
 * sends them to the backend unchanged). The gateway validates what JavaScript's JSON.parse read;
 * a backend may use Python's `json`, orjson, rapidjson, Go or Java. A body is refused when parsers
 * could read it differently, or when it is hostile to parsers:
 *
 * - bytes that are not UTF-8 (RFC 8259 §8.1; decoders replace, drop or refuse them): `BAD_JSON`;
 * - nesting deeper than the model's `maxJsonDepth` (recursive parsers overflow): `BAD_JSON`;
 * - a key twice in one object, at any depth (JavaScript keeps the last, many parsers the first);
 * - a lone surrogate escape (`"\ud800"`: replaced, kept or refused depending on the parser);
 * - `__proto__`, `constructor` and `prototype` keys (JavaScript itself reads them two ways:
 *   JSON.parse makes a plain property, a later copy by assignment sets the prototype);
 * - a control character (U+0000–U+001F, escaped) in a key: C parsers cut a key at NUL.
 * The last four answer `AMBIGUOUS_JSON`. Details name the rule, never the client's text.
 *
 * One pass, no recursion, and cheap because it runs on every request: it reads the text that
 * JSON.parse already accepted (so it checks meaning, never syntax), and since the bytes were valid
 * UTF-8 that text maps one to one onto the bytes forwarded (a valid UTF-8 text holds no surrogate
 * of its own: only escapes can make one). String contents and arrays of scalars
 * (the bulk of a tensor body) are jumped over with String#indexOf, which V8 runs natively; object
 * keys are compared in place, without making a string, unless they hold escapes.
 */
import { isUtf8 } from 'node:buffer';
import { GatewayError } from '../gateway/errors.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LOWER_U = 0x75;

const IN_OBJECT = 1;
const IN_ARRAY = 2;

/** Characters that change the scanner's state; everything else between them is skipped. */
const STRUCTURAL = new Uint8Array(128);
for (const c of [QUOTE, COMMA, LBRACKET, RBRACKET, LBRACE, RBRACE]) STRUCTURAL[c] = 1;

/** Keys kept per object before their duplicate check moves from pairwise compares to a Set. */
const PAIRWISE_KEYS = 16;
/** Characters walked one by one inside an array before jumping with indexOf instead. */
const SHORT_WALK = 48;

/**
 * JSON.parse of `bytes` for a body whose bytes may be forwarded: UTF-8 only, then parsed, then
 * scanned. `part` names what is parsed in details ("the body", "the JSON header").
 */
export function parseUnambiguousJson(bytes: Buffer, maxDepth: number, part: string): unknown {
  const text = bytes.toString('utf8');
  checkUtf8(bytes, text, part);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new GatewayError('BAD_JSON', `${part} is not valid JSON`);
  }
  scanJson(text, maxDepth);
  return json;
}

/**
 * Refuses bytes that are not UTF-8, given their decoded `text`. The decoder replaces every invalid
 * sequence with U+FFFD, so only a text holding one needs the byte check (V8 answers at once for a
 * text of one-byte characters, the common case).
 */
export function checkUtf8(bytes: Buffer, text: string, part: string): void {
  if (text.includes('\uFFFD') && !isUtf8(bytes)) throw new GatewayError('BAD_JSON', `${part} is not valid UTF-8`);
}

function ambiguous(rule: string): GatewayError {
  return new GatewayError('AMBIGUOUS_JSON', rule);
}

// Scratch state of the one scan in progress: scans are synchronous and never nested, so it is
// reused across requests rather than allocated per request.
let kinds = new Uint8Array(80); // per depth: IN_OBJECT or IN_ARRAY
let keyBase = new Int32Array(80); // per depth: where that object's keys start in `keys`
let keys = new Int32Array(256); // [start, end) of each unescaped key of the open objects
let keyTop = 0;
const keySets: (Set<string> | undefined)[] = [];
let text = '';
// Positions of the next character of each kind at or after the scan (text.length: none left),
// found with indexOf and looked for again only once the scan has passed them: linear in all.
let nextBackslash = -1;
let nextQuote = -1;
let nextBracket = -1;
let nextBrace = -1;
let lastStringEscaped = false; // whether the string stringEnd last read held an escape
let prototypeKeysAllowed = false; // admin bodies: named by the route's own validation instead
let usedSets = false;

/**
 * Scans `json`, a text JSON.parse accepted, and throws the rule a body breaks. `maxDepth` is the
 * deepest nesting allowed: the top-level object is depth 1. `allowPrototypeKeys` leaves prototype
 * keys to the caller (admin bodies name every one among their other problems).
 */
export function scanJson(json: string, maxDepth: number, allowPrototypeKeys = false): void {
  prototypeKeysAllowed = allowPrototypeKeys;
  if (kinds.length <= maxDepth + 1) {
    kinds = new Uint8Array(maxDepth + 2);
    keyBase = new Int32Array(maxDepth + 2);
  }
  text = json;
  nextBackslash = nextQuote = nextBracket = nextBrace = -1;
  keyTop = 0;
  try {
    scan(maxDepth);
  } finally {
    text = '';
    if (usedSets) {
      keySets.length = 0;
      usedSets = false;
    }
  }
}

function scan(maxDepth: number): void {
  const t = text; // locals, not module bindings, in the hot loop
  const kind = kinds;
  const n = t.length;
  let depth = 0;
  let wantKey = false;
  let p = 0;
  while (p < n) {
    const c = t.charCodeAt(p);
    if (c >= 128 || STRUCTURAL[c] === 0) {
      p++;
      continue;
    }
    switch (c) {
      case QUOTE: {
        const end = stringEnd(p + 1);
        if (wantKey) {
          key(p + 1, end, depth, lastStringEscaped);
          wantKey = false;
        }
        p = end + 1;
        break;
      }
      case COMMA:
        wantKey = kind[depth] === IN_OBJECT;
        p++;
        if (!wantKey) p = skipScalars(p);
        break;
      case LBRACE:
        if (++depth > maxDepth) throw new GatewayError('BAD_JSON', `nested deeper than ${maxDepth} levels`);
        kind[depth] = IN_OBJECT;
        keyBase[depth] = keyTop;
        wantKey = true;
        p++;
        break;
      case LBRACKET:
        if (++depth > maxDepth) throw new GatewayError('BAD_JSON', `nested deeper than ${maxDepth} levels`);
        kind[depth] = IN_ARRAY;
        wantKey = false;
        p = skipScalars(p + 1);
        break;
      case RBRACE:
        keyTop = keyBase[depth];
        keySets[depth] = undefined;
        depth--;
        wantKey = false;
        p++;
        break;
      default: // RBRACKET
        depth--;
        wantKey = false;
        p++;
        break;
    }
  }
}

/**
 * Inside an array, from `p`: the index of the next character that matters ('"', '[', '{' or the
 * closing ']'); numbers, literals, commas and spaces between them mean nothing here. A short walk
 * first (small arrays), then native jumps: the next ']' and whether '"', '[' or '{' comes before it.
 */
function skipScalars(p: number): number {
  const n = text.length;
  const stop = Math.min(n, p + SHORT_WALK);
  for (; p < stop; p++) {
    const c = text.charCodeAt(p);
    if (c === QUOTE || c === LBRACKET || c === LBRACE || c === RBRACKET) return p;
  }
  if (p >= n) return n;
  let next = text.indexOf(']', p);
  if (next < 0) return n;
  if (nextQuote < p) nextQuote = after('"', p);
  if (nextBracket < p) nextBracket = after('[', p);
  if (nextBrace < p) nextBrace = after('{', p);
  if (nextQuote < next) next = nextQuote;
  if (nextBracket < next) next = nextBracket;
  if (nextBrace < next) next = nextBrace;
  return next;
}

function after(ch: string, p: number): number {
  const i = text.indexOf(ch, p);
  return i < 0 ? text.length : i;
}


/**
 * The index of the closing quote of the string whose contents start at `p`, checking each `\u`
 * escape on the way: a high surrogate must be followed at once by an escaped low one, and a low
 * surrogate may not stand alone.
 */
function stringEnd(p: number): number {
  const n = text.length;
  lastStringEscaped = false;
  let q = text.indexOf('"', p);
  for (;;) {
    if (q < 0) return n; // not from JSON.parse; ends the scan
    if (nextBackslash < p) nextBackslash = after('\\', p);
    const b = nextBackslash;
    if (b > q) return q;
    lastStringEscaped = true;
    if (text.charCodeAt(b + 1) === LOWER_U) {
      const unit = hex4(b + 2);
      if (unit >= 0xd800 && unit <= 0xdbff) {
        if (text.charCodeAt(b + 6) !== BACKSLASH || text.charCodeAt(b + 7) !== LOWER_U) throw ambiguous('a string holds a lone surrogate escape');
        const low = hex4(b + 8);
        if (low < 0xdc00 || low > 0xdfff) throw ambiguous('a string holds a lone surrogate escape');
        p = b + 12;
      } else if (unit >= 0xdc00 && unit <= 0xdfff) {
        throw ambiguous('a string holds a lone surrogate escape');
      } else {
        p = b + 6;
      }
    } else {
      p = b + 2; // \" \\ \/ \b \f \n \r \t
    }
    // Escapes come in runs (a BYTES value of \u escapes): the next may be right here.
    if (text.charCodeAt(p) === BACKSLASH) nextBackslash = p;
    if (q < p) q = text.indexOf('"', p);
  }
}

function hex4(p: number): number {
  let v = 0;
  for (let i = p; i < p + 4; i++) {
    const c = text.charCodeAt(i);
    const d = c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57; // 0-9, a-f, A-F (JSON.parse checked the digits)
    v = (v << 4) | d;
  }
  return v;
}

/** A key of the object at `depth`, its contents at [s, e). */
function key(s: number, e: number, depth: number, escaped: boolean): void {
  if (escaped) return escapedKey(JSON.parse(text.slice(s - 1, e + 1)) as string, depth);
  const len = e - s;
  if (!prototypeKeysAllowed && (len === 9 && (text.startsWith('__proto__', s) || text.startsWith('prototype', s)) || (len === 11 && text.startsWith('constructor', s)))) {
    throw ambiguous('prototype keys (__proto__, constructor, prototype) are not accepted');
  }
  const set = keySets[depth];
  if (set !== undefined) return addToSet(set, text.slice(s, e));
  const base = keyBase[depth];
  for (let k = base; k < keyTop; k += 2) {
    const ks = keys[k];
    if (keys[k + 1] - ks === len && sameChars(ks, s, len)) throw ambiguous('an object holds the same key twice');
  }
  if (keyTop - base >= 2 * PAIRWISE_KEYS) {
    addToSet(toSet(depth), text.slice(s, e));
    return;
  }
  if (keyTop + 2 > keys.length) {
    const grown = new Int32Array(keys.length * 2);
    grown.set(keys);
    keys = grown;
  }
  keys[keyTop++] = s;
  keys[keyTop++] = e;
}

function escapedKey(name: string, depth: number): void {
  if (!prototypeKeysAllowed && (name === '__proto__' || name === 'constructor' || name === 'prototype')) {
    throw ambiguous('prototype keys (__proto__, constructor, prototype) are not accepted');
  }
  for (let i = 0; i < name.length; i++) {
    if (name.charCodeAt(i) < 0x20) throw ambiguous('a key holds a control character');
  }
  addToSet(keySets[depth] ?? toSet(depth), name);
}

/** Moves the object's keys so far into a Set (many keys, or one with escapes to compare decoded). */
function toSet(depth: number): Set<string> {
  const set = new Set<string>();
  usedSets = true;
  for (let k = keyBase[depth]; k < keyTop; k += 2) set.add(text.slice(keys[k], keys[k + 1]));
  keyTop = keyBase[depth];
  keySets[depth] = set;
  return set;
}

function addToSet(set: Set<string>, name: string): void {
  if (set.has(name)) throw ambiguous('an object holds the same key twice');
  set.add(name);
}

function sameChars(a: number, b: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (text.charCodeAt(a + i) !== text.charCodeAt(b + i)) return false;
  return true;
}
