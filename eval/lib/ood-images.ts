/**
 * Out-of-distribution inputs for the MNIST model: synthetic images (blank, noise, shapes, random
 * strokes, stroke-drawn letters: another "dataset" of handwriting-like glyphs that are not digits),
 * and real test digits broken the way pipelines break them (inverted, sent as 0–255, normalised with
 * MNIST's mean and std, decoded with the wrong row stride, rolled by a buffer offset). Each kind and
 * its rule is listed in eval/sets/README.md.
 */
import { MNIST_PIXELS, MNIST_SIDE, type Example } from './datasets.js';
import type { OodItem } from './ood-tabular.js';
import { Rng } from './random.js';

type Image = Float64Array;

const clip01 = (x: number): number => (x < 0 ? 0 : x > 1 ? 1 : x);

/** Pixel values as sent: 3 decimals (the npm digits' precision), clipped to [0, 1] unless `raw`. */
function pixels(img: Image, raw = false): number[] {
  return Array.from(img, (v) => Number((raw ? v : clip01(v)).toFixed(3)));
}

/** Distance from point p to the segment a–b. */
function segmentDistance(px: number, py: number, ax: number, ay: number, bx: number, by: number): number {
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / len2));
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

/** Draws an anti-aliased stroke of this width (pixel centres at x + 0.5). */
function stroke(img: Image, ax: number, ay: number, bx: number, by: number, width: number, ink = 1): void {
  for (let y = 0; y < MNIST_SIDE; y++) {
    for (let x = 0; x < MNIST_SIDE; x++) {
      const d = segmentDistance(x + 0.5, y + 0.5, ax, ay, bx, by);
      const v = clip01(width / 2 + 0.5 - d) * ink;
      if (v > img[y * MNIST_SIDE + x]) img[y * MNIST_SIDE + x] = v;
    }
  }
}

function shape(rng: Rng): Image {
  const img = new Float64Array(MNIST_PIXELS);
  const cx = rng.uniform(8, 20);
  const cy = rng.uniform(8, 20);
  const r = rng.uniform(4, 10);
  const kind = rng.int(4);
  for (let y = 0; y < MNIST_SIDE; y++) {
    for (let x = 0; x < MNIST_SIDE; x++) {
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      let v = 0;
      if (kind === 0) v = clip01(r + 0.5 - Math.hypot(dx, dy)); // filled disc
      else if (kind === 1) v = clip01(1.5 - Math.abs(Math.hypot(dx, dy) - r)); // ring
      else if (kind === 2) v = Math.abs(dx) < r && Math.abs(dy) < r * 0.7 ? 1 : 0; // filled rectangle
      else v = Math.abs(Math.abs(dx) + Math.abs(dy) - r) < 1 ? 1 : 0; // diamond outline
      img[y * MNIST_SIDE + x] = v;
    }
  }
  return img;
}

/** A random scribble: a thick random walk of 3–8 segments. */
function scribble(rng: Rng): Image {
  const img = new Float64Array(MNIST_PIXELS);
  let x = rng.uniform(6, 22);
  let y = rng.uniform(6, 22);
  const width = rng.uniform(1.5, 3);
  for (let n = 3 + rng.int(6); n > 0; n--) {
    const nx = Math.max(3, Math.min(25, x + rng.uniform(-12, 12)));
    const ny = Math.max(3, Math.min(25, y + rng.uniform(-12, 12)));
    stroke(img, x, y, nx, ny, width);
    x = nx;
    y = ny;
  }
  return img;
}

/** Capital letters drawn with straight strokes in a unit box; none reads as a digit. */
const LETTERS: Record<string, readonly (readonly [number, number, number, number])[]> = {
  A: [[0, 1, 0.5, 0], [0.5, 0, 1, 1], [0.25, 0.55, 0.75, 0.55]],
  E: [[0, 0, 0, 1], [0, 0, 1, 0], [0, 0.5, 0.8, 0.5], [0, 1, 1, 1]],
  F: [[0, 0, 0, 1], [0, 0, 1, 0], [0, 0.5, 0.8, 0.5]],
  H: [[0, 0, 0, 1], [1, 0, 1, 1], [0, 0.5, 1, 0.5]],
  K: [[0, 0, 0, 1], [1, 0, 0, 0.55], [0.3, 0.4, 1, 1]],
  M: [[0, 1, 0, 0], [0, 0, 0.5, 0.6], [0.5, 0.6, 1, 0], [1, 0, 1, 1]],
  N: [[0, 1, 0, 0], [0, 0, 1, 1], [1, 1, 1, 0]],
  V: [[0, 0, 0.5, 1], [0.5, 1, 1, 0]],
  W: [[0, 0, 0.25, 1], [0.25, 1, 0.5, 0.4], [0.5, 0.4, 0.75, 1], [0.75, 1, 1, 0]],
  X: [[0, 0, 1, 1], [1, 0, 0, 1]],
};

function letter(rng: Rng): Image {
  const img = new Float64Array(MNIST_PIXELS);
  const strokes = LETTERS[rng.pick(Object.keys(LETTERS))];
  const size = rng.uniform(14, 20);
  const ox = 14 - size / 2 + rng.uniform(-2, 2);
  const oy = 14 - size / 2 + rng.uniform(-2, 2);
  const shear = rng.uniform(-0.25, 0.25);
  const width = rng.uniform(1.8, 3);
  const at = (u: number, v: number): [number, number] => [ox + (u + shear * (1 - v)) * size, oy + v * size];
  for (const [u0, v0, u1, v1] of strokes) stroke(img, ...at(u0, v0), ...at(u1, v1), width);
  return img;
}

/** A test digit decoded with a row stride of `stride` instead of 28 (a reshape bug). */
function wrongStride(src: readonly number[], stride: number): Image {
  const img = new Float64Array(MNIST_PIXELS);
  for (let i = 0; i < MNIST_PIXELS; i++) {
    const y = Math.floor(i / MNIST_SIDE);
    const x = i % MNIST_SIDE;
    const j = y * stride + x;
    img[i] = j < MNIST_PIXELS ? src[j] : 0;
  }
  return img;
}

/**
 * The MNIST model's out-of-distribution inputs, from synthetic images and the test digits. `stream`
 * names the random stream: the committed sets use the default; development work on a detector draws
 * its own probes from another stream (and its own digits), so it never tunes on the evaluated records.
 */
export function mnistOod(test: readonly Example[], stream = 'mnist/ood'): OodItem[] {
  const rng = new Rng(stream);
  const digit = (): number[] => rng.pick(test).row as number[];
  const out: OodItem[] = [];
  const add = (kind: string, count: number, make: () => number[]): void => {
    for (let i = 0; i < count; i++) out.push({ kind, row: make() });
  };
  let level = 0;
  add('blank', 20, () => pixels(new Float64Array(MNIST_PIXELS).fill(level++ / 19)));
  add('noise', 40, () => {
    const which = rng.int(3);
    if (which === 0) return pixels(Float64Array.from({ length: MNIST_PIXELS }, () => rng.next()));
    if (which === 1) {
      const p = rng.uniform(0.05, 0.5);
      return pixels(Float64Array.from({ length: MNIST_PIXELS }, () => (rng.next() < p ? 1 : 0)));
    }
    const src = digit();
    return pixels(Float64Array.from(src, (v) => v + 0.4 * rng.normal())); // a digit under heavy noise
  });
  add('shapes', 40, () => pixels(shape(rng)));
  add('strokes', 40, () => pixels(scribble(rng)));
  add('letters', 40, () => pixels(letter(rng)));
  add('inverted', 40, () => digit().map((v) => Number((1 - v).toFixed(3))));
  add('scale-x255', 40, () => digit().map((v) => Number((v * 255).toFixed(3))));
  add('normalised', 40, () => digit().map((v) => Number(((v - 0.1307) / 0.3081).toFixed(4))));
  add('corrupted', 40, () => {
    const src = digit();
    if (rng.next() < 0.5) return pixels(wrongStride(src, rng.pick([26, 27, 29, 30])));
    const shift = rng.pick([-1, 1]) * (9 + rng.int(6)) * MNIST_SIDE + rng.int(MNIST_SIDE); // a buffer offset
    return pixels(Float64Array.from({ length: MNIST_PIXELS }, (_, i) => src[(((i + shift) % MNIST_PIXELS) + MNIST_PIXELS) % MNIST_PIXELS]));
  });
  return out;
}
