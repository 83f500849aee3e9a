/**
 * A strict JSON parser, the oracle of the hostile-input suite: what a careful backend would read.
 * RFC 8259 grammar exactly (no BOM, no comments, no trailing commas, only the four whitespace
 * characters, no control characters in strings), and it refuses every input that two conforming
 * parsers may read differently:
 * - invalid UTF-8 in the raw bytes (decoders differ: replace, drop or refuse);
 * - a `\uD800`–`\uDFFF` escape that is not half of a surrogate pair (no Unicode scalar value);
 * - a key repeated in one object, at any depth (first wins in some parsers, last in others).
 * Objects are built with `Object.create(null)`, so `__proto__`, `constructor` and `prototype` are
 * plain data. The walk keeps its own stack: nesting depth is bounded by memory, not by the call
 * stack, so a body nested 100 000 levels deep is parsed (and compared), not a RangeError.
 */
import { isUtf8 } from 'node:buffer';

export type StrictJson = null | boolean | number | string | StrictJson[] | StrictObject;
export interface StrictObject { [key: string]: StrictJson }

export type StrictJsonFault = 'invalid-utf8' | 'bom' | 'syntax' | 'lone-surrogate' | 'duplicate-key';

export class StrictJsonError extends Error {
  readonly fault: StrictJsonFault;
  readonly offset: number;
  constructor(fault: StrictJsonFault, offset: number, detail: string) {
    super(`${fault} at ${offset}: ${detail}`);
    this.name = 'StrictJsonError';
    this.fault = fault;
    this.offset = offset;
  }
}

/** A container being filled: an array, or an object with the key its next value goes under. */
type Frame =
  | { readonly kind: 'array'; readonly value: StrictJson[] }
  | { readonly kind: 'object'; readonly value: StrictObject; readonly keys: Set<string>; key: string | undefined };

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** Parses `input` (raw bytes, or text already decoded) strictly; throws StrictJsonError. */
export function parseStrictJson(input: Uint8Array | string): StrictJson {
  let text: string;
  if (typeof input === 'string') {
    text = input;
    if (LONE_SURROGATE.test(input)) throw new StrictJsonError('invalid-utf8', 0, 'the text holds an unpaired surrogate');
  } else {
    if (!isUtf8(input)) throw new StrictJsonError('invalid-utf8', 0, 'the bytes are not valid UTF-8');
    text = Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('utf8');
  }
  if (text.charCodeAt(0) === 0xfeff) throw new StrictJsonError('bom', 0, 'a byte order mark is not JSON');
  return new Parser(text).parse();
}

/** True when `parseStrictJson` accepts the input. */
export function isStrictJson(input: Uint8Array | string): boolean {
  try {
    parseStrictJson(input);
    return true;
  } catch (e) {
    if (e instanceof StrictJsonError) return false;
    throw e;
  }
}

class Parser {
  readonly #s: string;
  #i = 0;

  constructor(text: string) {
    this.#s = text;
  }

  #fail(fault: StrictJsonFault, detail: string): never {
    throw new StrictJsonError(fault, this.#i, detail);
  }

  #ws(): void {
    const s = this.#s;
    for (;;) {
      const c = s.charCodeAt(this.#i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.#i++;
      else return;
    }
  }

  parse(): StrictJson {
    const stack: Frame[] = [];
    let result: StrictJson | undefined;
    let done = false;
    // Each turn reads one value (a scalar, or the opening of a container) and then closes every
    // container that ends after it.
    this.#ws();
    while (!done) {
      let value: StrictJson;
      let opened = false;
      const c = this.#s[this.#i];
      if (c === '{' || c === '[') {
        this.#i++;
        this.#ws();
        if (c === '[') {
          const arr: StrictJson[] = [];
          if (this.#s[this.#i] === ']') {
            this.#i++;
            value = arr;
          } else {
            stack.push({ kind: 'array', value: arr });
            opened = true;
            value = arr;
          }
        } else {
          const obj = Object.create(null) as StrictObject;
          if (this.#s[this.#i] === '}') {
            this.#i++;
            value = obj;
          } else {
            const frame: Frame = { kind: 'object', value: obj, keys: new Set(), key: undefined };
            stack.push(frame);
            this.#key(frame);
            opened = true;
            value = obj;
          }
        }
      } else {
        value = this.#scalar();
      }
      if (opened) {
        this.#ws();
        continue;
      }
      // Place the value, then close containers while they end.
      let placed: StrictJson = value;
      for (;;) {
        const top = stack.at(-1);
        if (top === undefined) {
          result = placed;
          done = true;
          break;
        }
        if (top.kind === 'array') top.value.push(placed);
        else top.value[top.key as string] = placed;
        this.#ws();
        const next = this.#s[this.#i];
        if (next === ',') {
          this.#i++;
          this.#ws();
          if (top.kind === 'object') this.#key(top);
          break;
        }
        if ((top.kind === 'array' && next === ']') || (top.kind === 'object' && next === '}')) {
          this.#i++;
          stack.pop();
          placed = top.value;
          continue;
        }
        this.#fail('syntax', next === undefined ? 'unexpected end of input' : `unexpected ${JSON.stringify(next)}`);
      }
      if (!done) this.#ws();
    }
    this.#ws();
    if (this.#i !== this.#s.length) this.#fail('syntax', 'text after the value');
    return result as StrictJson;
  }

  /** Reads `"key" :` of an object member and checks it is new in that object. */
  #key(frame: Extract<Frame, { kind: 'object' }>): void {
    if (this.#s[this.#i] !== '"') this.#fail('syntax', 'expected a string key');
    const at = this.#i;
    const key = this.#string();
    if (frame.keys.has(key)) throw new StrictJsonError('duplicate-key', at, `key ${JSON.stringify(key.slice(0, 40))} repeated`);
    frame.keys.add(key);
    frame.key = key;
    this.#ws();
    if (this.#s[this.#i] !== ':') this.#fail('syntax', 'expected ":"');
    this.#i++;
    this.#ws();
  }

  #scalar(): StrictJson {
    const s = this.#s;
    const c = s[this.#i];
    if (c === '"') return this.#string();
    if (s.startsWith('true', this.#i)) {
      this.#i += 4;
      return true;
    }
    if (s.startsWith('false', this.#i)) {
      this.#i += 5;
      return false;
    }
    if (s.startsWith('null', this.#i)) {
      this.#i += 4;
      return null;
    }
    NUMBER.lastIndex = this.#i;
    const m = NUMBER.exec(s);
    if (m === null) this.#fail('syntax', c === undefined ? 'unexpected end of input' : `unexpected ${JSON.stringify(c)}`);
    this.#i += m[0].length;
    return Number(m[0]);
  }

  #string(): string {
    const s = this.#s;
    this.#i++; // the opening quote
    let out = '';
    let run = this.#i;
    for (;;) {
      const code = s.charCodeAt(this.#i);
      if (Number.isNaN(code)) this.#fail('syntax', 'unterminated string');
      if (code === 0x22) {
        out += s.slice(run, this.#i);
        this.#i++;
        return out;
      }
      if (code < 0x20) this.#fail('syntax', 'control character in a string');
      if (code !== 0x5c) {
        this.#i++;
        continue;
      }
      out += s.slice(run, this.#i);
      const e = s[this.#i + 1];
      this.#i += 2;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const unit = this.#hex4();
          if (unit >= 0xdc00 && unit <= 0xdfff) this.#fail('lone-surrogate', 'a low surrogate escape without its high half');
          if (unit >= 0xd800 && unit <= 0xdbff) {
            if (s[this.#i] !== '\\' || s[this.#i + 1] !== 'u') this.#fail('lone-surrogate', 'a high surrogate escape without its low half');
            this.#i += 2;
            const low = this.#hex4();
            if (low < 0xdc00 || low > 0xdfff) this.#fail('lone-surrogate', 'a high surrogate escape without its low half');
            out += String.fromCharCode(unit, low);
          } else {
            out += String.fromCharCode(unit);
          }
          break;
        }
        default:
          this.#fail('syntax', 'invalid escape');
      }
      run = this.#i;
    }
  }

  #hex4(): number {
    const h = this.#s.slice(this.#i, this.#i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.#fail('syntax', 'invalid \\u escape');
    this.#i += 4;
    return parseInt(h, 16);
  }
}

/**
 * Structural equality of two strict values without recursion (they may be deeply nested): same
 * types, same numbers (-0 and 0 are one number, as to most parsers), arrays in order, objects with
 * the same keys in any order.
 */
export function strictEqual(a: StrictJson, b: StrictJson): boolean {
  const work: [StrictJson, StrictJson][] = [[a, b]];
  while (work.length > 0) {
    const [x, y] = work.pop() as [StrictJson, StrictJson];
    if (x === y) continue;
    if (x === null || y === null || typeof x !== 'object' || typeof y !== 'object') return false;
    if (Array.isArray(x) !== Array.isArray(y)) return false;
    if (Array.isArray(x)) {
      const ya = y as StrictJson[];
      if (x.length !== ya.length) return false;
      for (let i = 0; i < x.length; i++) work.push([x[i], ya[i]]);
      continue;
    }
    const xo = x as StrictObject;
    const yo = y as StrictObject;
    const xk = Object.keys(xo);
    if (xk.length !== Object.keys(yo).length) return false;
    for (const k of xk) {
      if (!Object.hasOwn(yo, k)) return false;
      work.push([xo[k], yo[k]]);
    }
  }
  return true;
}
