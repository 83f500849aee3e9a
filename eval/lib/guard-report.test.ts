import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Profile } from '../../policies/guards/profile.js';
import { breaksContract, modelTable, modelTargets, type Outcome } from './guard-report.js';

const out = (set: Outcome['set'], group: string, guards: string[], extra: Partial<Outcome> = {}): Outcome =>
  ({ id: `${set}-${group}-${Math.random()}`, set, group, status: 200, guards, breaksContract: false, ...extra });
const many = (n: number, make: () => Outcome): Outcome[] => Array.from({ length: n }, make);

describe('guard report', () => {
  it('meets the OOD target at 95 % detected and 1 % false positives, and misses it just beyond', () => {
    const clean = [...many(99, () => out('clean', '', [])), out('clean', '', ['ood'])];
    const ood = [...many(95, () => out('ood', 'noise', ['ood'])), ...many(5, () => out('ood', 'noise', []))];
    const [oodTarget] = modelTargets('iris', [...clean, ...ood]);
    assert.equal(oodTarget.met, true, oodTarget.value);
    const [missed] = modelTargets('iris', [...clean, out('clean', '', ['contract']), ...ood]);
    assert.equal(missed.met, false, 'two of 101 clean records flagged');
    const [low] = modelTargets('iris', [...clean, ...ood.slice(1), out('ood', 'noise', [])]);
    assert.equal(low.met, false, '94 % detected');
  });

  it('counts a 4xx refusal as detected, and as a contract false positive on clean data', () => {
    const ood = many(20, () => out('ood', 'extreme', [], { status: 400, breaksContract: true }));
    const targets = modelTargets('titanic', [...many(100, () => out('clean', '', [])), ...ood]);
    assert.ok(targets.every((t) => t.met), JSON.stringify(targets));
    const refusedClean = modelTargets('titanic', [out('clean', '', [], { status: 422 }), ...ood]);
    assert.equal(refusedClean[1].met, false);
  });

  it('requires the contract guard on every input that breaks the contract', () => {
    const ood = [out('ood', 'extreme', ['ood'], { breaksContract: true }), out('ood', 'combination', ['ood'])];
    const [, contract] = modelTargets('titanic', [out('clean', '', []), ...ood]);
    assert.equal(contract.met, false);
    assert.equal(contract.value, '1 of 1 missed, 0 clean flagged');
  });

  it('judges MNIST adversarial detection per budget, by any guard', () => {
    const clean = many(100, () => out('clean', '', []));
    const adv = [...many(97, () => out('adversarial', 'simba-linf-0.1', ['squeeze'])), ...many(3, () => out('adversarial', 'simba-linf-0.1', [])),
      ...many(30, () => out('adversarial', 'simba-linf-0.3', ['ood'])), ...many(2, () => out('adversarial', 'simba-linf-0.3', []))];
    const targets = modelTargets('mnist', [...clean, ...adv]).filter((t) => t.name.includes('adversarial'));
    assert.deepEqual(targets.map((t) => t.met), [true, false]);
    assert.match(modelTable('mnist', [...clean, ...adv]), /adversarial simba-linf-0\.1\s+100\s+0\.0 %\s+0\.0 %\s+97\.0 %/);
  });

  it('the contract oracle: ranges with tolerance, categories, non-finite and unexpected missing values', () => {
    const profile = {
      inputs: [{ name: 'age', datatype: 'FP32', rowShape: [1], firstFeature: 0, featureCount: 1 }, { name: 'sex', datatype: 'BYTES', rowShape: [1], firstFeature: 1, featureCount: 1 }],
      features: [
        { kind: 'numeric', name: 'age', input: 'age', integer: false, min: 0, max: 80, mean: 30, std: 14, quantiles: [], missingRate: 0.2 },
        { kind: 'categorical', name: 'sex', input: 'sex', categories: { male: 0.6, female: 0.4 }, missingRate: 0 },
      ],
    } as unknown as Profile;
    assert.equal(breaksContract(profile, [83.9, 'male'], 0.05), false);
    assert.equal(breaksContract(profile, [84.1, 'male'], 0.05), true);
    assert.equal(breaksContract(profile, [null, 'female'], 0.05), false);
    assert.equal(breaksContract(profile, [20, 'Male'], 0.05), true);
    assert.equal(breaksContract(profile, [Infinity, 'male'], 0.05), true);
    assert.equal(breaksContract(profile, [20, null], 0.05), true);
  });

  it('the contract oracle: the pixels of an image share one range', () => {
    const pixel = (max: number) => ({ kind: 'numeric', name: 'p', input: 'img', integer: false, min: 0, max, mean: 0, std: 0, quantiles: [], missingRate: 0 });
    const features = Array.from({ length: 64 }, (_, i) => pixel(i === 9 ? 1 : 0));
    const profile = { inputs: [{ name: 'img', datatype: 'FP32', rowShape: [1, 8, 8], firstFeature: 0, featureCount: 64 }], features } as unknown as Profile;
    const image = (v: number) => Array.from({ length: 64 }, (_, i) => (i === 63 ? v : 0));
    assert.equal(breaksContract(profile, image(1.04), 0.05), false, 'a border pixel never inked in the reference may be');
    assert.equal(breaksContract(profile, image(1.06), 0.05), true);
  });
});
