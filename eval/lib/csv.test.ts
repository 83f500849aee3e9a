import assert from 'node:assert/strict';
import { it } from 'node:test';
import { parseCsv, parseCsvRecords, toCsv } from './csv.js';

it('parses quoted fields holding commas, quotes and line breaks, and CRLF lines', () => {
  assert.deepEqual(parseCsv('a,b\r\n"x, y","say ""hi"""\n"two\nlines",\n'), [['a', 'b'], ['x, y', 'say "hi"'], ['two\nlines', '']]);
  assert.deepEqual(parseCsvRecords('h1,h2\n1,\n'), [{ h1: '1', h2: '' }]);
});

it('writes what it parses back (null as an empty field)', () => {
  const text = toCsv(['name', 'age'], [['Allen, Miss "Lisa"', 29], ['B', null]]);
  assert.equal(text, 'name,age\n"Allen, Miss ""Lisa""",29\nB,\n');
  assert.deepEqual(parseCsvRecords(text), [{ name: 'Allen, Miss "Lisa"', age: '29' }, { name: 'B', age: '' }]);
});
