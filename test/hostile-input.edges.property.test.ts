/**
 * Hostile-input suite, headers and paths (issue 8 rules 2 and 3; docs/security.md): random
 * Content-Type, charset and Content-Encoding headers around a valid body, header blocks of random
 * size, and random request targets (percent-encoding garbage, over-long names, unknown models and
 * versions, wrong and unknown methods). Every answer is a non-5xx catalogue answer with nothing of
 * the framework or the client's input in it, and only acceptable requests reach the backend. The
 * backend here answers declared outputs only, so these properties fail for their own rules.
 */
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { render, requestFor, MODEL } from './helpers/hostile-requests.js';
import { check, checkAccepted, checkRefused, exchange, outcome, startRig, toRawRequest, type Rig } from './helpers/hostile-rig.js';
import { Outcomes, runProperty, SEED } from './helpers/property-run.js';
import type { RawRequest } from './helpers/raw-send.js';

let rig: Rig;

before(async () => {
  rig = await startRig({ undeclared: false, versions: ['1', '2'] });
});

after(async () => {
  await rig.close();
});

const valid = fc.integer({ min: 1, max: 2 }).chain((b) => requestFor(b));
const plainValid = fc.integer({ min: 1, max: 2 }).chain((b) => requestFor(b, { binary: 'never' }));

/** Node's maxHeaderSize (the gateway keeps it). */
const HEADER_LIMIT = 16 * 1024;

type Verdict = 'accept' | 'refuse' | 'either' | 'gzip';

/** application/json in the spellings of UTF-8 a client may use: accepted. */
const acceptedType = fc.tuple(
  fc.constantFrom('application/json', 'Application/JSON', 'APPLICATION/json'),
  fc.constantFrom('', '; charset=utf-8', '; charset=UTF-8', ';charset=utf8', '; Charset="utf-8"', '; charset="UTF-8"', '; CHARSET=Utf-8'),
).map(([t, c]) => `${t}${c}`);

/** Types the gateway cannot read as an inference body: 415. */
const refusedType = fc.oneof(
  fc.constantFrom(
    'text/plain', 'text/json', 'application/xml', 'text/xml', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x',
    'application/jsonx', 'application/javascript', 'image/png', 'application/x-ndjson', 'application/cbor', 'application/msgpack',
    'application/json; charset=iso-8859-1', 'application/json; charset=utf-16', 'application/json; charset=UTF-16LE',
    'application/json; charset=latin1', 'application/json; charset=utf-32', 'application/json; charset=cp1252', '*/*', 'application/*',
  ),
  fc.tuple(fc.stringMatching(/^[a-z]{1,10}$/), fc.stringMatching(/^[a-z0-9.-]{1,12}$/))
    .map(([a, b]) => `${a}/${b}`)
    .filter((t) => !/^application\/(json|octet-stream)$/.test(t) && !t.endsWith('+json')),
);

/** Neither required nor forbidden by the rule (kept for existing clients): only the invariants. */
const eitherType = fc.constantFrom('application/octet-stream', 'application/vnd.oip.v2+json', 'application/problem+json');

const acceptedEncoding = fc.constantFrom(undefined, 'identity', 'Identity', 'IDENTITY');
const gzipEncoding = fc.constantFrom('gzip', 'x-gzip');
const refusedEncoding = fc.oneof(
  fc.constantFrom('br', 'deflate', 'compress', 'zstd', 'gzip, identity', 'identity, gzip', 'gzip, gzip', 'br;q=1', 'chunked', 'aes128gcm'),
  fc.stringMatching(/^[a-z]{2,10}$/).filter((e) => !['identity', 'gzip'].includes(e)),
);

const typeChoice = fc.oneof(
  { weight: 2, arbitrary: fc.constant<[string | undefined, Verdict]>([undefined, 'accept']) },
  { weight: 3, arbitrary: acceptedType.map((t): [string | undefined, Verdict] => [t, 'accept']) },
  { weight: 4, arbitrary: refusedType.map((t): [string | undefined, Verdict] => [t, 'refuse']) },
  { weight: 1, arbitrary: eitherType.map((t): [string | undefined, Verdict] => [t, 'either']) },
);
const encodingChoice = fc.oneof(
  { weight: 3, arbitrary: acceptedEncoding.map((e): [string | undefined, Verdict] => [e, 'accept']) },
  { weight: 1, arbitrary: gzipEncoding.map((e): [string | undefined, Verdict] => [e, 'gzip']) },
  { weight: 3, arbitrary: refusedEncoding.map((e): [string | undefined, Verdict] => [e, 'refuse']) },
);

function withHeader(req: RawRequest, name: string, value: string | undefined): RawRequest {
  return value === undefined ? req : { ...req, headers: [...(req.headers ?? []), [name, value]] };
}

describe(`hostile headers and paths (seed ${SEED})`, () => {
  test('rule 2: Content-Type and Content-Encoding: JSON (UTF-8) or none is read, anything else is 415 and never forwarded', async (t) => {
    const outcomes = new Outcomes();
    await runProperty(t, fc.tuple(plainValid, typeChoice, encodingChoice), async ([spec, [type, tv], [enc, ev]]) => {
      const req = withHeader(toRawRequest(spec, render(spec), type), 'Content-Encoding', enc);
      const x = await exchange(rig, req);
      outcomes.add(outcome(x));
      check(x, rig);
      const what = `Content-Type ${String(type)}, Content-Encoding ${String(enc)}`;
      if (ev === 'refuse' || tv === 'refuse') {
        checkRefused(x, { kind: 'refuse', statuses: [415], codes: ['UNSUPPORTED_MEDIA_TYPE'] }, what);
      } else if (ev === 'gzip') {
        // Refused, or inflated (the rule allows it) and then found not to be gzip at all.
        checkRefused(x, { kind: 'refuse', statuses: [415, 400] }, what);
      } else if (tv === 'accept') {
        checkAccepted(x, what);
      } else if (x.response.status === 200) {
        checkAccepted(x, what);
      }
    }, { numRuns: 360 }, outcomes);
  });

  test('rule 2: binary-extension requests (application/octet-stream with its header) are read; a compressed one is 415', async (t) => {
    const outcomes = new Outcomes();
    const binary = fc.integer({ min: 1, max: 2 }).chain((b) => requestFor(b)).filter((s) => s.inputs.some((i) => i.binary));
    await runProperty(t, fc.tuple(binary, encodingChoice), async ([spec, [enc, ev]]) => {
      const x = await exchange(rig, withHeader(toRawRequest(spec, render(spec), undefined), 'Content-Encoding', enc));
      outcomes.add(outcome(x));
      check(x, rig);
      if (ev === 'accept') checkAccepted(x, `binary, Content-Encoding ${String(enc)}`);
      else checkRefused(x, { kind: 'refuse', statuses: ev === 'gzip' ? [415, 400] : [415] }, `binary, Content-Encoding ${String(enc)}`);
    }, { numRuns: 120 }, outcomes);
  });

  test('rule 3: header blocks of random size: read within the limit, 431 HEADERS_TOO_LARGE beyond it, never the client\'s text back', async (t) => {
    const outcomes = new Outcomes();
    const headers = fc.oneof(
      fc.integer({ min: 100, max: 40_000 }).map((n) => [['X-Pad', 'p'.repeat(n)]] as [string, string][]),
      fc.integer({ min: HEADER_LIMIT - 800, max: HEADER_LIMIT + 400 }).map((n) => [['X-Pad', 'p'.repeat(n)]] as [string, string][]),
      fc.tuple(fc.integer({ min: 1, max: 400 }), fc.integer({ min: 10, max: 200 }))
        .map(([count, size]) => Array.from({ length: count }, (_, i): [string, string] => [`X-H${i}`, 'h'.repeat(size)])),
    );
    await runProperty(t, fc.tuple(plainValid, headers), async ([spec, extra]) => {
      const req = toRawRequest(spec, render(spec), 'application/json');
      const x = await exchange(rig, { ...req, headers: [...(req.headers ?? []), ...extra] });
      outcomes.add(outcome(x));
      check(x, rig);
      // Node counts the request target and every header's name and value against its 16 KiB, not
      // the ": " and CRLF between them (a block of many short headers is longer on the wire).
      // raw-send adds Host, Connection and Content-Length: under 64 bytes of names and values.
      const counted = req.path.length + [...(req.headers ?? []), ...extra].reduce((n, [k, v]) => n + k.length + v.length, 0);
      const what = `${counted} bytes of header names and values in ${extra.length} headers`;
      if (counted > HEADER_LIMIT) checkRefused(x, { kind: 'refuse', statuses: [431], codes: ['HEADERS_TOO_LARGE'] }, what);
      else if (counted < HEADER_LIMIT - 64) checkAccepted(x, what);
    }, { numRuns: 150 }, outcomes);
  });

  const garbage = fc.constantFrom('%', '%z', '%zz', '%E0%A4%A', '%C0%80', '%C0%AF', '%00', '%FF', '%ED%A0%80', '%2F', '%2e%2e', '..', '%25', '%u0041', '%%', '%0A', '%0D%0A', '%20');
  const segment = fc.oneof(
    fc.array(fc.oneof(garbage, fc.stringMatching(/^[A-Za-z0-9_.-]{0,6}$/)), { minLength: 1, maxLength: 6 }).map((p) => p.join('')),
    fc.integer({ min: 100, max: 6_000 }).map((n) => `m${'x'.repeat(n)}`),
    fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/).filter((n) => n !== MODEL),
  );
  const target = fc.oneof(
    segment.map((s) => `/v2/models/${s}/infer`),
    segment.map((s) => `/v2/models/${MODEL}/versions/${s}/infer`),
    segment.map((s) => `/v2/models/${s}`),
    segment.map((s) => `/v2/models/${s}/ready`),
    segment.map((s) => `/v2/${s}`),
    segment.map((s) => `/admin/models/${s}/traffic`),
    segment.map((s) => `/v2/models/${MODEL}/infer?${s}`),
    segment.map((s) => `/${s}`),
    fc.constantFrom(`/v2/models/${MODEL}/infer`, `/v2/models/${MODEL}/versions/2/infer`, `//v2/models/${MODEL}/infer`, `/v2/models//infer`, '/v2/models/', '*'),
  );
  const method = fc.constantFrom('POST', 'POST', 'GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'FOO', 'TRACE');

  test('rule 3: garbage paths, over-long names, unknown models and versions, wrong methods: catalogue JSON, no framework text or echo', async (t) => {
    const outcomes = new Outcomes();
    await runProperty(t, fc.tuple(plainValid, target, method), async ([spec, path, m]) => {
      const base = toRawRequest(spec, render(spec), 'application/json');
      const x = await exchange(rig, { ...base, method: m, path });
      outcomes.add(outcome(x));
      check(x, rig);
      const servable = m === 'POST' && /^\/v2\/models\/sentry(\/versions\/[12])?\/infer(\?|$)/.test(path);
      if (servable) {
        checkAccepted(x, `${m} ${path}`);
      } else if (!(m === 'GET' && /^\/v2(\/models\/sentry(\/ready)?)?\/?$/.test(path))) {
        // (GET /v2 and /v2/ are the server's metadata; this gateway runs without identity.)
        checkRefused(x, { kind: 'refuse', statuses: [400, 404, 405, 414, 431, 501] }, `${m} ${path.slice(0, 80)}`);
      }
    }, { numRuns: 480 }, outcomes);
  });
});
