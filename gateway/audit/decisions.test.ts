import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import type { RequestEnd } from '../observers.js';
import { decisionObserver, tensorsDigest, type DecisionRecord } from './decisions.js';

const tensor = (name: string, data: number[]) => ({ name, datatype: 'FP32' as const, shape: [1, data.length], data: Float32Array.from(data) });

function end(requestId: string, opts: { subject?: string; tenant?: string; retained?: boolean; model?: string } = {}): RequestEnd {
  const retained = opts.retained ?? true;
  return {
    requestId, startedAt: Date.parse('2026-12-06T00:00:00Z'), ms: 1.23456, model: opts.model ?? 'iris', version: '2', reason: 'canary',
    principal: opts.subject === undefined ? undefined : { subject: opts.subject, tenant: opts.tenant, scopes: new Set<string>() },
    status: 200, code: undefined, fault: undefined, rows: 1, optOuts: retained ? 0 : 2,
    annotations: { guardsFired: ['ood'] }, served: undefined,
    payload: retained ? { inputs: [tensor('input', [5.1, 3.5, 1.4, 0.2])] } : undefined,
    answer: retained ? { outputs: [tensor('output', [8.6, 2.6, -13])] } : undefined,
    droppedOutputs: 0, log: pino({ level: 'silent' }),
  } as unknown as RequestEnd;
}

test('decision records: the decision, digests of the tensors, a pseudonym; no digest for a tracking opt-out; tensors only where the model asks', async () => {
  const written: DecisionRecord[] = [];
  const o = decisionObserver({
    trail: { prediction: (b) => written.push(b as DecisionRecord) },
    pseudonym: async (t, s) => `p(${t ?? ''}:${s})`,
    maxPending: 10,
    log: pino({ level: 'silent' }),
    payloads: (m) => m === 'kept',
  });
  o.onEnd(end('r1', { subject: 'erin', tenant: 't1' }));
  o.onEnd(end('r2', { subject: 'gina', retained: false }));
  o.onEnd(end('r3', { model: 'kept' }));
  await o.idle();
  const [r1, r2, r3] = written;
  assert.deepEqual({ ...r1, input: undefined, output: undefined }, {
    requestId: 'r1', at: '2026-12-06T00:00:00.000Z', tenant: 't1', subject: 'p(t1:erin)', model: 'iris', version: '2', reason: 'canary',
    status: 200, code: null, fault: null, ms: 1.235, rows: 1, optOuts: 0, guards: ['ood'], coarsened: false, input: undefined, output: undefined,
  });
  assert.equal(r1!.input, tensorsDigest([tensor('input', [5.1, 3.5, 1.4, 0.2])]));
  assert.notEqual(r1!.input, r1!.output);
  assert.equal(r1!.payload, undefined, 'digests only by default');
  assert.equal(r2!.input, null);
  assert.equal(r2!.output, null);
  assert.equal(r3!.subject, null, 'anonymous');
  assert.deepEqual(r3!.payload?.inputs, [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: Array.from(Float32Array.from([5.1, 3.5, 1.4, 0.2])) }]);
  // Canonical: the same tensors in another order or encoding digest the same.
  assert.equal(tensorsDigest([tensor('b', [1]), tensor('a', [2])]), tensorsDigest([{ ...tensor('a', [2]), data: [2] as unknown as Float32Array }, tensor('b', [1])]));
});

test('a full queue drops new records and counts them', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const o = decisionObserver({ trail: { prediction: () => undefined }, pseudonym: async () => { await gate; return 'p'; }, maxPending: 2, log: pino({ level: 'silent' }) });
  for (let i = 0; i < 5; i++) o.onEnd(end(`r${i}`, { subject: 's' }));
  assert.equal(o.dropped, 2, 'one in the making, two waiting, two dropped');
  release();
  await o.idle();
});
