import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import type { InferRequest, InferResponse } from '../adapters/adapter.js';
import { OPT_OUT } from '../policies/policy.js';
import { Observers, type Observer, type RequestEnd } from './observers.js';

const log = pino({ level: 'silent' });
const payload: InferRequest = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: Float32Array.from([42]) }] };
const answer: InferResponse = { outputs: [{ name: 'y', datatype: 'FP32', shape: [1], data: Float32Array.from([7]) }] };

function end(optOuts = 0): RequestEnd {
  return {
    requestId: 'r', startedAt: 0, ms: 1, model: 'm', version: '1', reason: 'stable', principal: undefined, status: 200,
    code: undefined, fault: undefined, rows: 1, optOuts, annotations: undefined, served: undefined, payload, answer, droppedOutputs: 0, log,
  };
}

function recorder(): Observer & { seen: RequestEnd[] } {
  const seen: RequestEnd[] = [];
  return { name: 'recorder', seen, onEnd: (e) => void seen.push(e) };
}

test('an observer that throws or rejects touches neither the caller nor the observers after it', async () => {
  const before = recorder();
  const after = recorder();
  const failures: unknown[] = [];
  const warn = pino({ level: 'warn' }, { write: (line: string) => void failures.push(JSON.parse(line)) });
  const observers = new Observers([
    before,
    { name: 'throws', onEnd: () => { throw new Error('boom'); } },
    { name: 'rejects', onEnd: () => Promise.reject(new Error('later boom')) },
    after,
  ], warn);
  for (let i = 0; i < 3; i++) assert.doesNotThrow(() => observers.end(end()));
  await new Promise((r) => setImmediate(r));
  assert.equal(before.seen.length, 3);
  assert.equal(after.seen.length, 3);
  const names = failures.map((f) => (f as { observer: string }).observer).sort();
  assert.deepEqual(names, ['rejects', 'throws'], 'each failing observer is logged once per minute, not per request');
});

test('a tracking opt-out\'s payload and answer never reach an observer; counts and codes do', () => {
  const r = recorder();
  const observers = new Observers([r], log);
  observers.end(end(OPT_OUT.tracking | OPT_OUT.experiments));
  observers.end(end(OPT_OUT.experiments));
  const [tracked, other] = r.seen;
  assert.equal(tracked?.payload, undefined);
  assert.equal(tracked?.answer, undefined);
  assert.equal(tracked?.rows, 1);
  assert.equal(tracked?.version, '1');
  assert.equal(other?.payload, payload, 'other opt-outs keep theirs');
  assert.equal(other?.answer, answer);
});
