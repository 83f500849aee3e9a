/**
 * The `breakwater` command: `serve`, `validate` and `profile`, the admin subcommands (`traffic`,
 * `rollout`, `kill`, `restore`) that talk to a running gateway, and `audit verify`, which reads an
 * audit trail directory. Flags win over environment variables, which win over the configuration
 * file.
 */
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config.js';
import { GATEWAY_VERSION } from '../version.js';
import { CliError, parseOrUsage } from './args.js';
import { DEV_DIR, ensureDevKeys, mintToken } from './dev-keys.js';
import type { ConfigSource } from './source.js';
import { tokenCommand } from './token.js';
import { trafficCommand } from './traffic.js';
import { rolloutCommand } from './rollout.js';
import { killCommand } from './kill.js';
import { auditCommand } from './audit.js';

const USAGE = `breakwater ${GATEWAY_VERSION}: a model-serving gateway speaking the Open Inference Protocol v2

Usage:
  breakwater serve --config FILE            serve the models of a configuration file
  breakwater serve --model-repository DIR   serve DIR/<model>/<version>/model.onnx
  breakwater serve --demo                   serve the bundled demo (titanic, iris)
  breakwater validate FILE                  load every model as serve would, then exit: 0 when
  breakwater validate --model-repository DIR  serve would start and serve everything, 1 otherwise
                                            (identity flags are optional here)

Options for serve:
  --host HOST   address to listen on (env HOST; default 127.0.0.1)
  --port N      port to listen on (env PORT; default 8080)
  --workers N   worker processes sharing the port, or "auto" for one per core (env WORKERS; default 1)
  --redis-url URL          share rate limits and state through Redis (env REDIS_URL)
  --jwt-public-key FILE    verify tokens with this PEM public key (env JWT_PUBLIC_KEY_FILE)
  --jwks-url URL           verify tokens with the keys of this JWKS (env JWKS_URL)
  --jwt-issuer ISS         required token issuer (env JWT_ISSUER)
  --jwt-audience AUD       required token audience (env JWT_AUDIENCE)
  --insecure-no-auth       serve without authentication: anyone reaching the port may call every
                           model. For local experiments only; the gateway warns loudly.

  breakwater profile --model M [--version V] --data FILE [--config FILE] [--out FILE]
                           build a model version's reference profile for the input guards

  breakwater token [--sub S] [--tenant T] [--scope "predict:titanic ..."] [--ttl 1h]
                           mint a token with the demo's development key (see README)

  breakwater traffic show|set|reset MODEL ...   read or change a model's routes (admin:traffic)
  breakwater rollout show|start|pause|resume|promote|abort MODEL ...
                                                a model's progressive rollout (admin:traffic)
  breakwater kill MODEL|--all ... --reason WHY  stop a model, a version or everything on every
                                                replica, and wait until each has (admin:kill-switch)
  breakwater restore MODEL|--all ... --reason WHY  lift a kill
  breakwater kill status                        kills in force and each replica's applied revision
  breakwater audit verify DIR --public-key FILE ...  check an audit trail directory: exit 0 when it
                                                verifies, 1 naming each chain's first bad record

Every command answers --help.
`;

const DEMO_CONFIG = fileURLToPath(new URL('../../../demo/breakwater.yaml', import.meta.url));

function fail(message: string, code = 2): never {
  process.stderr.write(`breakwater: ${message}\n`);
  process.exit(code);
}

function parsePort(value: string | undefined, from: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) fail(`${from} must be a port number (0-65535), got "${value}"`);
  return Number(value);
}

function parseWorkers(value: string | undefined): number | 'auto' | undefined {
  if (value === undefined || value === 'auto') return value;
  if (!/^\d{1,3}$/.test(value) || Number(value) < 1 || Number(value) > 256) fail(`--workers must be 1-256 or "auto", got "${value}"`);
  return Number(value);
}

function sourceFrom(values: { config?: string; 'model-repository'?: string; demo?: boolean }, positional: string | undefined): ConfigSource {
  const given = [values.config ?? positional, values['model-repository'], values.demo ? DEMO_CONFIG : undefined].filter((v) => v !== undefined);
  if (given.length !== 1) fail('give exactly one of --config FILE, --model-repository DIR or --demo\n\n' + USAGE);
  if (values['model-repository'] !== undefined) return { kind: 'repository', path: values['model-repository'] };
  return { kind: 'file', path: values.config ?? positional ?? DEMO_CONFIG };
}

/** The demo's configuration names a development key that the first `--demo` run creates. */
function ensureDemoKeys(): void {
  if (ensureDevKeys()) process.stderr.write(`breakwater: created a development signing key in ${DEV_DIR}\n`);
}

/** Start-up warnings for every setting that trades safety for convenience. */
function warnInsecure(config: GatewayConfig, log: Logger): void {
  if (config.auth.insecureNoAuth) {
    log.warn('INSECURE: authentication is off (auth.insecureNoAuth / --insecure-no-auth): anyone who can reach this port can call every model. Use it for local experiments only.');
  }
  if (config.rateLimits.failMode === 'open') {
    log.warn('rateLimits.failMode is "open": while the shared store is unreachable, no rate limit or quota is enforced.');
  }
}

/** After `serve --demo` starts: a token to try it with, and how to mint others. */
function demoBanner(config: GatewayConfig): string {
  const token = mintToken({ subject: 'demo-user', tenant: 'demo', scopes: ['predict:*'], ttlSeconds: 86_400 });
  const { host, port } = config.server;
  return [
    '',
    'Breakwater demo: every model route needs a token. One for subject "demo-user", tenant "demo",',
    'scope "predict:*", valid 24 h:',
    '',
    `  export TOKEN=${token}`,
    `  curl -H "authorization: Bearer $TOKEN" http://${host}:${port}/v2/models/iris/infer \\`,
    `    -d '{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[5.1,3.5,1.4,0.2]}]}'`,
    '',
    'Mint others (e.g. a scope for one model only):',
    '  npx breakwater token --sub alice --tenant acme --scope "predict:titanic" --ttl 1h',
    '',
  ].join('\n');
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'token') return void process.stdout.write(`${tokenCommand(argv.slice(1)).trimEnd()}\n`);
  if (argv[0] === 'profile') {
    // Loaded on demand: it brings the model runtime, which the admin commands do without.
    const { profileCommand } = await import('./profile.js');
    return void process.stdout.write(await profileCommand(argv.slice(1)));
  }
  if (argv[0] === 'traffic') return void process.stdout.write(await trafficCommand(argv.slice(1)));
  if (argv[0] === 'rollout') return void process.stdout.write(await rolloutCommand(argv.slice(1)));
  if (argv[0] === 'kill' || argv[0] === 'restore' || argv[0] === 'audit') {
    const r = argv[0] === 'audit' ? await auditCommand(argv.slice(1)) : await killCommand(argv[0], argv.slice(1));
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    // Not process.exit(): the report on stdout must reach a pipe in full first.
    process.exitCode = r.exitCode;
    return;
  }
  const { values, positionals } = parseOrUsage({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      'model-repository': { type: 'string' },
      demo: { type: 'boolean' },
      host: { type: 'string' },
      port: { type: 'string', short: 'p' },
      workers: { type: 'string', short: 'w' },
      'redis-url': { type: 'string' },
      'jwt-public-key': { type: 'string' },
      'jwks-url': { type: 'string' },
      'jwt-issuer': { type: 'string' },
      'jwt-audience': { type: 'string' },
      'insecure-no-auth': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
  }, USAGE);
  const [command, positional] = positionals;
  if (values.version) return void process.stdout.write(`${GATEWAY_VERSION}\n`);
  if (values.help || command === undefined || command === 'help') return void process.stdout.write(USAGE);
  // The gateway itself is loaded only for serve and validate: the admin commands above start in a
  // fraction of the time (`breakwater kill` is typed during an incident).
  const [{ createLogger, flushAndExit }, { isClusterWorker, runPrimary }, { handleProcessSignals, startGateway }, { resolveSource }, { validateSource }] = await Promise.all([
    import('../logger.js'), import('../cluster.js'), import('../main.js'), import('./source.js'), import('./validate.js'),
  ]);

  const overrides = {
    host: values.host ?? (process.env.HOST || undefined),
    port: parsePort(values.port, '--port') ?? parsePort(process.env.PORT, 'PORT'),
    workers: parseWorkers(values.workers ?? (process.env.WORKERS || undefined)),
    redisUrl: values['redis-url'] ?? (process.env.REDIS_URL || undefined),
    jwtPublicKeyFile: values['jwt-public-key'] ?? (process.env.JWT_PUBLIC_KEY_FILE || undefined),
    jwksUrl: values['jwks-url'] ?? (process.env.JWKS_URL || undefined),
    jwtIssuer: values['jwt-issuer'] ?? (process.env.JWT_ISSUER || undefined),
    jwtAudience: values['jwt-audience'] ?? (process.env.JWT_AUDIENCE || undefined),
    insecureNoAuth: values['insecure-no-auth'] === true,
  };

  if (command === 'validate') {
    const source = sourceFrom(values, positional);
    if (values.demo) ensureDemoKeys();
    const report = await validateSource(source, overrides);
    for (const w of report.warnings) process.stderr.write(`warning: ${w}\n`);
    if (report.problems.length > 0) fail(`${source.path} is not valid:\n  - ${report.problems.join('\n  - ')}`, 1);
    process.stdout.write(`${report.summary}\n`);
    return;
  }
  if (command !== 'serve') fail(`unknown command "${command}"\n\n${USAGE}`);

  const source = sourceFrom(values, positional);
  if (values.demo && !isClusterWorker()) ensureDemoKeys();
  let loaded;
  try {
    loaded = await resolveSource(source, overrides);
  } catch (e) {
    fail((e as Error).message, 1);
  }
  const log = createLogger(loaded.config.logging.level);
  for (const w of loaded.warnings) log.warn(w);
  if (!isClusterWorker()) warnInsecure(loaded.config, log);
  if (values.demo && !isClusterWorker()) process.stderr.write(demoBanner(loaded.config));
  const loadConfig = async () => {
    const next = await resolveSource(source, overrides);
    for (const w of next.warnings) log.warn(w);
    return next.config;
  };
  if (loaded.config.server.workers > 1 && !isClusterWorker()) {
    // The primary validated the configuration above, so a bad file fails once, not once per worker.
    runPrimary({ workers: loaded.config.server.workers, shutdownGraceMs: loaded.config.server.shutdownGraceMs, state: loaded.config.state, log });
    return;
  }
  try {
    const gw = await startGateway({ config: loaded.config, log, loadConfig });
    handleProcessSignals(gw, log, source.kind === 'file' ? source.path : undefined);
  } catch (e) {
    log.fatal({ problem: (e as Error).message }, 'breakwater could not start');
    // Exit explicitly: a cluster worker's channel to its primary would otherwise keep it alive.
    flushAndExit(log, 1);
  }
}

main(process.argv.slice(2)).catch((e: unknown) => fail((e as Error).message, e instanceof CliError ? e.exitCode : 1));
