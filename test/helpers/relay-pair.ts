/**
 * Both ends of a state-relay channel in one process, behaving as node:cluster's IPC does: a message
 * is serialised as JSON when sent (a value JSON cannot write throws there) and arrives, parsed, on a
 * later turn of the event loop; closing stops delivery and tells both ends, also asynchronously.
 * `hold()` makes the primary's end silent (it reads nothing), like a primary that stalls.
 */
import type { RelayChannel, RelayMessage } from '../../gateway/state/relay-protocol.js';

export interface ChannelPair {
  /** The worker's end (what a RelayStore takes). */
  readonly worker: RelayChannel;
  /** The primary's end (what RelayHost.serve takes). */
  readonly primary: RelayChannel;
  /** The channel closes, as when the primary (or the worker) dies. */
  close(): void;
  /** The primary stops reading: requests go unanswered. */
  hold(): void;
}

interface End {
  readonly messages: Set<(m: unknown) => void>;
  readonly closes: Set<() => void>;
}

export function channelPair(): ChannelPair {
  let open = true;
  let held = false;
  const workerEnd: End = { messages: new Set(), closes: new Set() };
  const primaryEnd: End = { messages: new Set(), closes: new Set() };

  const end = (self: End, other: End, reads: () => boolean): RelayChannel => ({
    send(message: RelayMessage) {
      if (!open) throw new Error('the IPC channel is closed');
      const text = JSON.stringify(message);
      setImmediate(() => {
        if (!open || !reads()) return;
        for (const h of other.messages) h(JSON.parse(text));
      });
    },
    listen(onMessage, onClose) {
      self.messages.add(onMessage);
      self.closes.add(onClose);
      return () => {
        self.messages.delete(onMessage);
        self.closes.delete(onClose);
      };
    },
    connected: () => open,
  });

  return {
    worker: end(workerEnd, primaryEnd, () => !held),
    primary: end(primaryEnd, workerEnd, () => true),
    close() {
      if (!open) return;
      open = false;
      setImmediate(() => {
        for (const h of [...workerEnd.closes, ...primaryEnd.closes]) h();
      });
    },
    hold() {
      held = true;
    },
  };
}
