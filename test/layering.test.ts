/**
 * The layering the composition root (gateway/compose.ts) relies on: safety controls (`policies/`)
 * and backends (`adapters/`) depend only on the shared kernel, never on the server, its routes or
 * the composition root, so each can be built, tested and replaced on its own. The kernel itself
 * depends on nothing above it at run time.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from './helpers/gateway.js';

/** What every layer may use: errors, configuration, the store interface, telemetry names. */
const KERNEL = new Set(['gateway/errors.ts', 'gateway/config.ts', 'gateway/config-schema.ts', 'gateway/jwt-algorithms.ts', 'gateway/state/store.ts', 'gateway/telemetry/names.ts']);

interface Import {
  readonly target: string;
  /** `import type`: erased at run time. */
  readonly typeOnly: boolean;
}

/** Relative imports of a TypeScript source, resolved to repository paths (`.js` → `.ts`). */
export function importsOf(file: string, source: string): Import[] {
  const out: Import[] = [];
  const re = /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;
  for (const m of source.matchAll(re)) {
    const spec = m[3] ?? m[4];
    if (spec === undefined) continue;
    const target = normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts');
    out.push({ target, typeOnly: m[2] !== undefined });
  }
  return out;
}

/** Every rule the tree breaks, as `file → target: why`. */
export function violations(files: ReadonlyMap<string, string>): string[] {
  const found: string[] = [];
  for (const [file, source] of files) {
    const layer = file.split('/')[0];
    for (const { target, typeOnly } of importsOf(file, source)) {
      const own = target.startsWith(`${layer}/`);
      if (layer === 'policies' || layer === 'adapters') {
        const allowed = own || KERNEL.has(target) || (layer === 'policies' && target.startsWith('adapters/') && typeOnly) || (layer === 'policies' && target === 'adapters/adapter.ts');
        if (!allowed) found.push(`${file} → ${target}: ${layer}/ may import only its own folder and the kernel (${[...KERNEL].join(', ')})`);
      } else if (KERNEL.has(file) && !typeOnly && !KERNEL.has(target)) {
        found.push(`${file} → ${target}: the kernel may import only the kernel at run time`);
      }
    }
  }
  return found;
}

function sources(): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(REPO_ROOT, dir), { withFileTypes: true })) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(path);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) out.set(relative(REPO_ROOT, join(REPO_ROOT, path)), readFileSync(join(REPO_ROOT, path), 'utf8'));
    }
  };
  for (const dir of ['policies', 'adapters', 'gateway']) walk(dir);
  return out;
}

test('policies/ and adapters/ import only their own folder and the shared kernel; the kernel imports nothing above it', () => {
  const files = sources();
  assert.ok([...files.keys()].some((f) => f.startsWith('policies/')), 'the policies were read');
  assert.deepEqual(violations(files), []);
});

test('the check fails when a policy imports a route, the server or the composition root', () => {
  for (const target of ['../gateway/routes/admin.js', '../gateway/server.js', '../gateway/compose.js', '../gateway/control/opt-out-registry.js']) {
    const tree = new Map([['policies/x.ts', `import { thing } from '${target}';\n`]]);
    assert.equal(violations(tree).length, 1, target);
  }
  const typeOnly = new Map([['policies/x.ts', "import type { Served } from '../gateway/routes/infer.js';\n"]]);
  assert.equal(violations(typeOnly).length, 1, 'a type-only import of a route is refused too');
  const dynamic = new Map([['adapters/x.ts', "const m = await import('../gateway/main.js');\n"]]);
  assert.equal(violations(dynamic).length, 1, 'a dynamic import is seen');
  const kernel = new Map([['gateway/errors.ts', "import { x } from './server.js';\n"]]);
  assert.equal(violations(kernel).length, 1, 'the kernel may not reach up');
});
