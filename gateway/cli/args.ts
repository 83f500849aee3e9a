/**
 * What every `breakwater` subcommand shares about its arguments: `--help` (or `-h`) answers with
 * the command's usage, and a mistake (an unknown option, a missing value) is answered with the
 * message and the usage, never with a bare parser error.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A failure to report without a stack: exit 1 when the operation failed, 2 for a usage mistake. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** `--help` or `-h` among the arguments (before a `--` that ends the options). */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

/** node:util's parseArgs; its mistakes become a CliError (exit 2) that carries `usage`. */
export function parseOrUsage<T extends ParseArgsConfig>(config: T, usage: string): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    throw new CliError(`${(e as Error).message}\n\n${usage}`, 2);
  }
}
