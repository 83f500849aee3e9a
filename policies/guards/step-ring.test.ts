import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LATTICE_STEPS, StepRing } from './step-ring.js';

test('StepRing: the squared distance to the nearest row held (Infinity when empty, 0 for a repeat), oldest forgotten when full', () => {
  const ring = new StepRing(2, 3);
  ring.measure([1, 1]);
  assert.equal(ring.distance2, Infinity);
  ring.push([1, 1]);
  ring.measure([4, 5]);
  assert.equal(ring.distance2, 25);
  ring.push([4, 5]);
  ring.push([10, 10]);
  ring.measure([1, 1]);
  assert.equal(ring.distance2, 0, 'a repeat');
  ring.push([20, 20]);
  ring.measure([1, 1]);
  assert.equal(ring.distance2, 25, '[1, 1] was the oldest of three: gone');
  assert.equal(ring.count, 3);
  // Rows read at an offset of a row-major matrix.
  ring.measure(new Float64Array([0, 0, 4, 6]), 2);
  assert.equal(ring.distance2, 1);
});

test('StepRing: a step equal to a remembered one (± and within the tolerance) to another point is a lattice step', () => {
  const ring = new StepRing(2);
  const feed = (x: number[]) => {
    ring.measure(x);
    const lattice = ring.lattice;
    ring.push(x);
    return lattice;
  };
  assert.deepEqual([feed([0, 0]), feed([1, 2])], [false, false]);
  assert.equal(feed([50, 50]), false);
  assert.equal(feed([51, 52]), true, 'the step (1, 2) again, from (50, 50)');
  assert.equal(feed([80, 80]), false);
  assert.equal(feed([79, 78.0001]), true, '−(1, 2) within 1e-4 of its length');
  assert.equal(feed([120, 120]), false);
  assert.equal(feed([121, 122.01]), false, 'beyond the tolerance');
  assert.ok(LATTICE_STEPS >= 8);
});
