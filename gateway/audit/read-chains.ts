/**
 * Every replica's chain as its files hold it, entries in file order (file-start lines left out): what
 * the walk-back views read (trace.ts, routes/admin-audit-trail.ts). It does not verify: run
 * `breakwater audit verify` (verify.ts) for that. A line that does not parse is skipped here and
 * named by verify.
 */
import { readFile } from 'node:fs/promises';
import type { TrailEntry } from './trail-format.js';
import { readTrail } from './trail-sink.js';

export async function readChains(dir: string): Promise<Map<string, TrailEntry[]>> {
  const out = new Map<string, TrailEntry[]>();
  let listing;
  try {
    listing = await readTrail(dir);
  } catch {
    return out;
  }
  for (const r of listing.replicas) {
    const list: TrailEntry[] = [];
    for (const f of r.files) {
      for (const line of (await readFile(f.path, 'utf8')).split('\n')) {
        if (line.trim() === '') continue;
        try {
          const e = JSON.parse(line) as TrailEntry & { type?: string };
          if (e.type !== 'file-start' && typeof e.seq === 'number') list.push(e);
        } catch {
          // verify names it
        }
      }
    }
    out.set(r.replica, list);
  }
  return out;
}
