import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EDGE_BINS, EDGE_COLUMNS, edgeDescriptor, IMAGE_STAT_NAMES, IMAGE_STATS, ImageScratch, imageLayout, imageStats, readGrey } from './image-features.js';

const SIDE = 28;
const layout = imageLayout([1, SIDE, SIDE]);

/** The statistics of an image drawn by `ink(y, x)` (0..1), by name. */
function statsOf(ink: (y: number, x: number) => number): Record<string, number> {
  const row = Float64Array.from({ length: SIDE * SIDE }, (_, i) => ink(Math.floor(i / SIDE), i % SIDE));
  const scratch = new ImageScratch(layout);
  readGrey(layout, row, 0, 1, scratch);
  const out = new Float64Array(IMAGE_STATS);
  imageStats(layout, scratch, out);
  return Object.fromEntries(IMAGE_STAT_NAMES.map((n, i) => [n, out[i]]));
}

test('imageLayout: height and width are the last two dimensions of 8 or more; the rest are channels, wherever they are', () => {
  assert.deepEqual([layout.height, layout.width, layout.channels], [28, 28, 1]);
  assert.equal(layout.offsets[5 * 28 + 7], 5 * 28 + 7);
  const chw = imageLayout([3, 8, 10]);
  const hwc = imageLayout([8, 10, 3]);
  assert.deepEqual([chw.height, chw.width, chw.channels, hwc.height, hwc.width, hwc.channels], [8, 10, 3, 8, 10, 3]);
  // pixel (2, 4), channel 1
  assert.equal(chw.offsets[(2 * 10 + 4) * 3 + 1], 1 * 80 + 2 * 10 + 4);
  assert.equal(hwc.offsets[(2 * 10 + 4) * 3 + 1], (2 * 10 + 4) * 3 + 1);
  assert.throws(() => imageLayout([4, 100]), /not an image/);
});

test('readGrey: channels averaged, the pixel range mapped to 0..1', () => {
  const l = imageLayout([2, 8, 8]);
  const row = Float64Array.from({ length: 128 }, (_, i) => (i < 64 ? 255 : 0)); // channel 0 full, channel 1 empty
  const scratch = new ImageScratch(l);
  readGrey(l, row, 0, 255, scratch);
  assert.ok(scratch.grey.every((v) => v === 0.5));
});

test('imageStats: a blank image, a centred square, two pieces, a thin and a thick stroke', () => {
  const blank = statsOf(() => 0);
  assert.ok(blank.ink < -6.9 && blank.background === 1 && blank.extent === 0 && blank.components === 0 && blank.peak === 0);
  const grey = statsOf(() => 0.4);
  assert.ok(Math.abs(grey.ink - Math.log(0.401)) < 1e-12 && grey.background === 0 && grey.extent === 1 && grey.midtones === 1 && grey.border > 0.2);

  const square = statsOf((y, x) => (y >= 9 && y < 19 && x >= 4 && x < 24 ? 1 : 0)); // rows 9–18, columns 4–23
  assert.ok(Math.abs(square.centreX - 13.5 / 28) < 1e-12 && Math.abs(square.centreY - 13.5 / 28) < 1e-12);
  assert.deepEqual([square.height, square.width, square.extent], [10 / 28, 20 / 28, 20 / 28]);
  assert.ok(Math.abs(square.spreadX - Math.sqrt((20 * 20 - 1) / 12) / 28) < 1e-12, 'the spread of a uniform run of 20 pixels');
  assert.deepEqual([square.components, square.largestComponent, square.midtones, square.border, square.peak], [Math.log(2), 1, 0, 0, 1]);
  // 200 pixels of ink; total variation 2 × (10 + 20) edges: a "stroke" 2 × 200 / 60 ≈ 6.7 pixels wide.
  assert.ok(Math.abs(square.strokeWidth - Math.log((2 * 200) / 60 + 1e-3)) < 1e-12);

  const two = statsOf((y, x) => ((y >= 5 && y < 9 && x >= 5 && x < 9) || (y >= 15 && y < 25 && x >= 15 && x < 25) ? 1 : 0));
  assert.ok(Math.abs(two.components - Math.log(3)) < 1e-12);
  assert.ok(Math.abs(two.largestComponent - 100 / 116) < 1e-12);
  const diagonal = statsOf((y, x) => (Math.abs(y - x) < 1 && y > 3 && y < 24 ? 1 : 0));
  assert.ok(Math.abs(diagonal.components - Math.log(2)) < 1e-12, 'pixels touching at a corner are one piece');
  const thin = statsOf((y, x) => (x === 14 && y > 4 && y < 24 ? 1 : 0));
  const thick = statsOf((y, x) => (x >= 12 && x < 17 && y > 4 && y < 24 ? 1 : 0));
  assert.ok(thick.strokeWidth > thin.strokeWidth + 1, `${thick.strokeWidth} vs ${thin.strokeWidth}`);
});

test('edgeDescriptor: unit length, each edge in its cells and orientation bins; a blank image has none', () => {
  const scratch = new ImageScratch(layout);
  const out = new Float64Array(EDGE_COLUMNS);
  readGrey(layout, new Float64Array(SIDE * SIDE), 0, 1, scratch);
  edgeDescriptor(layout, scratch, out);
  assert.ok(out.every((v) => v === 0));
  // A tall band of ink, columns 14–19, rows 4–23: mostly vertical edges (gradient along x, angle 0).
  const band = (y: number, x: number): number => (x >= 14 && x < 20 && y >= 4 && y < 24 ? 1 : 0);
  const descriptor = (ink: (y: number, x: number) => number): Float64Array => {
    readGrey(layout, Float64Array.from({ length: SIDE * SIDE }, (_, i) => ink(Math.floor(i / SIDE), i % SIDE)), 0, 1, scratch);
    const d = new Float64Array(EDGE_COLUMNS);
    edgeDescriptor(layout, scratch, d);
    return d;
  };
  const binsSum = (d: Float64Array, bins: number[]): number => { let s = 0; for (let c = 0; c < 16; c++) for (const b of bins) s += d[c * EDGE_BINS + b]; return s; };
  const upright = descriptor(band);
  const lying = descriptor((y, x) => band(x, y));
  assert.ok(Math.abs(upright.reduce((s, v) => s + v * v, 0) - 1) < 1e-12, 'unit length');
  assert.ok(binsSum(upright, [0, 7]) > 3 * binsSum(upright, [3, 4]), 'an upright band: gradients along x');
  assert.ok(binsSum(lying, [3, 4]) > 3 * binsSum(lying, [0, 7]), 'the band lying down: gradients along y');
  const cellColumn = (d: Float64Array, c: number): number => [0, 1, 2, 3].reduce((s, r) => s + d.slice((r * 4 + c) * EDGE_BINS, (r * 4 + c + 1) * EDGE_BINS).reduce((a, b) => a + b, 0), 0);
  assert.deepEqual([0, 1, 2, 3].map((c) => cellColumn(upright, c) > 0), [false, true, true, false], 'edges only in the cells they lie in');
});
