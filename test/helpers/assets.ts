/**
 * The third-party models and recorded samples the tests run against: the shared assets folder next
 * to the repository (../shared/assets, described by its README), or BREAKWATER_TEST_ASSETS. A test
 * file that needs them imports ASSETS from here, which fails at once, naming the folder and what to
 * do, when they are missing: not one "model file not found" per test.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (tests run from dist/test/...). */
const REPO_ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

export const ASSETS = resolve(process.env.BREAKWATER_TEST_ASSETS || resolve(REPO_ROOT, '../shared/assets'));

/** What the tests read; the folder holds more (datasets, the onnx-node cases' models). */
const EXPECTED = [
  'models/iris_mlp_dynamic.onnx',
  'models/titanic_logreg_nozipmap.onnx',
  'samples/model-samples.json',
  'samples/onnx-node-dtype-cases.json',
];

const missing = EXPECTED.filter((f) => !existsSync(join(ASSETS, f)));
if (missing.length > 0) {
  throw new Error(
    `the test assets are missing from ${ASSETS} (${missing.join(', ')} not found). The tests run real ONNX models and `
    + 'recorded samples from the shared assets folder, which sits next to the repository (../shared/assets: models/, '
    + 'samples/, datasets/ and a README naming each file\'s source). Put it there, or point BREAKWATER_TEST_ASSETS at a copy.',
  );
}
