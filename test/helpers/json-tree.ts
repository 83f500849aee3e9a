/**
 * JSON as a tree a test can break: objects are member lists (so a key may be given twice), strings
 * may carry raw bytes or raw escapes JSON.stringify would never write (invalid UTF-8, lone
 * surrogate escapes), and a nesting tens of thousands deep is written lazily. `emit` turns a tree
 * into the bytes a hostile client sends; valid trees come out in varied but valid spellings
 * (member order, whitespace, `\u` escapes), so the gateway's parser sees more than one writer.
 */
export type JsonNode =
  | { readonly k: 'obj'; readonly members: [StrNode, JsonNode][] }
  | { readonly k: 'arr'; readonly items: JsonNode[] }
  | StrNode
  /** A number, true, false or null, written as this text. */
  | { readonly k: 'lit'; readonly text: string }
  /** `depth` levels of `[` (or `{"d":`) around `1`. */
  | { readonly k: 'deep'; readonly depth: number; readonly shape: 'array' | 'object' };

/** A string; `inject` puts raw bytes (or raw JSON text) into it at `at` (clamped to its length, moved off a surrogate pair's middle). */
export interface StrNode {
  readonly k: 'str';
  readonly s: string;
  inject?: { readonly at: number; readonly bytes: Buffer };
}

export const str = (s: string): StrNode => ({ k: 'str', s });

/** The tree of a JSON value (bigint as a bare integer, undefined members left out). */
export function toTree(v: unknown): JsonNode {
  if (v === null || typeof v === 'boolean') return { k: 'lit', text: String(v) };
  if (typeof v === 'number') return { k: 'lit', text: JSON.stringify(v) };
  if (typeof v === 'bigint') return { k: 'lit', text: v.toString() };
  if (typeof v === 'string') return str(v);
  if (Array.isArray(v)) return { k: 'arr', items: v.map(toTree) };
  if (typeof v === 'object') {
    const members: [StrNode, JsonNode][] = [];
    for (const [key, value] of Object.entries(v as Record<string, unknown>)) {
      if (value !== undefined) members.push([str(key), toTree(value)]);
    }
    return { k: 'obj', members };
  }
  throw new Error(`not JSON: ${typeof v}`);
}

/** Spelling choices for `emit`, all of which keep a valid tree valid. */
export interface Style {
  /** Whitespace put around tokens: '' for none. */
  readonly ws: string;
  /** Write non-ASCII characters (and a few ASCII ones) as \u escapes. */
  readonly escapeUnicode: boolean;
}

export const COMPACT: Style = { ws: '', escapeUnicode: false };

function quote(s: string, style: Style): string {
  let q = JSON.stringify(s);
  if (style.escapeUnicode) {
    // Every UTF-16 unit beyond ASCII (pairs stay pairs, as two escapes) and "/" as "\/".
    q = q.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).replace(/\//g, '\\/');
  }
  return q;
}

export function emit(node: JsonNode, style: Style = COMPACT): Buffer {
  const out: (string | Buffer)[] = [];
  const w = style.ws;
  // An explicit stack: trees are shallow, but a 'deep' node is written iteratively anyway.
  const work: (JsonNode | string)[] = [node];
  while (work.length > 0) {
    const n = work.pop() as JsonNode | string;
    if (typeof n === 'string') {
      out.push(n);
      continue;
    }
    switch (n.k) {
      case 'lit':
        out.push(n.text);
        break;
      case 'str':
        if (n.inject === undefined) {
          out.push(quote(n.s, style));
        } else {
          let at = Math.min(n.inject.at, n.s.length);
          // Never between the halves of a surrogate pair: each half would be written as a lone
          // escape, and an injected lone surrogate could pair up with one (\ud800 + \udc00\ud800 +
          // \udc00 is two valid pairs, not the lone surrogate a mutation means to send).
          if (at > 0 && at < n.s.length && /[\ud800-\udbff]/.test(n.s[at - 1]) && /[\udc00-\udfff]/.test(n.s[at])) at--;
          const before = quote(n.s.slice(0, at), style);
          const after = quote(n.s.slice(at), style);
          out.push(before.slice(0, -1), n.inject.bytes, after.slice(1));
        }
        break;
      case 'deep':
        if (n.shape === 'array') out.push('['.repeat(n.depth), '1', ']'.repeat(n.depth));
        else out.push('{"d":'.repeat(n.depth), '1', '}'.repeat(n.depth));
        break;
      case 'arr': {
        const parts: (JsonNode | string)[] = [`[${w}`];
        n.items.forEach((item, i) => {
          if (i > 0) parts.push(`${w},${w}`);
          parts.push(item);
        });
        parts.push(`${w}]`);
        for (let i = parts.length - 1; i >= 0; i--) work.push(parts[i]);
        break;
      }
      case 'obj': {
        const parts: (JsonNode | string)[] = [`{${w}`];
        n.members.forEach(([key, value], i) => {
          if (i > 0) parts.push(`${w},${w}`);
          parts.push(key, `${w}:${w}`, value);
        });
        parts.push(`${w}}`);
        for (let i = parts.length - 1; i >= 0; i--) work.push(parts[i]);
        break;
      }
    }
  }
  return Buffer.concat(out.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));
}

/** Every node of the tree with its path (keys and indices), in document order. */
export function nodes(root: JsonNode): { node: JsonNode; path: string[] }[] {
  const found: { node: JsonNode; path: string[] }[] = [];
  const work: { node: JsonNode; path: string[] }[] = [{ node: root, path: [] }];
  while (work.length > 0) {
    const item = work.shift() as { node: JsonNode; path: string[] };
    found.push(item);
    const n = item.node;
    if (n.k === 'arr') n.items.forEach((c, i) => work.push({ node: c, path: [...item.path, String(i)] }));
    if (n.k === 'obj') {
      for (const [key, value] of n.members) {
        found.push({ node: key, path: [...item.path, `${key.s}(key)`] });
        work.push({ node: value, path: [...item.path, key.s] });
      }
    }
  }
  return found;
}

export function objects(root: JsonNode): { node: Extract<JsonNode, { k: 'obj' }>; path: string[] }[] {
  return nodes(root).filter((x): x is { node: Extract<JsonNode, { k: 'obj' }>; path: string[] } => x.node.k === 'obj');
}

export function strings(root: JsonNode): { node: StrNode; path: string[] }[] {
  return nodes(root).filter((x): x is { node: StrNode; path: string[] } => x.node.k === 'str');
}

/** A member of an object node by key (the first one). */
export function member(obj: JsonNode, key: string): JsonNode | undefined {
  return obj.k === 'obj' ? obj.members.find(([k]) => k.s === key)?.[1] : undefined;
}

/** A deep copy (mutations change trees in place). */
export function cloneTree(n: JsonNode): JsonNode {
  switch (n.k) {
    case 'obj': return { k: 'obj', members: n.members.map(([k, v]) => [{ ...k }, cloneTree(v)]) };
    case 'arr': return { k: 'arr', items: n.items.map(cloneTree) };
    default: return { ...n };
  }
}
