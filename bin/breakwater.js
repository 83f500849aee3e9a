#!/usr/bin/env node
// The `breakwater` command. The TypeScript sources are compiled to dist/ by `npm run build`
// (run by `npm ci`'s prepare step, `npm start` and `npm test`).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/gateway/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('breakwater: the gateway is not built yet; run `npm run build` first\n');
  process.exit(1);
}
await import(entry.href);
