/**
 * The state relay's channel over node:cluster's IPC: a worker's end (process.send) and the
 * primary's end for one worker (worker.send). Other messages on the channel pass by untouched.
 */
import type { Worker } from 'node:cluster';
import type { RelayChannel } from './relay-protocol.js';

/**
 * Sends report failures through this callback rather than an 'error' event (which, unheard, would
 * take the process down). A failed send needs nothing more: the channel's close fails what waits.
 */
function ignoreSendError(): void {}

class ChannelClosedError extends Error {
  constructor(to: string) {
    super(`the IPC channel to ${to} is closed`);
    this.name = 'ChannelClosedError';
  }
}

/** A worker's channel to its primary. */
export function primaryChannel(): RelayChannel {
  return {
    send(message) {
      if (process.send === undefined || !process.connected) throw new ChannelClosedError('the primary');
      process.send(message, ignoreSendError);
    },
    listen(onMessage, onClose) {
      process.on('message', onMessage);
      process.on('disconnect', onClose);
      return () => {
        process.off('message', onMessage);
        process.off('disconnect', onClose);
      };
    },
    connected: () => process.connected === true,
  };
}

/** The primary's channel to one worker. */
export function workerChannel(worker: Worker): RelayChannel {
  return {
    send(message) {
      if (!worker.isConnected()) throw new ChannelClosedError(`worker ${worker.process.pid}`);
      worker.send(message, ignoreSendError);
    },
    listen(onMessage, onClose) {
      worker.on('message', onMessage);
      // 'exit' too: a worker killed outright may not say 'disconnect' first.
      worker.on('disconnect', onClose);
      worker.on('exit', onClose);
      return () => {
        worker.off('message', onMessage);
        worker.off('disconnect', onClose);
        worker.off('exit', onClose);
      };
    },
    connected: () => worker.isConnected(),
  };
}
