import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { checkManifest, streamDigest, streamLines, writeStreamFile } from './drift-streams.js';

const dir = mkdtempSync(join(tmpdir(), 'bw-drift-streams-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const entry = (e: Record<string, unknown> = {}): Record<string, unknown> => ({ file: 'a.jsonl.gz', model: 'iris', kind: 'sudden', changeAt: [30], requests: 100, description: 'd', ...e });

async function collect(path: string): Promise<string[]> {
  const out: string[] = [];
  for await (const line of streamLines(path)) out.push(line.toString('utf8'));
  return out;
}

describe('drift stream files', () => {
  it('writes gzipped lines that read back line by line, with their count and the SHA-256 of the text', async () => {
    // Lines long enough that the reader's chunks (1 MiB) end inside a line.
    const lines = Array.from({ length: 5000 }, (_, i) => JSON.stringify({ i, pad: 'x'.repeat(i % 977) }));
    const chunks = [lines.slice(0, 1234), [], lines.slice(1234)];
    const path = join(dir, 'a.jsonl.gz');
    const written = await writeStreamFile(path, chunks);
    const text = lines.join('\n') + '\n';
    assert.deepEqual(written, { requests: 5000, sha256: createHash('sha256').update(text).digest('hex') });
    assert.equal(gunzipSync(readFileSync(path)).toString('utf8'), text);
    assert.deepEqual(await collect(path), lines);
    assert.deepEqual(await streamDigest(path), written);
  });

  it('writes the same bytes for the same lines however they are chunked, and plain files when not .gz', async () => {
    const lines = Array.from({ length: 3000 }, (_, i) => `{"n":${i * 7}}`);
    await writeStreamFile(join(dir, 'b1.jsonl.gz'), [lines]);
    await writeStreamFile(join(dir, 'b2.jsonl.gz'), [lines.slice(0, 10), lines.slice(10, 2000), lines.slice(2000)]);
    assert.ok(readFileSync(join(dir, 'b1.jsonl.gz')).equals(readFileSync(join(dir, 'b2.jsonl.gz'))));
    await writeStreamFile(join(dir, 'c.jsonl'), [lines]);
    assert.equal(readFileSync(join(dir, 'c.jsonl'), 'utf8'), lines.join('\n') + '\n');
    assert.deepEqual(await collect(join(dir, 'c.jsonl')), lines);
  });

  it('reads a last line without a newline, and skips empty lines', async () => {
    const path = join(dir, 'd.jsonl');
    await writeStreamFile(path, [['{"a":1}', '', '{"a":2}']]);
    assert.deepEqual(await collect(path), ['{"a":1}', '{"a":2}']);
  });

  it('accepts a manifest in the documented format', () => {
    const m = checkManifest({ seed: 's', streams: [entry(), entry({ file: 'c/b.jsonl', kind: 'control', changeAt: [], onDemand: true, sha256: 'a'.repeat(64) }), entry({ file: 'g.jsonl', kind: 'gradual', changeAt: [10, 60] })] });
    assert.equal(m.seed, 's');
    assert.deepEqual(m.streams[1], { file: 'c/b.jsonl', model: 'iris', kind: 'control', changeAt: [], requests: 100, sha256: 'a'.repeat(64), onDemand: true, description: 'd' });
    assert.deepEqual(checkManifest({ streams: [entry({ kind: 'control', changeAt: undefined })] }).streams[0].changeAt, []);
  });

  it('refuses a manifest that is not, naming the stream and the problem', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [entry({ file: '../x.jsonl' }), /file must be a relative/],
      [entry({ file: 'x.csv' }), /\.jsonl or \.jsonl\.gz/],
      [entry({ kind: 'weird' }), /kind must be one of control, sudden, gradual/],
      [entry({ changeAt: [] }), /a sudden stream has 1 change point in changeAt, not 0/],
      [entry({ kind: 'gradual', changeAt: [60, 10] }), /ascend/],
      [entry({ changeAt: [100] }), /ascend within \(0, requests\)/],
      [entry({ kind: 'control', changeAt: [5] }), /a control stream has 0 change points/],
      [entry({ requests: 0 }), /requests must be the number of lines/],
      [entry({ sha256: 'abc' }), /sha256 must be 64 hex digits/],
      [entry({ model: '' }), /model must be a model name/],
    ];
    for (const [e, message] of bad) assert.throws(() => checkManifest({ streams: [e] }), message, JSON.stringify(e));
    assert.throws(() => checkManifest({ streams: [entry(), entry()] }), /streams\[1\] \(a\.jsonl\.gz\): listed twice/);
    assert.throws(() => checkManifest({ seed: 's' }), /needs \{"streams"/);
  });
});
