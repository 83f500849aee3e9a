/**
 * What the image out-of-distribution detector (image-ood.ts) reads from one image, beyond its raw
 * pixels: a few statistics of its ink (how much, where, how spread, how thick its strokes, in how
 * many pieces) and an edge descriptor (where its edges are and which way they run). Both are
 * generic: nothing here knows what the reference images show; the detector learns from the
 * reference which values are usual.
 *
 * An image row is read through its layout (the input's row shape: the last two dimensions of 8 or
 * more are height and width, every other dimension a channel, averaged) and its pixel range (the
 * reference's lowest and highest pixel value) as one grey image in which 0 is the background and 1
 * full ink. Everything writes into buffers the caller owns (ImageScratch): nothing is allocated per
 * image.
 */

/** The statistics, in order (ImageOod.stats.names in the profile). */
export const IMAGE_STAT_NAMES = [
  'ink', // ln(mean ink + 0.001): a blank image has almost none
  'peak', // the largest pixel: the reference's images may all reach full ink
  'background', // share of pixels without visible ink
  'centreX', 'centreY', // the ink's centre of mass, as shares of the width and height
  'spreadX', 'spreadY', // the ink's standard deviation along each axis, as shares
  'height', 'width', // the box around the visible ink, as shares
  'extent', // the larger of the two (size-normalised images all share it)
  'midtones', // share of visible ink pixels below full ink (anti-aliased edges)
  'strokeWidth', // ln(2 × ink / total variation + 0.001): a stroke's width, in pixels
  'components', // ln(1 + number of 8-connected pieces of ink above one half)
  'largestComponent', // share of those pixels in the largest piece
  'border', // share of the ink within the outer frame (1/14 of the side)
] as const;

export const IMAGE_STATS = IMAGE_STAT_NAMES.length;
/** The edge descriptor: a 4 × 4 grid of cells, 8 unsigned orientation bins each. */
export const EDGE_GRID = 4;
export const EDGE_BINS = 8;
export const EDGE_COLUMNS = EDGE_GRID * EDGE_GRID * EDGE_BINS;
/** Below this (as a share of the pixel range) a pixel shows no ink. */
const VISIBLE = 0.05;

/** Where each pixel's channels lie in a row of the input's features. */
export interface ImageLayout {
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  /** The feature index of pixel (y, x), channel c, at [(y × width + x) × channels + c]. */
  readonly offsets: Int32Array;
}

/** The layout of an image input's row (e.g. [1, 28, 28], [3, 32, 32] or [32, 32, 3]). */
export function imageLayout(rowShape: readonly number[]): ImageLayout {
  const spatial = rowShape.flatMap((d, i) => (d >= 8 ? [i] : []));
  if (spatial.length < 2) throw new Error(`row shape [${rowShape.join(', ')}] is not an image: it needs two dimensions of 8 or more`);
  const hAt = spatial[spatial.length - 2];
  const wAt = spatial[spatial.length - 1];
  const strides = rowShape.map((_, i) => rowShape.slice(i + 1).reduce((a, b) => a * b, 1));
  // Every combination of the other dimensions is a channel: its offset within the row.
  let channelOffsets = [0];
  rowShape.forEach((d, i) => {
    if (i === hAt || i === wAt) return;
    channelOffsets = channelOffsets.flatMap((o) => Array.from({ length: d }, (_, j) => o + j * strides[i]));
  });
  const height = rowShape[hAt];
  const width = rowShape[wAt];
  const channels = channelOffsets.length;
  const offsets = new Int32Array(height * width * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) offsets[(y * width + x) * channels + c] = y * strides[hAt] + x * strides[wAt] + channelOffsets[c];
    }
  }
  return { height, width, channels, offsets };
}

/** The buffers one image needs. */
export class ImageScratch {
  /** The grey image, 0 background to 1 full ink, row-major. */
  readonly grey: Float64Array;
  readonly labels: Int32Array;
  readonly stack: Int32Array;

  constructor(layout: ImageLayout) {
    const n = layout.height * layout.width;
    this.grey = new Float64Array(n);
    this.labels = new Int32Array(n);
    this.stack = new Int32Array(n);
  }
}

/** Reads a row's features (`row`, e.g. the encoded row) into `scratch.grey` as (v − low) / (high − low). */
export function readGrey(layout: ImageLayout, row: ArrayLike<number>, low: number, high: number, scratch: ImageScratch): void {
  const { offsets, channels } = layout;
  const grey = scratch.grey;
  const scale = high > low ? 1 / ((high - low) * channels) : 1 / channels;
  const base = low * channels;
  for (let p = 0; p < grey.length; p++) {
    let s = 0;
    for (let c = 0; c < channels; c++) s += row[offsets[p * channels + c]];
    grey[p] = (s - base) * scale;
  }
}

/** The number of 8-connected pieces of pixels above one half, and the size of the largest (flood fill). */
function components(grey: Float64Array, h: number, w: number, scratch: ImageScratch, out: Float64Array, at: number): void {
  const { labels, stack } = scratch;
  labels.fill(0);
  let count = 0;
  let largest = 0;
  let on = 0;
  for (let i = 0; i < grey.length; i++) {
    if (!(grey[i] > 0.5)) continue;
    on++;
    if (labels[i] !== 0) continue;
    count++;
    labels[i] = count;
    let top = 0;
    stack[top++] = i;
    let size = 0;
    while (top > 0) {
      const j = stack[--top];
      size++;
      const y = (j / w) | 0;
      const x = j - y * w;
      for (let yy = Math.max(0, y - 1); yy <= Math.min(h - 1, y + 1); yy++) {
        for (let xx = Math.max(0, x - 1); xx <= Math.min(w - 1, x + 1); xx++) {
          const k = yy * w + xx;
          if (labels[k] === 0 && grey[k] > 0.5) {
            labels[k] = count;
            stack[top++] = k;
          }
        }
      }
    }
    if (size > largest) largest = size;
  }
  out[at] = Math.log(1 + count);
  out[at + 1] = on > 0 ? largest / on : 0;
}

/** The statistics of the grey image in `scratch` (IMAGE_STAT_NAMES, in order) into `out`. */
export function imageStats(layout: ImageLayout, scratch: ImageScratch, out: Float64Array): void {
  const h = layout.height;
  const w = layout.width;
  const grey = scratch.grey;
  const frame = Math.ceil(Math.min(h, w) / 14);
  let ink = 0;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let syy = 0;
  let peak = -Infinity;
  let background = 0;
  let visible = 0;
  let mid = 0;
  let border = 0;
  let tv = 0;
  let top = h;
  let bottom = -1;
  let left = w;
  let right = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = grey[y * w + x];
      const m = v > 0 ? v : 0;
      ink += m;
      sx += m * x;
      sy += m * y;
      sxx += m * x * x;
      syy += m * y * y;
      if (v > peak) peak = v;
      if (v > VISIBLE) {
        visible++;
        if (v < 1 - VISIBLE) mid++;
        if (y < top) top = y;
        if (y > bottom) bottom = y;
        if (x < left) left = x;
        if (x > right) right = x;
      } else {
        background++;
      }
      if (x < frame || y < frame || x >= w - frame || y >= h - frame) border += m;
      if (x + 1 < w) tv += Math.abs(v - grey[y * w + x + 1]);
      if (y + 1 < h) tv += Math.abs(v - grey[(y + 1) * w + x]);
    }
  }
  const cx = ink > 0 ? sx / ink : (w - 1) / 2;
  const cy = ink > 0 ? sy / ink : (h - 1) / 2;
  const boxH = bottom >= 0 ? (bottom - top + 1) / h : 0;
  const boxW = right >= 0 ? (right - left + 1) / w : 0;
  out[0] = Math.log(ink / (h * w) + 1e-3);
  out[1] = peak;
  out[2] = background / (h * w);
  out[3] = cx / w;
  out[4] = cy / h;
  out[5] = ink > 0 ? Math.sqrt(Math.max(0, sxx / ink - cx * cx)) / w : 0;
  out[6] = ink > 0 ? Math.sqrt(Math.max(0, syy / ink - cy * cy)) / h : 0;
  out[7] = boxH;
  out[8] = boxW;
  out[9] = Math.max(boxH, boxW);
  out[10] = visible > 0 ? mid / visible : 0;
  out[11] = Math.log((tv > 0 ? (2 * ink) / tv : 0) + 1e-3);
  components(grey, h, w, scratch, out, 12);
  out[14] = ink > 0 ? border / ink : 0;
}

/** A pixel of the grey image, 0 outside it. */
function at(g: Float64Array, h: number, w: number, y: number, x: number): number {
  return y < 0 || y >= h || x < 0 || x >= w ? 0 : g[y * w + x];
}

/**
 * The edge descriptor of the grey image in `scratch` into `out` (EDGE_COLUMNS): Sobel gradients
 * (zero outside the image), each pixel's magnitude shared between the two nearest of 8 unsigned
 * orientation bins of its cell in a 4 × 4 grid, the whole vector scaled to unit length (a blank
 * image: all zeros). A histogram of oriented gradients (Dalal & Triggs, 2005) without blocks.
 */
export function edgeDescriptor(layout: ImageLayout, scratch: ImageScratch, out: Float64Array): void {
  const h = layout.height;
  const w = layout.width;
  const g = scratch.grey;
  out.fill(0);
  for (let y = 0; y < h; y++) {
    const row = Math.floor((y * EDGE_GRID) / h) * EDGE_GRID;
    for (let x = 0; x < w; x++) {
      const gx = at(g, h, w, y - 1, x + 1) + 2 * at(g, h, w, y, x + 1) + at(g, h, w, y + 1, x + 1) - at(g, h, w, y - 1, x - 1) - 2 * at(g, h, w, y, x - 1) - at(g, h, w, y + 1, x - 1);
      const gy = at(g, h, w, y + 1, x - 1) + 2 * at(g, h, w, y + 1, x) + at(g, h, w, y + 1, x + 1) - at(g, h, w, y - 1, x - 1) - 2 * at(g, h, w, y - 1, x) - at(g, h, w, y - 1, x + 1);
      const m = Math.sqrt(gx * gx + gy * gy);
      if (!(m > 0)) continue;
      let angle = Math.atan2(gy, gx);
      if (angle < 0) angle += Math.PI;
      if (angle >= Math.PI) angle -= Math.PI;
      const b = (angle / Math.PI) * EDGE_BINS - 0.5;
      const b0 = Math.floor(b);
      const f = b - b0;
      const cell = (row + Math.floor((x * EDGE_GRID) / w)) * EDGE_BINS;
      out[cell + ((b0 + EDGE_BINS) % EDGE_BINS)] += m * (1 - f);
      out[cell + ((b0 + 1) % EDGE_BINS)] += m * f;
    }
  }
  let norm = 0;
  for (let i = 0; i < out.length; i++) norm += out[i] * out[i];
  if (norm > 0) {
    const s = 1 / Math.sqrt(norm);
    for (let i = 0; i < out.length; i++) out[i] *= s;
  }
}
