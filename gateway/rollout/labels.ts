/**
 * The predicted class of each row of an answer, for comparing a canary's answers with stable's
 * (comparisons.ts): the prediction a decision is made on, not the last digit of a probability. A
 * retrained model whose scores moved a little but whose decisions did not agrees with its
 * predecessor; one that flips decisions does not.
 *
 * The output compared is the first the answer holds that the other answer holds too (the same
 * output arms of a split are counted by, telemetry/arm-figures.ts): a label output (integers,
 * BOOL, BYTES) gives its value per row; a score output (floating point, [batch, classes ≥ 2]) gives
 * its arg-max (`NaN` for a row with a NaN score). An output with one float per row (a regression,
 * a single probability) has no class: its rows are compared as numbers, equal within 1e-6 relative
 * (they are then their own "class", rounded to 6 significant digits, so the class-share criterion
 * says nothing useful of them).
 */
import type { InferResponse, InferTensor } from '../../adapters/adapter.js';

function isFloat(t: InferTensor): boolean {
  return t.datatype === 'FP32' || t.datatype === 'FP64' || t.datatype === 'FP16';
}

/** One class name per row of `t`; undefined for a tensor that has none (no rows). */
export function rowClasses(t: InferTensor): string[] | undefined {
  const data = t.data as ArrayLike<unknown>;
  const batch = t.shape[0] ?? 0;
  if (batch === 0) return undefined;
  const per = data.length / batch;
  if (!Number.isInteger(per) || per < 1) return undefined;
  const out = new Array<string>(batch);
  if (isFloat(t) && per >= 2) {
    for (let r = 0; r < batch; r++) {
      // A row with a NaN score has no arg-max: its class is NaN, never a real class (a canary
      // answering NaN must disagree with stable, not look like it predicted class 0).
      let best = 0;
      let nan = Number.isNaN(Number(data[r * per]));
      for (let c = 1; c < per; c++) {
        const v = Number(data[r * per + c]);
        if (Number.isNaN(v)) nan = true;
        else if (v > Number(data[r * per + best])) best = c;
      }
      out[r] = nan ? 'NaN' : String(best);
    }
    return out;
  }
  for (let r = 0; r < batch; r++) {
    const parts: string[] = [];
    for (let c = 0; c < per; c++) {
      const v = data[r * per + c];
      parts.push(isFloat(t) ? Number(v).toPrecision(6) : typeof v === 'object' && v !== null ? Buffer.from(v as Uint8Array).toString('utf8') : String(v));
    }
    out[r] = parts.join(',');
  }
  return out;
}

/** The classes of both answers for the first output they share, row by row; undefined when they share none. */
export function pairedClasses(canary: InferResponse, stable: InferResponse): { canary: string[]; stable: string[] } | undefined {
  for (const o of canary.outputs) {
    const s = stable.outputs.find((x) => x.name === o.name);
    if (s === undefined) continue;
    const a = rowClasses(o);
    const b = rowClasses(s);
    if (a === undefined || b === undefined || a.length !== b.length) return undefined;
    return { canary: a, stable: b };
  }
  return undefined;
}
