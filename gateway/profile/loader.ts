/**
 * The `profile` artefact: a model version's reference profile (policies/guards/profile.ts), read
 * from `models.<m>.versions.<v>.profile` with the model table and swapped with it on reload
 * (adapters/registry.ts ArtifactLoader). The guards read it from the routed version
 * (`ctx.version.artifacts.get('profile')`), so a profile that does not fit its model must never get
 * there: one of an unknown format, built for another model file (SHA-256), whose inputs' names,
 * datatypes or row shapes differ from the model's metadata, or whose parts do not fit together is
 * refused at load with every reason at once, and the start or reload fails like a broken model.
 *
 * A remote backend that has not answered yet has no metadata to compare with: its profile is
 * checked for everything else and loaded.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ModelMetadata } from '../../adapters/adapter.js';
import type { ArtifactLoader, LoadedModel } from '../../adapters/registry.js';
import { isImageInput, profileInputs } from '../../policies/guards/features.js';
import { EDGE_COLUMNS, IMAGE_STAT_NAMES, IMAGE_STATS } from '../../policies/guards/image-features.js';
import { MIN_TAIL_SCORES } from '../../policies/guards/tail.js';
import { PROFILE_FORMAT, type Profile } from '../../policies/guards/profile.js';
import { deepFreeze } from '../config.js';

/** The artefact's name: `ctx.version.artifacts.get(PROFILE_ARTIFACT)`. */
export const PROFILE_ARTIFACT = 'profile';

type Json = Record<string, unknown>;
const isRecord = (x: unknown): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x);
const isNumbers = (x: unknown, length?: number): boolean => Array.isArray(x) && (length === undefined || x.length === length) && x.every((v) => typeof v === 'number');
const shapeText = (s: readonly unknown[]): string => `[${s.join(',')}]`;
const short = (sha: string): string => `${sha.slice(0, 12)}…`;

/** Differences between the profile's inputs and the model's, one line each. */
function inputProblems(inputs: readonly Json[], metadata: ModelMetadata): string[] {
  let expected;
  try {
    expected = profileInputs(metadata.inputs);
  } catch (e) {
    return [`the model's inputs cannot be profiled: ${(e as Error).message}`];
  }
  const problems: string[] = [];
  const given = new Map(inputs.map((i) => [String(i.name), i]));
  for (const m of expected) {
    const p = given.get(m.name);
    if (p === undefined) {
      problems.push(`the model has input "${m.name}" (${m.datatype} ${shapeText(m.rowShape)} per row), which the profile lacks`);
      continue;
    }
    if (p.datatype !== m.datatype) problems.push(`input "${m.name}": the profile has datatype ${String(p.datatype)}, the model ${m.datatype}`);
    const rowShape = Array.isArray(p.rowShape) ? p.rowShape : [];
    if (shapeText(rowShape) !== shapeText(m.rowShape)) problems.push(`input "${m.name}": the profile has row shape ${shapeText(rowShape)}, the model ${shapeText(m.rowShape)}`);
  }
  for (const name of given.keys()) {
    if (!expected.some((m) => m.name === name)) problems.push(`the profile has input "${name}", which the model lacks (it has ${expected.map((m) => m.name).join(', ')})`);
  }
  if (problems.length === 0 && inputs.some((p, i) => p.name !== expected[i]?.name)) {
    problems.push(`the profile's inputs are in another order than the model's (${expected.map((m) => m.name).join(', ')}), so its features are numbered differently`);
  }
  return problems;
}

/** Whether a tail (policies/guards/tail.ts) can be scored with: enough ascending finite scores, t and β. */
function tailOk(x: unknown): boolean {
  if (!isRecord(x) || !isNumbers(x.scores) || typeof x.tailRows !== 'number' || typeof x.tailMean !== 'number') return false;
  const s = x.scores as number[];
  return s.length >= MIN_TAIL_SCORES && s.every((v, i) => Number.isFinite(v) && (i === 0 || v >= s[i - 1]))
    && Number.isInteger(x.tailRows) && x.tailRows >= 1 && x.tailRows < s.length && x.tailMean > 0;
}

/** Whether a knn model's image part (policies/guards/image-ood.ts) fits its model: the one image input of d values. */
function imageProblems(image: unknown, d: number, inputs: readonly Json[]): string[] {
  const problems: string[] = [];
  const im = isRecord(image) ? image : {};
  const shape = inputs.length === 1 && Array.isArray(inputs[0].rowShape) ? inputs[0].rowShape : undefined;
  if (shape === undefined || !isNumbers(im.rowShape) || shapeText(im.rowShape as number[]) !== shapeText(shape) || !isImageInput({ rowShape: shape as number[] }) || shape.reduce((a: number, b: number) => a * b, 1) !== d) {
    problems.push(`\`ood.image\`: its row shape must be that of the model's one image input, of ${d} values`);
  }
  if (typeof im.low !== 'number' || typeof im.high !== 'number') problems.push('`ood.image` needs the pixel range (low, high)');
  const edges = isRecord(im.edges) ? im.edges : {};
  const stats = isRecord(im.stats) ? im.stats : {};
  const s = IMAGE_STATS;
  if (!tailOk(im.pixelTail) || !tailOk(edges.tail) || !tailOk(stats.tail)) problems.push(`\`ood.image\`: pixelTail, edges.tail and stats.tail each need at least ${MIN_TAIL_SCORES} ascending scores, tailRows and tailMean`);
  if (!isNumbers(edges.reference) || (edges.reference as number[]).length === 0 || (edges.reference as number[]).length % EDGE_COLUMNS !== 0) problems.push(`\`ood.image.edges.reference\` must hold rows of ${EDGE_COLUMNS} numbers`);
  const namesOk = Array.isArray(stats.names) && stats.names.join() === IMAGE_STAT_NAMES.join();
  if (!namesOk || !isNumbers(stats.center, s) || !isNumbers(stats.scale, s) || !isNumbers(stats.mean, s) || !isNumbers(stats.precision, s * s)) {
    problems.push(`\`ood.image.stats\` must name the statistics ${IMAGE_STAT_NAMES.join(', ')} and hold their center, scale, mean (${s} each) and precision (${s}×${s})`);
  }
  return problems;
}

/** Whether `x` is a list of n counts (non-negative integers); their sum, or NaN when they are not. */
function countsSum(x: unknown, n: number): number {
  if (!Array.isArray(x) || x.length !== n) return NaN;
  let sum = 0;
  for (const c of x) {
    if (!(typeof c === 'number' && Number.isInteger(c) && c >= 0)) return NaN;
    sum += c;
  }
  return sum;
}

/**
 * What is wrong with one drift block (gateway/drift/bins.ts) that should be named `name` and be of
 * `kind`: finite, strictly ascending edges or distinct categories, and a count per bin. Pushes the
 * problems and gives its counts' sum (NaN when broken).
 */
function driftBinsProblems(b: unknown, where: string, name: string, kind: unknown, problems: string[]): number {
  const at = `\`${where}\` ("${name}")`;
  if (!isRecord(b)) {
    problems.push(`${at} must be an object`);
    return NaN;
  }
  if (b.name !== name) problems.push(`\`${where}\` is named "${String(b.name)}", where "${name}" belongs`);
  let bins = -1;
  if (b.kind !== kind) problems.push(`${at} must be ${String(kind)}, not ${String(b.kind)}`);
  else if (kind === 'numeric') {
    const e = b.edges;
    if (isNumbers(e) && (e as number[]).every((v, i, a) => Number.isFinite(v) && (i === 0 || v > (a[i - 1] as number)))) bins = (e as number[]).length + 2;
    else problems.push(`${at}: its edges must be finite numbers in strictly ascending order`);
  } else {
    const c = b.categories;
    if (Array.isArray(c) && c.every((v) => typeof v === 'string') && new Set(c).size === c.length) bins = c.length + 2;
    else problems.push(`${at}: its categories must be distinct strings`);
  }
  if (bins < 0) return NaN;
  const sum = countsSum(b.counts, bins);
  if (Number.isNaN(sum)) problems.push(`${at}: it needs ${bins} counts (whole numbers, 0 or more), one per bin`);
  return sum;
}

/**
 * What is wrong with the drift monitor's reference (policies/guards/profile.ts DriftReference):
 * one block per feature, named and of the kind of the profile's feature, counting `rows` rows; with
 * an output, its class block (categories "0" … classes−1) and its score block (numeric), counting
 * the same answers, at most one per row; without one, no output blocks.
 */
function driftProblems(d: unknown, features: readonly Json[]): string[] {
  if (!isRecord(d)) return ['`drift` must be an object with rows, features and outputs'];
  const problems: string[] = [];
  const rows = typeof d.rows === 'number' && Number.isInteger(d.rows) && d.rows > 0 ? d.rows : NaN;
  if (Number.isNaN(rows)) problems.push('`drift.rows` must be a positive integer');
  const blocks = Array.isArray(d.features) ? d.features : [];
  if (!Array.isArray(d.features) || blocks.length !== features.length) problems.push(`\`drift.features\` must hold one entry per feature of the profile (${features.length}), in order`);
  else {
    blocks.forEach((b, i) => {
      const f = features[i] as Json;
      const sum = driftBinsProblems(b, `drift.features[${i}]`, String(f.name), f.kind, problems);
      if (!Number.isNaN(sum) && !Number.isNaN(rows) && sum !== rows) problems.push(`\`drift.features[${i}]\` ("${String(f.name)}"): its counts add up to ${sum}, not the ${rows} rows`);
    });
  }
  const outputs = Array.isArray(d.outputs) ? d.outputs : undefined;
  if (d.output === undefined) {
    if (outputs === undefined || outputs.length > 0) problems.push('`drift.outputs` must be an empty list when there is no `drift.output`');
    return problems;
  }
  const o = isRecord(d.output) ? d.output : {};
  if (typeof o.name !== 'string' || typeof o.logits !== 'boolean' || !(typeof o.classes === 'number' && Number.isInteger(o.classes) && o.classes >= 2)) {
    problems.push('`drift.output` needs a name, logits (true or false) and classes (2 or more)');
    return problems;
  }
  if (outputs === undefined || outputs.length !== 2) {
    problems.push(`\`drift.outputs\` must hold the two blocks of output "${o.name}": "${o.name}:class", then "${o.name}:score"`);
    return problems;
  }
  const classes = driftBinsProblems(outputs[0], 'drift.outputs[0]', `${o.name}:class`, 'categorical', problems);
  const scores = driftBinsProblems(outputs[1], 'drift.outputs[1]', `${o.name}:score`, 'numeric', problems);
  const categories = isRecord(outputs[0]) ? outputs[0].categories : undefined;
  if (Array.isArray(categories) && (categories.length !== o.classes || categories.some((c, j) => c !== String(j)))) {
    problems.push(`\`drift.outputs[0]\` ("${o.name}:class"): its categories must be the classes "0" … "${o.classes - 1}"`);
  }
  if (!Number.isNaN(classes) && !Number.isNaN(scores) && (classes !== scores || classes > rows)) {
    problems.push(`\`drift.outputs\`: the class and score blocks must count the same answers, at most one per row (${classes} and ${scores} for ${rows} rows)`);
  }
  return problems;
}

/** Whether the parts of a profile fit together (what the guards index into without checking). */
function structureProblems(p: Json): string[] {
  const problems: string[] = [];
  const inputs = Array.isArray(p.inputs) ? p.inputs.filter(isRecord) : [];
  const features = Array.isArray(p.features) ? p.features.filter(isRecord) : [];
  if (inputs.length === 0 || inputs.length !== (p.inputs as unknown[]).length) problems.push('`inputs` must be a non-empty list of inputs');
  let next = 0;
  for (const i of inputs) {
    if (i.firstFeature !== next || typeof i.featureCount !== 'number') problems.push(`input "${String(i.name)}": its features must follow the previous input's (firstFeature ${next})`);
    next += typeof i.featureCount === 'number' ? i.featureCount : 0;
  }
  if (features.length !== next || !Array.isArray(p.features) || p.features.length !== next) problems.push(`\`features\` must hold one entry per feature of the inputs (${next})`);
  if (!isNumbers(p.quantileProbs)) problems.push('`quantileProbs` must be a list of numbers');
  const probs = Array.isArray(p.quantileProbs) ? p.quantileProbs.length : 0;
  features.forEach((f, i) => {
    if (f.kind === 'numeric') {
      const ok = ['min', 'max', 'mean', 'std', 'missingRate'].every((k) => typeof f[k] === 'number') && isNumbers(f.quantiles, probs);
      if (!ok) problems.push(`feature ${i} ("${String(f.name)}"): a numeric feature needs min, max, mean, std, missingRate and ${probs} quantiles`);
      // The contract's bounds are optional (profiles written before them lack them); present, they enclose [min, max].
      const boundsOk = (f.low === undefined || (typeof f.low === 'number' && f.low <= (f.min as number)))
        && (f.high === undefined || (typeof f.high === 'number' && f.high >= (f.max as number)));
      if (ok && !boundsOk) problems.push(`feature ${i} ("${String(f.name)}"): its contract bounds low and high must be numbers with low <= min and high >= max`);
    } else if (f.kind === 'categorical') {
      if (!isRecord(f.categories) || typeof f.missingRate !== 'number') problems.push(`feature ${i} ("${String(f.name)}"): a categorical feature needs categories and missingRate`);
    } else {
      problems.push(`feature ${i}: unknown kind "${String(f.kind)}"`);
    }
  });
  const ood = isRecord(p.ood) ? p.ood : {};
  const encoder = isRecord(ood.encoder) ? ood.encoder : {};
  const d = typeof encoder.columns === 'number' ? encoder.columns : -1;
  if (d < 0 || !Array.isArray(encoder.features) || encoder.features.length !== next) problems.push('`ood.encoder` must have `columns` and one entry per feature');
  if (ood.method === 'mixture') {
    const components = Array.isArray(ood.components) ? ood.components : [];
    const ok = components.length > 0 && components.every((c) => isRecord(c) && typeof c.weight === 'number' && c.weight > 0 && typeof c.logNorm === 'number' && isNumbers(c.mean, d) && isNumbers(c.precision, d * d));
    if (!ok) problems.push(`\`ood\`: a mixture model needs components, each with a weight, a logNorm, a mean of ${d} and a precision of ${d}×${d} numbers`);
  } else if (ood.method === 'mahalanobis') {
    if (!isNumbers(ood.mean, d) || !isNumbers(ood.precision, d * d)) problems.push(`\`ood\`: a Mahalanobis model needs a mean of ${d} and a precision of ${d}×${d} numbers`);
  } else if (ood.method === 'knn') {
    const rows = typeof ood.rows === 'number' ? ood.rows : -1;
    if (!(rows > 0) || !isNumbers(ood.reference, rows * d) || typeof ood.k !== 'number' || !(ood.k >= 1 && ood.k <= rows)) problems.push(`\`ood\`: a knn model needs k (1 to rows) and rows × ${d} reference values`);
    if (ood.image !== undefined) problems.push(...imageProblems(ood.image, d, inputs));
  } else {
    problems.push(`\`ood.method\` "${String(ood.method)}" is unknown (mixture, mahalanobis or knn)`);
  }
  const extraction = isRecord(p.extraction) ? p.extraction : {};
  if (!isNumbers(extraction.stepQuantiles, probs)) problems.push(`\`extraction.stepQuantiles\` must hold ${probs} numbers`);
  if (!(typeof extraction.tinyStep === 'number' && extraction.tinyStep >= 0)) problems.push('`extraction.tinyStep` must be a distance, 0 or more (profiles from before it: rebuild with breakwater profile)');
  for (const rate of ['tinyRate', 'latticeRate']) {
    const v = extraction[rate];
    if (!(typeof v === 'number' && v >= 0 && v <= 1)) problems.push(`\`extraction.${rate}\` must be a share, 0 to 1 (profiles from before it: rebuild with breakwater profile)`);
  }
  const cal = isRecord(p.calibration) ? p.calibration : {};
  if (typeof cal.ood !== 'number' || typeof cal.targetFpr !== 'number') problems.push('`calibration` needs targetFpr and an ood threshold');
  if (cal.oodRows !== undefined && !(typeof cal.oodRows === 'number' && Number.isInteger(cal.oodRows) && cal.oodRows > 0)) problems.push('`calibration.oodRows`, when given, must be a positive integer');
  if (p.squeeze !== undefined) {
    const sq = isRecord(p.squeeze) ? p.squeeze : {};
    const names = new Set(inputs.map((i) => i.name));
    const squeezers = Array.isArray(sq.squeezers) ? sq.squeezers.filter(isRecord) : [];
    if (typeof sq.output !== 'string' || typeof sq.logits !== 'boolean' || squeezers.length === 0) problems.push('`squeeze` needs an output, logits and squeezers');
    for (const s of squeezers) if (!names.has(s.input)) problems.push(`a squeezer acts on input "${String(s.input)}", which the profile does not have`);
    if (typeof cal.squeeze === 'number') problems.push('`calibration.squeeze` is one threshold for all squeezers, as profiles were written before each squeezer had its own (rebuild it with breakwater profile)');
    else if (!isNumbers(cal.squeeze, squeezers.length)) problems.push(`\`calibration.squeeze\`: a profile with a squeeze section needs its thresholds, one per squeezer (${squeezers.length})`);
  }
  // Optional: profiles written before the drift monitor lack it.
  if (p.drift !== undefined) problems.push(...driftProblems(p.drift, features));
  return problems;
}

/**
 * Every reason `value` cannot serve as the profile of a version with this model (empty: it can).
 * The model's metadata and file hash are compared when known.
 */
export function profileProblems(value: unknown, loaded: LoadedModel): string[] {
  if (!isRecord(value)) return ['not a profile: the file must hold a JSON object'];
  if (value.format !== PROFILE_FORMAT) return [`unknown format ${JSON.stringify(value.format ?? null)}: this gateway reads "${PROFILE_FORMAT}" (rebuild it with breakwater profile)`];
  const problems: string[] = [];
  const sha = value.modelSha256;
  if (typeof sha === 'string' && loaded.artifactSha256 !== undefined && sha !== loaded.artifactSha256) {
    problems.push(`it was built for ${String(value.model)} version ${String(value.version)}, a model file with SHA-256 ${short(sha)}, and this version's file has ${short(loaded.artifactSha256)} (rebuild it with breakwater profile)`);
  }
  const inputs = Array.isArray(value.inputs) ? value.inputs.filter(isRecord) : [];
  if (loaded.metadata !== undefined) {
    problems.push(...inputProblems(inputs, loaded.metadata));
    const output = isRecord(value.squeeze) ? value.squeeze.output : undefined;
    if (typeof output === 'string' && !loaded.metadata.outputs.some((o) => o.name === output)) problems.push(`its squeeze section compares output "${output}", which the model lacks`);
    const drifting = isRecord(value.drift) && isRecord(value.drift.output) ? value.drift.output.name : undefined;
    if (typeof drifting === 'string' && !loaded.metadata.outputs.some((o) => o.name === drifting)) problems.push(`its drift reference bins output "${drifting}", which the model lacks`);
  }
  // Structure last: a profile for another model mostly fails the checks above, which say why better.
  if (problems.length === 0) problems.push(...structureProblems(value));
  return problems;
}

async function readProfileFile(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new Error(`the profile ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { cause: e });
  }
}

/** The loader compose.ts gives the model table. */
export function profileLoader(): ArtifactLoader {
  return {
    name: PROFILE_ARTIFACT,
    async source(_model, _version, config) {
      if (config.profile === undefined) return undefined;
      return `${config.profile} sha256:${createHash('sha256').update(await readProfileFile(config.profile)).digest('hex')}`;
    },
    async load(_model, _version, config, loaded): Promise<Profile> {
      const path = config.profile as string;
      let value: unknown;
      try {
        value = JSON.parse((await readProfileFile(path)).toString('utf8'));
      } catch (e) {
        if (e instanceof SyntaxError) throw new Error(`the profile ${path} is not JSON: ${e.message}`, { cause: e });
        throw e;
      }
      const problems = profileProblems(value, loaded);
      if (problems.length > 0) throw new Error(`the profile ${path} does not fit this version: ${problems.join('; ')}`);
      return deepFreeze(value as Profile);
    },
  };
}
