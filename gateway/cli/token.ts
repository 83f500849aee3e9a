/** `breakwater token`: mints a token with the demo's development key (after `npm start` made it). */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEV_PRIVATE_KEY, mintToken, parseTtl } from './dev-keys.js';

export function tokenCommand(argv: readonly string[]): string {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      sub: { type: 'string', default: 'demo-user' },
      tenant: { type: 'string', default: 'demo' },
      scope: { type: 'string', default: 'predict:*' },
      ttl: { type: 'string', default: '1h' },
      key: { type: 'string' },
      issuer: { type: 'string' },
      audience: { type: 'string' },
      kid: { type: 'string' },
    },
  });
  const keyFile = values.key ?? DEV_PRIVATE_KEY;
  if (!existsSync(keyFile)) throw new Error(`no signing key at ${keyFile}: run \`npm start\` once to create the demo key, or give --key`);
  return mintToken({
    subject: values.sub,
    tenant: values.tenant === '' ? undefined : values.tenant,
    scopes: values.scope.split(/\s+/).filter((s) => s !== ''),
    ttlSeconds: parseTtl(values.ttl),
    keyFile,
    issuer: values.issuer,
    audience: values.audience,
    kid: values.kid,
  });
}
