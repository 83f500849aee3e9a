import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { readSnapshot, SnapshotWriter } from './snapshot.js';

const log = pino({ level: 'silent' });

test('a snapshot is written 0600 and read back; the same records in another order are not written again; a change is', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bw-snapshot-'));
  const file = join(dir, 'state', 'opt-outs.json');
  try {
    const w = new SnapshotWriter(file, 'opt-outs', log);
    w.schedule(new Map<string, unknown>([['olga', { kinds: ['tracking'] }], ['anna', { kinds: ['experiments'] }]]));
    await w.close();
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual([...((await readSnapshot(file, 'opt-outs', log))?.records ?? [])], [['anna', { kinds: ['experiments'] }], ['olga', { kinds: ['tracking'] }]]);
    assert.equal(await readSnapshot(file, 'traffic', log), undefined, 'another scope\'s snapshot is not taken');

    // A reconcile hands over the same copy (in the store's order): nothing to write.
    await rm(file);
    const again = new SnapshotWriter(file, 'opt-outs', log);
    again.schedule(new Map<string, unknown>([['anna', { kinds: ['experiments'] }], ['olga', { kinds: ['tracking'] }]]));
    await again.close();
    assert.ok(await stat(file).then(() => true, () => false), 'a new writer writes its first copy');
    await rm(file);
    again.schedule(new Map<string, unknown>([['olga', { kinds: ['tracking'] }], ['anna', { kinds: ['experiments'] }]]));
    await again.close();
    assert.equal(await stat(file).then(() => true, () => false), false, 'an unchanged copy is not written again');
    again.schedule(new Map<string, unknown>([['anna', { kinds: ['experiments'] }]]));
    await again.close();
    assert.deepEqual([...((await readSnapshot(file, 'opt-outs', log))?.records.keys() ?? [])], ['anna'], 'an erased subject leaves the snapshot');
    assert.match(await readFile(file, 'utf8'), /"writtenAt":"\d{4}-/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
