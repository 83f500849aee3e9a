/**
 * The input guards' targets of the benchmark ((n0), (n), (s); docs/guards.md): their guards sections,
 * the reference profile they serve with, and the rows the smoke test sends to show that the guards
 * really run. The profile is built once per run, in the work directory, by the real command
 * (`breakwater profile`) from iris.csv in the shared assets folder, for the same model file the
 * targets serve: what is measured is a gateway serving a profile an operator would have built.
 * (r), drift monitoring (docs/drift.md), serves with the same profile, which carries the drift
 * reference, and the drift section below.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

/** The repository root (this file runs from dist/loadtests/lib). */
const REPO_ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/**
 * The shared assets folder (models, datasets): BREAKWATER_TEST_ASSETS, else ../shared/assets beside
 * the repository, as the tests find it (test/helpers/assets.ts).
 */
export const ASSETS = resolve(process.env.BREAKWATER_TEST_ASSETS || resolve(REPO_ROOT, '../shared/assets'));

const GATEWAY_CLI = fileURLToPath(new URL('../../gateway/cli/main.js', import.meta.url));

/** The reference data and how its columns map onto the iris model's one input. */
export const BENCH_PROFILE = {
  model: 'iris',
  version: '1',
  data: 'datasets/iris.csv',
  map: 'input=SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm',
  timeoutMs: 60_000,
} as const;

/**
 * `models.iris.guards` of (n) and (s); (n0) has no guards section. Every guard in `flag` mode, so
 * that a verdict never changes the answer or the status, only adds `x-guard`. (s) samples every
 * request for the squeezing guard: its cost per sampled request is (s) − (n).
 */
export const BENCH_GUARDS = {
  n: { contract: { mode: 'flag' }, ood: { mode: 'flag' } },
  s: { contract: { mode: 'flag' }, ood: { mode: 'flag' }, squeeze: { mode: 'flag', sampleRate: 1 } },
} as const;

export type BenchGuard = 'contract' | 'ood' | 'squeeze';

/**
 * Rows the smoke test sends besides the benchmark's own (iris.csv Id 1, a clean row no guard fires on):
 *  - `outOfRange`: Id 1 with its sepal length in millimetres (51 for 5.1 cm), far beyond the
 *    reference's range: the contract guard fires;
 *  - `boundary`: the line from a versicolor (Id 62) to a virginica (Id 139), crossing the model's
 *    decision boundary, in `steps` steps: in places near the boundary a nudge smaller than the
 *    squeezer's step moves the answer (what an adversarial perturbation exploits), and the squeezing
 *    guard must flag one of these rows before the line ends (with the profile built from iris.csv as
 *    above, it flags 14 of the 201, the first about halfway; other lines across the boundary flag
 *    none: the regions are narrow, hence a walk rather than one fixed row).
 */
export const BENCH_GUARD_PROBES = {
  outOfRange: [51, 3.5, 1.4, 0.2],
  boundary: { from: [5.9, 3.0, 4.2, 1.5], to: [6.0, 3.0, 4.8, 1.8], steps: 200 },
} as const;

/** Row `i` of `steps` on the boundary line (0: its start, `steps`: its end), rounded to 0.001 cm. */
export function boundaryRow(i: number): number[] {
  const b = BENCH_GUARD_PROBES.boundary;
  return b.from.map((x, k) => Math.round((x + ((b.to[k] - x) * i) / b.steps) * 1000) / 1000);
}

/** An OIP v2 infer request body for the iris model holding one row. */
export function irisBody(row: readonly number[]): string {
  return JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: row }] });
}

/**
 * Builds the iris profile in <workDir>/profiles with `breakwater profile`, from a configuration
 * naming `backend` as the model's version (the model file the targets serve), and returns the
 * profile's path and the command's summary. Bounded by BENCH_PROFILE.timeoutMs; throws with the
 * command's output when it fails.
 */
export async function prepareProfile(workDir: string, backend: Record<string, unknown>): Promise<{ file: string; summary: string }> {
  const p = BENCH_PROFILE;
  const dir = join(workDir, 'profiles');
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'profile-iris.yaml');
  writeFileSync(config, stringify({ auth: { insecureNoAuth: true }, models: { [p.model]: { versions: { [p.version]: { backend } } } } }));
  const file = join(dir, `${p.model}-${p.version}.json`);
  const args = [GATEWAY_CLI, 'profile', '--config', config, '--model', p.model, '--version', p.version,
    '--data', join(ASSETS, p.data), '--map', p.map, '--out', file];
  const summary = await new Promise<string>((resolvePromise, reject) => {
    execFile(process.execPath, args, { cwd: workDir, timeout: p.timeoutMs }, (err, stdout, stderr) => {
      if (err === null) resolvePromise(stdout.trim());
      else reject(new Error(`breakwater profile failed (${err.message.split('\n')[0]}): ${stderr.trim() || stdout.trim()}`));
    });
  });
  return { file, summary };
}

/**
 * `models.iris.drift` of (r) (docs/drift.md): every answered request counted into the drift window,
 * the rest at its defaults. (r) serves with the memory store, like (n0): a Redis store adds one
 * batched flush (two commands) per second per version, not per request.
 */
export const BENCH_DRIFT = { sampleRate: 1 } as const;
