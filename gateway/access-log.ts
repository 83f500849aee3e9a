/**
 * One access line per prediction request (off by default: it measured about +10 µs of CPU per
 * request, `npm run bench` target (e)). An observer, so refusals before the handler (401, 403, 429)
 * get their line too. It names model, version, code and time: nothing of the payload or the caller.
 */
import type { Observer } from './observers.js';

export function accessLogObserver(enabled: () => boolean): Observer {
  return {
    name: 'access log',
    onEnd(e) {
      if (!enabled()) return;
      e.log.info({ model: e.model, version: e.version, code: e.code ?? 'OK', ms: Math.round(e.ms * 10) / 10 }, 'infer');
    },
  };
}
