/**
 * `breakwater kill` and `breakwater restore`: the kill switch's admin API for the on-call engineer.
 *
 *   breakwater kill titanic --reason "refuses everyone since the retrain"     (rollback to the target)
 *   breakwater kill titanic --version 3 --reason "..."                         (that version only)
 *   breakwater kill --all --reason "..."                                       (every model, deny)
 *   breakwater restore titanic --reason "..."
 *   breakwater kill status
 *
 * A change is not done when the gateway has stored it but when every replica serves by it, so `kill`
 * and `restore` wait (at most --wait-ms) until each replica of the fleet reports the change's
 * revision, print the time each took, and exit 0; 2 names each replica that did not follow; 1 is a
 * refusal (the gateway's code and message) or a gateway out of reach. `kill status` always means
 * the status: a model called "status" is named with `--model status`.
 */
import { AdminApiError, adminCall, adminTarget, UnreachableError, type AdminTarget } from './admin-call.js';
import { CliError, parseOrUsage, wantsHelp } from './args.js';
import { failureLine, humanChange, humanStatus, jsonChange } from './kill-report.js';
import { readChange, readKillState, waitForFleet } from './kill-wait.js';

export const KILL_USAGE = `Usage:
  breakwater kill MODEL [--mode rollback|deny] [--target V] --reason WHY   stop a model: its traffic
                                            goes to the rollback target (default) or is refused (deny)
  breakwater kill MODEL --version V [--target V] --reason WHY   stop one version of a model
  breakwater kill --all [--mode deny|rollback] --reason WHY     stop every model (default deny)
  breakwater restore MODEL [--version V] --reason WHY           lift a model's (or version's) kill
  breakwater restore --all --reason WHY                         lift the kill of every model
  breakwater kill status [--json]           kills in force, each replica's revision and heartbeat
kill and restore wait until every replica has applied the change, print the time each took and
exit 0; exit 2 names each replica that did not within --wait-ms; exit 1 when the gateway refused.
Options: --wait-ms N   how long to wait for the replicas (default 2000)
         --json        one JSON document for scripts
         --model M     the model, when it cannot be a positional (\`kill --model status\`)
         --url URL     (env BREAKWATER_URL; default http://127.0.0.1:8080)
         --token JWT   (env BREAKWATER_TOKEN; needs the admin:kill-switch scope)
         --help        this text
`;

/** What the command prints and how it exits (a failed wait still prints its report). */
export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

const DEFAULT_WAIT_MS = 2000;
const MAX_WAIT_MS = 600_000;

const usage = (message: string): CliError => new CliError(`${message}\n\n${KILL_USAGE}`, 2);

function parseWait(text: string | undefined): number {
  if (text === undefined) return DEFAULT_WAIT_MS;
  if (!/^\d{1,6}$/.test(text) || Number(text) > MAX_WAIT_MS) throw usage(`--wait-ms must be 0-${MAX_WAIT_MS}, got "${text}"`);
  return Number(text);
}

interface Parsed {
  readonly values: {
    url?: string; token?: string; version?: string; mode?: string; target?: string; reason?: string;
    'wait-ms'?: string; json?: boolean; all?: boolean; model?: string;
  };
  readonly positionals: string[];
}

function parse(argv: readonly string[], restore: boolean): Parsed {
  const common = {
    url: { type: 'string' }, token: { type: 'string' }, version: { type: 'string' }, reason: { type: 'string' },
    'wait-ms': { type: 'string' }, json: { type: 'boolean' }, all: { type: 'boolean' }, model: { type: 'string' },
  } as const;
  const options = restore ? common : { ...common, mode: { type: 'string' }, target: { type: 'string' } } as const;
  return parseOrUsage({ args: [...argv], allowPositionals: true, options }, KILL_USAGE) as Parsed;
}

/** The model named by the positional or --model (exactly one), or --all. */
function subject(p: Parsed): { all: true } | { all: false; model: string } {
  const named = [...p.positionals, ...(p.values.model === undefined ? [] : [p.values.model])];
  if (p.values.all === true) {
    if (named.length > 0) throw usage(`--all and a model (${named.join(', ')}) exclude each other`);
    if (p.values.version !== undefined) throw usage('--version names a version of one model, not of --all');
    return { all: true };
  }
  if (named.length !== 1) throw usage(named.length === 0 ? 'name a MODEL, or give --all' : `name one model, not ${named.join(', ')}`);
  if (named[0] === '') throw usage('the model name is empty');
  return { all: false, model: named[0] as string };
}

function reasonOf(p: Parsed): string {
  const r = p.values.reason;
  if (r === undefined || r.trim() === '') throw usage('--reason is required: say why (it goes to the audit log and the alert)');
  return r;
}

/** The POST or DELETE a kill or restore makes. */
function changeCall(p: Parsed, restore: boolean): { method: 'POST' | 'DELETE'; path: string; body: Record<string, string> } {
  const who = subject(p);
  const reason = reasonOf(p);
  const { mode, target, version } = p.values;
  if (mode !== undefined && mode !== 'rollback' && mode !== 'deny') throw usage(`--mode must be rollback or deny, got "${mode}"`);
  if (target !== undefined && mode === 'deny') throw usage('--target is where rollback sends traffic; deny sends it nowhere');
  if (target !== undefined && who.all) throw usage('--all rolls each model back to its own target; --target names one version of one model');
  if (mode !== undefined && version !== undefined) throw usage('--mode is for a model or --all: a killed version always sends its traffic to the target');
  const method = restore ? 'DELETE' : 'POST';
  if (who.all) return { method, path: '/admin/kill', body: restore ? { reason } : { mode: mode ?? 'deny', reason } };
  const base = `/admin/models/${encodeURIComponent(who.model)}${version === undefined ? '' : `/versions/${encodeURIComponent(version)}`}`;
  const body: Record<string, string> = { reason };
  if (!restore && mode !== undefined) body.mode = mode;
  if (!restore && target !== undefined) body.target = target;
  return { method, path: `${base}/kill`, body };
}

async function status(p: Parsed, target: AdminTarget): Promise<CommandResult> {
  const extra = (['version', 'mode', 'target', 'reason', 'wait-ms', 'all'] as const).filter((k) => p.values[k] !== undefined);
  if (p.positionals.length > 1 || extra.length > 0) {
    throw usage(`\`kill status\` shows the kill state and takes only --json, --url, --token (got ${[...p.positionals.slice(1), ...extra.map((k) => `--${k}`)].join(', ')}); to kill a model named "status", give --model status`);
  }
  const raw = await adminCall(target, { method: 'GET', path: '/admin/kill' });
  return { stdout: p.values.json === true ? `${JSON.stringify(raw, null, 2)}\n` : humanStatus(readKillState(raw)), stderr: '', exitCode: 0 };
}

async function change(p: Parsed, target: AdminTarget, restore: boolean): Promise<CommandResult> {
  const call = changeCall(p, restore);
  const waitMs = parseWait(p.values['wait-ms']);
  let answer;
  try {
    answer = readChange(await adminCall(target, call));
  } catch (e) {
    if (!(e instanceof UnreachableError && e.timedOut)) throw e;
    throw new CliError(`${e.message}; the change may have been made all the same: see \`breakwater kill status\``, 1);
  }
  const wait = await waitForFleet(target, answer, { waitMs });
  const failed = failureLine(answer, wait, waitMs);
  return {
    stdout: p.values.json === true ? jsonChange(answer, wait, waitMs) : humanChange(answer, wait, waitMs),
    stderr: failed === undefined ? '' : `breakwater: ${failed}\n`,
    exitCode: failed === undefined ? 0 : 2,
  };
}

/** `breakwater kill ...` (`command` 'kill') or `breakwater restore ...` ('restore'). */
export async function killCommand(command: 'kill' | 'restore', argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<CommandResult> {
  if (wantsHelp(argv)) return { stdout: KILL_USAGE, stderr: '', exitCode: 0 };
  const restore = command === 'restore';
  const p = parse(argv, restore);
  const target = adminTarget(p.values, env);
  const isStatus = !restore && p.positionals[0] === 'status' && p.values.model === undefined && p.values.all !== true;
  try {
    return isStatus ? await status(p, target) : await change(p, target, restore);
  } catch (e) {
    // A script reading --json gets the refusal as JSON too; a person reads it on stderr either way.
    if (p.values.json !== true || !(e instanceof CliError) || e.exitCode !== 1) throw e;
    const error = e instanceof AdminApiError ? { status: e.status, code: e.code, message: e.detail } : { message: e.message };
    return { stdout: `${JSON.stringify({ ok: false, error }, null, 2)}\n`, stderr: `breakwater: ${e.message}\n`, exitCode: 1 };
  }
}
