/**
 * Before and after: the gateway proxy path (target (c) of `npm run bench`) of this build against the
 * same path of another build, measured in one run, interleaved round by round, so that a change's
 * cost shows apart from the machine's drift (on a shared 2-core machine a target's CPU per request
 * moves by a third between rounds; the ratio of two targets measured side by side moves far less).
 *
 *   npm run build && node dist/loadtests/ab.js --baseline ../old/dist/gateway/cli/main.js [--rounds 8] [--seconds 4]
 *
 * The baseline is any checkout's built CLI (`git worktree add ../old <commit> && cd ../old && npm ci &&
 * npm run build`). One backend B (this build, iris in-process) serves both gateways, each one process,
 * `auth.insecureNoAuth`, no rate limits, proxying to B. Each round measures both at 32 connections,
 * in alternating order, and prints the CPU per request of each gateway process and their ratio; the
 * median ratio is the answer. Not a test: it never fails on a timing.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { measureCell, prime } from './lib/measure.js';
import { freePort, HOST, killAll, spawnNode, waitReady, type Child } from './lib/processes.js';
import { prepareModel, proxyBackend, type Target } from './lib/targets.js';

const THIS_CLI = fileURLToPath(new URL('../gateway/cli/main.js', import.meta.url));

async function start(name: string, cli: string, backend: Record<string, unknown>, dir: string): Promise<Child> {
  const port = await freePort();
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, stringify({ auth: { insecureNoAuth: true }, server: { host: HOST, port, workers: 1 }, models: { iris: { versions: { '1': { backend } } } } }));
  const child = spawnNode(name, [cli, 'serve', '--config', file], port, join(dir, `${name}.log`));
  await waitReady(child);
  return child;
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { baseline: { type: 'string' }, rounds: { type: 'string', default: '8' }, seconds: { type: 'string', default: '4' } } });
  if (values.baseline === undefined) throw new Error('--baseline PATH/dist/gateway/cli/main.js is required');
  const baseline = resolve(values.baseline);
  const rounds = Number(values.rounds);
  const durationS = Number(values.seconds);
  const dir = mkdtempSync(join(tmpdir(), 'bw-ab-'));
  try {
    const b = await start('B', THIS_CLI, prepareModel(dir), dir);
    const before: Target = { id: 'c', label: 'baseline G→B', front: await start('G-baseline', baseline, proxyBackend(b), dir), backend: b };
    const after: Target = { id: 'c', label: 'this build G→B', front: await start('G-this', THIS_CLI, proxyBackend(b), dir), backend: b };
    for (const t of [before, after]) await prime(t, 3, 300_000);
    const ratios: number[] = [];
    const per: Record<string, number[]> = { before: [], after: [] };
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? [before, after] : [after, before];
      const us = new Map<Target, number>();
      for (const t of order) {
        const cell = await measureCell(t, 32, { warmupS: 1, durationS, maxRequests: 300_000 });
        us.set(t, cell.frontCpuMsPerReq * 1000);
      }
      const [x, y] = [us.get(before) ?? NaN, us.get(after) ?? NaN];
      per.before.push(x);
      per.after.push(y);
      ratios.push(y / x);
      console.log(`round ${r + 1}: baseline ${x.toFixed(1)} µs/req, this build ${y.toFixed(1)} µs/req, ratio ${(y / x).toFixed(3)}`);
    }
    console.log(`median: baseline ${median(per.before).toFixed(1)} µs/req, this build ${median(per.after).toFixed(1)} µs/req; median ratio this/baseline ${median(ratios).toFixed(3)} (rounds ${ratios.map((q) => q.toFixed(2)).join(' ')})`);
  } finally {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch(async (e: unknown) => {
  console.error(e);
  await killAll();
  process.exit(1);
});
