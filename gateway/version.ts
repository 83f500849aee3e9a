/** The gateway's own version, read once from package.json (reported by GET /v2 and `--version`). */
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
export const GATEWAY_VERSION: string = pkg.version;
