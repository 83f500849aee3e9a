/**
 * A backend for overload properties: the suite's fake OIP backend whose infer calls wait at a gate
 * until the test opens it. With the gate shut, a burst settles into a state that timing cannot
 * blur (so many calls at the backend, so many queued in the gateway, the rest refused), the test
 * reads it, then opens the gate and lets the queue drain. It counts the calls it holds at once.
 */
import { startFakeOipBackend, type FakeOipBackend } from './backends.js';
import { backendAnswer } from './hostile-rig.js';
import { META } from './hostile-requests.js';

export interface GatedBackend {
  readonly backend: FakeOipBackend;
  /** Infer calls inside the backend now (waiting at the gate, or being answered). */
  held(): number;
  /** Most infer calls inside at once since `shut()`. */
  maxHeld(): number;
  /** Holds every infer call from now on, and restarts `maxHeld`. */
  shut(): void;
  /** Lets every held call and every later one through. */
  open(): void;
  close(): Promise<void>;
}

export async function startGatedBackend(): Promise<GatedBackend> {
  let inside = 0;
  let max = 0;
  let shut = false;
  const waiting: (() => void)[] = [];
  const backend = await startFakeOipBackend(META, async (req) => {
    inside++;
    max = Math.max(max, inside);
    try {
      if (shut) await new Promise<void>((resolve) => waiting.push(resolve));
      return backendAnswer(req as never, false);
    } finally {
      inside--;
    }
  });
  const open = () => {
    shut = false;
    for (const release of waiting.splice(0)) release();
  };
  return {
    backend,
    held: () => inside,
    maxHeld: () => max,
    shut: () => {
      shut = true;
      max = inside;
    },
    open,
    close: async () => {
      open();
      await backend.close();
    },
  };
}
