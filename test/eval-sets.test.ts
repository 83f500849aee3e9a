/**
 * The committed evaluation sets (eval/sets, eval/reference; issue 10) keep their format and the
 * rules that make the evaluation honest: no clean, OOD or adversarial record equals a reference
 * row; the reference and test splits partition the real data (MNIST: reference = digits 0–49 of
 * each class, test = 50–149); adversarial records come from existing clean records within their
 * L∞ budget; benign callers replay real test rows; the model-free parts are exactly what the
 * generator makes today.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { irisExamples, mnistExamples, titanicExamples, titanicNumericColumns, type Example } from '../eval/lib/datasets.js';
import { MODELS, requestOf, rowKey, rowsOf, type ModelSpec, type Row } from '../eval/lib/models.js';
import { mnistOod } from '../eval/lib/ood-images.js';
import { irisOod, titanicOod } from '../eval/lib/ood-tabular.js';
import { readReference } from '../eval/lib/reference-data.js';
import { referenceStats } from '../eval/lib/reference-stats.js';
import { readJsonLines, type SetRecord, type Subjects, type TraceLine } from '../eval/lib/sets.js';
import { splitMnist, splitTabular } from '../eval/lib/splits.js';
import { REPO_ROOT } from './helpers/gateway.js';

const EVAL = join(REPO_ROOT, 'eval');
const SETS = join(EVAL, 'sets');
const MEMBERS: Record<string, readonly string[]> = {
  clean: ['id', 'model', 'set', 'label', 'request'],
  ood: ['id', 'model', 'set', 'kind', 'request'],
  adversarial: ['id', 'model', 'set', 'label', 'attack', 'source', 'request'],
};

const records = (set: string, model: string): SetRecord[] => readJsonLines<SetRecord>(join(SETS, set, `${model}.jsonl.gz`));

function realExamples(spec: ModelSpec): Example[] {
  return spec.name === 'titanic' ? titanicExamples() : spec.name === 'iris' ? irisExamples() : [...mnistExamples(0, 150)];
}

/** Checks an infer request against the model's inputs; returns its rows. */
function checkRequest(spec: ModelSpec, request: SetRecord['request'], where: string): Row[] {
  assert.deepEqual(request.inputs.map((t) => t.name), spec.inputs.map((i) => i.name), `${where}: input names`);
  const n = request.inputs[0].shape[0];
  assert.ok(Number.isInteger(n) && n >= 1 && n <= spec.maxBatch, `${where}: batch ${n}`);
  spec.inputs.forEach((input, k) => {
    const t = request.inputs[k];
    assert.equal(t.datatype, input.datatype, `${where}: ${t.name} datatype`);
    assert.deepEqual(t.shape, [n, ...input.rowShape], `${where}: ${t.name} shape`);
    assert.equal(t.data.length, n * input.features.length, `${where}: ${t.name} element count`);
    for (const v of t.data) {
      if (input.datatype === 'BYTES') assert.equal(typeof v, 'string', `${where}: ${t.name} holds a non-string`);
      else if (input.datatype === 'INT64') assert.ok(Number.isInteger(v), `${where}: ${t.name} holds ${String(v)}`);
      else assert.ok(typeof v === 'number' || ['NaN', 'Infinity', '-Infinity'].includes(v as string), `${where}: ${t.name} holds ${String(v)}`);
    }
  });
  return rowsOf(spec, request);
}

for (const spec of MODELS) {
  describe(`evaluation sets: ${spec.name}`, () => {
    const reference = readReference(spec, join(EVAL, 'reference'));
    const referenceKeys = new Set(reference.map(rowKey));
    const clean = records('clean', spec.name);
    const ood = records('ood', spec.name);
    const adversarial = records('adversarial', spec.name);

    it('every record has the documented members, a known model and set, and a valid infer request', () => {
      const ids = new Set<string>();
      for (const [set, list] of [['clean', clean], ['ood', ood], ['adversarial', adversarial]] as const) {
        assert.ok(list.length > 0, `${set} is empty`);
        for (const r of list) {
          assert.deepEqual(Object.keys(r).sort(), [...MEMBERS[set]].sort(), `${r.id}: members`);
          assert.equal(r.model, spec.name);
          assert.equal(r.set, set);
          assert.ok(!ids.has(r.id), `duplicate id ${r.id}`);
          ids.add(r.id);
          if (r.label !== undefined) assert.ok(Number.isInteger(r.label) && r.label >= 0, `${r.id}: label ${r.label}`);
          if (set === 'ood') assert.match(r.kind as string, /^[a-z0-9-]+$/);
          if (set === 'adversarial') assert.match(r.attack as string, /^simba-linf-\d+(\.\d+)?(std)?$/);
          checkRequest(spec, r.request, r.id);
        }
      }
    });

    it('no clean, OOD or adversarial row equals a reference row', () => {
      for (const r of [...clean, ...ood, ...adversarial]) {
        for (const row of rowsOf(spec, r.request)) assert.ok(!referenceKeys.has(rowKey(row)), `${r.id} equals a reference row`);
      }
    });

    it('the reference and the clean set are the split of the real data the generator makes', () => {
      const split = spec.name === 'mnist' ? splitMnist() : splitTabular(spec.name, realExamples(spec));
      assert.deepEqual(reference.map(rowKey), split.reference.map((e) => rowKey(e.row)), 'reference rows');
      assert.deepEqual(clean.map((r) => r.id), split.test.map((e) => e.id), 'clean ids');
      const byId = new Map(realExamples(spec).map((e) => [e.id, e]));
      for (const r of clean) {
        const real = byId.get(r.id);
        assert.ok(real !== undefined, `${r.id} is not a real row`);
        assert.equal(r.label, real.label, `${r.id}: label`);
        assert.equal(rowKey(rowsOf(spec, r.request)[0]), rowKey(real.row), `${r.id}: row`);
      }
      if (spec.name === 'mnist') {
        assert.equal(reference.length, 500);
        assert.deepEqual(reference.map(rowKey), mnistExamples(0, 50).map((e) => rowKey(e.row)), 'MNIST reference = indices 0–49 of each class');
        for (const r of clean) {
          const m = /^mnist-(\d)-(\d+)$/.exec(r.id);
          assert.ok(m !== null && Number(m[2]) >= 50 && Number(m[2]) < 150, `${r.id} is not a test digit (50–149)`);
        }
      } else {
        assert.equal(reference.length + clean.length, realExamples(spec).length, 'reference + test = the whole dataset');
      }
    });

    it('the OOD set is what the generator makes', () => {
      const split = spec.name === 'mnist' ? splitMnist() : splitTabular(spec.name, realExamples(spec));
      const items = spec.name === 'titanic' ? titanicOod(split.test, irisExamples())
        : spec.name === 'iris' ? irisOod(split.test, split.reference, titanicNumericColumns()) : mnistOod(split.test);
      const real = new Set([...split.reference, ...split.test].map((e) => rowKey(e.row)));
      const made = items.filter((i) => !real.has(rowKey(i.row)));
      assert.deepEqual(ood.map((r) => [r.kind, r.request]), made.map((i) => [i.kind, requestOf(spec, [i.row])]));
    });

    it('adversarial records come from clean records, keep their label and stay within their L∞ budget', () => {
      const cleanById = new Map(clean.map((r) => [r.id, r]));
      const stats = referenceStats(spec, reference);
      for (const r of adversarial) {
        const src = cleanById.get(r.source as string);
        assert.ok(src !== undefined, `${r.id}: source ${r.source} is not a clean record`);
        assert.equal(r.label, src.label, `${r.id}: label`);
        const [x] = rowsOf(spec, r.request);
        const [x0] = rowsOf(spec, src.request);
        const m = /^simba-linf-([\d.]+)(std)?$/.exec(r.attack as string);
        assert.ok(m !== null);
        const budget = Number(m[1]);
        assert.notEqual(rowKey(x), rowKey(x0), `${r.id} equals its source`);
        x.forEach((v, i) => {
          const s = stats[i];
          if (s.kind === 'discrete' || v === null || x0[i] === null) {
            assert.equal(v, x0[i], `${r.id}: feature ${i} must be unchanged`);
            return;
          }
          const eps = m[2] === 'std' ? budget * s.std : budget;
          assert.ok(Math.abs((v as number) - (x0[i] as number)) <= eps + 1e-3 * Math.max(eps, 0.1), `${r.id}: feature ${i} moved by more than ${eps}`);
          if (spec.name === 'mnist') assert.ok((v as number) >= 0 && (v as number) <= 1, `${r.id}: pixel ${i} = ${v}`);
        });
      }
    });

    it('the extraction trace is time-ordered, names known subjects, and its benign callers replay real test rows', () => {
      const subjects = JSON.parse(readFileSync(join(SETS, 'extraction', `${spec.name}.subjects.json`), 'utf8')) as Subjects;
      const roles = Object.values(subjects);
      assert.equal(roles.filter((s) => s.role === 'benign').length, 50);
      assert.deepEqual(new Set(roles.filter((s) => s.role === 'attacker').map((s) => s.kind)), new Set(['uniform', 'jacobian', 'boundary', 'grid', 'mimic']));
      const lines = readJsonLines<TraceLine>(join(SETS, 'extraction', `${spec.name}.trace.jsonl.gz`));
      const testKeys = new Set(clean.map((r) => rowKey(rowsOf(spec, r.request)[0])));
      const seen = new Set<string>();
      let last = 0;
      for (const [n, line] of lines.entries()) {
        assert.deepEqual(Object.keys(line).sort(), ['request', 'subject', 't'], `line ${n}: members`);
        assert.ok(Number.isInteger(line.t) && line.t >= last, `line ${n}: t ${line.t} after ${last}`);
        last = line.t;
        const who = subjects[line.subject];
        assert.ok(who !== undefined, `line ${n}: unknown subject ${line.subject}`);
        seen.add(line.subject);
        const rows = checkRequest(spec, line.request, `trace line ${n}`);
        // Benign callers replay test rows only (so never a reference row); attackers send what they like.
        if (who.role === 'benign') for (const row of rows) assert.ok(testKeys.has(rowKey(row)), `line ${n}: a benign row that is no test row`);
      }
      assert.deepEqual([...seen].sort(), Object.keys(subjects).sort(), 'every subject sends');
    });

    it('the manifest counts what the files hold', () => {
      const manifest = JSON.parse(readFileSync(join(SETS, 'manifest.json'), 'utf8')) as { models: Record<string, { reference: number; clean: number; ood: Record<string, number>; adversarial: { attack: string; flipped: number }[] }> };
      const m = manifest.models[spec.name];
      assert.equal(m.reference, reference.length);
      assert.equal(m.clean, clean.length);
      const kinds: Record<string, number> = {};
      for (const r of ood) kinds[r.kind as string] = (kinds[r.kind as string] ?? 0) + 1;
      assert.deepEqual(m.ood, kinds);
      for (const a of m.adversarial) assert.equal(adversarial.filter((r) => r.attack === a.attack).length, a.flipped, a.attack);
    });
  });
}

it('the README documents the format', () => {
  assert.ok(existsSync(join(SETS, 'README.md')));
  const text = readFileSync(join(SETS, 'README.md'), 'utf8');
  for (const word of ['`kind`', '`attack`', '`source`', '.trace.jsonl', '.subjects.json', '"role"']) assert.ok(text.includes(word), `README lacks ${word}`);
});
