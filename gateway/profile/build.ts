/**
 * `breakwater profile`'s work: a model version's reference profile (policies/guards/profile.ts)
 * from its reference data, with the model itself (its metadata and, for squeezing, its answers)
 * taken from the real backend through the same adapter `serve` uses.
 *
 * The rows are split by a seeded hash of their index: 70 % reference, 30 % held out. The encoder
 * and the extraction monitor's steps (measured on a benign caller drawing reference rows at random
 * with the same seed) are fitted on the reference rows only. The squeezing guard fits nothing, so its squeezers are chosen and its
 * thresholds set on every row (squeezer-selection.ts): more rows, a steadier tail. The per-feature
 * statistics the contract checks (types, ranges and their bounds, categories, missing values) have
 * no threshold to calibrate and are taken from every row: a range from 70 % of the data would be
 * narrower than the data's own.
 *
 * The out-of-distribution detector (a tabular model's mixture, an image model's image detector) is
 * fitted on every row, and its threshold set from cross-fitted scores of every row by the confident
 * rule (policies/guards/ood.ts fitOodForCalibration, image-ood.ts, calibrate.ts): a hundred rows or
 * a few hundred images are too few to spare 30 % of them, and too few for a threshold from 30 %.
 * Only a knn model of wide rows that are not an image is fitted on the reference rows and
 * calibrated on the held-out rows.
 *
 * The drift monitor's reference (drift-reference.ts) is binned from every row and from the model's
 * answers to every row: the same answers the squeeze calibration compares (answers.ts), asked once.
 */
import { basename } from 'node:path';
import type { Adapter, InferResponse } from '../../adapters/adapter.js';
import { artifactSha256 } from '../../adapters/artifact.js';
import { createAdapter } from '../../adapters/registry.js';
import { calibrateThreshold, CALIBRATION_METHOD, CONFIDENT_METHOD, confidentThreshold } from '../../policies/guards/calibrate.js';
import { featureNames, isImageInput, profileInputs, type ColumnMap, type RowValues } from '../../policies/guards/features.js';
import { IMAGE_OOD_FOLDS } from '../../policies/guards/image-ood.js';
import { fitOodForCalibration, KNN_MAX_REFERENCE, MIXTURE_FOLDS } from '../../policies/guards/ood.js';
import { PROFILE_FORMAT, type FeatureProfile, type Profile, type ProfileInput, type SqueezeProfile, type Squeezer } from '../../policies/guards/profile.js';
import { QUANTILE_PROBS, quantilesOf } from '../../policies/guards/quantiles.js';
import { squeezeRequests, squeezeScores } from '../../policies/guards/squeeze.js';
import { benignSteps } from '../../policies/guards/steps.js';
import { hash32 } from '../../policies/traffic-split.js';
import type { GatewayConfig } from '../config.js';
import { modelAnswers, type ModelAnswers } from './answers.js';
import { driftReference } from './drift-reference.js';
import { extremeBounds } from './extreme-bounds.js';
import { readReferenceData } from './read-data.js';
import { selectionMethod, selectSqueezers } from './squeezer-selection.js';

/** How an image model's out-of-distribution threshold is set, in words (Calibration.method). */
export const IMAGE_OOD_METHOD = 'the detector is fitted on every row (reference and held out); each row is scored by the detector fitted '
  + `without its tenth of the rows (${IMAGE_OOD_FOLDS}-fold cross-fitting, rows folded in the seeded order), and ${CONFIDENT_METHOD}`;
/** How a tabular model's (the mixture's) out-of-distribution threshold is set, in words. */
export const MIXTURE_OOD_METHOD = 'the mixture is fitted on every row (reference, then held out, each in the seeded order); row i is scored by the mixture fitted '
  + `without the rows of its fold (i mod ${MIXTURE_FOLDS}), and ${CONFIDENT_METHOD}`;

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

/** The finite values of features [from, to) over `rows`, ascending. */
function sortedValues(rows: readonly RowValues[], from: number, to: number): Float64Array {
  const values: number[] = [];
  for (const row of rows) {
    for (let f = from; f < to; f++) {
      const v = row[f];
      if (typeof v === 'number' && Number.isFinite(v)) values.push(v);
    }
  }
  return Float64Array.from(values).sort();
}

/**
 * The statistics of each feature over `rows` (profile.ts NumericFeature, CategoricalFeature). The
 * contract's bounds (`low`, `high`: extreme-bounds.ts) are per feature, except for an image, whose
 * pixels share the bounds of all their values taken together (as the contract pools their range).
 */
export function featureProfiles(inputs: readonly ProfileInput[], rows: readonly RowValues[], probs: readonly number[] = QUANTILE_PROBS): FeatureProfile[] {
  const out: FeatureProfile[] = [];
  for (const input of inputs) {
    const intType = /INT|BOOL/.test(input.datatype);
    const fp32 = input.datatype === 'FP32';
    const names = featureNames(input);
    const pooled = isImageInput(input) && input.datatype !== 'BYTES' ? sortedValues(rows, input.firstFeature, input.firstFeature + input.featureCount) : undefined;
    const pooledBounds = pooled !== undefined && pooled.length > 0 ? extremeBounds(pooled, fp32) : undefined;
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
      const bounds = pooledBounds ?? (values.length === 0 ? undefined : extremeBounds(Float64Array.from(values).sort(), fp32));
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
        ...(bounds === undefined ? {} : { low: bounds[0], high: bounds[1] }),
      });
    }
  }
  return out;
}

/** Bits that make a step of at most 1/16 of the narrowest feature's range over the input's whole range (4 to 8). */
function tabularBits(range: number, narrowest: number): number {
  if (!(narrowest > 0) || !(range > 0)) return 4;
  return Math.min(8, Math.max(4, Math.ceil(Math.log2((16 * range) / narrowest))));
}

/**
 * The candidate squeezers for a model's floating-point inputs (the profile keeps those that leave
 * clean answers alone: squeezer-selection.ts). An image: Xu et al.'s for MNIST, 1 bit over its
 * pixels' reference range and a 2×2 median, and 2 bits. A bit depth b undoes a perturbation smaller
 * than half its step, 1/(2(2^b − 1)) of the range, on a value at one of its levels: 1 bit undoes
 * any ε < 0.5 on saturated pixels but turns every grey black or white; 2 bits keep greys at 1/3 and
 * 2/3 (clean answers move less) and undo ε < 1/6. A tabular input is reduced to enough bits over its
 * features' reference range that its narrowest feature keeps 16 levels.
 */
export function candidateSqueezers(inputs: readonly ProfileInput[], features: readonly FeatureProfile[]): Squeezer[] {
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
      out.push(
        { kind: 'bit-depth', input: input.name, bits: 1, min, max },
        { kind: 'bit-depth', input: input.name, bits: 2, min, max },
        { kind: 'median', input: input.name, size: 2 },
      );
    } else {
      out.push({ kind: 'bit-depth', input: input.name, bits: tabularBits(max - min, narrowest), min, max });
    }
  }
  return out;
}

/** The squeeze section, its thresholds and how they were chosen (`Calibration.method`'s squeeze part). */
export interface SqueezeCalibration {
  readonly squeeze: SqueezeProfile;
  readonly thresholds: number[];
  readonly rows: number;
  readonly method: string;
}

/**
 * The squeeze section and its thresholds: the model's answers to `rows` (answers.ts) are compared
 * with its answers to their copies under every candidate squeezer (policies/guards/squeeze.ts, in
 * the layout the guard itself sends); each candidate's scores are the L1 gaps between the
 * probability vectors; squeezer-selection.ts keeps the candidates that leave clean answers alone and
 * sets each one's threshold. A squeeze score fits nothing, so every row of the data may be scored.
 * Undefined when the model has no probability or logit output, or no floating-point input to squeeze.
 */
export async function squeezeCalibration(adapter: Adapter, answers: ModelAnswers | undefined, inputs: readonly ProfileInput[], features: readonly FeatureProfile[], targetFpr: number, timeoutMs: number): Promise<SqueezeCalibration | undefined> {
  const candidates = candidateSqueezers(inputs, features);
  if (answers === undefined || candidates.length === 0) return undefined;
  const all: SqueezeProfile = { output: answers.output, logits: answers.logits, squeezers: candidates };
  const scores: number[][] = candidates.map(() => []);
  for (const [i, a] of answers.calls.entries()) {
    const copies = squeezeRequests(all, a.request, answers.batch < 0);
    const squeezed: InferResponse[] = [];
    for (const [k, copy] of copies.entries()) squeezed.push(await adapter.infer(copy, { deadline: Date.now() + timeoutMs, requestId: `profile-squeeze-${i}-${k}` }));
    squeezeScores(all, a.response, squeezed, a.rows).forEach((s, k) => scores[k].push(...s));
  }
  const choice = selectSqueezers(scores, targetFpr);
  const scored = scores[0].length;
  return {
    squeeze: { ...all, squeezers: choice.kept.map((k) => candidates[k]) },
    thresholds: [...choice.thresholds],
    rows: scored,
    method: selectionMethod(candidates, choice, scored, targetFpr),
  };
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

    const fitted = fitOodForCalibration(features, referenceRows, heldOutRows, inputs);
    const ood = fitted.model;
    const oodThreshold = fitted.crossFitted ? confidentThreshold(fitted.scores, targetFpr) : calibrateThreshold(fitted.scores, targetFpr);
    let draw = 0;
    const steps = benignSteps(ood.encoder, referenceRows.slice(0, KNN_MAX_REFERENCE), () => hash32(`${seed}:steps:${draw++}`) / 2 ** 32);
    // The model answers every row once; the squeeze calibration and the drift reference share the answers.
    const answers = await modelAnswers(adapter, metadata, inputs, rows, mc.inferTimeoutMs);
    const squeezed = await squeezeCalibration(adapter, answers, inputs, features, targetFpr, mc.inferTimeoutMs);
    const drift = driftReference(features, rows, answers === undefined ? undefined : {
      output: { name: answers.output, logits: answers.logits, classes: answers.classes },
      rows: answers.rows,
    });

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
        method: [CALIBRATION_METHOD, ...(fitted.crossFitted ? [ood.method === 'mixture' ? `except out of distribution (a Gaussian mixture): ${MIXTURE_OOD_METHOD}` : `except out of distribution (an image model): ${IMAGE_OOD_METHOD}`] : []), ...(squeezed === undefined ? [] : [squeezed.method])].join('; '),
        heldOutRows: heldOut.length,
        ood: oodThreshold,
        ...(fitted.crossFitted ? { oodRows: fitted.scores.length } : {}),
        ...(squeezed === undefined ? {} : { squeeze: squeezed.thresholds, squeezeRows: squeezed.rows }),
      },
      drift,
    };
  } finally {
    await adapter.close();
  }
}
