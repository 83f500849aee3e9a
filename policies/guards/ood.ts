/**
 * The out-of-distribution detector: how far a row lies from the reference data, in the encoder's
 * space (encoder.ts). Low-dimensional inputs (tabular: at most 64 encoded columns) use a Gaussian
 * mixture (mixture.ts: one to four components, each with a shrunk covariance after Ledoit & Wolf,
 * 2004), the score being the row's negative log-density: a mixture follows data that forms groups
 * (species, classes), and its shrunk covariances cope with one-hot columns that are linearly
 * dependent and with categories never seen (their `unknown` column has no variance in the
 * reference, so any weight on it is far). Profiles written before the mixture hold one Gaussian
 * (`mahalanobis`: the distance to its mean), still read and scored. High-dimensional
 * inputs (images) use the mean Euclidean distance to the k = 5 nearest of at most 1000 reference
 * rows: a covariance of 784 pixels cannot be estimated from a few hundred images. A model whose one
 * input is an image gets the image detector (image-ood.ts), of which that distance is one part, and
 * its threshold is calibrated from cross-fitted scores of every reference row (fitOodForCalibration),
 * as is the mixture's.
 *
 * Scoring runs on the request path: the fitted model is compiled once (per model object) into typed
 * arrays and preallocated buffers, and a call allocates nothing.
 */
import { mahalanobis } from './covariance.js';
import { encode, fitEncoder } from './encoder.js';
import { isImageInput, type RowValues } from './features.js';
import { compileImage, fitImageOod, imageScore, type CompiledImage } from './image-ood.js';
import { knnMeanDistance, knnReference, type KnnReference } from './knn.js';
import { compileMixture, fitMixture, mixtureScore, type CompiledMixture } from './mixture.js';
import type { EncoderSpec, FeatureProfile, OodModel, ProfileInput } from './profile.js';

/** Encoded columns up to which the mixture is used; above it, k nearest neighbours. */
export const TABULAR_MAX_COLUMNS = 64;
export const KNN_K = 5;
/** Reference rows kept for k nearest neighbours: bounds the cost of a score (rows × columns). */
export const KNN_MAX_REFERENCE = 1000;

/** The reference rows encoded, row-major. */
export function encodeRows(spec: EncoderSpec, rows: readonly RowValues[]): Float64Array {
  const d = spec.columns;
  const out = new Float64Array(rows.length * d);
  for (let r = 0; r < rows.length; r++) encode(spec, rows[r], out.subarray(r * d, (r + 1) * d));
  return out;
}

/**
 * Fits the detector on reference rows (features in profile order). For k nearest neighbours the
 * first KNN_MAX_REFERENCE rows are kept: give them in a random order (build.ts: the seeded split).
 */
export function fitOod(features: readonly FeatureProfile[], referenceRows: readonly RowValues[], inputs: readonly ProfileInput[] = []): OodModel {
  if (referenceRows.length < 2) throw new Error(`the out-of-distribution model needs at least 2 reference rows (got ${referenceRows.length})`);
  const encoder = fitEncoder(features, inputs);
  const d = encoder.columns;
  if (d <= TABULAR_MAX_COLUMNS) {
    const { components } = fitMixture(encodeRows(encoder, referenceRows), referenceRows.length, d);
    return { method: 'mixture', encoder, components };
  }
  const kept = referenceRows.slice(0, KNN_MAX_REFERENCE);
  return { method: 'knn', encoder, k: Math.min(KNN_K, kept.length), rows: kept.length, reference: [...encodeRows(encoder, kept)] };
}

/** A fitted model as typed arrays, with the buffers one score needs. */
interface Compiled {
  readonly x: Float64Array;
  readonly center: Float64Array;
  /** Mahalanobis: the precision. */
  readonly matrix: Float64Array;
  /** knn: the reference rows. */
  readonly knn: KnnReference | undefined;
  /** knn with an image part. */
  readonly image: CompiledImage | undefined;
  /** mixture. */
  readonly mixture: CompiledMixture | undefined;
}

const compiled = new WeakMap<OodModel, Compiled>();

function compile(model: OodModel): Compiled {
  const d = model.encoder.columns;
  const none = { center: new Float64Array(0), matrix: new Float64Array(0), knn: undefined, image: undefined, mixture: undefined };
  const c: Compiled = model.method === 'mahalanobis'
    ? { ...none, x: new Float64Array(d), center: Float64Array.from(model.mean), matrix: Float64Array.from(model.precision) }
    : model.method === 'mixture'
      ? { ...none, x: new Float64Array(d), mixture: compileMixture(model.components, d) }
      : {
          ...none,
          x: new Float64Array(d),
          knn: knnReference(Float64Array.from(model.reference), model.rows, d, model.k),
          image: model.image === undefined ? undefined : compileImage(model.image, model.k),
        };
  compiled.set(model, c);
  return c;
}

/**
 * How far `row` lies from the reference: its negative log-density under the mixture, the
 * Mahalanobis distance (older profiles), the mean distance to the k nearest reference rows, or with
 * an image part the image detector's score. Infinite for a row with an infinite value. Allocates
 * nothing.
 */
export function oodScore(model: OodModel, row: RowValues): number {
  const c = compiled.get(model) ?? compile(model);
  encode(model.encoder, row, c.x);
  const d = model.encoder.columns;
  if (model.method === 'mixture') return mixtureScore(c.mixture as CompiledMixture, c.x);
  if (model.method === 'mahalanobis') return mahalanobis(c.x, c.center, c.matrix, d);
  const distance = knnMeanDistance(c.x, c.knn as KnnReference);
  return c.image === undefined || distance === Infinity ? distance : imageScore(c.image, c.x, distance);
}

/** The detector and the scores its threshold is calibrated from. */
export interface CalibratedOod {
  readonly model: OodModel;
  /** Scores of rows the detector that scored them was not fitted on. */
  readonly scores: number[];
  /**
   * true: a mixture or an image model, fitted on the reference and held-out rows together, its
   * scores cross-fitted (a mixture: over every row; an image model: over the rows it keeps, plus,
   * beyond KNN_MAX_REFERENCE rows, the served model's scores of the rest); false (a knn model of
   * wide rows that are not an image): fitted on the reference rows, the scores those of the
   * held-out rows.
   */
  readonly crossFitted: boolean;
}

/** The model's one input when it is an image whose pixels are encoded as they are (the image detector's case). */
function imageInput(inputs: readonly ProfileInput[], encoder: EncoderSpec): ProfileInput | undefined {
  const [input] = inputs;
  if (inputs.length !== 1 || input.datatype === 'BYTES' || !isImageInput(input) || encoder.columns !== input.featureCount) return undefined;
  return encoder.features.every((f) => f.kind === 'numeric' && f.center === 0 && f.scale === 1) ? input : undefined;
}

/** Folds of the mixture's cross-fitting: each row is scored by a mixture fitted without its tenth of the rows. */
export const MIXTURE_FOLDS = 10;

/**
 * Fits the out-of-distribution detector and gives the scores its threshold is set from. Tabular
 * models (the mixture): fitted on every row (reference, then held out; each part in the seeded
 * random order), each row scored by the mixture fitted without its fold (row i in fold
 * i mod MIXTURE_FOLDS): a hundred rows are too few to spare 30 % of them. A model whose one input is
 * an image: the image detector, on the first KNN_MAX_REFERENCE of all rows, cross-fitted
 * (image-ood.ts). Wide rows that are not an image: fitOod on the reference rows, scored on the
 * held-out rows.
 */
export function fitOodForCalibration(features: readonly FeatureProfile[], referenceRows: readonly RowValues[], heldOutRows: readonly RowValues[], inputs: readonly ProfileInput[] = []): CalibratedOod {
  const encoder = fitEncoder(features, inputs);
  const input = encoder.columns > TABULAR_MAX_COLUMNS ? imageInput(inputs, encoder) : undefined;
  const all = [...referenceRows, ...heldOutRows];
  if (encoder.columns <= TABULAR_MAX_COLUMNS) {
    const model = fitOod(features, all, inputs);
    const scores = new Array<number>(all.length);
    for (let f = 0; f < MIXTURE_FOLDS; f++) {
      const without = fitOod(features, all.filter((_, i) => i % MIXTURE_FOLDS !== f), inputs);
      for (let i = f; i < all.length; i += MIXTURE_FOLDS) scores[i] = oodScore(without, all[i]);
    }
    return { model, scores, crossFitted: true };
  }
  if (input === undefined) {
    const model = fitOod(features, referenceRows, inputs);
    return { model, scores: heldOutRows.map((r) => oodScore(model, r)), crossFitted: false };
  }
  const kept = all.slice(0, KNN_MAX_REFERENCE);
  const d = encoder.columns;
  const x = encodeRows(encoder, kept);
  const k = Math.min(KNN_K, kept.length - 2);
  const { image, scores } = fitImageOod(input.rowShape, x, kept.length, d, k);
  const model: OodModel = { method: 'knn', encoder, k, rows: kept.length, reference: [...x], image };
  return { model, scores: [...scores, ...all.slice(KNN_MAX_REFERENCE).map((r) => oodScore(model, r))], crossFitted: true };
}
