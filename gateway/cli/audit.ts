/**
 * `breakwater audit verify DIR`: checks an audit trail directory (gateway/audit/verify.ts) and says,
 * for each replica's chain, whether it is what the replica wrote, or names its first bad record.
 * `breakwater audit trace REQUEST_ID --dir DIR`: walks back from a prediction (gateway/audit/trace.ts).
 * `breakwater audit export --dir DIR --out OUT --public-key FILE...`: a self-contained bundle (every
 * replica's files and the public keys) that `verify OUT` checks offline. `breakwater audit keygen
 * --out PREFIX`: an Ed25519 key pair for `audit.signingKeyFile` (PREFIX.key.pem, mode 0600) and
 * `audit.publicKeyFiles` (PREFIX.pub.pem).
 *
 *   breakwater audit verify /var/lib/breakwater/trail --public-key audit-a.pub --public-key audit-b.pub
 *
 * Exit 0: verified; 1: tampering found (the report on stdout, one line per bad chain on stderr);
 * 2: a usage mistake, an unreadable key or directory. It reads files only: no gateway is needed.
 */
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { readChains } from '../audit/read-chains.js';
import { describeTrace, traceRequest } from '../audit/trace.js';
import { readTrail } from '../audit/trail-sink.js';
import { publicKeyFromPem } from '../audit/trail-format.js';
import { verifyTrail, type ChainReport, type KindCounts, type TrailProblem, type VerifyReport } from '../audit/verify.js';
import { CliError, parseOrUsage, wantsHelp } from './args.js';
import type { CommandResult } from './kill.js';

export const AUDIT_USAGE = `Usage:
  breakwater audit trace REQUEST_ID --dir DIR [--json]
                  the prediction's decision record, the configuration, version artefacts, routes,
                  rollout step and kills in force, and the changes that led there (every replica's)
  breakwater audit export --dir DIR --out OUT --public-key FILE [--public-key FILE ...]
                  copies every replica's trail files and the public keys into OUT (OUT/trail,
                  OUT/keys): a bundle that \`breakwater audit verify OUT\` checks offline
  breakwater audit keygen --out PREFIX
                  writes an Ed25519 key pair: PREFIX.key.pem (mode 0600, audit.signingKeyFile)
                  and PREFIX.pub.pem (audit.publicKeyFiles)
  breakwater audit verify DIR --public-key FILE [--public-key FILE ...] [--checkpoint-ms N] [--json]
                  check the audit trail in DIR (DIR/<replica>/<seq>.jsonl): every replica's hash
                  chain, its file-start lines, the signatures and claims of its checkpoints and the
                  countersignatures of the others; names the first bad record of each chain
Exit 0 when the trail verifies, 1 when tampering is found, 2 for a usage mistake.
Options: --public-key FILE   a PEM Ed25519 public key checkpoints may be signed with (repeat it
                             for each replica's key; at least one)
         --checkpoint-ms N   the replicas' checkpoint period: also report a stretch of the chain
                             left without a checkpoint for more than 2 × N ms
         --json              the whole report as one JSON document
         --help              this text
`;

const usage = (message: string): CliError => new CliError(`${message}\n\n${AUDIT_USAGE}`, 2);

async function readKeys(files: readonly string[]): Promise<KeyObject[]> {
  const keys: KeyObject[] = [];
  for (const f of files) {
    let pem: string;
    try {
      pem = await readFile(f, 'utf8');
    } catch (e) {
      throw new CliError(`--public-key ${f}: ${(e as Error).message}`, 2);
    }
    try {
      keys.push(publicKeyFromPem(pem));
    } catch (e) {
      throw new CliError(`--public-key ${f}: not a PEM Ed25519 public key (${(e as Error).message})`, 2);
    }
  }
  return keys;
}

function counts(kinds: KindCounts): string {
  const parts = Object.entries(kinds).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`);
  return parts.length === 0 ? 'none' : parts.join(', ');
}

function where(p: TrailProblem): string {
  const place = [p.file === undefined ? undefined : p.line === undefined ? p.file : `${p.file}:${p.line}`, p.seq === undefined ? undefined : `seq ${p.seq}`].filter((x) => x !== undefined);
  return place.length === 0 ? '' : ` at ${place.join(', ')}`;
}

function chainLine(c: ChainReport): string {
  const span = c.firstSeq === undefined ? 'no entry' : `seq ${c.firstSeq}–${c.lastSeq}`;
  const head = `  ${c.replica}: ${c.files.length} file${c.files.length === 1 ? '' : 's'}, ${span}, ${c.entries} entries, ${c.checkpoints} checkpoint${c.checkpoints === 1 ? '' : 's'}, ${c.countersigns} countersignature${c.countersigns === 1 ? '' : 's'}`;
  if (c.first === undefined) return `${head}: ok\n`;
  const more = c.problems.length > 1 ? `\n      (${c.problems.length - 1} more problem${c.problems.length === 2 ? '' : 's'} after it; --json lists them)` : '';
  return `${head}\n    ${c.first.kind.toUpperCase()}${where(c.first)}\n      ${c.first.message}${more}\n`;
}

/** The report for a person. */
export function humanReport(r: VerifyReport): string {
  const lines = [
    `audit trail ${r.dir}: ${r.replicas} replica${r.replicas === 1 ? '' : 's'}, ${r.files} file${r.files === 1 ? '' : 's'}, ${r.entries} entries (${counts(r.kinds)})\n`,
    ...r.chains.map(chainLine),
    ...r.storeProblems.map((p) => `  store: ${p.kind.toUpperCase()}: ${p.message}\n`),
  ];
  for (const c of r.chains) if (c.ignored.length > 0) lines.push(`  note: ${c.dirName ?? c.replica} holds files that are not trail files (not verified): ${c.ignored.join(', ')}\n`);
  const bad = r.chains.filter((c) => !c.ok).length;
  lines.push(r.ok
    ? `verified: ${r.replicas} chain${r.replicas === 1 ? '' : 's'}, ${r.checkpoints} checkpoints and ${r.countersigns} countersignatures, no tampering found\n`
    : `TAMPERING FOUND: ${bad} of ${r.replicas} chain${r.replicas === 1 ? '' : 's'}${r.storeProblems.length > 0 ? ` and ${r.storeProblems.length} store checkpoint(s)` : ''}\n`);
  return lines.join('');
}

/** `breakwater audit ...`. */
export async function auditCommand(argv: readonly string[]): Promise<CommandResult> {
  if (wantsHelp(argv)) return { stdout: AUDIT_USAGE, stderr: '', exitCode: 0 };
  const { values, positionals } = parseOrUsage({
    args: [...argv],
    allowPositionals: true,
    options: {
      'public-key': { type: 'string', multiple: true },
      'checkpoint-ms': { type: 'string' },
      json: { type: 'boolean' },
      dir: { type: 'string' },
      out: { type: 'string' },
    },
  }, AUDIT_USAGE);
  let [action, dir, ...rest] = positionals;
  if (action === 'trace') return trace(dir, rest, values);
  if (action === 'keygen') return keygen(dir, values.out);
  if (action === 'export') return exportBundle(dir, values);
  if (action !== 'verify') throw usage(action === undefined ? 'name an action: verify, trace, export or keygen' : `unknown audit action "${action}"`);
  if (dir === undefined || dir === '') throw usage('name the trail directory: breakwater audit verify DIR');
  if (rest.length > 0) throw usage(`one directory only (got also ${rest.join(', ')})`);
  const keyFiles = [...(values['public-key'] ?? [])];
  const bundleKeys = join(dir, 'keys');
  if (await stat(bundleKeys).then((i) => i.isDirectory(), () => false)) {
    for (const f of (await readdir(bundleKeys)).filter((n) => n.endsWith('.pem')).sort()) keyFiles.push(join(bundleKeys, f));
  }
  if (keyFiles.length === 0) throw usage('give at least one --public-key FILE: the checkpoints are verified with it');
  let checkpointMs: number | undefined;
  if (values['checkpoint-ms'] !== undefined) {
    const t = values['checkpoint-ms'];
    if (!/^\d{1,10}$/.test(t) || Number(t) < 1) throw usage(`--checkpoint-ms must be a positive number of milliseconds, got "${t}"`);
    checkpointMs = Number(t);
  }
  // A bundle made by `audit export` carries its keys and its trail.
  const bundled = await stat(join(dir, 'trail')).then((i) => i.isDirectory(), () => false);
  const publicKeys = await readKeys(keyFiles);
  if (bundled) dir = join(dir, 'trail');
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) throw new CliError(`${dir} is not a directory`, 2);
  const report = await verifyTrail(dir, { publicKeys, ...(checkpointMs === undefined ? {} : { checkpointMs }) });
  const stdout = values.json === true ? `${JSON.stringify(report, null, 2)}\n` : humanReport(report);
  const stderr = report.problems.map((p) => `breakwater: ${p.replica}: ${p.kind}${where(p)}: ${p.message}\n`).join('');
  return { stdout, stderr, exitCode: report.ok ? 0 : 1 };
}

async function trace(id: string | undefined, rest: readonly string[], values: { dir?: string; json?: boolean }): Promise<CommandResult> {
  if (id === undefined || id === '') throw usage('name the request: breakwater audit trace REQUEST_ID --dir DIR');
  if (rest.length > 0) throw usage(`one request id only (got also ${rest.join(', ')})`);
  if (values.dir === undefined) throw usage('name the trail directory: --dir DIR (audit.dir)');
  const info = await stat(values.dir).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) throw new CliError(`${values.dir} is not a directory`, 2);
  const t = traceRequest(await readChains(values.dir), id);
  if (t === undefined) return { stdout: '', stderr: `breakwater: no decision record of request ${id} in ${values.dir}\n`, exitCode: 1 };
  return { stdout: values.json === true ? `${JSON.stringify(t, null, 2)}\n` : describeTrace(t), stderr: '', exitCode: 0 };
}

async function keygen(extra: string | undefined, out: string | undefined): Promise<CommandResult> {
  if (extra !== undefined) throw usage(`keygen takes --out PREFIX, not "${extra}"`);
  if (out === undefined || out === '') throw usage('name where to write the key pair: --out PREFIX');
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  try {
    await writeFile(`${out}.key.pem`, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    await writeFile(`${out}.pub.pem`, publicKey.export({ type: 'spki', format: 'pem' }), { flag: 'wx' });
  } catch (e) {
    throw new CliError(`cannot write the key pair: ${(e as Error).message} (an existing key is never overwritten)`, 2);
  }
  return { stdout: `wrote ${out}.key.pem (audit.signingKeyFile, keep it secret) and ${out}.pub.pem (audit.publicKeyFiles)\n`, stderr: '', exitCode: 0 };
}

async function exportBundle(extra: string | undefined, values: { dir?: string; out?: string; 'public-key'?: string[] }): Promise<CommandResult> {
  if (extra !== undefined) throw usage(`export takes --dir and --out, not "${extra}"`);
  if (values.dir === undefined || values.out === undefined) throw usage('name the trail and the bundle: --dir DIR --out OUT');
  const keys = values['public-key'] ?? [];
  if (keys.length === 0) throw usage('give the public keys the bundle is verified with: --public-key FILE (each replica\'s)');
  await readKeys(keys);
  if (await stat(values.out).then(() => true, () => false)) throw new CliError(`${values.out} exists: a bundle is written to a new directory`, 2);
  const listing = await readTrail(values.dir).catch((e: unknown) => {
    throw new CliError(`${values.dir}: ${(e as Error).message}`, 2);
  });
  let files = 0;
  for (const r of listing.replicas) {
    await mkdir(join(values.out, 'trail', r.dirName), { recursive: true, mode: 0o700 });
    for (const f of r.files) {
      await copyFile(f.path, join(values.out, 'trail', r.dirName, f.name));
      files++;
    }
  }
  await mkdir(join(values.out, 'keys'), { recursive: true, mode: 0o700 });
  for (const [i, k] of keys.entries()) await copyFile(k, join(values.out, 'keys', `${String(i + 1).padStart(3, '0')}.pub.pem`));
  return { stdout: `wrote ${values.out}: ${listing.replicas.length} replica(s), ${files} file(s), ${keys.length} public key(s); check it with: breakwater audit verify ${values.out}\n`, stderr: '', exitCode: 0 };
}
