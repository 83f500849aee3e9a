/** `breakwater token`: mints a token with the demo's development key (after `npm start` made it). */
import { existsSync } from 'node:fs';
import { CliError, parseOrUsage, wantsHelp } from './args.js';
import { DEV_PRIVATE_KEY, mintToken, parseTtl } from './dev-keys.js';

export const TOKEN_USAGE = `Usage:
  breakwater token [--sub S] [--tenant T] [--scope "predict:titanic ..."] [--ttl 1h]
                   [--key FILE] [--issuer ISS] [--audience AUD] [--kid KID]
Prints a token signed with the demo's development key (the first \`npm start\` creates it), or --key.
Defaults: --sub demo-user --tenant demo --scope "predict:*" --ttl 1h; --tenant "" for none.
`;

/** Resolves to what to print: the token, or the usage for --help. */
export function tokenCommand(argv: readonly string[]): string {
  if (wantsHelp(argv)) return TOKEN_USAGE;
  const { values } = parseOrUsage({
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
  }, TOKEN_USAGE);
  const keyFile = values.key ?? DEV_PRIVATE_KEY;
  if (!existsSync(keyFile)) throw new CliError(`no signing key at ${keyFile}: run \`npm start\` once to create the demo key, or give --key`);
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
