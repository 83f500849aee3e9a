/**
 * `breakwater profile`: builds a model version's reference profile (the input guards' statistics and
 * calibrated thresholds, policies/guards/profile.ts) from its reference data, with the model taken
 * from a configuration file exactly as `serve` would load it, and writes it as JSON for the
 * configuration to name (`models.<m>.versions.<v>.profile`).
 */
import { writeFile } from 'node:fs/promises';
import { buildProfile, DEFAULT_SEED, DEFAULT_TARGET_FPR } from '../profile/build.js';
import { parseColumnMap } from '../profile/read-data.js';
import { squeezerName } from '../profile/squeezer-selection.js';
import { binCount } from '../drift/bins.js';
import { ConfigError, loadConfigFile } from '../config.js';
import { CALIBRATION_CONFIDENCE } from '../../policies/guards/calibrate.js';
import type { Profile } from '../../policies/guards/profile.js';
import { CliError, parseOrUsage, wantsHelp } from './args.js';

export const PROFILE_USAGE = `Usage:
  breakwater profile --model M [--version V] --data FILE [--config FILE] [--out FILE]
                     [--map INPUT=COL,COL,...] [--seed N] [--target-fpr P]
Builds the reference profile of a model version for the input guards and writes it as JSON.

  --model M        the model, as named in the configuration
  --version V      its version (default: the model's stable version)
  --data FILE      reference data: a CSV whose header names the model's inputs (one column per input
                   of one element per row; INPUT[0], INPUT[1], ... for wider inputs; other columns are
                   ignored; an empty cell is a missing value), or a JSONL file of OIP v2 infer request
                   bodies, one per line (.jsonl)
  --config FILE    the configuration the model comes from (default: breakwater.yaml)
  --out FILE       where to write the profile (default: M-V.profile.json)
  --map INPUT=COL,COL,...   CSV columns holding INPUT's features, in order (repeatable), e.g.
                   --map input=SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm
  --seed N         seeds the split of the rows: 70 % fit the detectors, 30 % calibrate (default ${DEFAULT_SEED})
  --target-fpr P   false-positive rate the thresholds are set to (default: the model's
                   guards.targetFpr, else ${DEFAULT_TARGET_FPR})
  --help           this text
`;

function positiveNumber(text: string | undefined, option: string, integer: boolean): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || (integer && !Number.isSafeInteger(n))) throw new CliError(`${option} must be ${integer ? 'an integer' : 'a number'}, got "${text}"\n\n${PROFILE_USAGE}`, 2);
  return n;
}

/** The summary printed after a profile is written. */
export function profileSummary(p: Profile, out: string): string {
  const c = p.calibration;
  const lines = [
    `profile of ${p.model} version ${p.version} written to ${out}`,
    `  data: ${p.data.file}, ${p.data.rows} rows: ${p.data.referenceRows} reference, ${p.data.heldOutRows} held out (the encoder and the extraction steps are fitted on the reference rows)`,
    `  features: ${p.features.length} (${p.inputs.map((i) => `${i.name} ${i.datatype} [${i.rowShape.join(',')}]`).join(', ')})`,
    p.ood.method === 'knn' && p.ood.image !== undefined
      ? `  out-of-distribution: image (pixels, edges, statistics; ${p.ood.rows} rows), threshold ${c.ood.toPrecision(4)} cross-fitted on ${c.oodRows ?? p.ood.rows} rows (target false-positive rate ${c.targetFpr}, at ${CALIBRATION_CONFIDENCE * 100} % confidence)`
      : p.ood.method === 'mixture'
        ? `  out-of-distribution: Gaussian mixture of ${p.ood.components.length} component${p.ood.components.length === 1 ? '' : 's'}, threshold ${c.ood.toPrecision(4)} cross-fitted on ${c.oodRows ?? p.data.rows} rows (target false-positive rate ${c.targetFpr}, at ${CALIBRATION_CONFIDENCE * 100} % confidence)`
        : `  out-of-distribution: ${p.ood.method}, threshold ${c.ood.toPrecision(4)} (target false-positive rate ${c.targetFpr})`,
    c.squeeze === undefined || p.squeeze === undefined
      ? '  squeeze: none (the model has no probability or logit output to compare)'
      : `  squeeze: ${p.squeeze.squeezers.map((s, k) => `${squeezerName(s)} (threshold ${c.squeeze?.[k]?.toPrecision(4)})`).join(', ')} on ${p.squeeze.output}${p.squeeze.logits ? ' (logits)' : ''}, from ${c.squeezeRows ?? p.data.rows} rows`,
    driftLine(p),
  ];
  return `${lines.join('\n')}\n`;
}

/** The summary's line on the drift monitor's reference: what is binned, from how many rows. */
function driftLine(p: Profile): string {
  const d = p.drift;
  if (d === undefined) return '  drift reference: none (rebuild the profile for the drift monitor)';
  const numeric = d.features.filter((b) => b.kind === 'numeric').length;
  const bins = d.features.reduce((n, b) => n + binCount(b), 0);
  const score = d.outputs.find((b) => b.kind === 'numeric');
  const outputs = d.output === undefined
    ? 'outputs: none (the model has no class-score output)'
    : `outputs binned: ${d.output.name}:class (${d.output.classes} classes) and ${d.output.name}:score (${score?.kind === 'numeric' ? score.edges.length : 0} edges)${d.output.logits ? ' after softmax' : ''}`;
  return `  drift reference: ${d.features.length} features binned (${numeric} numeric, ${d.features.length - numeric} categorical; ${bins} bins), ${outputs}, from ${d.rows} rows`;
}

/** Runs the command; resolves to what to print. */
export async function profileCommand(argv: readonly string[]): Promise<string> {
  if (wantsHelp(argv)) return PROFILE_USAGE;
  const { values } = parseOrUsage({
    args: [...argv],
    options: {
      model: { type: 'string' },
      version: { type: 'string' },
      data: { type: 'string' },
      config: { type: 'string', short: 'c', default: 'breakwater.yaml' },
      out: { type: 'string' },
      map: { type: 'string', multiple: true, default: [] },
      seed: { type: 'string' },
      'target-fpr': { type: 'string' },
    },
  }, PROFILE_USAGE);
  if (values.model === undefined || values.data === undefined) throw new CliError(`--model and --data are required\n\n${PROFILE_USAGE}`, 2);
  const targetFpr = positiveNumber(values['target-fpr'], '--target-fpr', false);
  if (targetFpr !== undefined && !(targetFpr > 0 && targetFpr < 1)) throw new CliError(`--target-fpr must be between 0 and 1, got ${targetFpr}\n\n${PROFILE_USAGE}`, 2);
  let map;
  try {
    map = parseColumnMap(values.map);
  } catch (e) {
    throw new CliError(`${(e as Error).message}\n\n${PROFILE_USAGE}`, 2);
  }
  let config;
  try {
    config = await loadConfigFile(values.config, {}, { requireIdentity: false });
  } catch (e) {
    throw new CliError(e instanceof ConfigError ? e.message : `${values.config}: ${(e as Error).message}`);
  }
  let profile: Profile;
  try {
    profile = await buildProfile({ config, model: values.model, version: values.version, data: values.data, map, seed: positiveNumber(values.seed, '--seed', true), targetFpr });
  } catch (e) {
    throw new CliError(`cannot build the profile of ${values.model}${values.version === undefined ? '' : ` version ${values.version}`} from ${values.data}: ${(e as Error).message}`);
  }
  const out = values.out ?? `${profile.model}-${profile.version}.profile.json`;
  await writeFile(out, `${JSON.stringify(profile)}\n`);
  return profileSummary(profile, out);
}
