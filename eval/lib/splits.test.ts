import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Example } from './datasets.js';
import { rowKey } from './models.js';
import { splitTabular } from './splits.js';

it('splits 70/30, keeps equal rows on one side, and is the same every time', () => {
  const examples: Example[] = Array.from({ length: 400 }, (_, i) => ({ id: `r${i}`, row: [i % 150, 'x'], label: 0 }));
  const a = splitTabular('t', examples);
  const b = splitTabular('t', examples);
  assert.deepEqual(a, b);
  assert.equal(a.reference.length + a.test.length, 400);
  assert.ok(Math.abs(a.reference.length / 400 - 0.7) < 0.05, `${a.reference.length} reference rows`);
  const ref = new Set(a.reference.map((e) => rowKey(e.row)));
  for (const e of a.test) assert.ok(!ref.has(rowKey(e.row)), `${e.id} is also a reference row`);
  assert.notDeepEqual(splitTabular('other', examples).test.map((e) => e.id), a.test.map((e) => e.id), 'the model name seeds the split');
});
