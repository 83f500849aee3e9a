/**
 * The one contract every adapter passes. Each adapter's test file calls `adapterContract` with a
 * factory that builds a fresh adapter (not yet loaded) and a sample request with known answers;
 * every test gets its own adapter and cleans it up.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DATATYPES, type Adapter, type Datatype, type InferRequest, type InferResponse } from '../../adapters/adapter.js';
import { toJsonData } from '../../adapters/tensors.js';
import { isGatewayError } from '../../gateway/errors.js';

export interface ExpectedOutput {
  readonly name: string;
  readonly datatype: Datatype;
  readonly shape: readonly number[];
  readonly data: number[] | string[] | boolean[];
}

export interface ContractSample {
  /** Must not select outputs: the contract derives selections from it. */
  readonly request: InferRequest;
  /** At least one output; numbers compare within `tolerance` (absolute), others exactly. */
  readonly expected: readonly ExpectedOutput[];
  readonly tolerance: number;
}

export interface ContractSubject {
  /** A fresh adapter; `load()` has not been called. */
  readonly adapter: Adapter;
  readonly sample: ContractSample;
  /** How many inferences the backend actually ran, if the test can observe it. */
  readonly runs?: () => number;
  readonly cleanup?: () => Promise<void>;
}

const OPTS = () => ({ signal: new AbortController().signal, deadline: Date.now() + 5_000, requestId: 'contract' });

async function withSubject(make: () => Promise<ContractSubject>, body: (s: ContractSubject) => Promise<void>): Promise<void> {
  const s = await make();
  try {
    await body(s);
  } finally {
    await s.adapter.close();
    await s.cleanup?.();
  }
}

function assertOutputs(response: InferResponse, expected: readonly ExpectedOutput[], tolerance: number): void {
  for (const exp of expected) {
    const got = response.outputs.find((o) => o.name === exp.name);
    assert.ok(got, `output ${exp.name} is missing`);
    assert.equal(got.datatype, exp.datatype, `datatype of ${exp.name}`);
    assert.deepEqual([...got.shape], [...exp.shape], `shape of ${exp.name}`);
    const data = toJsonData(got.datatype, got.data);
    assert.equal(data.length, exp.data.length, `element count of ${exp.name}`);
    exp.data.forEach((want, i) => {
      const have = data[i];
      if (typeof want === 'number' && typeof have === 'number') {
        assert.ok(Math.abs(have - want) <= tolerance, `${exp.name}[${i}] = ${have}, expected ${want} ± ${tolerance}`);
      } else {
        assert.equal(have, want, `${exp.name}[${i}]`);
      }
    });
  }
}

async function assertRejectsWith(p: Promise<unknown>, codes: readonly string[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isGatewayError(e), `expected a GatewayError, got ${String(e)}`);
    assert.ok(codes.includes(e.code), `code ${e.code} is not one of ${codes.join(', ')}`);
    return true;
  });
}

export function adapterContract(name: string, make: () => Promise<ContractSubject>): void {
  describe(`adapter contract: ${name}`, () => {
    it('describes its model after load(): named inputs and outputs with protocol datatypes and integer shapes', () =>
      withSubject(make, async ({ adapter }) => {
        await adapter.load();
        const md = adapter.metadata();
        assert.equal(typeof md.platform, 'string');
        assert.ok(md.platform.length > 0, 'platform is empty');
        assert.ok(md.inputs.length > 0, 'no inputs');
        assert.ok(md.outputs.length > 0, 'no outputs');
        for (const t of [...md.inputs, ...md.outputs]) {
          assert.ok(typeof t.name === 'string' && t.name.length > 0, 'tensor without a name');
          assert.ok((DATATYPES as readonly string[]).includes(t.datatype), `${t.name}: datatype ${t.datatype}`);
          assert.ok(Array.isArray(t.shape), `${t.name}: shape is not an array`);
          for (const d of t.shape) assert.ok(Number.isInteger(d) && d >= -1, `${t.name}: dimension ${d}`);
        }
        assert.equal(new Set(md.inputs.map((t) => t.name)).size, md.inputs.length, 'duplicate input names');
        assert.equal(new Set(md.outputs.map((t) => t.name)).size, md.outputs.length, 'duplicate output names');
      }));

    it('answers the sample with the expected outputs, and every tensor output when none is selected', () =>
      withSubject(make, async ({ adapter, sample }) => {
        await adapter.load();
        const md = adapter.metadata();
        const response = await adapter.infer(sample.request, OPTS());
        assertOutputs(response, sample.expected, sample.tolerance);
        const tensorOutputs = md.outputs.map((o) => o.name).filter((n) => !md.nonTensorOutputs?.includes(n));
        assert.deepEqual(response.outputs.map((o) => o.name).sort(), tensorOutputs.sort());
      }));

    it('returns only the selected output when the request selects one', () =>
      withSubject(make, async ({ adapter, sample }) => {
        await adapter.load();
        for (const exp of sample.expected) {
          const { rawJson: _dropped, ...request } = sample.request;
          const response = await adapter.infer({ ...request, outputs: [{ name: exp.name }] }, OPTS());
          assert.deepEqual(response.outputs.map((o) => o.name), [exp.name]);
          assertOutputs(response, [exp], sample.tolerance);
        }
      }));

    it('rejects an already aborted call with BACKEND_TIMEOUT and does not run it', () =>
      withSubject(make, async ({ adapter, sample, runs }) => {
        await adapter.load();
        const before = runs?.();
        const controller = new AbortController();
        controller.abort();
        const p = adapter.infer(sample.request, { ...OPTS(), signal: controller.signal });
        await assertRejectsWith(p, ['BACKEND_TIMEOUT']);
        if (runs !== undefined) assert.equal(runs(), before, 'the backend ran an aborted request');
      }));

    it('is ready after load()', () =>
      withSubject(make, async ({ adapter }) => {
        await adapter.load();
        assert.equal(await adapter.ready(), true);
      }));

    it('closes idempotently; afterwards it is not ready and refuses to infer', () =>
      withSubject(make, async ({ adapter, sample }) => {
        await adapter.load();
        await adapter.infer(sample.request, OPTS());
        assert.equal(await adapter.ready(), true);
        await adapter.close();
        await adapter.close();
        await Promise.all([adapter.close(), adapter.close()]);
        assert.equal(await adapter.ready(), false);
        await assertRejectsWith(adapter.infer(sample.request, OPTS()), ['MODEL_NOT_READY', 'BACKEND_UNAVAILABLE']);
      }));
  });
}
