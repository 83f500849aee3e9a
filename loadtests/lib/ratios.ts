/**
 * Ratios between the targets' medians, and the acceptance checks (informational: the benchmark
 * never fails on a timing). Each compares like with like:
 *  - CPU per request, gateway proxy vs bare proxy: phase 1 only, where G and P are both one process
 *    (per-request CPU rises when a process is less loaded, so a 2-worker G against a 1-process P
 *    would not measure the gateway);
 *  - CPU per request, gateway proxy with JWT auth and rate limits through Redis vs without: (f)/(c),
 *    phase 1, both one gateway process in front of the same B (the gateway process only; Redis's
 *    own CPU is reported beside it);
 *  - CPU per request, gateway proxy with JWT auth and routing (a split with rules, and the opt-out
 *    lookup of a subject the registry does not hold) vs with JWT auth alone: (g)/(g0), phase 1, both
 *    one gateway process in front of the same B, the same token, no rate limits, in-memory store.
 *    (g)/(c) is reported as information (routing and JWT auth together against the plain proxy);
 *  - CPU per request, in-process ONNX with the contract and out-of-distribution guards vs the same
 *    gateway and profile without guards: (n)/(n0), phase 1, both one process serving the model
 *    itself. The squeezing guard's cost, (s)/(n) and (s) − (n) per request with every request
 *    sampled (so per sampled request), is reported as information;
 *  - CPU per request, in-process ONNX with drift monitoring vs without: (r)/(n0), phase 1;
 *  - CPU per request, in-process ONNX split stable 90 / canary 10 between two versions under a
 *    rollout with every criterion on (the disagreement sample at its default budget) vs the same
 *    split set by the configuration, no rollout: (o)/(o0), phase 1, both one process, drift
 *    monitored in both;
 *  - CPU per request, in-process ONNX with JWT auth and an audit trail writing a decision record per
 *    prediction (the default loss window, 1 s) vs the same without the audit section: (t)/(t0),
 *    phase 1, both one process, the same token;
 *  - requests/s, in-process ONNX vs the proxied path: phase 2, where both use every core. Phase 1's
 *    (d)/(c) is reported as information only: there O is one process, bound to one core, while the
 *    proxied path spreads over two processes (G and B).
 */
import type { Summary } from './report.js';
import { BENCH_OPT_OUTS, type TargetId } from './targets.js';

export interface Ratio {
  readonly phase: string;
  readonly name: string;
  readonly connections: number;
  readonly value: number;
  /** Extra context, e.g. the absolute difference behind the ratio. */
  readonly note?: string;
}

export interface Check {
  readonly name: string;
  readonly value: number;
  readonly limit: string;
  /** undefined: informational, not a check. */
  readonly pass?: boolean;
  readonly explanation: string;
}

function find(s: readonly Summary[], t: TargetId, conns: number): Summary | undefined {
  return s.find((x) => x.target === t && x.connections === conns);
}

export function ratios(s: readonly Summary[], connections: readonly number[]): Ratio[] {
  const out: Ratio[] = [];
  for (const n of connections) {
    const [a, b, c, d, e, f, g0, g, k0, k, n0, ng, sq, dr, o0, ro, t0, tr, cs, ds] = (['a', 'b', 'c', 'd', 'e', 'f', 'g0', 'g', 'k0', 'k', 'n0', 'n', 's', 'r', 'o0', 'o', 't0', 't', 'c*', 'd*'] as const)
      .map((t) => find(s, t, n));
    const add = (phase: string, name: string, x: number | undefined, y: number | undefined, note?: string) => {
      if (x !== undefined && y !== undefined && y > 0) out.push({ phase, name, connections: n, value: x / y, ...(note ? { note } : {}) });
    };
    const diffUs = (x: number | undefined, y: number | undefined) =>
      x === undefined || y === undefined ? undefined : `${x - y >= 0 ? '+' : ''}${(x - y).toFixed(1)} µs/req`;

    add('1', 'req/s (c)/(b)  gateway proxy vs bare proxy', c?.rps, b?.rps);
    add('1', 'req/s (c)/(a)  gateway proxy vs backend direct', c?.rps, a?.rps);
    add('1', 'req/s (d)/(c)  in-process ONNX vs gateway proxy, one process each (O bound to one core)', d?.rps, c?.rps);
    add('1', 'CPU/req proxy process (c)/(b)  G vs P', c?.frontCpuUsPerReq, b?.frontCpuUsPerReq, diffUs(c?.frontCpuUsPerReq, b?.frontCpuUsPerReq));
    add('1', 'CPU/req proxy process (c)/(a)  G vs B serving directly', c?.frontCpuUsPerReq, a?.frontCpuUsPerReq);
    add('1', 'CPU/req total (c)/(b)  G+B vs P+B', c?.totalCpuUsPerReq, b?.totalCpuUsPerReq);
    add('1', 'CPU/req total (c)/(a)  G+B vs B alone', c?.totalCpuUsPerReq, a?.totalCpuUsPerReq);
    add('1', 'CPU/req proxy process (e)/(b)  G with access log vs P', e?.frontCpuUsPerReq, b?.frontCpuUsPerReq, diffUs(e?.frontCpuUsPerReq, b?.frontCpuUsPerReq));
    add('1', 'CPU/req proxy process (e)/(c)  what the access log costs', e?.frontCpuUsPerReq, c?.frontCpuUsPerReq, diffUs(e?.frontCpuUsPerReq, c?.frontCpuUsPerReq));
    add('1', 'req/s (e)/(c)  what the access log costs in throughput', e?.rps, c?.rps);
    add('1', 'CPU/req proxy process (f)/(c)  what identity + quotas through Redis cost', f?.frontCpuUsPerReq, c?.frontCpuUsPerReq, diffUs(f?.frontCpuUsPerReq, c?.frontCpuUsPerReq));
    add('1', 'CPU/req proxy process (f)/(b)  G with auth + rate limits vs P', f?.frontCpuUsPerReq, b?.frontCpuUsPerReq, diffUs(f?.frontCpuUsPerReq, b?.frontCpuUsPerReq));
    add('1', 'CPU/req total (f)/(c)  G+B+Redis vs G+B', f?.totalCpuUsPerReq, c?.totalCpuUsPerReq, diffUs(f?.totalCpuUsPerReq, c?.totalCpuUsPerReq));
    add('1', 'req/s (f)/(c)  what identity + quotas through Redis cost in throughput', f?.rps, c?.rps);
    add('1', 'CPU/req proxy process (g)/(g0)  what routing costs (split + rules + opt-out lookup)', g?.frontCpuUsPerReq, g0?.frontCpuUsPerReq, diffUs(g?.frontCpuUsPerReq, g0?.frontCpuUsPerReq));
    add('1', 'CPU/req proxy process (g)/(c)  G with JWT auth + routing vs plain G', g?.frontCpuUsPerReq, c?.frontCpuUsPerReq, diffUs(g?.frontCpuUsPerReq, c?.frontCpuUsPerReq));
    add('1', 'CPU/req proxy process (g0)/(c)  what JWT auth (cached token) costs', g0?.frontCpuUsPerReq, c?.frontCpuUsPerReq, diffUs(g0?.frontCpuUsPerReq, c?.frontCpuUsPerReq));
    add('1', 'req/s (g)/(g0)  what routing costs in throughput', g?.rps, g0?.rps);
    add('1', 'CPU/req proxy process (k)/(k0)  what the kill switch costs (configured, nothing killed)', k?.frontCpuUsPerReq, k0?.frontCpuUsPerReq, diffUs(k?.frontCpuUsPerReq, k0?.frontCpuUsPerReq));
    add('1', 'req/s (k)/(k0)  what the kill switch costs in throughput', k?.rps, k0?.rps);
    add('1', 'p50 (k)/(k0)', k?.p50Ms, k0?.p50Ms);
    add('1', 'p99 (k)/(k0)', k?.p99Ms, k0?.p99Ms);
    add('1', 'CPU/req ONNX process (n)/(n0)  what the contract + ood guards cost', ng?.frontCpuUsPerReq, n0?.frontCpuUsPerReq, diffUs(ng?.frontCpuUsPerReq, n0?.frontCpuUsPerReq));
    add('1', 'CPU/req ONNX process (s)/(n)  what the squeezing guard costs, every request sampled', sq?.frontCpuUsPerReq, ng?.frontCpuUsPerReq, diffUs(sq?.frontCpuUsPerReq, ng?.frontCpuUsPerReq));
    add('1', 'CPU/req ONNX process (n0)/(d)  what serving with a profile loaded (guards off) costs', n0?.frontCpuUsPerReq, d?.frontCpuUsPerReq, diffUs(n0?.frontCpuUsPerReq, d?.frontCpuUsPerReq));
    add('1', 'req/s (n)/(n0)  what the contract + ood guards cost in throughput', ng?.rps, n0?.rps);
    add('1', 'CPU/req ONNX process (r)/(n0)  what drift monitoring costs, every request sampled', dr?.frontCpuUsPerReq, n0?.frontCpuUsPerReq, diffUs(dr?.frontCpuUsPerReq, n0?.frontCpuUsPerReq));
    add('1', 'req/s (r)/(n0)  what drift monitoring costs in throughput', dr?.rps, n0?.rps);
    add('1', 'CPU/req ONNX process (o)/(o0)  what a rollout with every criterion on costs over the same 90/10 split', ro?.frontCpuUsPerReq, o0?.frontCpuUsPerReq, diffUs(ro?.frontCpuUsPerReq, o0?.frontCpuUsPerReq));
    add('1', 'CPU/req ONNX process (o0)/(r)  what serving two versions split 90/10 costs over one (drift monitored in both)', o0?.frontCpuUsPerReq, dr?.frontCpuUsPerReq, diffUs(o0?.frontCpuUsPerReq, dr?.frontCpuUsPerReq));
    add('1', 'req/s (o)/(o0)  what a rollout costs in throughput', ro?.rps, o0?.rps);
    add('1', 'p50 (o)/(o0)', ro?.p50Ms, o0?.p50Ms);
    add('1', 'p99 (o)/(o0)', ro?.p99Ms, o0?.p99Ms);
    add('1', 'CPU/req ONNX process (t)/(t0)  what the audit trail costs, a decision record per prediction', tr?.frontCpuUsPerReq, t0?.frontCpuUsPerReq, diffUs(tr?.frontCpuUsPerReq, t0?.frontCpuUsPerReq));
    add('1', 'CPU/req ONNX process (t0)/(d)  what JWT auth costs in-process serving', t0?.frontCpuUsPerReq, d?.frontCpuUsPerReq, diffUs(t0?.frontCpuUsPerReq, d?.frontCpuUsPerReq));
    add('1', 'req/s (t)/(t0)  what the audit trail costs in throughput', tr?.rps, t0?.rps);
    add('1', 'p50 (t)/(t0)', tr?.p50Ms, t0?.p50Ms);
    add('1', 'p99 (t)/(t0)', tr?.p99Ms, t0?.p99Ms);
    add('1', 'req/s (s)/(n)  what the squeezing guard costs in throughput, every request sampled', sq?.rps, ng?.rps);
    add('1', 'p50 (n)/(n0)', ng?.p50Ms, n0?.p50Ms);
    add('1', 'p99 (n)/(n0)', ng?.p99Ms, n0?.p99Ms);
    add('1', 'p50 (s)/(n)', sq?.p50Ms, ng?.p50Ms);
    add('1', 'p99 (s)/(n)', sq?.p99Ms, ng?.p99Ms);
    add('1', 'p50 (c)/(b)', c?.p50Ms, b?.p50Ms);
    add('1', 'p50 (c)/(a)', c?.p50Ms, a?.p50Ms);
    add('1', 'p50 (d)/(c)', d?.p50Ms, c?.p50Ms);
    add('1', 'p50 (f)/(c)', f?.p50Ms, c?.p50Ms);
    add('1', 'p50 (g)/(g0)', g?.p50Ms, g0?.p50Ms);
    add('1', 'p99 (c)/(b)', c?.p99Ms, b?.p99Ms);
    add('1', 'p99 (c)/(a)', c?.p99Ms, a?.p99Ms);
    add('1', 'p99 (d)/(c)', d?.p99Ms, c?.p99Ms);
    add('1', 'p99 (f)/(c)', f?.p99Ms, c?.p99Ms);
    add('1', 'p99 (g)/(g0)', g?.p99Ms, g0?.p99Ms);

    add('2', 'req/s (d*)/(c*)  in-process ONNX vs gateway proxy, both on every core', ds?.rps, cs?.rps);
    add('2', 'CPU/req (c*)/(d*)  G+B per request vs O per request', cs?.totalCpuUsPerReq, ds?.frontCpuUsPerReq);
    add('2', 'p50 (d*)/(c*)', ds?.p50Ms, cs?.p50Ms);
    add('2', 'p99 (d*)/(c*)', ds?.p99Ms, cs?.p99Ms);

    add('2 vs 1', 'req/s (c*)/(c)  gateway proxy: worker per core vs one process', cs?.rps, c?.rps);
    add('2 vs 1', 'req/s (d*)/(d)  in-process ONNX: worker per core vs one process', ds?.rps, d?.rps);
  }
  // Grouped by phase, then connections (a stable sort keeps the order above within a group).
  const order = ['1', '2', '2 vs 1'];
  return out.sort((x, y) => order.indexOf(x.phase) - order.indexOf(y.phase) || x.connections - y.connections);
}

/**
 * CPU per request of the front process, target `x` over baseline `y` in phase 1: a check at 32
 * connections, and the same ratio as information at 1 connection (every request its own wake-up:
 * too noisy to hold a limit to).
 */
function cpuCheckAt32(
  s: readonly Summary[],
  x: TargetId,
  y: TargetId,
  spec: {
    readonly name: string;
    readonly limit: number;
    /** What is compared; the µs per request follow, then `extra` of the target's summary. */
    readonly what: string;
    readonly extra?: (x: Summary) => string;
    /** Why the 1-connection figure is only information. */
    readonly oneConnection: string;
  },
): Check[] {
  const out: Check[] = [];
  for (const n of [32, 1]) {
    const num = find(s, x, n);
    const den = find(s, y, n);
    if (num === undefined || den === undefined || den.frontCpuUsPerReq <= 0) continue;
    const v = num.frontCpuUsPerReq / den.frontCpuUsPerReq;
    const detail = `${spec.what}, ${num.frontCpuUsPerReq.toFixed(1)} vs ${den.frontCpuUsPerReq.toFixed(1)} µs/req${spec.extra?.(num) ?? ''}`;
    const ratio = `(${x})/(${y}), phase 1`;
    out.push(n === 32
      ? { name: `${spec.name}: ${ratio}, 32 connections`, value: v, limit: `≤ ${spec.limit.toFixed(2)}`, pass: v <= spec.limit, explanation: detail }
      : { name: `(informational, the check is at 32 connections) ${ratio}, 1 connection`, value: v, limit: '–', explanation: `${detail}; ${spec.oneConnection}` });
  }
  return out;
}

/**
 * The same CPU ratio at 32 connections with each front's CPU counted in units of its backend's in
 * the same window (Summary.frontPerBackend): information beside the check, to tell a change of the
 * code from a change of the machine's speed between two cells.
 */
function speedNormalised(s: readonly Summary[], x: TargetId, y: TargetId): Check[] {
  const num = find(s, x, 32);
  const den = find(s, y, 32);
  if (num?.frontPerBackend === undefined || den?.frontPerBackend === undefined || !(den.frontPerBackend > 0)) return [];
  return [{
    name: `(informational, beside the check) (${x})/(${y}), phase 1, 32 connections, in units of the backend's CPU per request measured in the same window`,
    value: num.frontPerBackend / den.frontPerBackend, limit: '–',
    explanation: `${num.frontPerBackend.toFixed(3)} vs ${den.frontPerBackend.toFixed(3)} front µs per backend µs (median over rounds); ` +
      `B does the same work for every target, so this cancels the machine's speed drift between the two cells`,
  }];
}

/**
 * The squeezing guard's cost, information beside the guards' check: (s) is (n) plus the squeezing
 * guard sampling every request (one more, batched inference on the squeezed copies), so (s) − (n)
 * per request is its CPU per sampled request; at sampleRate r a request costs r times that on average.
 */
function squeezeCost(s: readonly Summary[]): Check[] {
  const out: Check[] = [];
  for (const n of [32, 1]) {
    const sq = find(s, 's', n);
    const ng = find(s, 'n', n);
    if (sq === undefined || ng === undefined || !(ng.frontCpuUsPerReq > 0)) continue;
    const extra = sq.frontCpuUsPerReq - ng.frontCpuUsPerReq;
    out.push({
      name: `(informational, not a check) the squeezing guard, every request sampled: (s)/(n), phase 1, ${n} connection${n === 1 ? '' : 's'}`,
      value: sq.frontCpuUsPerReq / ng.frontCpuUsPerReq, limit: '–',
      explanation: `${sq.frontCpuUsPerReq.toFixed(1)} vs ${ng.frontCpuUsPerReq.toFixed(1)} µs/req: the squeezing guard costs ` +
        `${extra >= 0 ? '+' : ''}${extra.toFixed(1)} µs of CPU per sampled request ((s) − (n); at sampleRate r, r times that per request on average)`,
    });
  }
  return out;
}

export function checks(s: readonly Summary[], cores: number, auditMaxLossMs = 1000): Check[] {
  const out: Check[] = [];
  for (const n of [32, 1]) {
    const b = find(s, 'b', n);
    const c = find(s, 'c', n);
    if (b && c && b.frontCpuUsPerReq > 0) {
      const v = c.frontCpuUsPerReq / b.frontCpuUsPerReq;
      out.push({
        name: `gateway proxy CPU per request ≤ 1.2× bare pass-through: (c)/(b), phase 1, ${n} connection${n === 1 ? '' : 's'}`,
        value: v, limit: '≤ 1.20', pass: v <= 1.2,
        explanation: `proxy process only (G vs P, both one process), ${c.frontCpuUsPerReq.toFixed(1)} vs ${b.frontCpuUsPerReq.toFixed(1)} µs/req`,
      });
    }
  }
  out.push(...speedNormalised(s, 'c', 'b'));
  out.push(...cpuCheckAt32(s, 'f', 'c', {
    name: 'authentication plus rate limiting through Redis add at most 25% CPU per request to the proxy path',
    limit: 1.25,
    what: 'gateway process only (G with JWT auth + 2 rate-limit rules in Redis vs G, both one process)',
    extra: (f) => {
      const redis = f.redisCpuUsPerReq === undefined ? ''
        : `; Redis itself ${f.redisCpuUsPerReq.toFixed(1)} µs/req (${(f.redisCores ?? 0).toFixed(2)} cores), not included`;
      const scripts = f.redisScriptsPerReq === undefined ? '' : `; ${f.redisScriptsPerReq.toFixed(2)} Redis scripts per request`;
      return `${redis}${scripts}`;
    },
    oneConnection: 'at one connection no other request shares a Redis round trip, so each reservation costs a whole extra wake-up',
  }));
  out.push(...speedNormalised(s, 'f', 'c'));
  out.push(...cpuCheckAt32(s, 'g', 'g0', {
    name: 'routing with splits, rules and opt-out checks adds at most 10% CPU per request to the proxy path',
    limit: 1.1,
    what: `gateway process only (G with JWT auth + a 3-arm split with 2 rules + the opt-out lookup of a subject the ` +
      `registry of ${BENCH_OPT_OUTS.subjects} does not hold vs G with JWT auth alone, both one process, the same token)`,
    oneConnection: 'at one connection every request pays a whole wake-up, so the figure is noisier',
  }));
  out.push(...speedNormalised(s, 'g', 'g0'));
  out.push(...cpuCheckAt32(s, 'k', 'k0', {
    name: 'a kill switch configured (nothing killed) adds at most 2% CPU per request to the proxy path',
    limit: 1.02,
    what: 'gateway process only (G with JWT auth and the kill switch on vs the same configuration with killSwitch.enabled: false, both one process, the same token)',
    oneConnection: 'at one connection every request pays a whole wake-up, so the figure is noisier',
  }));
  out.push(...speedNormalised(s, 'k', 'k0'));
  out.push(...cpuCheckAt32(s, 'n', 'n0', {
    name: 'the contract and out-of-distribution guards add at most 10% CPU per request to in-process serving',
    limit: 1.1,
    what: 'gateway process only, serving iris in-process (O with the iris profile and the contract and ood guards in flag mode vs ' +
      'the same configuration without the guards section, both one process, every request a clean row)',
    oneConnection: 'at one connection every request pays a whole wake-up, so the figure is noisier',
  }));
  out.push(...squeezeCost(s));
  out.push(...cpuCheckAt32(s, 'r', 'n0', {
    name: 'drift monitoring with every request sampled adds at most 5% CPU per request to in-process serving',
    limit: 1.05,
    what: 'gateway process only, serving iris in-process (O with the iris profile and models.iris.drift: { sampleRate: 1 } vs ' +
      'the same configuration without the drift section, both one process, every request counted)',
    oneConnection: 'at one connection every request pays a whole wake-up, so the figure is noisier',
  }));
  out.push(...cpuCheckAt32(s, 'o', 'o0', {
    name: 'a rollout with every criterion on adds at most 10% CPU per request over the same split without one',
    limit: 1.1,
    what: 'gateway process only, serving iris in-process as two versions split stable 90 / canary 10 (O with a rollout of version 2 at its ' +
      'first step, criteria errorRate, latencyP99, guards, drift and disagreement at its default budget (one canary request in ten copied ' +
      'to stable and compared), vs the same split set by models.iris.traffic and no rollout; both one process, drift monitored in both)',
    oneConnection: 'at one connection every request pays a whole wake-up, so the figure is noisier',
  }));
  out.push(...cpuCheckAt32(s, 't', 't0', {
    name: `the audit trail with a decision record per prediction (${auditMaxLossMs === 1000 ? 'default loss window' : `maxLossMs ${auditMaxLossMs}`}) adds at most 10% CPU per request`,
    limit: 1.1,
    what: 'gateway process only, serving iris in-process with JWT auth (O with an audit section: a decision record per prediction, ' +
      `digests of the input and output tensors, the subject's HMAC pseudonym, chained and ${auditMaxLossMs === 0 ? 'each written and fsynced at once (maxLossMs 0)' : `written in batches fsynced every maxLossMs ${auditMaxLossMs} ms`}, ` +
      'checkpoints every 10 s, vs the same configuration without the audit section; both one process, the same token, the memory store)',
    oneConnection: 'at one connection every request pays a whole wake-up, so the figure is noisier',
  }));
  {
    const c = find(s, 'c', 32);
    const g = find(s, 'g', 32);
    if (c && g && c.frontCpuUsPerReq > 0) {
      out.push({
        name: '(informational, not a check) (g)/(c), phase 1, 32 connections',
        value: g.frontCpuUsPerReq / c.frontCpuUsPerReq, limit: '–',
        explanation: `JWT auth and routing together against the plain gateway proxy (auth.insecureNoAuth), gateway process only, ` +
          `${g.frontCpuUsPerReq.toFixed(1)} vs ${c.frontCpuUsPerReq.toFixed(1)} µs/req`,
      });
    }
  }
  const cs = find(s, 'c*', 32);
  const ds = find(s, 'd*', 32);
  if (cs && ds && cs.rps > 0) {
    const v = ds.rps / cs.rps;
    out.push({
      name: 'in-process ONNX ≥ 2× requests/s of the proxied path: (d*)/(c*), phase 2, 32 connections',
      value: v, limit: '≥ 2.00', pass: v >= 2,
      explanation: `both deployments use every core of the machine (${cores}): O, G and B each run one worker per core; ` +
        `${ds.rps.toFixed(0)} vs ${cs.rps.toFixed(0)} req/s`,
    });
  }
  const c = find(s, 'c', 32);
  const d = find(s, 'd', 32);
  if (c && d && c.rps > 0) {
    out.push({
      name: '(informational, not the check) (d)/(c), phase 1, 32 connections',
      value: d.rps / c.rps, limit: '–',
      explanation: 'with one process each, O runs every inference on its one event loop and so is bound to one core, ' +
        'while the proxied path spreads over two processes (G and B); this is a single process\'s limit, not the gateway\'s',
    });
  }
  return out;
}

export function ratioLines(r: readonly Ratio[]): string[] {
  return r.map((x) => `[phase ${x.phase}] ${x.name} @${x.connections}: ${x.value.toFixed(2)}×${x.note ? ` (${x.note})` : ''}`);
}

export function checkLines(c: readonly Check[]): string[] {
  return c.map((x) => `${x.pass === undefined ? 'INFO' : x.pass ? 'PASS' : 'FAIL'}: ${x.name}: ${x.value.toFixed(2)}×` +
    `${x.pass === undefined ? '' : ` (limit ${x.limit})`}; ${x.explanation}`);
}
