/**
 * `breakwater rollout` through the real command line, against a real gateway in this process (the
 * iris MLP as versions 1 and 2, real JWT auth, the memory store): a rollout started from a file and
 * one from the shorthand flags (after aborting the first), `show` as a summary and as JSON, pause,
 * resume, promote and abort, and the gateway's refusals (INVALID_ROLLOUT, ROLLOUT_CONFLICT,
 * ROLLOUT_NOT_FOUND, UNAUTHENTICATED) printed as `STATUS CODE: message` with exit 1; a usage
 * mistake exits 2 and sends nothing.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import type { RunningGateway } from '../gateway/main.js';
import type { RolloutChange, RolloutView } from '../gateway/rollout/rollouts.js';
import { ASSETS } from './helpers/assets.js';
import { runCli, startInProcess, writeTempFile, type CliRun } from './helpers/gateway.js';
import { AUDIENCE, ISSUER, testIssuer, until } from './helpers/load.js';

const issuer = testIssuer();
const IRIS = join(ASSETS, 'models/iris_mlp_dynamic.onnx');

function token(sub: string, scope: string): string {
  return issuer.sign({ sub, tenant: 'acme', scope, exp: Math.floor(Date.now() / 1000) + 600 });
}
const ADMIN = token('po-anna', 'admin:traffic');

function config(): Record<string, unknown> {
  const onnx = { kind: 'onnx', path: IRIS };
  const versions = { '1': { backend: onnx }, '2': { backend: onnx } };
  return {
    server: { host: '127.0.0.1', port: 0, shutdownGraceMs: 2000 },
    auth: { issuer: ISSUER, audience: AUDIENCE, keys: [issuer.keyConfig] },
    models: { iris: { versions, stable: '1' }, other: { versions, stable: '1' } },
  };
}

const FILE_SPEC = `# the canary to 5 %, 50 %, then everyone
canary: "2"
steps:
  - { weight: 5, minDurationMs: 60000, minRequests: 50 }
  - { weight: 50, minDurationMs: 60000, minRequests: 50 }
  - { weight: 100, minDurationMs: 60000, minRequests: 50 }
criteria:
  errorRate: { minSamples: 40, maxIncrease: 0.02 }
  latencyP99: { minSamples: 40 }
pauseAfterMs: 3600000
`;

const SHORTHAND = ['--canary', '2', '--stable', '1', '--steps', '1,5,25,50,100', '--min-duration', '90s', '--min-requests', '200', '--criteria', 'errorRate,latencyP99,disagreement', '--min-samples', '100'];

describe('breakwater rollout against a gateway', { timeout: 120_000 }, () => {
  let gw: RunningGateway;
  let env: NodeJS.ProcessEnv;
  const rollout = (...args: string[]): Promise<CliRun> => runCli(['rollout', ...args], { env });
  const view = async (model = 'iris'): Promise<RolloutView> => {
    const r = await rollout('show', model, '--json');
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as RolloutView;
  };
  /** Exit 1 and the gateway's refusal on stderr, nothing on stdout. */
  const refused = (r: CliRun, pattern: RegExp) => {
    assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack');
  };

  before(async () => {
    gw = await startInProcess(config());
    env = { BREAKWATER_URL: gw.url, BREAKWATER_TOKEN: ADMIN };
  });
  after(async () => {
    await gw?.close();
  });

  test('--help prints the usage with the shorthand documented, exit 0', async () => {
    for (const args of [['--help'], ['start', '-h'], ['show', 'iris', '--help']]) {
      const r = await rollout(...args);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.match(r.stdout, /breakwater rollout show MODEL \[--json\]/);
      assert.match(r.stdout, /breakwater rollout start MODEL --file FILE --reason WHY/);
      assert.match(r.stdout, /--canary V \[--stable V\] --steps W,W,\.\.\.,100 --min-requests N/);
      assert.match(r.stdout, /--criteria +of errorRate, latencyP99, guards, disagreement, drift/);
      assert.match(r.stdout, /durations: a number with ms, s, m or h/);
      assert.match(r.stdout, /breakwater rollout pause\|resume\|promote\|abort MODEL --reason WHY/);
      assert.match(r.stdout, /BREAKWATER_URL[\s\S]*BREAKWATER_TOKEN; needs the admin:traffic scope/);
    }
    const top = await runCli(['--help']);
    assert.match(top.stdout, /breakwater rollout show\|start\|pause\|resume\|promote\|abort MODEL/);
  });

  test('a model without a rollout: 404 ROLLOUT_NOT_FOUND; without a token: 401; an unknown model: 404', async () => {
    refused(await rollout('show', 'iris'), /^breakwater: 404 ROLLOUT_NOT_FOUND: .*iris/);
    refused(await rollout('pause', 'iris', '--reason', 'nothing to pause'), /404 ROLLOUT_NOT_FOUND/);
    refused(await runCli(['rollout', 'show', 'iris'], { env: { BREAKWATER_URL: gw.url, BREAKWATER_TOKEN: '' } }), /401 UNAUTHENTICATED/);
    refused(await rollout('show', 'nosuch'), /404 MODEL_NOT_FOUND/);
  });

  test('usage mistakes exit 2 with the usage, and send nothing', async () => {
    const mistakes: [string[], RegExp][] = [
      [['start', 'iris', ...SHORTHAND], /--reason is required/],
      [['pause', 'iris'], /--reason is required/],
      [['start', 'iris', '--file', 'x.yaml', '--canary', '2', '--reason', 'r'], /give --file or the flags \(--canary\), not both/],
      [['start', 'iris', '--canary', '2', '--reason', 'r'], /give --file FILE, or --steps, --min-requests, --criteria/],
      [['start', 'iris', ...SHORTHAND.filter((a) => a !== '--min-samples' && a !== '100'), '--reason', 'r'], /--min-samples is required with errorRate, latencyP99, disagreement/],
      [['start', 'iris', ...SHORTHAND, '--min-duration', '60', '--reason', 'r'], /--min-duration: "60" is not a duration/],
      [['start', 'iris', ...SHORTHAND, '--criteria', 'errorRate,accuracy', '--reason', 'r'], /unknown criterion "accuracy"/],
      [['start', 'iris', ...SHORTHAND, '--steps', '1,five,100', '--reason', 'r'], /--steps: "five" is not a weight/],
      [['resume', 'iris', '--canary', '2', '--reason', 'r'], /--canary only go with start/],
      [['rollback', 'iris', '--reason', 'r'], /unknown rollout action "rollback"/],
      [['show'], /breakwater rollout show MODEL/],
      [['show', 'iris', '--bogus'], /Unknown option '--bogus'/],
    ];
    for (const [args, pattern] of mistakes) {
      const r = await rollout(...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, pattern, args.join(' '));
      assert.match(r.stderr, /Usage:\n {2}breakwater rollout show MODEL/, args.join(' '));
      assert.doesNotMatch(r.stderr, /ERR_PARSE_ARGS|\n\s+at /);
    }
    refused(await rollout('show', 'iris'), /ROLLOUT_NOT_FOUND/);
  });

  test('start --file, show, resume refused while running, pause, resume, abort', async () => {
    const file = await writeTempFile('rollout.yaml', FILE_SPEC);
    const started = await rollout('start', 'iris', '--file', file, '--reason', 'v2 to everyone, from a file');
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, /^started the rollout of iris \(audit record \d+\)\nrollout iris-\S+ of iris: RUNNING\n/);
    assert.match(started.stdout, /canary 2 at 5 %, stable 1 at 95 %/);

    const shown = await rollout('show', 'iris');
    assert.equal(shown.code, 0, shown.stderr);
    const text = shown.stdout;
    assert.match(text, /started \S+ by po-anna \(admin\)/);
    assert.match(text, /step 1 of 3 at weight 5 % \(steps 5, 50, 100\)/);
    assert.match(text, /time +[\d.]+ (ms|s) of at least 1 min \(not yet\)/);
    assert.match(text, /requests +0 of at least 50 canary requests \(not yet\)/);
    assert.match(text, /errorRate +WAIT +canary – \(n=0\), stable – \(n=0, whole rollout\)/);
    assert.match(text, /limit: canary − stable ≤ 2 % \(failing at 99 % confidence\); a failure also kills the canary/);
    assert.match(text, /0 of 40 canary requests needed before judging/);
    assert.match(text, /latencyP99 +WAIT/);
    assert.match(text, /limit: canary p99 ≤ stable p99 × 1\.5 \+ 5 ms/);
    assert.match(text, /decisions:\n {2}\S+ {2}start {4}by po-anna, step 1, weight 0 → 5 %: v2 to everyone, from a file/);

    const json = await view();
    assert.equal(json.state, 'running');
    assert.equal(json.canary, '2');
    assert.equal(json.stable, '1');
    assert.equal(json.weight, 5);
    assert.deepEqual(json.step && { index: json.step.index, of: json.step.of, minRequests: json.step.minRequests }, { index: 0, of: 3, minRequests: 50 });
    assert.deepEqual(json.criteria.map((c) => [c.criterion, c.verdict]), [['errorRate', 'wait'], ['latencyP99', 'wait']]);

    // Canary requests (pinned to version 2) are counted in the step; the summary says how many.
    for (let i = 0; i < 3; i++) {
      const res = await request(`${gw.url}/v2/models/iris/versions/2/infer`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token('alice', 'predict:*')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] }),
      });
      assert.equal(res.statusCode, 200, await res.body.text());
      await res.body.dump();
    }
    await until('the canary requests are counted', async () => (await view()).step.requests === 3, 5000);
    const counted = (await rollout('show', 'iris')).stdout;
    assert.match(counted, /requests +3 of at least 50 canary requests \(not yet\)/);
    assert.match(counted, /figures +canary 3 requests, 0 errors, 0 guarded, p99 [\d.]+ ms; stable 0 requests/);
    assert.match(counted, /errorRate +WAIT +canary 0 % \(n=3\), stable – \(n=0, whole rollout\)/);
    assert.match(counted, /latencyP99 +WAIT +canary [\d.]+ ms \(n=3\)/);
    assert.match(counted, /3 of 40 canary requests needed before judging/);

    refused(await rollout('resume', 'iris', '--reason', 'go on'), /^breakwater: 409 ROLLOUT_CONFLICT: .*: rollout iris-\S+ is running, not paused\n$/);
    refused(await rollout('start', 'iris', '--file', file, '--reason', 'again'), /409 ROLLOUT_CONFLICT: .*rollout iris-\S+ of version 2 is running; abort or promote it first/);

    const paused = await rollout('pause', 'iris', '--reason', 'waiting for the dashboards');
    assert.equal(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, /^paused the rollout of iris \(audit record \d+\)\nrollout \S+ of iris: PAUSED\n/);
    assert.match(paused.stdout, /\n {2}paused: waiting for the dashboards\n/);
    refused(await rollout('pause', 'iris', '--reason', 'twice'), /409 ROLLOUT_CONFLICT: .*is paused, not running/);

    const resumed = await rollout('resume', 'iris', '--reason', 'dashboards fine', '--json');
    assert.equal(resumed.code, 0, resumed.stderr);
    const change = JSON.parse(resumed.stdout) as RolloutChange;
    assert.equal(change.rollout.state, 'running');
    assert.ok('seq' in change.audit);
    assert.deepEqual(change.rollout.decisions.map((d) => d.action), ['start', 'pause', 'resume']);

    const aborted = await rollout('abort', 'iris', '--reason', 'trying the shorthand');
    assert.equal(aborted.code, 0, aborted.stderr);
    assert.match(aborted.stdout, /rollout \S+ of iris: ABORTED\n {2}canary 2 at 0 %, stable 1 at 100 %\n/);
    assert.match(aborted.stdout, /, ended \S+\n {2}aborted: trying the shorthand\n/);
    assert.match(aborted.stdout, /abort {4}by po-anna, step 1, weight 5 → 0 %: trying the shorthand/);
    refused(await rollout('resume', 'iris', '--reason', 'too late'), /409 ROLLOUT_CONFLICT: .*rollout \S+ has ended \(aborted\)/);
  });

  test('an invalid spec is the gateway\'s INVALID_ROLLOUT, printed with every problem, exit 1', async () => {
    const r = await rollout('start', 'iris', ...SHORTHAND, '--steps', '1,5,50', '--reason', 'forgot 100');
    refused(r, /^breakwater: 400 INVALID_ROLLOUT: the rollout is not valid: rollout\.steps: the last step must be 100 \(the canary serves everyone before it is promoted\); it is 50\n$/);
    const bad = await writeTempFile('bad.json', JSON.stringify({ canary: '3', steps: [{ weight: 50, minRequests: 1 }, { weight: 20, minRequests: 1 }], criteria: {} }));
    const many = await rollout('start', 'iris', '--file', bad, '--reason', 'r');
    refused(many, /400 INVALID_ROLLOUT: .*version "3" is not among the model's versions \(1, 2\).*steps must increase \(50 then 20\).*name at least one criterion/);
    const notYaml = await writeTempFile('list.yaml', '- 1\n- 2\n');
    const list = await rollout('start', 'iris', '--file', notYaml, '--reason', 'r');
    assert.equal(list.code, 1);
    assert.match(list.stderr, /list\.yaml: expected a mapping with canary, steps and criteria/);
  });

  test('start from the shorthand flags (after the abort), show --json, then promote', async () => {
    const started = await rollout('start', 'iris', ...SHORTHAND, '--pause-after', '1h', '--reason', 'v2 again, from flags', '--url', gw.url);
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, /iris: RUNNING\n {2}canary 2 at 1 %, stable 1 at 99 %/);
    assert.match(started.stdout, /step 1 of 5 at weight 1 % \(steps 1, 5, 25, 50, 100\)/);
    assert.match(started.stdout, /time +\S+ (ms|s) of at least 1 min 30 s \(not yet\)/);
    assert.match(started.stdout, /requests +0 of at least 200 canary requests/);
    assert.match(started.stdout, /disagreement +WAIT +canary – \(n=0\), stable – \(n=0, same rows\)/);
    assert.match(started.stdout, /0 of 100 compared rows needed before judging/);
    assert.match(started.stdout, /classShift +WAIT/);

    const json = await view();
    assert.equal(json.state, 'running');
    assert.deepEqual(json.steps, [1, 5, 25, 50, 100].map((weight) => ({ weight, minDurationMs: 90_000, minRequests: 200 })));
    assert.deepEqual(json.criteria.map((c) => c.criterion), ['errorRate', 'latencyP99', 'disagreement', 'classShift']);
    assert.equal(json.decisions.length, 1, 'a new rollout, with its own decisions');
    assert.equal(json.decisions[0]?.reason, 'v2 again, from flags');

    const promoted = await rollout('promote', 'iris', '--reason', 'reviewed by hand');
    assert.equal(promoted.code, 0, promoted.stderr);
    assert.match(promoted.stdout, /iris: PROMOTED\n {2}canary 2 at 100 %, stable 1 at 0 %/);
    assert.match(promoted.stdout, /step 5 of 5 at weight 100 %/);
    assert.match(promoted.stdout, /promote {2}by po-anna, step 5, weight 1 → 100 %: reviewed by hand/);
    assert.equal((await view()).state, 'promoted');
  });
});
