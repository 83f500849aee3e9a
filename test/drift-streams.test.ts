/**
 * The committed drift streams (eval/drift-streams; issue 11) are what the builder makes today from
 * the committed reference data, in the documented format: the manifest lists every recipe (the
 * large controls as on-demand files in the gitignored cache), each committed file has the manifest's
 * length and SHA-256 and rebuilds byte for byte, and every line is a one-row infer request the
 * model takes.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { RECIPES } from '../eval/lib/drift-recipes.js';
import { buildRecipe, DRIFT_SEED, recipeFile } from '../eval/lib/drift-stream-build.js';
import { readManifest, streamDigest, streamLines } from '../eval/lib/drift-streams.js';
import { modelSpec, rowsOf } from '../eval/lib/models.js';
import type { OipRequest } from '../eval/lib/sets.js';
import { REPO_ROOT } from './helpers/gateway.js';

const STREAMS = join(REPO_ROOT, 'eval/drift-streams');
const REFERENCE = join(REPO_ROOT, 'eval/reference');
const manifest = readManifest(join(STREAMS, 'manifest.json'));
const work = mkdtempSync(join(tmpdir(), 'bw-drift-streams-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('committed drift streams', () => {
  it('the manifest lists every recipe, with the committed seed, the large controls on demand in the cache', () => {
    assert.equal(manifest.seed, DRIFT_SEED);
    assert.deepEqual(manifest.streams.map((s) => s.file), RECIPES.map(recipeFile));
    for (const s of manifest.streams) {
      const r = RECIPES.find((x) => recipeFile(x) === s.file);
      assert.deepEqual([s.model, s.kind, s.changeAt, s.requests, s.onDemand === true], [r?.model, r?.kind, r?.changeAt, r?.requests, r?.onDemand === true], s.file);
      assert.equal(s.file.startsWith('cache/'), s.onDemand === true, `${s.file}: on-demand files live in the gitignored cache, the others are committed`);
    }
    assert.ok(manifest.streams.filter((s) => s.kind === 'control').reduce((n, s) => n + s.requests, 0) >= 1_000_000);
    assert.match(readFileSync(join(REPO_ROOT, '.gitignore'), 'utf8'), /^eval\/drift-streams\/cache\/$/m);
  });

  for (const s of manifest.streams.filter((x) => x.onDemand !== true)) {
    it(`${s.file}: the manifest's length and SHA-256, rebuilt byte for byte, one-row requests the model takes`, async () => {
      const path = join(STREAMS, s.file);
      assert.ok(existsSync(path), `${s.file} is committed`);
      assert.deepEqual(await streamDigest(path), { requests: s.requests, sha256: s.sha256 });
      const recipe = RECIPES.find((r) => recipeFile(r) === s.file);
      assert.ok(recipe !== undefined);
      await buildRecipe(recipe, work, REFERENCE, manifest.seed);
      assert.ok(readFileSync(join(work, s.file)).equals(readFileSync(path)), 'a rebuild writes the same bytes');
      const spec = modelSpec(s.model);
      let n = 0;
      for await (const line of streamLines(path)) {
        const request = JSON.parse(line.toString('utf8')) as OipRequest;
        assert.deepEqual(request.inputs.map((t) => [t.name, t.datatype, t.shape.join('x')]), spec.inputs.map((i) => [i.name, i.datatype, [1, ...i.rowShape].join('x')]), `line ${n}`);
        assert.equal(rowsOf(spec, request).length, 1);
        n++;
      }
      assert.equal(n, s.requests);
    });
  }
});
