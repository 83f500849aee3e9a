/**
 * Hostile-input suite, bodies (issue 8 rules 1, 4 and 9; docs/security.md): property-based
 * generation of valid inference requests (plain JSON and the binary tensor extension, varied
 * spellings) and of one mutation per rule. Every answer must be a non-5xx catalogue answer with
 * nothing leaked (hostile-rig.ts `check`); every request let through must reach the backend as
 * exactly the request validated, read by a strict parser, and only declared outputs come back;
 * every request that breaks a rule is refused with its code family and never reaches the backend.
 */
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import {
  deepNesting, duplicateKey, EMPTY_BATCH_META, invalidUtf8, loneSurrogate, nonScalarParameter, prototypeKey, render, requestFor,
  requestShaped, unknownTensorMember, unknownTopMember, wrongTensor, type Mutated, type Rendered, type RequestSpec,
} from './helpers/hostile-requests.js';
import { check, checkAccepted, checkRefused, exchange, outcome, startRig, toRawRequest, type Rig } from './helpers/hostile-rig.js';
import { Outcomes, runProperty, SEED } from './helpers/property-run.js';

let rig: Rig;
/** The same model, declared with dynamic inner dimensions, with allowEmptyBatch (rule 9's allowed side). */
let emptyRig: Rig;

before(async () => {
  rig = await startRig();
  emptyRig = await startRig({ meta: EMPTY_BATCH_META, model: { allowEmptyBatch: true } });
});

after(async () => {
  await Promise.all([rig.close(), emptyRig.close()]);
});

const jsonType = fc.constantFrom(undefined, 'application/json', 'application/json; charset=utf-8', 'application/json;charset="UTF-8"');

const batch = fc.integer({ min: 1, max: 3 });
const valid = batch.chain((b) => requestFor(b));

/** A property over valid requests broken by `mutation`: the answer `Mutated.expect` says. */
function mutationProperty(
  mutation: fc.Arbitrary<(r: Rendered) => Mutated>,
  numRuns: number,
  base: fc.Arbitrary<RequestSpec> = valid,
) {
  return async (t: import('node:test').TestContext) => {
    const outcomes = new Outcomes();
    await runProperty(t, fc.tuple(base, mutation, jsonType), async ([spec, mutate, type]) => {
      const m = mutate(render(spec));
      const x = await exchange(rig, toRawRequest(spec, m.rendered, type));
      outcomes.add(outcome(x));
      check(x, rig);
      if (m.expect.kind === 'refuse') checkRefused(x, m.expect, m.what);
      else if (x.response.status === 200) checkAccepted(x, m.what, m.expect.member);
      else checkRefused(x, { kind: 'refuse', statuses: [400] }, m.what);
    }, { numRuns }, outcomes);
  };
}

describe(`hostile bodies (seed ${SEED})`, () => {
  test('valid requests, JSON and binary: 200, the backend receives exactly the validated request, only declared outputs come back', async (t) => {
    const outcomes = new Outcomes();
    let identical = 0;
    let binary = 0;
    await runProperty(t, fc.tuple(valid, jsonType), async ([spec, type]) => {
      const r = render(spec);
      if (r.binary.length > 0) binary++;
      const x = await exchange(rig, toRawRequest(spec, r, type));
      outcomes.add(outcome(x));
      check(x, rig);
      if (checkAccepted(x, 'a valid request').identical) identical++;
    }, { numRuns: 360 }, outcomes);
    t.diagnostic(`binary-extension requests: ${binary}; forwarded byte for byte: ${identical}`);
  });

  test('rule 1: a key given twice in one object, at any depth, is refused (400) and never forwarded', mutationProperty(duplicateKey, 240));
  test('rule 1: __proto__ / constructor / prototype keys at any depth are refused (400) and never forwarded', mutationProperty(prototypeKey, 180));
  test('rule 1: invalid UTF-8 in any key or string is refused (400) and never forwarded', mutationProperty(invalidUtf8, 240));
  test('rule 1: a lone surrogate escape in any key or string is refused (400) and never forwarded', mutationProperty(loneSurrogate, 180));
  test('rule 1: nesting 1 000 to 100 000 levels deep (parameters, unknown members, data) is refused (400) and never forwarded', mutationProperty(deepNesting, 90));
  test('rule 1: an unknown top-level member is refused by default (400) and never forwarded', mutationProperty(unknownTopMember, 180));
  test('rule 1: an unknown tensor member is refused, or dropped from what is forwarded', mutationProperty(unknownTensorMember, 180));
  test('rule 1: a parameter that is an object, an array or null is refused (400) and never forwarded', mutationProperty(nonScalarParameter, 180));
  test('rule 9: a zero-size batch is refused (400) by default and never forwarded', mutationProperty(
    fc.constant((r: Rendered): Mutated => ({ rendered: r, expect: { kind: 'refuse', statuses: [400] }, what: 'a batch of 0 rows' })),
    120,
    requestFor(0),
  ));
  test('rule 9: with allowEmptyBatch, a 0 in the (dynamic) batch dimension is forwarded exactly; a 0 in any other dimension is 400 and never forwarded', async (t) => {
    const outcomes = new Outcomes();
    const zeroOr = (n: fc.Arbitrary<number>) => fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: n });
    // The shapes of x, n and s: one batch for all, inner dimensions 0 to 3 (a fixed one now and then 0).
    const shapes = fc.tuple(
      fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.integer({ min: 1, max: 2 }) }),
      zeroOr(fc.integer({ min: 1, max: 3 })),
      fc.oneof({ weight: 6, arbitrary: fc.constant(2) }, { weight: 1, arbitrary: fc.constant(0) }),
      zeroOr(fc.integer({ min: 1, max: 3 })),
    ).map(([batch, xInner, nInner, sInner]) => [[batch, xInner], [batch, nInner], [batch, sInner, 1]]);
    const cases = shapes.chain((s) => fc.tuple(fc.constant(s), requestShaped(s, EMPTY_BATCH_META), jsonType));
    let forwardedEmpty = 0;
    await runProperty(t, cases, async ([s, spec, type]) => {
      const x = await exchange(emptyRig, toRawRequest(spec, render(spec), type));
      outcomes.add(outcome(x));
      check(x, emptyRig);
      const what = `shapes x${JSON.stringify(s[0])} n${JSON.stringify(s[1])} s${JSON.stringify(s[2])}`;
      const fixedZero = s[1][1] === 0;
      const innerZero = s[0][1] === 0 || s[2][1] === 0;
      if (fixedZero) {
        checkRefused(x, { kind: 'refuse', statuses: [400], codes: ['EMPTY_TENSOR', 'SHAPE_MISMATCH'] }, `${what}: a 0 in a fixed dimension`);
      } else if (innerZero) {
        checkRefused(x, { kind: 'refuse', statuses: [400], codes: ['EMPTY_TENSOR'] }, `${what}: a 0 in an inner dimension`);
      } else {
        checkAccepted(x, what);
        if (s[0][0] === 0) forwardedEmpty++;
      }
    }, { numRuns: 240 }, outcomes);
    t.diagnostic(`empty batches forwarded: ${forwardedEmpty}`);
  });
  test('control: wrong datatypes, shapes and values get their codes and are never forwarded', mutationProperty(wrongTensor, 180));
});
