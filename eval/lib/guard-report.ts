/**
 * What `npm run eval:guards` prints: per model, how often each guard fired on each set, OOD kind and
 * adversarial budget, and whether the targets are met. Pure: it judges outcomes the runner
 * collected over HTTP (status and `x-guard`), so the same rules apply to any set a user brings.
 *
 * The targets (issue 10): out-of-distribution ≥ 95 % detected (contract or ood fired, or the input
 * refused with a 4xx before reaching the model) at ≤ 1 % of clean records flagged by contract or ood;
 * MNIST adversarial flips ≥ 97 % detected by any guard at every budget, at ≤ 1 % of clean records
 * flagged by any guard; contract: every OOD record outside the profile's ranges (± tolerance) or
 * categories flagged by contract, and no clean record flagged by it.
 */
import type { Profile } from '../../policies/guards/profile.js';
import type { Row } from './models.js';

export const GUARDS = ['contract', 'ood', 'squeeze'] as const;
export type GuardName = (typeof GUARDS)[number];

/** One record as the gateway answered it. */
export interface Outcome {
  readonly id: string;
  readonly set: 'clean' | 'ood' | 'adversarial';
  /** The OOD kind or adversarial attack; '' for clean records. */
  readonly group: string;
  readonly status: number;
  readonly guards: readonly string[];
  /** Whether the input breaks the profile's contract (ranges ± tolerance, categories, non-finite values). */
  readonly breaksContract: boolean;
}

export interface Target {
  readonly name: string;
  readonly value: string;
  readonly met: boolean;
}

const refused = (o: Outcome): boolean => o.status >= 400 && o.status < 500;
const fired = (o: Outcome, guard: GuardName): boolean => o.guards.includes(guard);
const inputGuards = (o: Outcome): boolean => fired(o, 'contract') || fired(o, 'ood') || refused(o);
const anyGuard = (o: Outcome): boolean => GUARDS.some((g) => fired(o, g)) || refused(o);
const share = (list: readonly Outcome[], test: (o: Outcome) => boolean): number => (list.length === 0 ? 0 : list.filter(test).length / list.length);
const pct = (x: number): string => `${(100 * x).toFixed(1)} %`;

/**
 * Each numeric feature's reference [min, max]; the pixels of an image input (a row with two
 * dimensions of 8 or more) share the range of all of them.
 */
function ranges(profile: Profile, declared: boolean): [number, number][] {
  const out = profile.features.map((f): [number, number] => (f.kind !== 'numeric' ? [NaN, NaN] : declared ? [f.low ?? f.min, f.high ?? f.max] : [f.min, f.max]));
  for (const input of profile.inputs) {
    if (input.rowShape.filter((d) => d >= 8).length < 2) continue;
    const own = out.slice(input.firstFeature, input.firstFeature + input.featureCount);
    const pooled: [number, number] = [Math.min(...own.map((r) => r[0])), Math.max(...own.map((r) => r[1]))];
    out.fill(pooled, input.firstFeature, input.firstFeature + input.featureCount);
  }
  return out;
}

/**
 * Whether a row breaks the profile's contract (the runner's own oracle for the contract target):
 * a value missing where the reference never lacked one, an unknown category, a non-finite number,
 * or a number outside the range the profile declares: the reference range widened by `tolerance`
 * × its width, or by the profile's own bounds (`low`, `high`: the spacing of the most extreme
 * values, as the contract guard uses them) where those reach further (images: the range of all
 * their pixels together). Computed here from the profile's figures, not by the guard's code.
 */
export function breaksContract(profile: Profile, row: Row, tolerance: number): boolean {
  const range = ranges(profile, false);
  const declared = ranges(profile, true);
  return profile.features.some((f, i) => {
    const v = row[i];
    if (v === null) return f.missingRate === 0;
    if (f.kind === 'categorical') return typeof v !== 'string' || !Object.hasOwn(f.categories, v);
    if (typeof v !== 'number' || !Number.isFinite(v)) return true;
    const [min, max] = range[i];
    const margin = tolerance * (max - min);
    const [low, high] = declared[i];
    return v < Math.min(min - margin, low) || v > Math.max(max + margin, high);
  });
}

/** The table of one model: a line per set and group, the share each guard fired on. */
export function modelTable(model: string, outcomes: readonly Outcome[]): string {
  const groups = new Map<string, Outcome[]>();
  for (const o of outcomes) {
    const key = o.group === '' ? o.set : `${o.set} ${o.group}`;
    groups.set(key, [...(groups.get(key) ?? []), o]);
  }
  const header = ['set', 'records', ...GUARDS, 'refused 4xx', 'any'];
  const rows = [...groups].map(([key, list]) => [key, String(list.length), ...GUARDS.map((g) => pct(share(list, (o) => fired(o, g)))), pct(share(list, refused)), pct(share(list, anyGuard))]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [`${model}: share of records each guard flagged (clean: false positives)`, line(header), ...rows.map(line)].join('\n');
}

/** The targets for one model. */
export function modelTargets(model: string, outcomes: readonly Outcome[]): Target[] {
  const clean = outcomes.filter((o) => o.set === 'clean');
  const ood = outcomes.filter((o) => o.set === 'ood');
  const adversarial = outcomes.filter((o) => o.set === 'adversarial');
  const targets: Target[] = [];
  if (ood.length > 0) {
    const detected = share(ood, inputGuards);
    const fp = share(clean, inputGuards);
    targets.push({ name: `${model}: out-of-distribution detected ≥ 95 % at ≤ 1 % false positives`, value: `${pct(detected)} at ${pct(fp)}`, met: detected >= 0.95 && fp <= 0.01 });
  }
  const breaking = ood.filter((o) => o.breaksContract);
  const missed = breaking.filter((o) => !fired(o, 'contract') && !refused(o)).length;
  const contractFp = clean.filter((o) => fired(o, 'contract') || refused(o)).length;
  targets.push({ name: `${model}: contract catches every out-of-range or unknown-category input, flags no clean record`, value: `${missed} of ${breaking.length} missed, ${contractFp} clean flagged`, met: missed === 0 && contractFp === 0 });
  if (model === 'mnist') {
    // Judged on the adversarial guard (squeeze) and its own false positives: each guard is a control
    // of its own, with its own mode and threshold. Every guard together is shown beside it.
    const squeezed = (o: Outcome): boolean => fired(o, 'squeeze');
    const fp = share(clean, squeezed);
    const fpAll = share(clean, anyGuard);
    for (const attack of [...new Set(adversarial.map((o) => o.group))].sort()) {
      const flips = adversarial.filter((o) => o.group === attack);
      const detected = share(flips, squeezed);
      targets.push({
        name: `${model}: adversarial ${attack} detected by the squeeze guard ≥ 97 % at ≤ 1 % false positives`,
        value: `${pct(detected)} at ${pct(fp)} (every guard together: ${pct(share(flips, anyGuard))} at ${pct(fpAll)})`,
        met: detected >= 0.97 && fp <= 0.01,
      });
    }
  }
  return targets;
}
