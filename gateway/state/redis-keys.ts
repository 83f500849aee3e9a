/**
 * How RedisStore names its keys: `${prefix}{${scope}}:${kind}:${key}`. The scope is the hash tag,
 * so every key of one call sits in one Redis Cluster slot and a script may touch them all; the kind
 * keeps a counter, a lease set and a record of the same name apart, as in MemoryStore.
 *
 * Kinds: c counter window, l lease set, r record (its JSON), v the record's revision, s the
 * scope's revision sequence (key ''), j log entries by seq and h log head (key ''), b bucket
 * counters. A record and its revision carry the same key, so a delete leaves nothing naming it.
 */
export type KeyKind = 'c' | 'l' | 'r' | 'v' | 's' | 'j' | 'h' | 'b';

export class RedisKeys {
  readonly prefix: string;

  constructor(prefix: string) {
    if (/[{}]/.test(prefix)) throw new Error(`state.keyPrefix must not contain { or } (it would break the {scope} hash tag): ${prefix}`);
    this.prefix = prefix;
  }

  key(scope: string, kind: KeyKind, key = ''): string {
    if (scope.length === 0) throw new RangeError('scope must not be empty');
    return `${this.prefix}{${scope}}:${kind}:${key}`;
  }

  channel(name: string): string {
    return this.prefix + name;
  }
}

/** A literal for a SCAN MATCH pattern: a scope may hold glob characters (`*`, `?`, `[`, a backslash). */
export function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}
