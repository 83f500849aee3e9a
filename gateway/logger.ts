/**
 * Structured JSON logs (pino). Request ids come from Fastify's child loggers. Headers that carry
 * credentials are redacted wherever they would appear.
 *
 * Lines are buffered (up to 4 KiB, flushed at least every 200 ms and on exit) rather than written
 * one syscall each: with an access line per inference, per-line writes were the largest single
 * cost the log added to the request path.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

const BUFFER_BYTES = 4096;
const FLUSH_EVERY_MS = 200;

export function createLogger(level: string, destination?: DestinationStream): Logger {
  let dest = destination;
  if (dest === undefined) {
    const boom = pino.destination({ fd: 1, sync: false, minLength: BUFFER_BYTES });
    setInterval(() => boom.flush(), FLUSH_EVERY_MS).unref();
    dest = boom;
  }
  return pino(
    {
      level,
      base: { service: 'breakwater', pid: process.pid },
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization'], censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    dest,
  );
}

/** Writes out buffered lines, then exits (a buffered line must not be lost at exit). */
export function flushAndExit(log: Logger, code: number): void {
  // Bounded: a stuck stdout must not keep a process alive that was told to exit.
  setTimeout(() => process.exit(code), 1000).unref();
  log.flush(() => process.exit(code));
}
