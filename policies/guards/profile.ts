/**
 * The reference profile of a model version (issue 10): what its inputs looked like in the data it
 * was built from, and each guard's calibrated threshold. Written by `breakwater profile`
 * (gateway/profile/build.ts), loaded with the model table (gateway/profile/loader.ts, an
 * ArtifactLoader named `profile`), read by the guards (policies/guards/*) and the drift monitor.
 *
 * A feature is one element of one input tensor per row: an input of shape [N, 1] is one feature
 * named after the input (a CSV column); an input of shape [N, 4] is four features `input[0]`…
 * `input[3]`; an image [1, 1, 28, 28] is 784 features `Input3[0]`…. Features are numbered in the
 * order of `inputs`, then element order (row-major).
 *
 * The format is versioned (`format`); a loader refuses a format it does not know.
 */

import type { Tail } from './tail.js';

export const PROFILE_FORMAT = 'breakwater.profile/1';

/** One input tensor as the profile saw it. */
export interface ProfileInput {
  readonly name: string;
  /** OIP datatype (FP32, INT64, BYTES, …). */
  readonly datatype: string;
  /** The shape of one row: the tensor's shape without its first (batch) dimension. */
  readonly rowShape: readonly number[];
  /** Index in `features` of this input's first feature. */
  readonly firstFeature: number;
  /** Number of features (product of rowShape). */
  readonly featureCount: number;
}

/** Quantiles at the probabilities in `Profile.quantileProbs`, in order. */
export interface NumericFeature {
  readonly kind: 'numeric';
  readonly name: string;
  readonly input: string;
  /** All seen values were integers (an INT datatype, or a float column that never had a fraction). */
  readonly integer: boolean;
  readonly min: number;
  readonly max: number;
  readonly mean: number;
  readonly std: number;
  readonly quantiles: readonly number[];
  /** Share of rows with no value (NaN, null or an empty CSV cell). */
  readonly missingRate: number;
  /**
   * The range the contract accepts before its tolerance: [min, max] widened on each side by the
   * spacing of the k most extreme values (gateway/profile/build.ts `extremeBounds`), because a
   * sample's extremes fall short of the population's. An image's pixels share one pair (taken over
   * all of them). Absent in profiles written before it: the contract then uses [min, max].
   */
  readonly low?: number;
  readonly high?: number;
}

export interface CategoricalFeature {
  readonly kind: 'categorical';
  readonly name: string;
  readonly input: string;
  /** Every category seen, with its share of the non-missing rows (exact strings). */
  readonly categories: Readonly<Record<string, number>>;
  readonly missingRate: number;
}

export type FeatureProfile = NumericFeature | CategoricalFeature;

/**
 * How a row becomes a vector for the distance-based detectors: numeric features standardised by
 * (x - center) / scale (missing: 0, plus an indicator column when the reference had missing
 * values), categorical features one-hot over the reference categories (an unknown category: all
 * zeros, plus the `unknown` column set to 1).
 */
export interface EncoderSpec {
  readonly columns: number;
  readonly features: readonly EncodedFeature[];
}

export type EncodedFeature =
  | { readonly kind: 'numeric'; readonly center: number; readonly scale: number; readonly column: number; readonly missingColumn: number | null }
  | { readonly kind: 'categorical'; readonly column: number; readonly categories: readonly string[]; readonly unknownColumn: number; readonly missingColumn: number | null };

/** One Gaussian of a `mixture` model (mixture.ts). */
export interface MixtureComponent {
  /** Its share of the reference rows. */
  readonly weight: number;
  readonly mean: readonly number[];
  /** The inverse of its shrunk covariance (d × d, row-major). */
  readonly precision: readonly number[];
  /** ln(weight) − ½·ln det(covariance): its log-density at its mean, without the 2π term. */
  readonly logNorm: number;
}

/**
 * The out-of-distribution detector's fitted state. `mixture` for low-dimensional (tabular)
 * inputs: a Gaussian mixture, the score a row's negative log-density (mixture.ts). `mahalanobis`
 * (profiles written before the mixture): distance to the reference mean under a shrunk covariance. `knn` for high-dimensional
 * inputs: mean distance to the k nearest reference rows (encoded, row-major); with an `image` part
 * (a model whose one input is an image), the score is instead the image detector's
 * (image-ood.ts), of which that distance is one part.
 */
export type OodModel =
  | { readonly method: 'mixture'; readonly encoder: EncoderSpec; readonly components: readonly MixtureComponent[] }
  | { readonly method: 'mahalanobis'; readonly encoder: EncoderSpec; readonly mean: readonly number[]; readonly precision: readonly number[] }
  | { readonly method: 'knn'; readonly encoder: EncoderSpec; readonly k: number; readonly rows: number; readonly reference: readonly number[]; readonly image?: ImageOod };

/**
 * The image detector's part of a `knn` model (image-ood.ts): three views of an image, each scored
 * against the reference and turned into a tail surprise (tail.ts), the score being their sum.
 */
export interface ImageOod {
  /** The image input's row shape (image-features.ts imageLayout) and pixel range (low: background, high: full ink). */
  readonly rowShape: readonly number[];
  readonly low: number;
  readonly high: number;
  /** The pixels: the knn model's own distance; its tail over the reference rows, each left out of its own neighbours. */
  readonly pixelTail: Tail;
  /** The edges: the reference rows' edge descriptors (rows × EDGE_COLUMNS, row-major) and the tail of the k-nearest distance to them. */
  readonly edges: { readonly reference: readonly number[]; readonly tail: Tail };
  /**
   * The image statistics (image-features.ts IMAGE_STAT_NAMES), standardised as (s − center) / scale:
   * their Mahalanobis distance from `mean` under `precision` (a shrunk covariance), and its tail.
   */
  readonly stats: {
    readonly names: readonly string[];
    readonly center: readonly number[];
    readonly scale: readonly number[];
    readonly mean: readonly number[];
    readonly precision: readonly number[];
    readonly tail: Tail;
  };
}

/**
 * Feature squeezing (Xu et al., NDSS 2018): the model is run on squeezed copies of the input; each
 * squeezer's score is the L1 distance between the probability vectors of the original and of its
 * squeezed copy, compared with that squeezer's own threshold (`Calibration.squeeze`, same order).
 * The squeezers are those of the candidates that leave clean data's answers alone (build.ts).
 */
export interface SqueezeProfile {
  /** The output whose values are compared, and whether they are logits (softmax applied first). */
  readonly output: string;
  readonly logits: boolean;
  readonly squeezers: readonly Squeezer[];
}

export type Squeezer =
  /** Reduce each value of `input` to `bits` bits over [min, max]. */
  | { readonly kind: 'bit-depth'; readonly input: string; readonly bits: number; readonly min: number; readonly max: number }
  /** A size×size median filter over the last two dimensions of `input` (an image). */
  | { readonly kind: 'median'; readonly input: string; readonly size: number };

/**
 * What the extraction monitor compares a caller's queries with: the steps of a benign caller drawing
 * reference rows at random (steps.ts: each query's difference, in the OOD encoder's space, from the
 * nearest of its last 64 distinct queries; exact repeats are no steps).
 */
export interface ExtractionProfile {
  /** The step distances' quantiles at `Profile.quantileProbs`. */
  readonly stepQuantiles: readonly number[];
  /** A step shorter than this is tiny: the 1 % quantile of the steps (0: no step is tiny). */
  readonly tinyStep: number;
  /**
   * The shares of benign steps that are tiny, and that repeat one of the last 16 steps to another
   * point (step-ring.ts lattice), on the benign caller that takes most: one replaying the whole
   * reference, or one replaying a neighbourhood of it (steps.ts).
   */
  readonly tinyRate: number;
  readonly latticeRate: number;
}

/** Thresholds set on held-out reference data to the configured false-positive rate. */
export interface Calibration {
  readonly targetFpr: number;
  /** How the held-out scores were made, in words (documented in docs/guards.md). */
  readonly method: string;
  readonly heldOutRows: number;
  readonly ood: number;
  /**
   * Rows whose scores set the `ood` threshold when they are not the held-out rows: an image model's
   * detector is fitted on every row and its threshold set from cross-fitted scores of all of them.
   */
  readonly oodRows?: number;
  /**
   * One threshold per squeezer of `Profile.squeeze.squeezers`, in order, each at targetFpr divided by
   * their number: a row is flagged when any squeezer's score is above its own threshold. Absent when
   * the profile has no squeeze section (the model's outputs were not probabilities).
   */
  readonly squeeze?: readonly number[];
  /** Rows whose squeeze scores set those thresholds: every row of the data (the scores fit nothing). */
  readonly squeezeRows?: number;
}

/**
 * One feature's or output's reference distribution for the drift monitor (gateway/drift/bins.ts
 * says how values fall into bins). `counts` are the reference rows per bin.
 */
export type DriftBins =
  | { readonly name: string; readonly kind: 'numeric'; readonly edges: readonly number[]; readonly counts: readonly number[] }
  | { readonly name: string; readonly kind: 'categorical'; readonly categories: readonly string[]; readonly counts: readonly number[] };

/** The model output the drift monitor reads: a [N, classes] tensor of probabilities or logits. */
export interface DriftOutput {
  readonly name: string;
  readonly logits: boolean;
  readonly classes: number;
}

/**
 * The drift monitor's reference: bins and counts of every feature (profile order) and of the
 * outputs: with a class-score output (`output`), `<output>:class` (the predicted class, categories
 * "0"… "classes−1") and `<output>:score` (the top probability, numeric), from the model's answers
 * to every row of the data.
 */
export interface DriftReference {
  readonly rows: number;
  readonly features: readonly DriftBins[];
  readonly output?: DriftOutput;
  readonly outputs: readonly DriftBins[];
}

export interface Profile {
  readonly format: typeof PROFILE_FORMAT;
  readonly model: string;
  readonly version: string;
  readonly createdAt: string;
  /** SHA-256 of the model file (onnx backends); null for a remote backend. */
  readonly modelSha256: string | null;
  readonly data: { readonly file: string; readonly sha256: string; readonly rows: number; readonly referenceRows: number; readonly heldOutRows: number };
  readonly quantileProbs: readonly number[];
  readonly inputs: readonly ProfileInput[];
  readonly features: readonly FeatureProfile[];
  readonly ood: OodModel;
  readonly squeeze?: SqueezeProfile;
  readonly extraction: ExtractionProfile;
  readonly calibration: Calibration;
  /** The drift monitor's reference (profiles written before it lack it: rebuild them for drift). */
  readonly drift?: DriftReference;
}
