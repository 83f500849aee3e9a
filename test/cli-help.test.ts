/**
 * Every `breakwater` command answers --help (and -h) with its usage on stdout and exit 0; a mistake
 * in the arguments is answered with the message and the usage on stderr, exit 2, never with a bare
 * argument-parser error.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runCli } from './helpers/gateway.js';

const breakwater = (args: readonly string[]) => runCli(args);

const HELP: [string[], RegExp][] = [
  [['--help'], /breakwater serve --config FILE/],
  [['help'], /breakwater serve --config FILE/],
  [['serve', '--help'], /breakwater serve --model-repository DIR/],
  [['validate', '-h'], /breakwater validate --model-repository DIR/],
  [['token', '--help'], /breakwater token \[--sub S\]/],
  [['profile', '--help'], /breakwater profile --model M \[--version V\] --data FILE/],
  [['traffic', '--help'], /breakwater traffic show MODEL/],
  [['traffic', 'show', '--help'], /breakwater traffic show MODEL/],
  [['traffic', 'set', 'iris', '-h'], /breakwater traffic set MODEL --weights/],
  [['traffic', 'reset', '--help'], /breakwater traffic reset MODEL --reason WHY/],
  [['rollout', '--help'], /breakwater rollout show MODEL \[--json\]/],
  [['rollout', 'show', '--help'], /breakwater rollout show MODEL/],
  [['rollout', 'start', 'iris', '-h'], /breakwater rollout start MODEL --canary V \[--stable V\] --steps/],
  [['rollout', 'abort', '--help'], /breakwater rollout pause\|resume\|promote\|abort MODEL --reason WHY/],
  [['kill', '--help'], /breakwater kill MODEL \[--mode rollback\|deny\]/],
  [['kill', 'status', '-h'], /breakwater kill status \[--json\]/],
  [['kill', 'titanic', '--version', '3', '--help'], /breakwater kill MODEL --version V/],
  [['restore', '--help'], /breakwater restore MODEL \[--version V\] --reason WHY/],
  [['audit', '--help'], /breakwater audit verify DIR --public-key FILE/],
  [['audit', 'verify', '-h'], /breakwater audit verify DIR --public-key FILE/],
];

describe('breakwater --help', { timeout: 60_000 }, () => {
  for (const [args, usage] of HELP) {
    test(`\`breakwater ${args.join(' ')}\` prints its usage and exits 0`, async () => {
      const r = await breakwater(args);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, usage);
      assert.equal(r.stderr, '');
    });
  }

  const MISTAKES: [string[], RegExp][] = [
    [['traffic', 'show', 'iris', '--bogus'], /breakwater traffic show MODEL/],
    [['traffic', 'show'], /breakwater traffic show MODEL/],
    [['rollout', 'show', 'iris', '--bogus'], /breakwater rollout show MODEL/],
    [['rollout', 'show'], /breakwater rollout show MODEL/],
    [['rollout', 'pause', 'iris'], /--reason is required[\s\S]*breakwater rollout pause/],
    [['rollout', 'start', 'iris', '--steps', '1,50,100', '--reason', 'r'], /give --file FILE, or --canary[\s\S]*breakwater rollout start/],
    [['token', '--bogus'], /breakwater token \[--sub S\]/],
    [['profile', '--model', 'iris', '--bogus'], /breakwater profile --model M/],
    [['serve', '--bogus'], /breakwater serve --config FILE/],
    [['kill', 'titanic', '--bogus'], /breakwater kill MODEL/],
    [['kill', 'titanic'], /--reason is required[\s\S]*breakwater kill MODEL/],
    [['restore', '--all', '--mode', 'deny'], /breakwater restore --all --reason WHY/],
    [['audit', 'verify'], /name the trail directory[\s\S]*breakwater audit verify DIR/],
    [['audit', 'verify', 'trail', '--bogus'], /breakwater audit verify DIR/],
    [['audit', 'check', 'trail'], /unknown audit action "check"[\s\S]*breakwater audit verify DIR/],
    [['audit', 'verify', 'trail', '--public-key', 'k.pem', '--checkpoint-ms', 'soon'], /--checkpoint-ms must be a positive number[\s\S]*breakwater audit verify DIR/],
  ];
  for (const [args, usage] of MISTAKES) {
    test(`\`breakwater ${args.join(' ')}\` says what is wrong, shows the usage and exits 2`, async () => {
      const r = await breakwater(args);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, usage);
      assert.doesNotMatch(r.stderr, /ERR_PARSE_ARGS|\n\s+at /, 'no raw parser error or stack');
    });
  }
});
