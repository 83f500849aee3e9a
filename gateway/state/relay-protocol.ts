/**
 * What a worker's RelayStore and the primary's RelayHost say to each other over the cluster's IPC
 * channel: one StateStore call per request, its answer by id, and pub/sub messages by subscription.
 *
 * Messages carry `bw: 'store'`, so whatever else travels on the channel is left alone. They cross
 * as JSON (Node's default IPC serialisation, several times faster than `advanced` for messages this
 * small), which is exactly what records are; the few values JSON would change on the way are
 * carried explicitly: an argument left undefined, a Map answer (records), and an error's class.
 */
import { StoreUnavailableError, type StateStore } from './store.js';

/**
 * The StateStore methods relayed as they are: a worker's call runs on the primary's store with the
 * same arguments. A method added to StateStore is relayed by adding its name here (the compiler
 * insists: RelayStore would not implement StateStore, and `Unlisted` below would not be never).
 */
export const RELAYED = [
  'charge', 'acquire', 'release', 'get', 'set', 'delete', 'read', 'compareAndSet', 'records', 'forget', 'append', 'readLog', 'logHead', 'add', 'sum', 'publish',
] as const satisfies readonly (keyof StateStore)[];
export type Relayed = (typeof RELAYED)[number];

/** What the relay handles itself: a callback cannot cross processes, and the rest is its own state. */
type Local = 'kind' | 'subscribe' | 'healthy' | 'close';
type MustBeNever<T extends never> = T;
/** Fails to compile when StateStore gains a member that is neither relayed nor handled locally. */
export type Unlisted = MustBeNever<Exclude<keyof StateStore, Relayed | Local>>;

const RELAYED_NAMES: ReadonlySet<string> = new Set(RELAYED);

/** One end of the channel: a worker's to the primary, or the primary's to one worker. */
export interface RelayChannel {
  /** Serialises at once (a value JSON cannot write throws here); throws when the channel is closed. */
  send(message: RelayMessage): void;
  /** Every message that arrives (tagged or not), and the channel's close; returns a function that stops listening. */
  listen(onMessage: (message: unknown) => void, onClose: () => void): () => void;
  connected(): boolean;
}

/** A worker's request; `id` numbers the worker's requests and names its subscriptions. */
export type RelayRequest =
  | { readonly bw: 'store'; readonly op: 'call'; readonly id: number; readonly method: Relayed; readonly args: readonly unknown[]; readonly holes?: readonly number[]; readonly nonFinite?: true }
  | { readonly bw: 'store'; readonly op: 'subscribe'; readonly id: number; readonly channel: string }
  | { readonly bw: 'store'; readonly op: 'unsubscribe'; readonly id: number; readonly sub: number }
  /** The worker's store closed: its subscriptions go. */
  | { readonly bw: 'store'; readonly op: 'close'; readonly id: number };

export interface WireError {
  readonly name: string;
  readonly message: string;
}

/** The primary's answer to request `id`: `value`, or `map` entries for a Map, or `error`. */
export type RelayReply =
  | { readonly bw: 'store'; readonly op: 'reply'; readonly id: number; readonly value?: unknown; readonly map?: readonly [string, unknown][]; readonly error?: WireError }
  | { readonly bw: 'store'; readonly op: 'message'; readonly sub: number; readonly message: string };

export type RelayMessage = RelayRequest | RelayReply;

interface Tagged {
  readonly bw: 'store';
  readonly op: unknown;
  readonly [field: string]: unknown;
}

function tagged(m: unknown): m is Tagged {
  return typeof m === 'object' && m !== null && (m as { bw?: unknown }).bw === 'store';
}

const isId = (v: unknown): v is number => Number.isSafeInteger(v);

/** A request from a worker, or undefined for anything else (other IPC traffic, or a malformed request). */
export function asRequest(m: unknown): RelayRequest | undefined {
  if (!tagged(m) || !isId(m.id)) return undefined;
  const { op, id } = m;
  if (op === 'call') {
    if (typeof m.method !== 'string' || !RELAYED_NAMES.has(m.method) || !Array.isArray(m.args)) return undefined;
    const holes = Array.isArray(m.holes) ? m.holes.filter(isId) : undefined;
    return { bw: 'store', op, id, method: m.method as Relayed, args: m.args, holes, ...(m.nonFinite === true ? { nonFinite: true } : {}) };
  }
  if (op === 'subscribe' && typeof m.channel === 'string') return { bw: 'store', op, id, channel: m.channel };
  if (op === 'unsubscribe' && isId(m.sub)) return { bw: 'store', op, id, sub: m.sub };
  if (op === 'close') return { bw: 'store', op, id };
  return undefined;
}

/** An answer or a pub/sub message from the primary, or undefined for anything else. */
export function asReply(m: unknown): RelayReply | undefined {
  if (!tagged(m)) return undefined;
  if (m.op === 'reply' && isId(m.id)) {
    const map = Array.isArray(m.map) ? (m.map as [string, unknown][]) : undefined;
    return { bw: 'store', op: 'reply', id: m.id, value: m.value, map, error: asWireError(m.error) };
  }
  if (m.op === 'message' && isId(m.sub) && typeof m.message === 'string') return { bw: 'store', op: 'message', sub: m.sub, message: m.message };
  return undefined;
}

/** JSON turns an undefined argument into null; the positions of undefined ones say which were. */
export function holesOf(args: readonly unknown[]): number[] | undefined {
  let holes: number[] | undefined;
  for (let i = 0; i < args.length; i++) if (args[i] === undefined) (holes ??= []).push(i);
  return holes;
}

export function withHoles(args: readonly unknown[], holes: readonly number[] | undefined): unknown[] {
  const out = [...args];
  for (const i of holes ?? []) out[i] = undefined;
  return out;
}

/** How a number JSON cannot write (NaN, ±Infinity) crosses: the store must see it to refuse it. */
const NON_FINITE = '$bwNonFinite';

function hasNonFinite(v: unknown, depth = 0): boolean {
  if (typeof v === 'number') return !Number.isFinite(v);
  if (v === null || typeof v !== 'object' || depth > 8) return false;
  for (const x of Array.isArray(v) ? v : Object.values(v)) if (hasNonFinite(x, depth + 1)) return true;
  return false;
}

function mapNumbers(v: unknown, f: (n: unknown) => unknown, depth = 0): unknown {
  const mapped = f(v);
  if (mapped !== v || v === null || typeof v !== 'object' || depth > 8) return mapped;
  if (Array.isArray(v)) return v.map((x) => mapNumbers(x, f, depth + 1));
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mapNumbers(x, f, depth + 1)]));
}

/**
 * Arguments as they cross: non-finite numbers tagged (only when there are any: the common call
 * is left as it is). `nonFinite` tells the primary to untag them.
 */
export function encodeArgs(args: readonly unknown[]): { args: readonly unknown[]; nonFinite?: true } {
  if (!hasNonFinite(args)) return { args };
  return { args: mapNumbers(args, (n) => (typeof n === 'number' && !Number.isFinite(n) ? { [NON_FINITE]: String(n) } : n)) as unknown[], nonFinite: true };
}

export function decodeArgs(args: readonly unknown[], nonFinite: boolean | undefined): readonly unknown[] {
  if (nonFinite !== true) return args;
  return mapNumbers(args, (n) => {
    const tag = n !== null && typeof n === 'object' && !Array.isArray(n) ? (n as Record<string, unknown>)[NON_FINITE] : undefined;
    return typeof tag === 'string' ? Number(tag) : n;
  }) as unknown[];
}

/** An answer as reply fields: a Map (records) as its entries, undefined as nothing. */
export function encodeValue(value: unknown): { value?: unknown; map?: [string, unknown][] } {
  if (value instanceof Map) return { map: [...(value as Map<string, unknown>)] };
  return value === undefined ? {} : { value };
}

export function decodeValue(reply: { readonly value?: unknown; readonly map?: readonly [string, unknown][] }): unknown {
  return reply.map !== undefined ? new Map(reply.map) : reply.value;
}

/** The error classes a store throws on purpose; a caller tells them apart by class. */
const ERROR_CLASSES: Readonly<Record<string, new (message: string) => Error>> = {
  RangeError,
  TypeError,
  SyntaxError,
  StoreUnavailableError,
};

function asWireError(v: unknown): WireError | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const { name, message } = v as { name?: unknown; message?: unknown };
  return typeof name === 'string' && typeof message === 'string' ? { name, message } : undefined;
}

export function encodeError(e: unknown): WireError {
  return e instanceof Error ? { name: e.name, message: e.message } : { name: 'Error', message: String(e) };
}

/** The same class and message as on the primary; the stack is this process's (the primary's would say nothing useful). */
export function decodeError(e: WireError): Error {
  const known = Object.hasOwn(ERROR_CLASSES, e.name) ? ERROR_CLASSES[e.name] : undefined;
  const err = new (known ?? Error)(e.message);
  if (known === undefined) err.name = e.name;
  return err;
}
