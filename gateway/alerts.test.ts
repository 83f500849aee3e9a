/**
 * The alert webhook against a real HTTP receiver on 127.0.0.1: what it posts, which failures it
 * retries, that every attempt and close() are bounded, that the queue is bounded, and that its logs
 * never carry the webhook's secret path or query.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { pino } from 'pino';
import { createAlerts, type AlertsOptions, type KillAlert } from './alerts.js';

/** What the receiver does with one request: answer with a status, or never answer. */
type Behaviour = { status: number; headers?: Record<string, string>; delayMs?: number } | 'hang';

interface Received {
  readonly method: string;
  readonly url: string;
  readonly contentType: string | undefined;
  readonly body: Record<string, unknown>;
}

interface Receiver {
  readonly origin: string;
  readonly received: Received[];
  /** Requests whose connection closed before an answer (aborted by the sender). */
  aborted(): number;
  close(): Promise<void>;
}

const receivers: Receiver[] = [];
after(async () => {
  await Promise.all(receivers.map((r) => r.close()));
});

/** A webhook receiver answering the n-th request as `script[n]` (the last entry repeats). */
async function receiver(script: readonly Behaviour[]): Promise<Receiver> {
  const received: Received[] = [];
  let aborted = 0;
  const server: Server = createServer((req: IncomingMessage, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => {
      const behaviour = script[Math.min(received.length, script.length - 1)] as Behaviour;
      received.push({ method: req.method ?? '', url: req.url ?? '', contentType: req.headers['content-type'], body: JSON.parse(text) as Record<string, unknown> });
      res.once('close', () => {
        if (!res.writableFinished) aborted++;
      });
      if (behaviour === 'hang') return;
      setTimeout(() => res.writeHead(behaviour.status, behaviour.headers ?? {}).end('ok'), behaviour.delayMs ?? 0);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const r: Receiver = {
    origin: `http://127.0.0.1:${port}`,
    received,
    aborted: () => aborted,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  receivers.push(r);
  return r;
}

/** A real pino logger whose lines are kept. */
function capturedLog(): { log: AlertsOptions['log']; lines: Record<string, unknown>[]; text: () => string } {
  const raw: string[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void raw.push(line) });
  return { log, get lines() { return raw.map((l) => JSON.parse(l) as Record<string, unknown>); }, text: () => raw.join('') };
}

function alert(revision: number, extra: Partial<KillAlert> = {}): KillAlert {
  return {
    action: 'kill',
    entry: { scope: 'model', model: 'titanic', mode: 'rollback', target: '1', by: 'alice', revision },
    by: 'alice',
    reason: 'refuses every applicant since the retrain',
    at: '2025-03-01T03:02:01.000Z',
    revision,
    replicas: [{ id: 'host-a:1', applyMs: 12 }, { id: 'host-b:2', applyMs: 31.4 }, { id: 'host-c:3', applyMs: null }],
    ...extra,
  };
}

const FAST = { backoffMs: 10, maxBackoffMs: 50 };

describe('alert webhook', { timeout: 60_000 }, () => {
  test('posts one Slack-compatible JSON body saying who, why, what and each replica\'s apply time', async () => {
    const hook = await receiver([{ status: 200 }]);
    const { log } = capturedLog();
    const alerts = createAlerts({ webhookUrl: `${hook.origin}/hook`, log });
    alerts.send(alert(7));
    await alerts.close();
    assert.equal(hook.received.length, 1);
    const [got] = hook.received as [Received];
    assert.equal(got.method, 'POST');
    assert.equal(got.contentType, 'application/json');
    const text = String(got.body.text);
    for (const part of ['alice', 'killed', 'model titanic (mode rollback, target 1)', 'revision 7', 'refuses every applicant since the retrain', '2 of 3 replicas applied it', 'host-a:1: 12 ms', 'host-b:2: 31 ms', 'host-c:3: not confirmed']) {
      assert.ok(text.includes(part), `text has "${part}": ${text}`);
    }
    const blocks = got.body.blocks as { type: string; text?: { type: string; text: string } }[];
    assert.deepEqual(blocks.map((b) => b.type), ['header', 'section', 'section', 'context']);
    assert.match(blocks[1]?.text?.text ?? '', /\*Who:\* alice/);
    assert.match(blocks[2]?.text?.text ?? '', /• host-c:3: not confirmed\n• host-a:1: 12 ms/);
  });

  test('a restore says so', async () => {
    const hook = await receiver([{ status: 200 }]);
    const alerts = createAlerts({ webhookUrl: hook.origin, log: capturedLog().log });
    alerts.send(alert(8, { action: 'restore', by: 'bob', reason: 'fixed model rolled out' }));
    await alerts.close();
    assert.match(String(hook.received[0]?.body.text), /^Kill switch: bob restored model titanic .*fixed model rolled out/);
  });

  test('what a caller typed cannot ping a channel or make a link', async () => {
    const hook = await receiver([{ status: 200 }]);
    const alerts = createAlerts({ webhookUrl: hook.origin, log: capturedLog().log });
    alerts.send(alert(1, { reason: '<!channel> see <https://evil.example|here> & more' }));
    await alerts.close();
    const raw = JSON.stringify(hook.received[0]?.body);
    assert.ok(!raw.includes('<!channel>') && !raw.includes('<https://'), raw);
    assert.ok(raw.includes('&lt;!channel&gt; see &lt;https://evil.example|here&gt; &amp; more'), raw);
  });

  test('send() returns before anything is posted, and never throws', async () => {
    const hook = await receiver([{ status: 200 }]);
    const alerts = createAlerts({ webhookUrl: hook.origin, log: capturedLog().log });
    assert.equal(alerts.send(alert(1)), undefined);
    assert.equal(hook.received.length, 0, 'nothing posted yet: the caller was not kept waiting');
    await alerts.close();
    assert.equal(hook.received.length, 1);
  });

  test('retries 5xx and 429 with back-off, then succeeds; a blip is not an outage', async () => {
    const hook = await receiver([{ status: 500 }, { status: 429, headers: { 'retry-after': '0' } }, { status: 503 }, { status: 200 }]);
    const cap = capturedLog();
    const alerts = createAlerts({ webhookUrl: hook.origin, log: cap.log, retries: 3, ...FAST });
    alerts.send(alert(3));
    await alerts.close();
    assert.equal(hook.received.length, 4, 'three retries');
    assert.ok(hook.received.every((r) => JSON.stringify(r.body) === JSON.stringify(hook.received[0]?.body)), 'the same body each time');
    assert.deepEqual(cap.lines.filter((l) => (l.level as number) >= 40), [], 'nothing warned or logged as failed');
  });

  test('a 4xx is final: not retried, logged once', async () => {
    const hook = await receiver([{ status: 400 }, { status: 200 }]);
    const cap = capturedLog();
    const alerts = createAlerts({ webhookUrl: hook.origin, log: cap.log, retries: 3, ...FAST });
    alerts.send(alert(4));
    await alerts.close();
    assert.equal(hook.received.length, 1);
    const errors = cap.lines.filter((l) => l.level === 50);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.problem, 'HTTP 400');
    assert.equal(errors[0]?.revision, 4);
  });

  test('gives up after the retries are spent', async () => {
    const hook = await receiver([{ status: 502 }]);
    const cap = capturedLog();
    const alerts = createAlerts({ webhookUrl: hook.origin, log: cap.log, retries: 2, ...FAST });
    alerts.send(alert(5));
    await alerts.close();
    assert.equal(hook.received.length, 3, 'the first attempt and two retries');
    assert.equal(cap.lines.filter((l) => l.level === 50).length, 1);
  });

  test('each attempt is bounded by timeoutMs: a webhook that never answers is cut off and retried', async () => {
    const hook = await receiver(['hang']);
    const cap = capturedLog();
    const alerts = createAlerts({ webhookUrl: hook.origin, log: cap.log, timeoutMs: 150, retries: 1, closeTimeoutMs: 30_000, ...FAST });
    alerts.send(alert(6));
    await alerts.close();
    assert.equal(hook.received.length, 2, 'both attempts reached the receiver');
    const error = cap.lines.find((l) => l.level === 50);
    assert.equal(error?.problem, 'no answer within 150 ms');
    assert.ok(!cap.text().includes('not sent before close'), 'the attempts ended by their own bound, not close()\'s');
  });

  test('logs name the webhook\'s origin only, never its secret path or query', async () => {
    const hook = await receiver([{ status: 500 }]);
    const cap = capturedLog();
    const secret = '/services/T0000/B0000/SECRETPATHxyz?token=SECRETQUERYxyz';
    const alerts = createAlerts({ webhookUrl: `${hook.origin}${secret}`, log: cap.log, retries: 1, ...FAST });
    alerts.send(alert(1));
    await alerts.close();
    assert.equal(hook.received[0]?.url, secret, 'the secret path was used');
    // A webhook nothing listens on: a network error, whose message undici builds itself.
    const dead = await receiver([{ status: 200 }]);
    await dead.close();
    const refused = createAlerts({ webhookUrl: `${dead.origin}${secret}`, log: cap.log, retries: 1, ...FAST });
    refused.send(alert(2));
    await refused.close();
    const errors = cap.lines.filter((l) => l.level === 50);
    assert.deepEqual(errors.map((l) => [l.webhook, l.problem]), [[hook.origin, 'HTTP 500'], [dead.origin, 'ECONNREFUSED']]);
    assert.ok(!cap.text().includes('SECRET'), cap.text());
    assert.ok(!cap.text().includes('/services/'), cap.text());
  });

  test('a failure is logged once per outage; the recovery says how many alerts were lost', async () => {
    const hook = await receiver([{ status: 500 }, { status: 500 }, { status: 500 }, { status: 200 }]);
    const cap = capturedLog();
    const alerts = createAlerts({ webhookUrl: hook.origin, log: cap.log, retries: 0, ...FAST });
    for (const r of [1, 2, 3, 4]) alerts.send(alert(r));
    await alerts.close();
    assert.equal(hook.received.length, 4);
    assert.equal(cap.lines.filter((l) => l.level === 50).length, 1, 'one error for three lost alerts');
    const back = cap.lines.find((l) => l.msg === 'alert webhook answers again');
    assert.equal(back?.lost, 3);
  });

  test('close() waits for every queued alert, sent in order', async () => {
    const hook = await receiver([{ status: 200, delayMs: 40 }]);
    const alerts = createAlerts({ webhookUrl: hook.origin, log: capturedLog().log, closeTimeoutMs: 30_000 });
    for (const r of [1, 2, 3]) alerts.send(alert(r));
    await alerts.close();
    assert.deepEqual(hook.received.map((r) => /revision (\d+)/.exec(String(r.body.text))?.[1]), ['1', '2', '3']);
  });

  test('close() is bounded: past closeTimeoutMs it aborts and says how many were not sent; later sends are dropped', async () => {
    const hook = await receiver(['hang']);
    const cap = capturedLog();
    const alerts = createAlerts({ webhookUrl: hook.origin, log: cap.log, timeoutMs: 60_000, closeTimeoutMs: 200 });
    alerts.send(alert(1));
    alerts.send(alert(2));
    await alerts.close();
    const warn = cap.lines.find((l) => l.msg === 'alerts not sent before close');
    assert.equal(warn?.dropped, 2);
    await waitFor(() => hook.aborted() === 1, 'the receiver saw the attempt in flight aborted');
    alerts.send(alert(3));
    assert.ok(cap.lines.some((l) => l.msg === 'alert after close not sent' && l.revision === 3));
    assert.equal(hook.received.length, 1);
  });

  test('a full queue drops the oldest waiting alert and logs it', async () => {
    // The first alert hangs until its attempt times out; meanwhile four more arrive for two places.
    const hook = await receiver(['hang', { status: 200 }]);
    const cap = capturedLog();
    const alerts = createAlerts({ webhookUrl: hook.origin, log: cap.log, timeoutMs: 300, retries: 0, queueLimit: 2, closeTimeoutMs: 30_000 });
    alerts.send(alert(1));
    await waitFor(() => hook.received.length === 1, 'the first alert is in flight');
    for (const r of [2, 3, 4, 5]) alerts.send(alert(r));
    await alerts.close();
    assert.deepEqual(cap.lines.filter((l) => l.msg === 'alert queue full: the oldest alert was dropped').map((l) => l.revision), [2, 3]);
    assert.deepEqual(hook.received.map((r) => /revision (\d+)/.exec(String(r.body.text))?.[1]), ['1', '4', '5']);
  });

  test('without a URL there are no alerts', async () => {
    const alerts = createAlerts({ log: capturedLog().log });
    alerts.send(alert(1));
    await alerts.close();
  });

  test('refuses a URL that is not http(s), without echoing it', () => {
    assert.throws(() => createAlerts({ webhookUrl: 'ftp://hooks.example/SECRET', log: capturedLog().log }), (e: Error) => /http\(s\)/.test(e.message) && !e.message.includes('SECRET'));
    assert.throws(() => createAlerts({ webhookUrl: 'not a url SECRET', log: capturedLog().log }), (e: Error) => !e.message.includes('SECRET'));
  });
});

async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
