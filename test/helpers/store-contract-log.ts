/**
 * The store contract, part three: the append-only, hash-chained log. See store-contract.ts.
 */
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { chainHash, GENESIS, MAX_LOG_ENTRY_BYTES, MAX_LOG_READ, verifyLog } from '../../gateway/state/log-chain.js';
import type { LogEntry } from '../../gateway/state/store.js';
import type { ContractTest } from './store-contract.js';

const seqs = (entries: readonly LogEntry[]): number[] => entries.map((e) => e.seq);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

export function logContract(test: ContractTest): void {
  describe('append-only log', () => {
    test('an empty log has head {0, GENESIS}; appends are numbered 1, 2, 3 and chained from GENESIS', async ({ store, scope }) => {
      assert.deepEqual(await store.logHead(scope), { seq: 0, hash: GENESIS });
      assert.deepEqual(await store.readLog(scope, 1, 10), []);
      const values: unknown[] = [{ action: 'traffic.set', model: 'iris', weights: { '2': 0.8 } }, 'two', [3, null, { 'ü': 'ñ ✓ 𝄞' }]];
      const appended = [];
      for (const v of values) appended.push(await store.append(scope, v));
      assert.deepEqual(appended.map((a) => a.seq), [1, 2, 3]);
      for (const a of appended) assert.match(a.hash, /^[0-9a-f]{64}$/, 'lowercase hex SHA-256');
      assert.deepEqual(await store.logHead(scope), appended[2]);
      const entries = await store.readLog(scope, 1, 10);
      assert.deepEqual(entries.map((e) => e.entry), values);
      assert.deepEqual(entries.map((e) => e.hash), appended.map((a) => a.hash), 'readLog gives the hashes append returned');
      assert.deepEqual(entries.map((e) => e.prev), [GENESIS, appended[0].hash, appended[1].hash]);
      for (const e of entries) assert.equal(e.hash, chainHash(e.prev, e.seq, e.at, JSON.stringify(e.entry)), `entry ${e.seq}: sha256(prev\\nseq\\nat\\njson)`);
      assert.equal(verifyLog(entries), undefined);
    });

    test('an entry is stamped with the store clock at its append', async ({ store, scope, pass, now, slackMs }) => {
      const t0 = now();
      await store.append(scope, 'first');
      const t1 = now();
      await pass(50);
      const t2 = now();
      await store.append(scope, 'second');
      const t3 = now();
      const [a, b] = await store.readLog(scope, 1, 2);
      assert.ok(Number.isSafeInteger(a.at) && a.at >= t0 - slackMs && a.at <= t1 + slackMs, `${a.at} in [${t0}, ${t1}]`);
      assert.ok(b.at >= t2 - slackMs && b.at <= t3 + slackMs, `${b.at} in [${t2}, ${t3}]`);
    });

    test('two clients appending 50 entries each at once get seqs exactly 1..100, each once, and the chain holds', async ({ store, peer, scope }) => {
      const results = await Promise.all(range(0, 99).map((i) => (i % 2 === 0 ? store : peer).append(scope, { i, by: i % 2 === 0 ? 'a' : 'b' })));
      assert.deepEqual(results.map((r) => r.seq).sort((x, y) => x - y), range(1, 100), 'no gap, no duplicate');
      const entries = [...(await store.readLog(scope, 1, 60)), ...(await peer.readLog(scope, 61, 60))];
      assert.deepEqual(seqs(entries), range(1, 100));
      assert.equal(verifyLog(entries), undefined);
      for (const e of entries) {
        const { i } = e.entry as { i: number };
        assert.deepEqual({ seq: e.seq, hash: e.hash }, results[i], `entry ${i} is stored under the seq and hash its append returned`);
      }
      assert.deepEqual(await peer.logHead(scope), { seq: 100, hash: entries[99].hash });
    });

    test('readLog pages: ascending from fromSeq, at most limit (never more than 1000); past the head it is empty', async ({ store, scope }) => {
      const n = MAX_LOG_READ + 5;
      // 100 appends in flight at a time: a burst of 1,005 could outlast a short command timeout on a loaded machine.
      for (let from = 0; from < n; from += 100) {
        await Promise.all(range(from, Math.min(from + 99, n - 1)).map((i) => store.append(scope, { i })));
      }
      const first = await store.readLog(scope, 1, 3);
      assert.deepEqual(seqs(first), [1, 2, 3]);
      const next = await store.readLog(scope, 4, 3);
      assert.deepEqual(seqs(next), [4, 5, 6]);
      assert.equal(verifyLog(next, first[2].hash), undefined, 'a page follows on from the previous one');
      assert.equal(verifyLog(next, GENESIS), 4, 'but not from another hash');
      assert.deepEqual(seqs(await store.readLog(scope, 0, 2)), [1, 2], 'fromSeq 0 reads from the start');
      assert.deepEqual(seqs(await store.readLog(scope, n - 2, 10)), [n - 2, n - 1, n], 'the last page is short');
      assert.deepEqual(await store.readLog(scope, n + 1, 10), []);
      assert.deepEqual(await store.readLog(scope, 1, 0), []);
      const capped = await store.readLog(scope, 1, 5_000);
      assert.deepEqual(seqs(capped), range(1, MAX_LOG_READ), 'a limit above 1000 reads 1000');
      assert.equal(verifyLog(capped), undefined);
      const rest = await store.readLog(scope, MAX_LOG_READ + 1, MAX_LOG_READ);
      assert.deepEqual(seqs(rest), range(MAX_LOG_READ + 1, n));
      assert.equal(verifyLog(rest, capped[MAX_LOG_READ - 1].hash), undefined);
    });

    test('verifyLog reports the first entry whose content, time, link or place changed', async ({ store, scope }) => {
      for (let i = 0; i < 5; i++) await store.append(scope, { i, note: 'as written' });
      const copy = () => store.readLog(scope, 1, 10);
      const log = await copy();
      assert.equal(verifyLog(log), undefined);

      const edited = await copy();
      (edited[2].entry as { note: string }).note = 'forged';
      assert.equal(verifyLog(edited), 3, 'an edited entry');
      const rehashed = await copy();
      const forged = { i: 2, note: 'forged' };
      rehashed[2] = { ...rehashed[2], entry: forged, hash: chainHash(rehashed[2].prev, 3, rehashed[2].at, JSON.stringify(forged)) };
      assert.equal(verifyLog(rehashed), 4, 'an edited entry re-hashed breaks the link of the next one');
      const retimed = await copy();
      retimed[0] = { ...retimed[0], at: retimed[0].at + 1 };
      assert.equal(verifyLog(retimed), 1, 'a changed time');
      const dropped = await copy();
      dropped.splice(1, 1);
      assert.equal(verifyLog(dropped), 3, 'a dropped entry');
      const swapped = await copy();
      [swapped[3], swapped[4]] = [swapped[4], swapped[3]];
      assert.equal(verifyLog(swapped), 5, 'reordered entries');
      assert.equal(verifyLog(log, 'f'.repeat(64)), 1, 'a log that does not follow on from the expected hash');
      assert.equal(verifyLog(log.slice(2)), undefined, 'a page from the middle checks its own links');
      assert.equal(verifyLog(log.slice(2), log[0].hash), 3, 'and the expected predecessor when given');
      assert.equal(verifyLog(await copy()), undefined, 'readLog gives copies: the stored log is untouched');
    });

    test('logs of different scopes are numbered and chained apart', async ({ store, scope }) => {
      await store.append(scope, 'a1');
      await store.append(scope, 'a2');
      const b = await store.append(`${scope}-other`, 'b1');
      assert.equal(b.seq, 1);
      const [entry] = await store.readLog(`${scope}-other`, 1, 10);
      assert.deepEqual([entry.prev, entry.entry], [GENESIS, 'b1']);
      assert.equal((await store.logHead(scope)).seq, 2);
    });

    test('takes entries up to 8 KiB of JSON, non-ASCII counted in UTF-8 bytes, and chains them', async ({ store, scope }) => {
      // Two quotes around the string: exactly MAX_LOG_ENTRY_BYTES.
      const ascii = 'x'.repeat(MAX_LOG_ENTRY_BYTES - 2);
      const utf8 = 'é✓'.repeat(Math.floor((MAX_LOG_ENTRY_BYTES - 2) / 5));
      await store.append(scope, ascii);
      await store.append(scope, utf8);
      const entries = await store.readLog(scope, 1, 2);
      assert.deepEqual(entries.map((e) => e.entry), [ascii, utf8]);
      assert.equal(verifyLog(entries), undefined);
    });

    test('refuses what it cannot log, appending nothing: non-JSON (TypeError), over 8 KiB, bad fromSeq or limit, empty scope (RangeError)', async ({ store, scope }) => {
      await assert.rejects(store.append(scope, undefined), TypeError);
      await assert.rejects(store.append(scope, () => 1), TypeError);
      await assert.rejects(store.append(scope, 1n), TypeError);
      const tooBig = 'é'.repeat(MAX_LOG_ENTRY_BYTES / 2);
      await assert.rejects(store.append(scope, tooBig), { name: 'RangeError', message: `a log entry must be at most ${MAX_LOG_ENTRY_BYTES} bytes of JSON, got ${MAX_LOG_ENTRY_BYTES + 2}` });
      await assert.rejects(store.append('', 'x'), RangeError);
      for (const [from, limit] of [[-1, 1], [1.5, 1], [1, -1], [1, Number.NaN], [1, Infinity]]) {
        await assert.rejects(store.readLog(scope, from, limit), RangeError, `readLog(${from}, ${limit})`);
      }
      await assert.rejects(store.readLog('', 1, 1), RangeError);
      await assert.rejects(store.logHead(''), RangeError);
      assert.deepEqual(await store.logHead(scope), { seq: 0, hash: GENESIS });
      assert.equal((await store.append(scope, 'then one')).seq, 1);
    });
  });
}
