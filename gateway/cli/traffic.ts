/**
 * `breakwater traffic`: the admin traffic API from a shell (gateway/routes/admin-traffic.ts).
 *
 *   breakwater traffic show MODEL
 *   breakwater traffic set MODEL --weights 2=90,3=10 --reason "canary to 10%"   (keeps rules, shadow, flag)
 *   breakwater traffic set MODEL --file routes.yaml --reason "..."               (replaces the whole split)
 *   breakwater traffic reset MODEL --reason "..."                                (back to the file's routes)
 *
 * The gateway is --url (env BREAKWATER_URL, default http://127.0.0.1:8080); the token, which needs
 * the admin:traffic scope, is --token (env BREAKWATER_TOKEN).
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { adminCall, adminTarget } from './admin-call.js';
import { CliError, parseOrUsage, wantsHelp } from './args.js';

export const TRAFFIC_USAGE = `Usage:
  breakwater traffic show MODEL
  breakwater traffic set MODEL --weights V=W[,V=W...] --reason WHY   change the weights only
  breakwater traffic set MODEL --file FILE --reason WHY              replace routes, rules, shadow
  breakwater traffic reset MODEL --reason WHY                        back to the configuration's routes
Options: --url URL (env BREAKWATER_URL; default http://127.0.0.1:8080)
         --token JWT (env BREAKWATER_TOKEN; needs the admin:traffic scope)
         --help  this text
`;

/** `2=90,3=10` → routes in that order (the order decides which subjects move: see README). */
export function parseWeights(text: string): { version: string; weight: number }[] {
  return text.split(',').map((part) => {
    const m = /^\s*([A-Za-z0-9_.-]{1,64})\s*=\s*(\d{1,3})\s*$/.exec(part);
    if (m === null) throw new CliError(`--weights: "${part}" is not VERSION=PERCENT`);
    return { version: m[1] as string, weight: Number(m[2]) };
  });
}

/** Runs the command; resolves to what to print. */
export async function trafficCommand(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (wantsHelp(argv)) return TRAFFIC_USAGE;
  const { values, positionals } = parseOrUsage({
    args: [...argv],
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      weights: { type: 'string' },
      file: { type: 'string' },
      reason: { type: 'string' },
    },
  }, TRAFFIC_USAGE);
  const [action, model] = positionals;
  if (action === undefined || model === undefined || positionals.length !== 2) throw new CliError(TRAFFIC_USAGE, 2);
  const target = adminTarget(values, env);
  const path = `/admin/models/${encodeURIComponent(model)}`;
  const show = (x: unknown) => `${JSON.stringify(x, null, 2)}\n`;
  const reason = (): string => {
    if (values.reason === undefined || values.reason.trim() === '') throw new CliError('--reason is required: say why (it goes to the audit trail)');
    return values.reason;
  };

  switch (action) {
    case 'show':
      return show(await adminCall(target, { method: 'GET', path }));
    case 'set': {
      if ((values.weights === undefined) === (values.file === undefined)) throw new CliError('set: give exactly one of --weights and --file');
      const why = reason();
      let traffic: Record<string, unknown>;
      if (values.file !== undefined) {
        const parsed: unknown = parseYaml(await readFile(values.file, 'utf8'));
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new CliError(`${values.file}: expected a mapping with routes (and rules, shadow, unleash)`);
        traffic = parsed as Record<string, unknown>;
      } else {
        const current = (await adminCall(target, { method: 'GET', path })) as { traffic: { traffic: Record<string, unknown> } };
        traffic = { ...current.traffic.traffic, routes: parseWeights(values.weights ?? '') };
      }
      return show(await adminCall(target, { method: 'PUT', path: `${path}/traffic`, body: { ...traffic, reason: why } }));
    }
    case 'reset':
      return show(await adminCall(target, { method: 'DELETE', path: `${path}/traffic`, body: { reason: reason() } }));
    default:
      throw new CliError(`unknown traffic action "${action}"\n\n${TRAFFIC_USAGE}`, 2);
  }
}
