/**
 * The out-of-distribution detector for images: three views of an image, each scored against the
 * reference images, and one score from the three.
 *
 * - pixels: the mean distance to the k nearest reference images (ood.ts's knn score). Catches what
 *   looks unlike any reference image pixel by pixel (noise, inverted or broken images).
 * - edges: the mean distance to the k nearest reference edge descriptors (image-features.ts: where
 *   the edges are and which way they run). Less thrown by a stroke a pixel or two away than raw
 *   pixels are, it tells a drawn shape that is not like the reference (a letter) from one that is.
 * - statistics: the Mahalanobis distance of the image's ink statistics (image-features.ts: amount,
 *   centre, spread, box, stroke width, pieces, border) from the reference's, under a shrunk
 *   covariance (covariance.ts). Catches blank and constant images, shapes, scribbles, misplaced or
 *   mis-scaled content: what the reference's images never are, whatever their pixels.
 *
 * Each view's distance becomes its tail surprise among the reference's own (tail.ts): −ln of the
 * share of reference images at least as far, with an exponential tail beyond the largest. The score
 * is the sum of the three (Fisher's combination: moderately unusual in two views adds up), so no
 * view needs a weight. The tails must come from distances of reference images that their detector
 * had not seen: the pixel and edge distances are left-one-out (an image is not its own neighbour),
 * the statistics' are cross-fitted (each tenth of the rows scored by a fit on the other nine).
 *
 * The threshold (calibrate.ts) is set from scores of rows the detector did not see either: the
 * detector that is served is fitted on all the reference rows, and each row's calibration score
 * comes from the same fit made without its tenth of the rows (cross-fitting), so every row both
 * shapes the detector and calibrates it, and none calibrates a detector that saw it.
 *
 * Fitting works from one matrix of distances between the reference rows per view, so cross-fitting
 * costs selections, not distances. Scoring allocates nothing (buffers per compiled model).
 */
import { mahalanobis, shrunkPrecision } from './covariance.js';
import { EDGE_COLUMNS, edgeDescriptor, IMAGE_STAT_NAMES, IMAGE_STATS, ImageScratch, imageLayout, imageStats, readGrey, type ImageLayout } from './image-features.js';
import { knnFromDistances, knnMeanDistance, knnReference, squaredDistances, type KnnReference } from './knn.js';
import type { ImageOod } from './profile.js';
import { compileTail, fitTail, surprise, type CompiledTail, type Tail } from './tail.js';

/** Folds of the cross-fitting (of the threshold's scores and of the statistics' tail). */
export const IMAGE_OOD_FOLDS = 10;
/** A statistic that (almost) never varies in the reference is standardised by this: they are shares or logs, so it is a fraction of a pixel's share. */
const MIN_SCALE = 1e-3;

/** What the image views make of each reference row, computed once per fit. */
interface Prepared {
  readonly n: number;
  readonly edges: Float64Array;
  readonly stats: Float64Array;
  /** Squared distances between the rows: pixels, then edge descriptors (n × n each). */
  readonly pixelDistances: Float64Array;
  readonly edgeDistances: Float64Array;
}

function prepare(layout: ImageLayout, pixels: Float64Array, n: number, d: number, low: number, high: number): Prepared {
  const scratch = new ImageScratch(layout);
  const edges = new Float64Array(n * EDGE_COLUMNS);
  const stats = new Float64Array(n * IMAGE_STATS);
  for (let r = 0; r < n; r++) {
    readGrey(layout, pixels.subarray(r * d, (r + 1) * d), low, high, scratch);
    edgeDescriptor(layout, scratch, edges.subarray(r * EDGE_COLUMNS, (r + 1) * EDGE_COLUMNS));
    imageStats(layout, scratch, stats.subarray(r * IMAGE_STATS, (r + 1) * IMAGE_STATS));
  }
  return { n, edges, stats, pixelDistances: squaredDistances(pixels, n, d), edgeDistances: squaredDistances(edges, n, EDGE_COLUMNS) };
}

/** The statistics' standardisation and shrunk precision, fitted on rows `rows`. */
interface StatsFit {
  readonly center: Float64Array;
  readonly scale: Float64Array;
  readonly mean: Float64Array;
  readonly precision: Float64Array;
}

function fitStats(stats: Float64Array, rows: readonly number[]): StatsFit {
  const d = IMAGE_STATS;
  const m = rows.length;
  const center = new Float64Array(d);
  const scale = new Float64Array(d);
  for (const r of rows) for (let j = 0; j < d; j++) center[j] += stats[r * d + j];
  for (let j = 0; j < d; j++) center[j] /= m;
  for (const r of rows) for (let j = 0; j < d; j++) scale[j] += (stats[r * d + j] - center[j]) ** 2;
  for (let j = 0; j < d; j++) scale[j] = Math.max(MIN_SCALE, Math.sqrt(scale[j] / (m - 1)));
  const z = new Float64Array(m * d);
  rows.forEach((r, i) => {
    for (let j = 0; j < d; j++) z[i * d + j] = (stats[r * d + j] - center[j]) / scale[j];
  });
  const { mean, precision } = shrunkPrecision(z, m, d);
  return { center, scale, mean, precision };
}

/** The statistics' distance of `s` (IMAGE_STATS values); `z` is scratch. */
function statsDistance(fit: StatsFit, s: Float64Array, z: Float64Array): number {
  for (let j = 0; j < IMAGE_STATS; j++) z[j] = (s[j] - fit.center[j]) / fit.scale[j];
  return mahalanobis(z, fit.mean, fit.precision, IMAGE_STATS);
}

/** Rows split by position into IMAGE_OOD_FOLDS folds: [kept, left out] for each fold. */
function folds(rows: readonly number[]): [number[], number[]][] {
  return Array.from({ length: IMAGE_OOD_FOLDS }, (_, f) => [rows.filter((_, i) => i % IMAGE_OOD_FOLDS !== f), rows.filter((_, i) => i % IMAGE_OOD_FOLDS === f)]);
}

/** The image part fitted on rows `rows` of the prepared rows: the statistics' fit and the three tails. */
interface PartFit {
  readonly rows: readonly number[];
  readonly stats: StatsFit;
  readonly pixelTail: CompiledTail;
  readonly edgeTail: CompiledTail;
  readonly statsTail: CompiledTail;
  readonly tails: { readonly pixels: Tail; readonly edges: Tail; readonly stats: Tail };
}

function fitPart(p: Prepared, rows: readonly number[], k: number): PartFit {
  const best = new Float64Array(k);
  const pixels = fitTail(rows.map((r) => knnFromDistances(p.pixelDistances, p.n, r, rows, best)));
  const edges = fitTail(rows.map((r) => knnFromDistances(p.edgeDistances, p.n, r, rows, best)));
  const z = new Float64Array(IMAGE_STATS);
  const statsScores: number[] = [];
  for (const [kept, left] of folds(rows)) {
    const fit = fitStats(p.stats, kept);
    for (const r of left) statsScores.push(statsDistance(fit, p.stats.subarray(r * IMAGE_STATS, (r + 1) * IMAGE_STATS), z));
  }
  const stats = fitTail(statsScores);
  return { rows, stats: fitStats(p.stats, rows), pixelTail: compileTail(pixels), edgeTail: compileTail(edges), statsTail: compileTail(stats), tails: { pixels, edges, stats } };
}

/** The score of prepared row `r` (not among the part's rows) by a part: what imageScore gives for it. */
function partScore(p: Prepared, part: PartFit, r: number, best: Float64Array, z: Float64Array): number {
  const pixel = knnFromDistances(p.pixelDistances, p.n, r, part.rows, best);
  const edge = knnFromDistances(p.edgeDistances, p.n, r, part.rows, best);
  const stats = statsDistance(part.stats, p.stats.subarray(r * IMAGE_STATS, (r + 1) * IMAGE_STATS), z);
  return surprise(part.pixelTail, pixel) + surprise(part.edgeTail, edge) + surprise(part.statsTail, stats);
}

/** The pixel range of the rows' finite values (low: background, high: full ink). */
function pixelRange(pixels: Float64Array): { low: number; high: number } {
  let low = Infinity;
  let high = -Infinity;
  for (const v of pixels) {
    if (!Number.isFinite(v)) continue;
    if (v < low) low = v;
    if (v > high) high = v;
  }
  return low <= high ? { low, high } : { low: 0, high: 1 };
}

/**
 * Fits the image part on n encoded reference rows (`pixels`, n × d, the image's features in order)
 * with k neighbours, and cross-fits the calibration: `scores[i]` is row i's score by the part
 * fitted without row i's fold (rows are folded by position: give them in a random order).
 */
export function fitImageOod(rowShape: readonly number[], pixels: Float64Array, n: number, d: number, k: number): { image: ImageOod; scores: number[] } {
  const layout = imageLayout(rowShape);
  if (layout.height * layout.width * layout.channels !== d) throw new Error(`an image of row shape [${rowShape.join(', ')}] has ${layout.height * layout.width * layout.channels} values, not ${d}`);
  const { low, high } = pixelRange(pixels);
  const p = prepare(layout, pixels, n, d, low, high);
  const all = Array.from({ length: n }, (_, i) => i);
  const scores = new Array<number>(n);
  const best = new Float64Array(k);
  const z = new Float64Array(IMAGE_STATS);
  for (const [kept, left] of folds(all)) {
    const part = fitPart(p, kept, k);
    for (const r of left) scores[r] = partScore(p, part, r, best, z);
  }
  const part = fitPart(p, all, k);
  const image: ImageOod = {
    rowShape: [...rowShape],
    low,
    high,
    pixelTail: part.tails.pixels,
    edges: { reference: [...p.edges], tail: part.tails.edges },
    stats: { names: [...IMAGE_STAT_NAMES], center: [...part.stats.center], scale: [...part.stats.scale], mean: [...part.stats.mean], precision: [...part.stats.precision], tail: part.tails.stats },
  };
  return { image, scores };
}

/** An image part ready to score with, and the buffers one score needs. */
export interface CompiledImage {
  readonly layout: ImageLayout;
  readonly scratch: ImageScratch;
  readonly low: number;
  readonly high: number;
  readonly pixelTail: CompiledTail;
  readonly edges: KnnReference;
  readonly edgeTail: CompiledTail;
  readonly stats: StatsFit;
  readonly statsTail: CompiledTail;
  readonly edge: Float64Array;
  readonly statValues: Float64Array;
  readonly z: Float64Array;
}

export function compileImage(image: ImageOod, k: number): CompiledImage {
  const layout = imageLayout(image.rowShape);
  return {
    layout,
    scratch: new ImageScratch(layout),
    low: image.low,
    high: image.high,
    pixelTail: compileTail(image.pixelTail),
    edges: knnReference(Float64Array.from(image.edges.reference), image.edges.reference.length / EDGE_COLUMNS, EDGE_COLUMNS, k),
    edgeTail: compileTail(image.edges.tail),
    stats: { center: Float64Array.from(image.stats.center), scale: Float64Array.from(image.stats.scale), mean: Float64Array.from(image.stats.mean), precision: Float64Array.from(image.stats.precision) },
    statsTail: compileTail(image.stats.tail),
    edge: new Float64Array(EDGE_COLUMNS),
    statValues: new Float64Array(IMAGE_STATS),
    z: new Float64Array(IMAGE_STATS),
  };
}

/**
 * The image score of an encoded row `x` whose pixel distance (ood.ts's knn score, finite) is
 * `pixelDistance`: the sum of the three views' tail surprises. Allocates nothing.
 */
export function imageScore(c: CompiledImage, x: Float64Array, pixelDistance: number): number {
  readGrey(c.layout, x, c.low, c.high, c.scratch);
  edgeDescriptor(c.layout, c.scratch, c.edge);
  imageStats(c.layout, c.scratch, c.statValues);
  const edge = knnMeanDistance(c.edge, c.edges);
  const stats = statsDistance(c.stats, c.statValues, c.z);
  return surprise(c.pixelTail, pixelDistance) + surprise(c.edgeTail, edge) + surprise(c.statsTail, stats);
}
