/**
 * `breakwater audit verify DIR`: checks an audit trail directory (gateway/audit/verify.ts) and says,
 * for each replica's chain, whether it is what the replica wrote, or names its first bad record.
 *
 *   breakwater audit verify /var/lib/breakwater/trail --public-key audit-a.pub --public-key audit-b.pub
 *
 * Exit 0: verified; 1: tampering found (the report on stdout, one line per bad chain on stderr);
 * 2: a usage mistake, an unreadable key or directory. It reads files only: no gateway is needed.
 */
import { readFile, stat } from 'node:fs/promises';
import type { KeyObject } from 'node:crypto';
import { publicKeyFromPem } from '../audit/trail-format.js';
import { verifyTrail, type ChainReport, type KindCounts, type TrailProblem, type VerifyReport } from '../audit/verify.js';
import { CliError, parseOrUsage, wantsHelp } from './args.js';
import type { CommandResult } from './kill.js';

export const AUDIT_USAGE = `Usage:
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
    },
  }, AUDIT_USAGE);
  const [action, dir, ...rest] = positionals;
  if (action !== 'verify') throw usage(action === undefined ? 'name an action: verify' : `unknown audit action "${action}"`);
  if (dir === undefined || dir === '') throw usage('name the trail directory: breakwater audit verify DIR');
  if (rest.length > 0) throw usage(`one directory only (got also ${rest.join(', ')})`);
  const keyFiles = values['public-key'] ?? [];
  if (keyFiles.length === 0) throw usage('give at least one --public-key FILE: the checkpoints are verified with it');
  let checkpointMs: number | undefined;
  if (values['checkpoint-ms'] !== undefined) {
    const t = values['checkpoint-ms'];
    if (!/^\d{1,10}$/.test(t) || Number(t) < 1) throw usage(`--checkpoint-ms must be a positive number of milliseconds, got "${t}"`);
    checkpointMs = Number(t);
  }
  const publicKeys = await readKeys(keyFiles);
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) throw new CliError(`${dir} is not a directory`, 2);
  const report = await verifyTrail(dir, { publicKeys, ...(checkpointMs === undefined ? {} : { checkpointMs }) });
  const stdout = values.json === true ? `${JSON.stringify(report, null, 2)}\n` : humanReport(report);
  const stderr = report.problems.map((p) => `breakwater: ${p.replica}: ${p.kind}${where(p)}: ${p.message}\n`).join('');
  return { stdout, stderr, exitCode: report.ok ? 0 : 1 };
}
