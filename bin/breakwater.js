#!/usr/bin/env node
// The `breakwater` command. The TypeScript sources are compiled to dist/ by `npm run build`, which
// `npm start` and `npm test` run first; after a plain `npm ci`, run it once before using this.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/gateway/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('breakwater: the gateway is not built yet; run `npm run build` first\n');
  process.exit(1);
}
await import(entry.href);
