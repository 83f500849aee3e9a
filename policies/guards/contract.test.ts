import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkContract } from './contract.js';
import { profileInputs } from './features.js';
import { PROFILE_FORMAT, type FeatureProfile, type Profile } from './profile.js';

/** A profile with only what the contract reads. */
function profileOf(inputs: Profile['inputs'], features: FeatureProfile[]): Profile {
  return {
    format: PROFILE_FORMAT, model: 'm', version: '1', createdAt: '', modelSha256: null,
    data: { file: 'f', sha256: '', rows: 0, referenceRows: 0, heldOutRows: 0 },
    quantileProbs: [], inputs, features,
    ood: { method: 'mahalanobis', encoder: { columns: 0, features: [] }, mean: [], precision: [] },
    extraction: { stepQuantiles: [], tinyStep: 0, tinyRate: 0.01, latticeRate: 0 },
    calibration: { targetFpr: 0.01, method: '', heldOutRows: 0, ood: 0 },
  };
}

const num = (name: string, min: number, max: number, missingRate = 0, input = name): FeatureProfile => ({ kind: 'numeric', name, input, integer: false, min, max, mean: 0, std: 1, quantiles: [], missingRate });

const titanic = profileOf(
  profileInputs([
    { name: 'pclass', datatype: 'INT64', shape: [-1, 1] },
    { name: 'sex', datatype: 'BYTES', shape: [-1, 1] },
    { name: 'age', datatype: 'FP32', shape: [-1, 1] },
  ]),
  [num('pclass', 1, 3), { kind: 'categorical', name: 'sex', input: 'sex', categories: { female: 0.36, male: 0.64 }, missingRate: 0 }, num('age', 0.17, 80, 0.2)],
);

test('checkContract: a row like the reference keeps the contract; each kind of breach is named with its feature', () => {
  assert.equal(checkContract(titanic, [1, 'male', 30], 0.05), undefined);
  assert.equal(checkContract(titanic, [3, 'female', null], 0.05), undefined, 'age was missing in the reference: missing is allowed');
  assert.deepEqual(checkContract(titanic, [4, 'male', 30], 0.05), { feature: 0, name: 'pclass', violation: 'range' });
  assert.deepEqual(checkContract(titanic, [1, 'unknown', 30], 0.05), { feature: 1, name: 'sex', violation: 'category' });
  assert.deepEqual(checkContract(titanic, [1, 'Male', 30], 0.05), { feature: 1, name: 'sex', violation: 'category' }, 'categories are exact strings');
  assert.deepEqual(checkContract(titanic, [1, '__proto__', 30], 0.05), { feature: 1, name: 'sex', violation: 'category' });
  assert.deepEqual(checkContract(titanic, [null, 'male', 30], 0.05), { feature: 0, name: 'pclass', violation: 'missing' });
  assert.deepEqual(checkContract(titanic, [1, 'male', Infinity], 0.05), { feature: 2, name: 'age', violation: 'non-finite' });
  assert.deepEqual(checkContract(titanic, ['1', 'male', 30], 0.05), { feature: 0, name: 'pclass', violation: 'type' });
  assert.deepEqual(checkContract(titanic, [1, 2, 30], 0.05), { feature: 1, name: 'sex', violation: 'type' });
  assert.deepEqual(checkContract(titanic, [4, 'x', Infinity], 0.05)?.feature, 0, 'the first breach is reported');
});

test('checkContract: the range is widened by tolerance × (max − min) on each side', () => {
  // age: 0.17..80, width 79.83; 5 % is 3.99
  assert.equal(checkContract(titanic, [1, 'male', 83.9], 0.05), undefined);
  assert.equal(checkContract(titanic, [1, 'male', 84.0], 0.05)?.violation, 'range');
  assert.equal(checkContract(titanic, [1, 'male', -3.8], 0.05), undefined);
  assert.equal(checkContract(titanic, [1, 'male', -3.9], 0.05)?.violation, 'range');
  assert.equal(checkContract(titanic, [1, 'male', 80.5], 0)?.violation, 'range', 'tolerance 0: the reference range exactly');
  assert.equal(checkContract(titanic, [1, 'male', 80.5], 0.05), undefined, 'the same profile under another tolerance');
});

test('checkContract: an image input is checked against its pixels\' range taken together', () => {
  const inputs = profileInputs([{ name: 'im', datatype: 'FP32', shape: [1, 1, 8, 8] }]);
  const features = Array.from({ length: 64 }, (_, i) => num(`im[${i}]`, 0, i === 27 ? 1 : 0, 0, 'im'));
  const p = profileOf(inputs, features);
  const row = new Array(64).fill(0);
  row[0] = 1;
  assert.equal(checkContract(p, row, 0), undefined, 'a corner pixel never inked in the reference may be inked');
  row[0] = 255;
  assert.deepEqual(checkContract(p, row, 0.05), { feature: 0, name: 'im[0]', violation: 'range' }, 'an image sent as 0-255 is not');
  // Bounds are pooled like the range: the widest of any pixel's.
  const bounded = profileOf(inputs, features.map((f, i) => ({ ...f, low: i === 5 ? -0.1 : 0, high: i === 40 ? 1.2 : 1 }) as FeatureProfile));
  row[0] = 1.15;
  row[63] = -0.05;
  assert.equal(checkContract(bounded, row, 0), undefined);
  row[0] = 1.25;
  assert.equal(checkContract(bounded, row, 0)?.violation, 'range');
});

test('checkContract: the profile\'s own bounds (low, high) widen the range where they reach beyond the tolerance', () => {
  const inputs = profileInputs([{ name: 'w', datatype: 'FP32', shape: [-1, 1] }]);
  // Sepal width 2.2..4.4 (tolerance 5 %: 2.09..4.51); bounds from the extreme spacings 1.9..5.0.
  const p = profileOf(inputs, [{ ...num('w', 2.2, 4.4), low: 1.9, high: 5 } as FeatureProfile]);
  assert.equal(checkContract(p, [2.0], 0.05), undefined, 'within low: passes though beyond the tolerance');
  assert.equal(checkContract(p, [1.9], 0.05), undefined);
  assert.equal(checkContract(p, [1.89], 0.05)?.violation, 'range');
  assert.equal(checkContract(p, [4.9], 0.05), undefined);
  assert.equal(checkContract(p, [5.01], 0.05)?.violation, 'range');
  // Where the tolerance reaches further, it decides.
  assert.equal(checkContract(p, [5.4], 0.5), undefined, 'tolerance 0.5: up to 4.4 + 1.1 = 5.5, beyond high');
  assert.equal(checkContract(p, [5.6], 0.5)?.violation, 'range');
  assert.equal(checkContract(p, [1.2], 0.5), undefined, 'down to 2.2 - 1.1 = 1.1, beyond low');
});
