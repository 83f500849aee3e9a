/**
 * The model-extraction attackers of a trace. Each really runs against the served model (its later
 * queries depend on earlier answers, as an attacker's do), and the trace records every row it sent:
 *   uniform   random queries over the reference data's box (pixels: uniform in [0, 1]);
 *   jacobian  Jacobian-based dataset augmentation (Papernot et al., 2017) with the Jacobian
 *             estimated by finite differences through the API: x' = x + λ·sign(∂p_c/∂x);
 *   boundary  line sweeps between two real rows with different answers, then bisection of the
 *             decision boundary found on the line;
 *   grid      lattice sweeps: a grid over two numeric features (images: each 4×4 patch of a
 *             digit swept through 11 grey levels);
 *   mimic     the jacobian attacker at a benign caller's pace (Poisson, one row at a time).
 */
import type { ModelClient } from './served-models.js';
import { MNIST_SIDE, type Example } from './datasets.js';
import { argmax, type ModelSpec, type Row } from './models.js';
import { Rng } from './random.js';
import type { FeatureStats } from './reference-stats.js';
import { send, type TraceEvent } from './benign-callers.js';

export const ATTACKER_KINDS = ['uniform', 'jacobian', 'boundary', 'grid', 'mimic'] as const;
export type AttackerKind = (typeof ATTACKER_KINDS)[number];

/** A direction in feature space: features moved together (a pixel patch, or one feature). */
type Direction = readonly number[];

interface Space {
  readonly spec: ModelSpec;
  readonly stats: readonly FeatureStats[];
  /** The continuous features' indices. */
  readonly continuous: readonly number[];
  readonly directions: readonly Direction[];
  /** Finite-difference and augmentation steps per direction (fractions of each feature's range). */
  readonly h: number;
  readonly lambda: number;
  readonly decimals: number;
}

function spaceOf(spec: ModelSpec, stats: readonly FeatureStats[]): Space {
  const continuous = stats.flatMap((s, i) => (s.kind === 'continuous' ? [i] : []));
  if (spec.name !== 'mnist') return { spec, stats, continuous, directions: continuous.map((i) => [i]), h: 0.01, lambda: 0.1, decimals: 4 };
  const directions: number[][] = [];
  for (let py = 0; py < MNIST_SIDE; py += 4) {
    for (let px = 0; px < MNIST_SIDE; px += 4) {
      const patch: number[] = [];
      for (let y = py; y < py + 4; y++) for (let x = px; x < px + 4; x++) patch.push(y * MNIST_SIDE + x);
      directions.push(patch);
    }
  }
  return { spec, stats, continuous, directions, h: 0.1, lambda: 0.1, decimals: 3 };
}

function range(space: Space, i: number): [number, number] {
  const s = space.stats[i];
  if (s.kind !== 'continuous') throw new Error(`feature ${i} is not continuous`);
  return space.spec.name === 'mnist' ? [0, 1] : [s.min, s.max];
}

/** x moved by `step` (a fraction of each feature's range) along `dir`, kept in the box and rounded. */
function moved(space: Space, x: Row, dir: Direction, step: number): Row {
  const out = x.slice();
  const scale = 10 ** space.decimals;
  for (const i of dir) {
    const [lo, hi] = range(space, i);
    const v = Math.min(Math.max((x[i] as number) + step * (hi - lo), lo), hi);
    out[i] = Math.round(v * scale) / scale;
  }
  return out;
}

/** A real row with every continuous feature present (attackers start from natural data). */
function seedRows(pool: readonly Example[], space: Space, rng: Rng, n: number): Row[] {
  const usable = pool.filter((e) => space.continuous.every((i) => typeof e.row[i] === 'number'));
  if (space.spec.name !== 'mnist') return Array.from({ length: n }, () => rng.pick(usable).row);
  return Array.from({ length: n }, (_, k) => rng.pick(usable.filter((e) => e.label === k % 10)).row);
}

/** Where an attacker sends its rows: a pace between requests, and a running row count. */
interface Sender {
  readonly events: TraceEvent[];
  t: number;
  sent: number;
}

type Pace = (rng: Rng) => number;

async function jacobian(space: Space, client: ModelClient, rng: Rng, pool: readonly Example[], budget: number, out: Sender, pace: Pace, oneRowPerRequest: boolean): Promise<void> {
  let set = seedRows(pool, space, rng, 10);
  while (out.sent < budget) {
    const next: Row[] = [];
    for (const x of set) {
      if (out.sent >= budget) break;
      // One request per point: the point and its finite-difference probes (MNIST: one row each).
      const probes = [x, ...space.directions.map((d) => moved(space, x, d, space.h))];
      const rows = probes.slice(0, budget - out.sent);
      const p = await client.probabilities(rows);
      if (oneRowPerRequest) {
        for (const row of rows) {
          send(out.events, space.spec, 'x', out.t, [row], 0);
          out.t += pace(rng);
        }
      } else {
        out.t = send(out.events, space.spec, 'x', out.t, rows, rng.uniform(5, 20)) + pace(rng);
      }
      out.sent += rows.length;
      if (rows.length < probes.length) break;
      const c = argmax(p[0]);
      let augmented = x;
      space.directions.forEach((d, j) => {
        const g = p[j + 1][c] - p[0][c];
        if (g !== 0) augmented = moved(space, augmented, d, Math.sign(g) * space.lambda);
      });
      next.push(augmented);
    }
    set = [...set, ...next];
  }
}

/** A point on the segment a→b at fraction u (continuous features; the others from a). */
function between(space: Space, a: Row, b: Row, u: number): Row {
  const out = a.slice();
  const scale = 10 ** space.decimals;
  for (const i of space.continuous) out[i] = Math.round(((a[i] as number) + u * ((b[i] as number) - (a[i] as number))) * scale) / scale;
  return out;
}

async function boundary(space: Space, client: ModelClient, rng: Rng, pool: readonly Example[], budget: number, out: Sender, pace: Pace): Promise<void> {
  const emit = (rows: Row[]): void => {
    out.t = send(out.events, space.spec, 'x', out.t, rows, rng.uniform(5, 20)) + pace(rng);
    out.sent += rows.length;
  };
  while (out.sent < budget) {
    const [a, b] = seedRows(pool, space, rng, 2);
    const line = Array.from({ length: 16 }, (_, k) => between(space, a, b, k / 15));
    const labels = await client.labels(line);
    emit(line);
    const k = labels.findIndex((l, i) => i > 0 && l !== labels[i - 1]);
    if (k < 0) continue;
    let lo = (k - 1) / 15;
    let hi = k / 15;
    for (let step = 0; step < 8 && out.sent < budget; step++) {
      const mid = (lo + hi) / 2;
      const row = between(space, a, b, mid);
      const [label] = await client.labels([row]);
      emit([row]);
      if (label === labels[k - 1]) lo = mid;
      else hi = mid;
    }
  }
}

function grid(space: Space, rng: Rng, pool: readonly Example[], budget: number, out: Sender, pace: Pace): void {
  const emit = (rows: Row[]): void => {
    out.t = send(out.events, space.spec, 'x', out.t, rows, rng.uniform(5, 20)) + pace(rng);
    out.sent += rows.length;
  };
  while (out.sent < budget) {
    const [base] = seedRows(pool, space, rng, 1);
    if (space.spec.name === 'mnist') {
      for (const dir of space.directions) {
        const rows = Array.from({ length: 11 }, (_, k) => {
          const row = base.slice();
          for (const i of dir) row[i] = k / 10;
          return row;
        });
        emit(rows.slice(0, budget - out.sent));
        if (out.sent >= budget) return;
      }
      continue;
    }
    const [i, j] = rng.shuffle(space.continuous).slice(0, 2);
    const [ilo, ihi] = range(space, i);
    const [jlo, jhi] = range(space, j);
    for (let a = 0; a < 20 && out.sent < budget; a++) {
      const rows = Array.from({ length: 20 }, (_, b) => {
        const row = base.slice();
        row[i] = Number((ilo + (a / 19) * (ihi - ilo)).toFixed(space.decimals));
        row[j] = Number((jlo + (b / 19) * (jhi - jlo)).toFixed(space.decimals));
        return row;
      });
      emit(rows.slice(0, budget - out.sent));
    }
  }
}

function uniform(space: Space, rng: Rng, budget: number, out: Sender, pace: Pace): void {
  const perRequest = space.spec.name === 'mnist' ? 1 : 20;
  while (out.sent < budget) {
    const rows = Array.from({ length: Math.min(perRequest, budget - out.sent) }, () => space.stats.map((s): number | string => {
      if (s.kind === 'discrete') return rng.pick(s.values);
      return space.spec.name === 'mnist' ? Math.round(rng.next() * 100) / 100 : Number(rng.uniform(s.min, s.max).toFixed(space.decimals));
    }));
    out.t = send(out.events, space.spec, 'x', out.t, rows, 0) + pace(rng);
    out.sent += rows.length;
  }
}

/** How many rows each attacker sends (an attacker stops long before; the budget bounds the trace). */
export const ATTACKER_ROWS: Record<AttackerKind, number> = { uniform: 1000, jacobian: 1000, boundary: 800, grid: 800, mimic: 500 };

/** The events of one attacker, starting at `start` ms, as subject `subject`; `seed` as random.ts Rng's. */
export async function attackerEvents(
  kind: AttackerKind, subject: string, spec: ModelSpec, stats: readonly FeatureStats[], client: ModelClient, pool: readonly Example[], start: number, seed?: string,
): Promise<TraceEvent[]> {
  const space = spaceOf(spec, stats);
  const rng = new Rng(`${spec.name}/trace/attacker/${kind}`, seed);
  const out: Sender = { events: [], t: start, sent: 0 };
  const budget = ATTACKER_ROWS[kind];
  // Scripts pace themselves by their answers: tens of milliseconds apart (images: one per request).
  const fast: Pace = (r) => (spec.name === 'mnist' ? r.uniform(10, 40) : r.uniform(300, 1500));
  const benignPace: Pace = (r) => r.exponential(20_000);
  if (kind === 'uniform') uniform(space, rng, budget, out, fast);
  else if (kind === 'jacobian') await jacobian(space, client, rng, pool, budget, out, fast, spec.name === 'mnist');
  else if (kind === 'boundary') await boundary(space, client, rng, pool, budget, out, fast);
  else if (kind === 'grid') grid(space, rng, pool, budget, out, fast);
  else await jacobian(space, client, rng, pool, budget, out, benignPace, true);
  return out.events.map((e) => ({ ...e, subject }));
}
