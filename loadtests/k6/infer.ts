/**
 * k6 load test of the infer path, for environments that have k6 (this repository's own benchmark,
 * `npm run bench`, drives load with autocannon because k6 is not installable here; this script is
 * type-checked in CI against @types/k6 so it stays runnable).
 *
 *   k6 run -e BASE_URL=http://127.0.0.1:8080 -e TOKEN=... loadtests/k6/infer.ts
 *
 * Thresholds encode what a healthy gateway answers: no errors other than deliberate 429s, and
 * p99 latency within the budget passed as P99_MS (default 50 ms).
 */
import { check } from 'k6';
import http from 'k6/http';
import type { Options } from 'k6/options';

const BASE_URL = __ENV.BASE_URL ?? 'http://127.0.0.1:8080';
const MODEL = __ENV.MODEL ?? 'iris';
const P99_MS = Number(__ENV.P99_MS ?? '50');

export const options: Options = {
  scenarios: {
    steady: { executor: 'constant-vus', vus: Number(__ENV.VUS ?? '32'), duration: __ENV.DURATION ?? '30s' },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    http_req_duration: [`p(99)<${P99_MS}`],
    checks: ['rate>0.99'],
  },
};

const body = JSON.stringify({
  id: 'k6',
  inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }],
});

const headers: Record<string, string> = { 'content-type': 'application/json' };
if (__ENV.TOKEN !== undefined) headers.authorization = `Bearer ${__ENV.TOKEN}`;

// Rate-limited answers are expected when a quota is configured; they are not failures.
http.setResponseCallback(http.expectedStatuses(200, 429));

export default function infer(): void {
  const res = http.post(`${BASE_URL}/v2/models/${MODEL}/infer`, body, { headers });
  check(res, {
    'answered 200 or 429': (r) => r.status === 200 || r.status === 429,
    'names the model version': (r) => r.status !== 200 || r.headers['X-Model-Version'] !== undefined,
    'has outputs': (r) => r.status !== 200 || (r.json('outputs') as unknown[] | undefined)?.length === 1,
  });
}
