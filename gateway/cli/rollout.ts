/**
 * `breakwater rollout`: the rollouts admin API from a shell (gateway/routes/admin-rollout.ts).
 *
 *   breakwater rollout show MODEL [--json]
 *   breakwater rollout start MODEL --file rollout.yaml --reason "v2 to everyone"
 *   breakwater rollout start MODEL --canary 2 --steps 1,5,25,50,100 --min-duration 60s --min-requests 200 \
 *     --criteria errorRate,latencyP99,disagreement --min-samples 100 --reason "v2 to everyone"
 *   breakwater rollout pause|resume|promote|abort MODEL --reason "..."
 *
 * `show` and every change print a summary a person reads (state, step, each criterion against its
 * limit, the last decisions); --json prints the gateway's answer as it is. The gateway is --url
 * (env BREAKWATER_URL, default http://127.0.0.1:8080); the token, which needs the admin:traffic
 * scope, is --token (env BREAKWATER_TOKEN). A refusal reads `STATUS CODE: message`, exit 1
 * (admin-call.ts); a usage mistake exits 2 with the usage, and nothing is sent.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { RolloutChange, RolloutView } from '../rollout/rollouts.js';
import { adminCall, adminTarget } from './admin-call.js';
import { CliError, parseOrUsage, wantsHelp } from './args.js';

export const ROLLOUT_USAGE = `Usage:
  breakwater rollout show MODEL [--json]        state, step, criteria against their limits, decisions
  breakwater rollout start MODEL --file FILE --reason WHY   start the rollout in FILE (YAML or JSON:
                                                the mapping of models.<m>.rollout, see docs/cli.md)
  breakwater rollout start MODEL --canary V [--stable V] --steps W,W,...,100 --min-requests N
        [--min-duration D] --criteria C,C,... --min-samples N [--pause-after D] --reason WHY
                                                the same, built from flags:
        --steps         the canary's weight (percent) at each step, increasing to 100
        --min-requests  canary requests each step needs before it can pass
        --min-duration  each step's minimum duration (default 60s)
        --criteria      of errorRate, latencyP99, guards, disagreement, drift: each gets
                        {minSamples} and the gateway's defaults (drift gets {})
        --min-samples   the samples a criterion needs before judging (at least 10)
        --pause-after   pause a step still short of its requests this long after its minimum
                        duration (default 10m)
        durations: a number with ms, s, m or h (500ms, 60s, 10m)
  breakwater rollout pause|resume|promote|abort MODEL --reason WHY
Options: --json  print the gateway's JSON answer instead of the summary
         --url URL (env BREAKWATER_URL; default http://127.0.0.1:8080)
         --token JWT (env BREAKWATER_TOKEN; needs the admin:traffic scope)
         --help  this text
`;

const ACTIONS = ['pause', 'resume', 'promote', 'abort'] as const;
/** The criteria of a rollout spec (classShift is judged with disagreement, not named). */
export const CRITERIA = ['errorRate', 'latencyP99', 'guards', 'disagreement', 'drift'] as const;
/** Flags that build a spec, which --file replaces. */
const SPEC_FLAGS = ['canary', 'stable', 'steps', 'min-duration', 'min-requests', 'criteria', 'min-samples', 'pause-after'] as const;
/** Decisions `show` prints (--json has every one the record keeps). */
const DECISIONS_SHOWN = 5;

const usage = (message: string): CliError => new CliError(`${message}\n\n${ROLLOUT_USAGE}`, 2);

/** `500ms`, `60s`, `10m`, `1h` (decimals allowed) → milliseconds. A bare number is refused: say the unit. */
export function parseDuration(text: string, flag: string): number {
  const m = /^\s*(\d{1,9}(?:\.\d{1,3})?)\s*(ms|s|m|h)\s*$/.exec(text);
  if (m === null) throw usage(`${flag}: "${text}" is not a duration: a number with ms, s, m or h (e.g. 500ms, 60s, 10m)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * unit);
}

function parseCount(text: string, flag: string): number {
  if (!/^\s*\d{1,9}\s*$/.test(text)) throw usage(`${flag}: "${text}" is not a whole number`);
  return Number(text);
}

/** `1,5,25,50,100` → the weights, in order (the gateway checks they increase to 100). */
export function parseSteps(text: string): number[] {
  return text.split(',').map((part) => {
    const m = /^\s*(\d{1,3})\s*%?\s*$/.exec(part);
    if (m === null) throw usage(`--steps: "${part}" is not a weight in percent (e.g. --steps 1,5,25,50,100)`);
    return Number(m[1]);
  });
}

export function parseCriteria(text: string): (typeof CRITERIA)[number][] {
  const names = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw usage('--criteria: name at least one criterion');
  for (const n of names) {
    if (!(CRITERIA as readonly string[]).includes(n)) throw usage(`--criteria: unknown criterion "${n}" (${CRITERIA.join(', ')})`);
  }
  return [...new Set(names)] as (typeof CRITERIA)[number][];
}

type SpecValues = Partial<Record<(typeof SPEC_FLAGS)[number], string>>;

/** The rollout spec the shorthand flags stand for (the gateway validates the rest). */
export function specFromFlags(v: SpecValues): Record<string, unknown> {
  const missing = (['canary', 'steps', 'min-requests', 'criteria'] as const).filter((f) => v[f] === undefined).map((f) => `--${f}`);
  if (missing.length > 0) throw usage(`start: give --file FILE, or ${missing.join(', ')} (and the other flags of the shorthand)`);
  const criteria = parseCriteria(v.criteria ?? '');
  const sampled = criteria.filter((c) => c !== 'drift');
  if (sampled.length > 0 && v['min-samples'] === undefined) throw usage(`start: --min-samples is required with ${sampled.join(', ')} (the samples each needs before judging)`);
  const minSamples = v['min-samples'] === undefined ? undefined : parseCount(v['min-samples'], '--min-samples');
  const minRequests = parseCount(v['min-requests'] ?? '', '--min-requests');
  const minDurationMs = v['min-duration'] === undefined ? undefined : parseDuration(v['min-duration'], '--min-duration');
  return {
    canary: v.canary,
    ...(v.stable === undefined ? {} : { stable: v.stable }),
    steps: parseSteps(v.steps ?? '').map((weight) => ({ weight, ...(minDurationMs === undefined ? {} : { minDurationMs }), minRequests })),
    criteria: Object.fromEntries(criteria.map((c) => [c, c === 'drift' ? {} : { minSamples }])),
    ...(v['pause-after'] === undefined ? {} : { pauseAfterMs: parseDuration(v['pause-after'], '--pause-after') }),
  };
}

async function specFromFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new CliError(`${file}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (e) {
    throw new CliError(`${file}: not YAML or JSON: ${(e as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new CliError(`${file}: expected a mapping with canary, steps and criteria (and stable, pauseAfterMs)`);
  return parsed as Record<string, unknown>;
}

// ── the summary ─────────────────────────────────────────────────────────────────────────────────

/** 850 ms, 12.5 s, 3 min 20 s, 2 h 5 min. */
export function humanDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${Math.round(ms / 100) / 10} s`;
  if (ms < 3_600_000) {
    const s = Math.round(ms / 1000);
    return s % 60 === 0 ? `${s / 60} min` : `${Math.floor(s / 60)} min ${s % 60} s`;
  }
  const min = Math.round(ms / 60_000);
  return min % 60 === 0 ? `${min / 60} h` : `${Math.floor(min / 60)} h ${min % 60} min`;
}

type Criterion = RolloutView['criteria'][number];

function criterionValue(c: Criterion, v: number | string | null): string {
  if (v === null) return '–';
  if (typeof v === 'string') return v;
  if (c.criterion === 'latencyP99') return `${Math.round(v * 100) / 100} ms`;
  return `${Math.round(v * 10_000) / 100} %`;
}

function side(name: string, s: RolloutView['figures']['step']['canary']): string {
  return `${name} ${s.requests} requests, ${s.errors} errors, ${s.guarded} guarded, p99 ${s.p99Ms === null ? '–' : `${s.p99Ms} ms`}`;
}

/** What `show` prints: the rollout as a person reads it. */
export function humanView(r: RolloutView): string {
  const lines: string[] = [];
  const ended = r.endedAt === null ? '' : `, ended ${r.endedAt}`;
  lines.push(`rollout ${r.id} of ${r.model}: ${r.state.toUpperCase()}`);
  lines.push(`  canary ${r.canary} at ${r.weight} %, stable ${r.stable} at ${100 - r.weight} %`);
  lines.push(`  started ${r.startedAt} by ${r.startedBy} (${r.source})${ended}`);
  if (r.note !== null) lines.push(`  ${r.state === 'paused' ? 'paused' : r.state}: ${r.note}`);
  const s = r.step;
  lines.push(`step ${s.index + 1} of ${s.of} at weight ${s.weight} % (steps ${r.steps.map((x) => x.weight).join(', ')})`);
  const timeOk = s.elapsedMs >= s.minDurationMs ? 'reached' : 'not yet';
  const reqOk = s.requests >= s.minRequests ? 'reached' : 'not yet';
  lines.push(`  time      ${humanDuration(s.elapsedMs)} of at least ${humanDuration(s.minDurationMs)} (${timeOk}), since ${s.startedAt}`);
  lines.push(`  requests  ${s.requests} of at least ${s.minRequests} canary requests (${reqOk})`);
  const f = r.figures.step;
  lines.push(`  figures   ${side('canary', f.canary)}; ${side('stable', f.stable)}${f.compared.rows > 0 ? `; ${f.compared.disagreed} of ${f.compared.rows} compared rows disagreed` : ''}`);
  lines.push('criteria:');
  if (r.criteria.length === 0) lines.push('  (none)');
  const width = Math.max(0, ...r.criteria.map((c) => c.criterion.length));
  for (const c of r.criteria) {
    const scope = { step: 'this step', rollout: 'whole rollout', paired: 'same rows' }[c.stableScope];
    lines.push(`  ${c.criterion.padEnd(width)}  ${c.verdict.toUpperCase().padEnd(4)}  canary ${criterionValue(c, c.canary)} (n=${c.samples.canary}), stable ${criterionValue(c, c.stable)} (n=${c.samples.stable}, ${scope})`);
    lines.push(`  ${' '.repeat(width)}        limit: ${c.limit}${c.killSwitch ? '; a failure also kills the canary' : ''}`);
    lines.push(`  ${' '.repeat(width)}        ${c.detail}`);
  }
  const shown = r.decisions.slice(-DECISIONS_SHOWN);
  lines.push(r.decisions.length > shown.length ? `decisions (last ${shown.length} of ${r.decisions.length}):` : 'decisions:');
  for (const d of shown) {
    const weight = d.weightBefore === d.weightAfter ? `weight ${d.weightAfter} %` : `weight ${d.weightBefore} → ${d.weightAfter} %`;
    lines.push(`  ${d.at}  ${d.action.padEnd(7)}  by ${d.by}, step ${d.step + 1}, ${weight}${d.killed === true ? ', canary killed' : ''}: ${d.reason}`);
  }
  lines.push(`driven by ${r.drivenHere ? 'the replica that answered' : 'another replica (or none yet)'}`);
  return `${lines.join('\n')}\n`;
}

function humanChange(what: string, c: RolloutChange): string {
  const audit = 'seq' in c.audit ? `audit record ${c.audit.seq}` : 'audit record pending';
  return `${what} (${audit})\n${humanView(c.rollout)}`;
}

// ── the command ─────────────────────────────────────────────────────────────────────────────────

/** Runs the command; resolves to what to print. */
export async function rolloutCommand(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (wantsHelp(argv)) return ROLLOUT_USAGE;
  const { values, positionals } = parseOrUsage({
    args: [...argv],
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      json: { type: 'boolean' },
      file: { type: 'string' },
      reason: { type: 'string' },
      canary: { type: 'string' },
      stable: { type: 'string' },
      steps: { type: 'string' },
      'min-duration': { type: 'string' },
      'min-requests': { type: 'string' },
      criteria: { type: 'string' },
      'min-samples': { type: 'string' },
      'pause-after': { type: 'string' },
    },
  }, ROLLOUT_USAGE);
  const [action, model] = positionals;
  if (action === undefined || model === undefined || positionals.length !== 2) throw new CliError(ROLLOUT_USAGE, 2);
  const isAction = (ACTIONS as readonly string[]).includes(action);
  if (action !== 'show' && action !== 'start' && !isAction) throw usage(`unknown rollout action "${action}"`);
  const specFlags = SPEC_FLAGS.filter((f) => values[f] !== undefined);
  if (action !== 'start' && (specFlags.length > 0 || values.file !== undefined)) {
    throw usage(`${action}: ${[...specFlags.map((f) => `--${f}`), ...(values.file === undefined ? [] : ['--file'])].join(', ')} only go with start`);
  }
  if (action === 'show' && values.reason !== undefined) throw usage('show: --reason only goes with a change');
  const reason = (): string => {
    if (values.reason === undefined || values.reason.trim() === '') throw usage('--reason is required: say why (it goes to the audit trail)');
    return values.reason;
  };
  // Everything the command line says is checked before anything is sent.
  let body: Record<string, unknown> | undefined;
  if (action === 'start') {
    if (values.file !== undefined && specFlags.length > 0) throw usage(`start: give --file or the flags (${specFlags.map((f) => `--${f}`).join(', ')}), not both`);
    const why = reason();
    const spec = values.file !== undefined ? await specFromFile(values.file) : specFromFlags(values);
    body = { ...spec, reason: why };
  } else if (isAction) {
    body = { reason: reason() };
  }

  const target = adminTarget(values, env);
  const path = `/admin/models/${encodeURIComponent(model)}/rollout`;
  const json = (x: unknown) => `${JSON.stringify(x, null, 2)}\n`;
  if (action === 'show') {
    const view = await adminCall(target, { method: 'GET', path });
    return values.json === true ? json(view) : humanView(view as RolloutView);
  }
  const change = action === 'start'
    ? await adminCall(target, { method: 'PUT', path, body })
    : await adminCall(target, { method: 'POST', path: `${path}/${action}`, body });
  if (values.json === true) return json(change);
  const done = { start: 'started', pause: 'paused', resume: 'resumed', promote: 'promoted', abort: 'aborted' }[action as 'start' | (typeof ACTIONS)[number]];
  return humanChange(`${done} the rollout of ${model}`, change as RolloutChange);
}
