/**
 * `breakwater profile`'s work: a model version's reference profile (policies/guards/profile.ts)
 * from its reference data, with the model itself (its metadata and, for squeezing, its answers)
 * taken from the real backend through the same adapter `serve` uses.
 *
 * The rows are split by a seeded hash of their index: 70 % reference, 30 % held out. The detectors
 * (the encoder, the OOD model, the extraction monitor's steps, measured on a benign caller drawing
 * reference rows at random with the same seed) are fitted on the reference rows only and each
 * guard's threshold is calibrated on the held-out rows (calibrate.ts), which the detectors never
 * saw. The per-feature statistics the contract checks (types, ranges, categories, missing values)
 * have no threshold to calibrate and are taken from every row: a range from 70 % of the data would
 * be narrower than the data's own.
 */
import { basename } from 'node:path';
import type { Adapter, InferRequest, InferResponse, ModelMetadata, TensorMetadata } from '../../adapters/adapter.js';
import { artifactSha256 } from '../../adapters/artifact.js';
import { createAdapter } from '../../adapters/registry.js';
import { calibrateThreshold, CALIBRATION_METHOD } from '../../policies/guards/calibrate.js';
import { featureNames, isImageInput, profileInputs, requestFromRows, type ColumnMap, type RowValues } from '../../policies/guards/features.js';
import { fitOod, KNN_MAX_REFERENCE, oodScore } from '../../policies/guards/ood.js';
import { PROFILE_FORMAT, type FeatureProfile, type Profile, type ProfileInput, type SqueezeProfile, type Squeezer } from '../../policies/guards/profile.js';
import { QUANTILE_PROBS, quantilesOf } from '../../policies/guards/quantiles.js';
import { squeezeRequests, squeezeScores } from '../../policies/guards/squeeze.js';
import { benignSteps } from '../../policies/guards/steps.js';
import { hash32 } from '../../policies/traffic-split.js';
import type { GatewayConfig } from '../config.js';
import { readReferenceData } from './read-data.js';

/** Share of the rows the detectors are fitted on; the rest calibrates their thresholds. */
export const REFERENCE_SHARE = 0.7;
/** The false-positive rate thresholds are set to when the model's `guards.targetFpr` is not given. */
export const DEFAULT_TARGET_FPR = 0.01;
export const DEFAULT_SEED = 1;

/**
 * The deterministic split of n rows: row indices ordered by their seeded hash; the first
 * round(share·n) are the reference, the rest held out (both in that random order).
 */
export function splitRows(n: number, seed: number, share = REFERENCE_SHARE): { reference: number[]; heldOut: number[] } {
  const order = Array.from({ length: n }, (_, i) => i);
  // The traffic split's hash (FNV-1a, then murmur3's finaliser) of "seed:index".
  const h = order.map((i) => hash32(`${seed}:${i}`));
  order.sort((a, b) => h[a] - h[b] || a - b);
  const cut = Math.round(share * n);
  return { reference: order.slice(0, cut), heldOut: order.slice(cut) };
}

/** The statistics of each feature over `rows` (profile.ts NumericFeature, CategoricalFeature). */
export function featureProfiles(inputs: readonly ProfileInput[], rows: readonly RowValues[], probs: readonly number[] = QUANTILE_PROBS): FeatureProfile[] {
  const out: FeatureProfile[] = [];
  for (const input of inputs) {
    const intType = /INT|BOOL/.test(input.datatype);
    const names = featureNames(input);
    for (let j = 0; j < input.featureCount; j++) {
      const f = input.firstFeature + j;
      const name = names[j] as string;
      let missing = 0;
      if (input.datatype === 'BYTES') {
        const counts = new Map<string, number>();
        for (const row of rows) {
          const v = row[f];
          if (typeof v === 'string') counts.set(v, (counts.get(v) ?? 0) + 1);
          else missing++;
        }
        const present = rows.length - missing;
        const categories: Record<string, number> = {};
        for (const [c, k] of [...counts].sort((a, b) => (a[0] < b[0] ? -1 : 1))) categories[c] = k / present;
        out.push({ kind: 'categorical', name, input: input.name, categories, missingRate: rows.length === 0 ? 0 : missing / rows.length });
        continue;
      }
      const values: number[] = [];
      for (const row of rows) {
        const v = row[f];
        if (typeof v === 'number') {
          if (Number.isFinite(v)) values.push(v);
        } else missing++;
      }
      let min = Infinity;
      let max = -Infinity;
      let sum = 0;
      let integer = true;
      for (const v of values) {
        if (v < min) min = v;
        if (v > max) max = v;
        sum += v;
        if (integer && !Number.isInteger(v)) integer = false;
      }
      const mean = values.length === 0 ? 0 : sum / values.length;
      let ss = 0;
      for (const v of values) ss += (v - mean) * (v - mean);
      out.push({
        kind: 'numeric',
        name,
        input: input.name,
        integer: intType || integer,
        min: values.length === 0 ? 0 : min,
        max: values.length === 0 ? 0 : max,
        mean,
        std: values.length < 2 ? 0 : Math.sqrt(ss / (values.length - 1)),
        quantiles: quantilesOf(values, probs),
        missingRate: rows.length === 0 ? 0 : missing / rows.length,
      });
    }
  }
  return out;
}

/** An output that holds a probability (or logit) vector per row: floating point, [batch, classes ≥ 2]. */
export function scoreOutput(outputs: readonly TensorMetadata[]): TensorMetadata | undefined {
  const candidates = outputs.filter((o) => o.datatype.startsWith('FP') && o.shape.length === 2 && o.shape[1] >= 2);
  return candidates.find((o) => /prob/i.test(o.name)) ?? candidates[0];
}

/** Bits that make a step of at most 1/16 of the narrowest feature's range over the input's whole range (4 to 8). */
function tabularBits(range: number, narrowest: number): number {
  if (!(narrowest > 0) || !(range > 0)) return 4;
  return Math.min(8, Math.max(4, Math.ceil(Math.log2((16 * range) / narrowest))));
}

/**
 * The squeezers for a model's floating-point inputs (Xu et al., NDSS 2018): an image is reduced to
 * 1 bit over its pixels' reference range and median-filtered 2×2; a tabular input is reduced to
 * enough bits over its features' reference range that its narrowest feature keeps 16 levels.
 */
export function chooseSqueezers(inputs: readonly ProfileInput[], features: readonly FeatureProfile[]): Squeezer[] {
  const out: Squeezer[] = [];
  for (const input of inputs) {
    if (!input.datatype.startsWith('FP')) continue;
    const fs = features.slice(input.firstFeature, input.firstFeature + input.featureCount);
    let min = Infinity;
    let max = -Infinity;
    let narrowest = Infinity;
    for (const f of fs) {
      if (f.kind !== 'numeric') continue;
      min = Math.min(min, f.min);
      max = Math.max(max, f.max);
      if (f.max > f.min) narrowest = Math.min(narrowest, f.max - f.min);
    }
    if (!(max > min)) continue;
    if (isImageInput(input)) {
      out.push({ kind: 'bit-depth', input: input.name, bits: 1, min, max }, { kind: 'median', input: input.name, size: 2 });
    } else {
      out.push({ kind: 'bit-depth', input: input.name, bits: tabularBits(max - min, narrowest), min, max });
    }
  }
  return out;
}

/** Rows per inference call when the model's batch dimension is dynamic. */
const BATCH_ROWS = 256;

/** One inference call of the calibration: the rows' request and the model's answer. */
interface Answered {
  readonly request: InferRequest;
  readonly response: InferResponse;
  readonly rows: number;
}

/**
 * Runs the model on `rows`, asking for `output` only. A fixed batch dimension b is honoured with
 * calls of exactly b rows (rows that do not fill the last call are left out).
 */
async function answer(adapter: Adapter, batch: number, inputs: readonly ProfileInput[], rows: readonly RowValues[], output: string, timeoutMs: number): Promise<Answered[]> {
  const size = batch > 0 ? batch : BATCH_ROWS;
  const out: Answered[] = [];
  for (let at = 0; at + (batch > 0 ? size : 1) <= rows.length; at += size) {
    const chunk = rows.slice(at, at + size);
    const request = { ...requestFromRows(inputs, chunk), outputs: [{ name: output }] };
    const response = await adapter.infer(request, { deadline: Date.now() + timeoutMs, requestId: `profile-${at}` });
    out.push({ request, response, rows: chunk.length });
  }
  return out;
}

/** The rows of `output` in the answers, one vector per row. */
function outputRows(answers: readonly Answered[], output: string): Float64Array[] {
  return answers.flatMap((a) => {
    const t = a.response.outputs.find((o) => o.name === output);
    if (t === undefined) throw new Error(`the model did not return output "${output}"`);
    const data = t.data as ArrayLike<unknown>;
    const width = data.length / a.rows;
    return Array.from({ length: a.rows }, (_, r) => Float64Array.from({ length: width }, (_, j) => Number(data[r * width + j])));
  });
}

/**
 * The squeeze section and its held-out scores: the model answers the held-out rows and their
 * squeezed copies (policies/guards/squeeze.ts, in the layout the guard itself sends), and each row's
 * score is the largest L1 gap between the probability vectors. Undefined when the model has no
 * probability or logit output, or no floating-point input to squeeze.
 */
export async function squeezeCalibration(adapter: Adapter, metadata: ModelMetadata, inputs: readonly ProfileInput[], features: readonly FeatureProfile[], heldOutRows: readonly RowValues[], timeoutMs: number): Promise<{ squeeze: SqueezeProfile; scores: number[] } | undefined> {
  const output = scoreOutput(metadata.outputs);
  const squeezers = chooseSqueezers(inputs, features);
  if (output === undefined || squeezers.length === 0) return undefined;
  const batch = metadata.inputs[0]?.shape[0] ?? -1;
  const originals = await answer(adapter, batch, inputs, heldOutRows, output.name, timeoutMs);
  const squeeze: SqueezeProfile = { output: output.name, logits: !areProbabilities(outputRows(originals, output.name)), squeezers };
  const scores: number[] = [];
  for (const [i, a] of originals.entries()) {
    const copies = squeezeRequests(squeeze, a.request, batch < 0);
    const answers: InferResponse[] = [];
    for (const [k, copy] of copies.entries()) answers.push(await adapter.infer(copy, { deadline: Date.now() + timeoutMs, requestId: `profile-squeeze-${i}-${k}` }));
    scores.push(...squeezeScores(squeeze, a.response, answers, a.rows));
  }
  return { squeeze, scores };
}

/** Whether every row is a probability vector (values in [0, 1] summing to 1); otherwise they are logits. */
export function areProbabilities(rows: readonly Float64Array[]): boolean {
  return rows.every((v) => {
    let sum = 0;
    for (const x of v) {
      if (!(x >= 0 && x <= 1)) return false;
      sum += x;
    }
    return Math.abs(sum - 1) < 1e-3;
  });
}

export interface ProfileRequest {
  readonly config: GatewayConfig;
  readonly model: string;
  /** The model's stable version when not given. */
  readonly version?: string;
  /** The reference data file (CSV or JSONL). */
  readonly data: string;
  readonly map?: ColumnMap;
  readonly seed?: number;
  /** Overrides `models.<m>.guards.targetFpr`. */
  readonly targetFpr?: number;
}

/** `models.<m>.guards.targetFpr`, read without relying on the guards section's schema. */
function configuredTargetFpr(config: GatewayConfig, model: string): number | undefined {
  const guards = (config.models[model] as { guards?: { targetFpr?: unknown } } | undefined)?.guards;
  return typeof guards?.targetFpr === 'number' ? guards.targetFpr : undefined;
}

/** Builds the profile of one model version from its reference data. */
export async function buildProfile(req: ProfileRequest): Promise<Profile> {
  const mc = req.config.models[req.model];
  if (mc === undefined) throw new Error(`model "${req.model}" is not in the configuration (it has ${Object.keys(req.config.models).join(', ')})`);
  const version = req.version ?? mc.stable;
  const vc = mc.versions[version];
  if (vc === undefined) throw new Error(`model ${req.model} has no version "${version}" (it has ${Object.keys(mc.versions).join(', ')})`);
  const targetFpr = req.targetFpr ?? configuredTargetFpr(req.config, req.model) ?? DEFAULT_TARGET_FPR;
  const seed = req.seed ?? DEFAULT_SEED;

  const adapter = createAdapter(vc.backend);
  try {
    const [modelSha256] = await Promise.all([artifactSha256(vc.backend), adapter.load()]);
    const metadata = adapter.metadata();
    const inputs = profileInputs(metadata.inputs);
    const data = await readReferenceData(req.data, inputs, metadata, req.map);
    const rows = data.rows;
    const { reference, heldOut } = splitRows(rows.length, seed);
    if (heldOut.length < 20) throw new Error(`the data has ${rows.length} rows; at least 67 are needed (30 % of them, 20 or more, calibrate the thresholds)`);
    const features = featureProfiles(inputs, rows);
    const referenceRows = reference.map((i) => rows[i] as RowValues);
    const heldOutRows = heldOut.map((i) => rows[i] as RowValues);

    const ood = fitOod(features, referenceRows, inputs);
    const oodThreshold = calibrateThreshold(heldOutRows.map((r) => oodScore(ood, r)), targetFpr);
    let draw = 0;
    const steps = benignSteps(ood.encoder, referenceRows.slice(0, KNN_MAX_REFERENCE), () => hash32(`${seed}:steps:${draw++}`) / 2 ** 32);
    const squeezed = await squeezeCalibration(adapter, metadata, inputs, features, heldOutRows, mc.inferTimeoutMs);

    return {
      format: PROFILE_FORMAT,
      model: req.model,
      version,
      createdAt: new Date().toISOString(),
      modelSha256: modelSha256 ?? null,
      data: { file: basename(req.data), sha256: data.sha256, rows: rows.length, referenceRows: reference.length, heldOutRows: heldOut.length },
      quantileProbs: QUANTILE_PROBS,
      inputs,
      features,
      ood,
      ...(squeezed === undefined ? {} : { squeeze: squeezed.squeeze }),
      // Data without two distinct rows has no steps: quantiles of 0.
      extraction: { stepQuantiles: quantilesOf(steps.distances.length > 0 ? steps.distances : [0]), tinyStep: steps.tinyStep, tinyRate: steps.tinyRate, latticeRate: steps.latticeRate },
      calibration: {
        targetFpr,
        method: CALIBRATION_METHOD,
        heldOutRows: heldOut.length,
        ood: oodThreshold,
        ...(squeezed === undefined ? {} : { squeeze: calibrateThreshold(squeezed.scores, targetFpr) }),
      },
    };
  } finally {
    await adapter.close();
  }
}
