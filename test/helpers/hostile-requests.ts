/**
 * Generators for the hostile-input suite: valid inference requests for the suite's model (plain
 * JSON and the binary tensor extension, in varied spellings), and one mutation per rule of issue 8
 * that turns a valid request into one the gateway must refuse, with the answer expected.
 */
import fc from 'fast-check';
import type { OipModelMetadataJson } from './backends.js';
import { cloneTree, member, objects, strings, toTree, type JsonNode, type Style } from './json-tree.js';

export const MODEL = 'sentry';
/** An output the backend adds to every answer; the model does not declare it (rule 4). */
export const UNDECLARED_OUTPUT = 'penultimate_embedding';

export const META: OipModelMetadataJson = {
  name: MODEL,
  platform: 'fake-oip',
  inputs: [
    { name: 'x', datatype: 'FP32', shape: [-1, 3] },
    { name: 'n', datatype: 'INT64', shape: [-1, 2] },
    { name: 'b', datatype: 'BOOL', shape: [-1, 1] },
    { name: 's', datatype: 'BYTES', shape: [-1, 1] },
  ],
  outputs: [
    { name: 'y', datatype: 'FP32', shape: [-1] },
    { name: 'z', datatype: 'INT32', shape: [-1, 2] },
  ],
};
export const DECLARED_OUTPUTS = META.outputs.map((o) => o.name);

/**
 * The same model for rule 9's allowed side (allowEmptyBatch): every input's batch dimension is
 * dynamic; `x` and `s` have a dynamic inner dimension too (where a 0 is still EMPTY_TENSOR), `n`
 * a fixed one (where a 0 is also a shape mismatch).
 */
export const EMPTY_BATCH_META: OipModelMetadataJson = {
  ...META,
  inputs: [
    { name: 'x', datatype: 'FP32', shape: [-1, -1] },
    { name: 'n', datatype: 'INT64', shape: [-1, 2] },
    { name: 's', datatype: 'BYTES', shape: [-1, -1, 1] },
  ],
};

type Scalar = string | number | boolean;

export interface TensorSpec {
  readonly name: string;
  readonly datatype: string;
  readonly shape: number[];
  /** Flat values: numbers, booleans, strings; INT64 as bigint. */
  readonly values: unknown[];
  readonly nested: boolean;
  /** INT64 values within 2^53 written as JSON numbers (else decimal strings). */
  readonly int64AsNumber: boolean;
  readonly parameters?: Record<string, Scalar>;
  readonly binary: boolean;
}

export interface RequestSpec {
  readonly id?: string;
  readonly parameters?: Record<string, Scalar>;
  readonly inputs: TensorSpec[];
  readonly outputs?: { name: string; parameters?: Record<string, Scalar> }[];
  readonly style: Style;
}

/** A request as sent: the JSON (header) tree and, for the binary extension, each tensor's bytes. */
export interface Rendered {
  readonly tree: JsonNode;
  readonly binary: Buffer[];
}

const PROTO_KEYS = ['__proto__', 'constructor', 'prototype'];
const RESERVED = /^(binary_data|shared_memory)/;

export const paramKey = fc.oneof(
  fc.stringMatching(/^[a-z_][a-z0-9_]{0,11}$/),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }),
).filter((k) => !RESERVED.test(k) && !PROTO_KEYS.includes(k));

// A whole number beyond 2^53 is refused on purpose (parsers read such a literal differently:
// JavaScript rounds it, Python and Go keep it exact), so valid parameters stay within it.
export const scalar: fc.Arbitrary<Scalar> = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Number.isInteger(x) || Number.isSafeInteger(x)),
  fc.boolean(),
);

const params = fc.option(fc.dictionary(paramKey, scalar, { minKeys: 0, maxKeys: 3 }), { nil: undefined });

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function valuesFor(datatype: string, count: number): fc.Arbitrary<unknown[]> {
  const one: fc.Arbitrary<unknown> =
    datatype === 'FP32' ? fc.float({ noNaN: true, noDefaultInfinity: true })
      : datatype === 'INT64' ? fc.bigInt({ min: INT64_MIN, max: INT64_MAX })
        : datatype === 'BOOL' ? fc.boolean()
          : fc.string({ unit: 'grapheme', maxLength: 8 });
  return fc.array(one, { minLength: count, maxLength: count });
}

/** A valid request for META with `batch` rows (0 makes the zero-size variant of rule 9). */
export function requestFor(batch: number, opts: { binary: 'never' | 'sometimes' } = { binary: 'sometimes' }): fc.Arbitrary<RequestSpec> {
  return requestShaped(META.inputs.map((t) => [batch, ...t.shape.slice(1)]), META, opts);
}

/**
 * A request for `meta` whose inputs (in the metadata's order) have these shapes, values to match;
 * inputs are then sent in any order. Valid when the shapes are.
 */
export function requestShaped(shapes: readonly number[][], meta: OipModelMetadataJson = META, opts: { binary: 'never' | 'sometimes' } = { binary: 'sometimes' }): fc.Arbitrary<RequestSpec> {
  const tensor = (t: { name: string; datatype: string; shape: number[] }, i: number) => {
    const shape = shapes[i];
    const count = shape.reduce((a, b) => a * b, 1);
    return fc.record({
      values: valuesFor(t.datatype, count),
      nested: fc.boolean(),
      int64AsNumber: fc.boolean(),
      parameters: params,
      binary: opts.binary === 'never' ? fc.constant(false) : fc.boolean(),
    }).map((r): TensorSpec => ({ name: t.name, datatype: t.datatype, shape, ...r }));
  };
  const outputs = fc.option(
    fc.subarray(DECLARED_OUTPUTS, { minLength: 1 }).chain((names) =>
      fc.tuple(...names.map((name) => fc.record({
        name: fc.constant(name),
        parameters: fc.option(fc.oneof(
          { weight: 4, arbitrary: fc.dictionary(paramKey, scalar, { maxKeys: 2 }) },
          { weight: 1, arbitrary: fc.constant({ binary_data: true } as Record<string, Scalar>) },
        ), { nil: undefined }),
      }, { requiredKeys: ['name'] })))),
    { nil: undefined },
  );
  return fc.record({
    id: fc.option(fc.string({ unit: 'grapheme', maxLength: 16 }), { nil: undefined }),
    parameters: params,
    inputs: fc.tuple(...meta.inputs.map(tensor)).chain((ts) => fc.shuffledSubarray(ts, { minLength: ts.length })),
    outputs,
    style: fc.record({ ws: fc.constantFrom('', '', ' ', '\n  ', '\t'), escapeUnicode: fc.boolean() }),
  }, { requiredKeys: ['inputs', 'style'] }) as fc.Arbitrary<RequestSpec>;
}

function nest(values: unknown[], shape: number[]): unknown[] {
  if (shape.length <= 1) return values;
  const inner = shape.slice(1).reduce((a, b) => a * b, 1);
  const rows: unknown[] = [];
  for (let r = 0; r < shape[0]; r++) rows.push(nest(values.slice(r * inner, (r + 1) * inner), shape.slice(1)));
  return rows;
}

function jsonValue(t: TensorSpec, v: unknown): unknown {
  if (typeof v !== 'bigint') return v;
  const safe = v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER);
  return safe && t.int64AsNumber ? Number(v) : v.toString();
}

/** Raw little-endian bytes of a tensor, as the binary extension carries them. */
export function tensorBytes(t: TensorSpec): Buffer {
  switch (t.datatype) {
    case 'FP32': return Buffer.from(new Float32Array(t.values as number[]).buffer);
    case 'INT64': return Buffer.from(new BigInt64Array(t.values as bigint[]).buffer);
    case 'BOOL': return Buffer.from((t.values as boolean[]).map((b) => (b ? 1 : 0)));
    default: return Buffer.concat((t.values as string[]).flatMap((s) => {
      const bytes = Buffer.from(s, 'utf8');
      const len = Buffer.alloc(4);
      len.writeUInt32LE(bytes.length);
      return [len, bytes];
    }));
  }
}

export function render(spec: RequestSpec): Rendered {
  const binary: Buffer[] = [];
  const inputs = spec.inputs.map((t) => {
    const out: Record<string, unknown> = { name: t.name, datatype: t.datatype, shape: t.shape };
    if (t.binary) {
      const bytes = tensorBytes(t);
      binary.push(bytes);
      out.parameters = { ...t.parameters, binary_data_size: bytes.length };
    } else {
      const flat = t.values.map((v) => jsonValue(t, v));
      out.data = t.nested ? nest(flat, t.shape) : flat;
      if (t.parameters !== undefined) out.parameters = t.parameters;
    }
    return out;
  });
  const body: Record<string, unknown> = { id: spec.id, parameters: spec.parameters, inputs, outputs: spec.outputs };
  return { tree: toTree(body), binary };
}

export function isBinary(spec: RequestSpec): boolean {
  return spec.inputs.some((t) => t.binary);
}

// ---------------------------------------------------------------------------------------------
// Mutations: each breaks one rule and says what answer the rule requires.

/** What the gateway must answer. `statuses` with `codes` undefined: any catalogue code of that status. */
export type Expect =
  | { readonly kind: 'refuse'; readonly statuses: readonly number[]; readonly codes?: readonly string[] }
  /** Refused, or accepted with the offending member left out of what is forwarded. */
  | { readonly kind: 'refuse-or-drop'; readonly member: string };

export interface Mutated {
  readonly rendered: Rendered;
  readonly expect: Expect;
  /** What was done, for the counterexample report. */
  readonly what: string;
}

const REFUSE_400: Expect = { kind: 'refuse', statuses: [400] };

function pick<T>(list: readonly T[], n: number): T {
  if (list.length === 0) throw new Error('nothing to pick from');
  return list[n % list.length];
}

const anyJson = fc.jsonValue({ maxDepth: 2 });

/** A mutation that prints as its parameters in a counterexample (not as its source). */
function named<P>(params: P, fn: (r: Rendered) => Mutated): (r: Rendered) => Mutated {
  return Object.assign(fn, { [fc.toStringMethod]: () => `mutation${fc.stringify(params)}` });
}

/** Rule 1: a key repeated in one object, at any depth. */
export const duplicateKey = fc.record({ at: fc.nat(), member: fc.nat(), same: fc.boolean(), other: anyJson, first: fc.boolean() })
  .map((m) => named(m, (r: Rendered): Mutated => {
    const tree = cloneTree(r.tree);
    const target = pick(objects(tree).filter((o) => o.node.members.length > 0), m.at);
    const [key, value] = pick(target.node.members, m.member);
    const copy: [typeof key, JsonNode] = [{ ...key }, m.same ? cloneTree(value) : toTree(m.other)];
    target.node.members.splice(m.first ? 0 : target.node.members.length, 0, copy);
    return { rendered: { tree, binary: r.binary }, expect: REFUSE_400, what: `key ${JSON.stringify(key.s)} twice at /${target.path.join('/')}` };
  }));

/** Rule 1: `__proto__`, `constructor` or `prototype` as a key, at any depth. */
export const prototypeKey = fc.record({ at: fc.nat(), key: fc.constantFrom(...PROTO_KEYS), value: fc.oneof(fc.constant({ polluted: true }), anyJson) })
  .map((m) => named(m, (r: Rendered): Mutated => {
    const tree = cloneTree(r.tree);
    const target = pick(objects(tree), m.at);
    target.node.members.push([{ k: 'str', s: m.key }, toTree(m.value)]);
    return { rendered: { tree, binary: r.binary }, expect: REFUSE_400, what: `${m.key} at /${target.path.join('/')}` };
  }));

const BAD_UTF8 = [[0x80], [0xbf], [0xc0, 0xaf], [0xc0, 0x80], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xfe], [0xff]];

/** Rule 1: bytes that are not UTF-8 inside a key or a string value. */
export const invalidUtf8 = fc.record({ at: fc.nat(), pos: fc.nat(16), bytes: fc.constantFrom(...BAD_UTF8) })
  .map((m) => named(m, (r: Rendered): Mutated => {
    const tree = cloneTree(r.tree);
    const target = pick(strings(tree), m.at);
    target.node.inject = { at: m.pos, bytes: Buffer.from(m.bytes) };
    return { rendered: { tree, binary: r.binary }, expect: REFUSE_400, what: `bytes ${Buffer.from(m.bytes).toString('hex')} in /${target.path.join('/')}` };
  }));

const LONE_SURROGATES = ['\\uD800', '\\udfff', '\\uDBFF\\u0041', '\\uDC00\\uD800', '\\ud83d'];

/** Rule 1: a `\u` escape of half a surrogate pair inside a key or a string value. */
export const loneSurrogate = fc.record({ at: fc.nat(), pos: fc.nat(16), escape: fc.constantFrom(...LONE_SURROGATES) })
  .map((m) => named(m, (r: Rendered): Mutated => {
    const tree = cloneTree(r.tree);
    const target = pick(strings(tree), m.at);
    target.node.inject = { at: m.pos, bytes: Buffer.from(m.escape) };
    return { rendered: { tree, binary: r.binary }, expect: REFUSE_400, what: `${m.escape} in /${target.path.join('/')}` };
  }));

/** Rule 1: a value nested far beyond any sane limit, in a parameter, an unknown member or tensor data. */
export const deepNesting = fc.record({
  depth: fc.constantFrom(1_000, 10_000, 100_000),
  shape: fc.constantFrom<'array' | 'object'>('array', 'object'),
  where: fc.constantFrom('parameters', 'tensor-parameters', 'unknown-member', 'data'),
  at: fc.nat(),
}).map((m) => named(m, (r: Rendered): Mutated => {
  const tree = cloneTree(r.tree);
  const deep: JsonNode = { k: 'deep', depth: m.depth, shape: m.shape };
  const inputs = member(tree, 'inputs');
  const tensors = inputs?.k === 'arr' ? inputs.items : [];
  const tensor = pick(tensors, m.at);
  if (tree.k !== 'obj' || tensor.k !== 'obj') throw new Error('unexpected tree');
  if (m.where === 'parameters' || m.where === 'tensor-parameters') {
    const owner = m.where === 'parameters' ? tree : tensor;
    let p = member(owner, 'parameters');
    if (p === undefined) {
      p = { k: 'obj', members: [] };
      owner.members.push([{ k: 'str', s: 'parameters' }, p]);
    }
    if (p.k !== 'obj') throw new Error('unexpected tree');
    p.members.push([{ k: 'str', s: 'deep' }, deep]);
  } else if (m.where === 'unknown-member') {
    tree.members.push([{ k: 'str', s: 'extension' }, deep]);
  } else {
    const data = tensor.members.find(([k]) => k.s === 'data');
    if (data !== undefined) data[1] = deep;
    else tensor.members.push([{ k: 'str', s: 'data' }, deep]);
  }
  return { rendered: { tree, binary: r.binary }, expect: REFUSE_400, what: `${m.shape} nested ${m.depth} deep in ${m.where}` };
}));

export const KNOWN_TOP = ['id', 'inputs', 'outputs', 'parameters'];
export const KNOWN_TENSOR = ['name', 'datatype', 'shape', 'data', 'parameters'];

/** Rule 1: a top-level member the protocol does not define (refused by default). */
export const unknownTopMember = fc.record({ key: paramKey.filter((k) => !KNOWN_TOP.includes(k)), value: anyJson, at: fc.nat() })
  .map((m) => named(m, (r: Rendered): Mutated => {
    const tree = cloneTree(r.tree);
    if (tree.k !== 'obj') throw new Error('unexpected tree');
    tree.members.splice(m.at % (tree.members.length + 1), 0, [{ k: 'str', s: m.key }, toTree(m.value)]);
    return { rendered: { tree, binary: r.binary }, expect: REFUSE_400, what: `unknown top-level member ${JSON.stringify(m.key)}` };
  }));

/** Rule 1: a member a tensor (input or requested output) does not define: refused or not forwarded. */
export const unknownTensorMember = fc.record({ key: paramKey.filter((k) => !KNOWN_TENSOR.includes(k)), value: anyJson, at: fc.nat() })
  .map((m) => named(m, (r: Rendered): Mutated => {
    const tree = cloneTree(r.tree);
    const tensors = [member(tree, 'inputs'), member(tree, 'outputs')].flatMap((l) => (l?.k === 'arr' ? l.items : []));
    const target = pick(tensors, m.at);
    if (target.k !== 'obj') throw new Error('unexpected tree');
    target.members.push([{ k: 'str', s: m.key }, toTree(m.value)]);
    return { rendered: { tree, binary: r.binary }, expect: { kind: 'refuse-or-drop', member: m.key }, what: `unknown tensor member ${JSON.stringify(m.key)}` };
  }));

/** Rule 1: a parameter whose value is an object, an array or null (the protocol allows scalars only). */
export const nonScalarParameter = fc.record({
  key: paramKey,
  value: fc.oneof(fc.constant(null), fc.array(scalar, { maxLength: 3 }), fc.dictionary(paramKey, anyJson, { maxKeys: 3 })),
  at: fc.nat(),
}).map((m) => named(m, (r: Rendered): Mutated => {
  const tree = cloneTree(r.tree);
  if (tree.k !== 'obj') throw new Error('unexpected tree');
  const tensors = [member(tree, 'inputs'), member(tree, 'outputs')].flatMap((l) => (l?.k === 'arr' ? l.items : []));
  const owners = [tree, ...tensors];
  const owner = pick(owners, m.at);
  if (owner.k !== 'obj') throw new Error('unexpected tree');
  let p = member(owner, 'parameters');
  if (p === undefined) {
    p = { k: 'obj', members: [] };
    owner.members.push([{ k: 'str', s: 'parameters' }, p]);
  }
  if (p.k !== 'obj') throw new Error('unexpected tree');
  p.members.push([{ k: 'str', s: m.key }, toTree(m.value)]);
  return { rendered: { tree, binary: r.binary }, expect: REFUSE_400, what: `parameter ${JSON.stringify(m.key)} = ${JSON.stringify(m.value)}` };
}));

const TENSOR_CODES = ['SHAPE_MISMATCH', 'SHAPE_DATA_MISMATCH', 'DATATYPE_MISMATCH', 'UNKNOWN_DATATYPE', 'INVALID_VALUE', 'VALUE_OUT_OF_RANGE', 'BATCH_MISMATCH', 'BAD_BINARY_HEADER', 'BAD_REQUEST', 'NON_FINITE_VALUE'];

/** Existing rules, as a control: a wrong datatype, a wrong shape or a value its datatype cannot hold. */
export const wrongTensor = fc.record({
  kind: fc.constantFrom('datatype', 'unknown-datatype', 'shape', 'value'),
  at: fc.nat(),
  datatype: fc.constantFrom('BOOL', 'UINT8', 'INT8', 'INT16', 'INT32', 'INT64', 'UINT64', 'FP16', 'FP32', 'FP64', 'BYTES'),
  dim: fc.integer({ min: 4, max: 9 }),
}).map((m) => named(m, (r: Rendered): Mutated => {
  const tree = cloneTree(r.tree);
  const inputs = member(tree, 'inputs');
  const tensor = pick(inputs?.k === 'arr' ? inputs.items : [], m.at);
  if (tensor.k !== 'obj') throw new Error('unexpected tree');
  const name = (member(tensor, 'name') as { s: string }).s;
  const expected = META.inputs.find((i) => i.name === name);
  const set = (key: string, v: unknown) => {
    const found = tensor.members.find(([k]) => k.s === key);
    if (found !== undefined) found[1] = toTree(v);
    else tensor.members.push([{ k: 'str', s: key }, toTree(v)]);
  };
  let what: string;
  let codes: string[];
  if (m.kind === 'datatype' || (m.kind === 'value' && member(tensor, 'data') === undefined)) {
    const dt = m.datatype === expected?.datatype ? (m.datatype === 'FP64' ? 'FP16' : 'FP64') : m.datatype;
    set('datatype', dt);
    what = `input ${name} as ${dt}`;
    codes = TENSOR_CODES;
  } else if (m.kind === 'unknown-datatype') {
    set('datatype', 'FLOAT32');
    what = `input ${name} with datatype FLOAT32`;
    codes = ['UNKNOWN_DATATYPE', 'BAD_REQUEST'];
  } else if (m.kind === 'shape') {
    const shape = member(tensor, 'shape');
    const batch = shape?.k === 'arr' && shape.items[0]?.k === 'lit' ? Number(shape.items[0].text) : 1;
    set('shape', [batch, m.dim]);
    what = `input ${name} with shape [${batch},${m.dim}]`;
    codes = TENSOR_CODES;
  } else {
    const bad: Record<string, unknown> = { x: 1e39, n: '12abc', b: 1, s: 5 };
    const shape = member(tensor, 'shape');
    const dims = shape?.k === 'arr' ? shape.items.map((d) => Number((d as { text: string }).text)) : [1];
    const count = dims.reduce((a, b) => a * b, 1);
    set('data', [bad[name], ...new Array(Math.max(0, count - 1)).fill(name === 'b' ? true : name === 's' ? 'v' : 0)]);
    what = `input ${name} holding ${JSON.stringify(bad[name])}`;
    codes = ['INVALID_VALUE', 'VALUE_OUT_OF_RANGE', 'SHAPE_DATA_MISMATCH'];
  }
  return { rendered: { tree, binary: r.binary }, expect: { kind: 'refuse', statuses: [400], codes }, what };
}));
