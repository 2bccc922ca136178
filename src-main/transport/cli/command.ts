// The pieces a CLI command group is made of. One file per group (serve.ts, datasets.ts, runs.ts, ...),
// each exporting a CommandGroup; index.ts lists them.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ApiError } from '../../contract/errors';
import type { CallArgs, MethodName, Result } from '../../contract/index';
import { createBackend, type Backend } from '../../services/backend';
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { databasePath, resolveDataDir } from '../../storage/data-dir';
import { StorageError, isNotWritable } from '../../storage/database';

export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  /** Raw stdout without a newline (streamed text); optional, commands fall back to out() per line. */
  write?(text: string): void;
}

export interface CommandContext {
  io: CliIO;
  /** Where to keep data: --data-dir, then LENSLAB_DATA_DIR, then the platform default. */
  dataDir: string;
  /** --json: print machine-readable JSON instead of text. */
  json: boolean;
  env: NodeJS.ProcessEnv;
}

export interface CommandGroup {
  /** First word on the command line, e.g. 'datasets'. */
  name: string;
  /** One line for `lenslab --help`. */
  summary: string;
  /** Full usage text for `lenslab <name> --help`. */
  usage: string;
  /** Run with the words after the group name (global flags already removed). Returns the exit code. */
  run(argv: string[], ctx: CommandContext): Promise<number>;
}

/** A usage mistake: printed with the group's usage, exit code 2. */
export class UsageError extends Error {}

export type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs in strict mode, turning its errors into UsageError. */
export function parse<O extends Options>(argv: string[], options: O, allowPositionals = true) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export type Call = <M extends MethodName>(method: M, ...args: CallArgs<M>) => Promise<Result<M>>;

/**
 * Open the backend on the data dir, run fn with a typed `call`, close. Errors keep their ApiError type. A command
 * that only reads (`readonly`) still runs where the data folder cannot be written: it reads the database read-only
 * and says so on stderr. A long command (`interruptible`) gets its requests cancelled by the first Ctrl-C, through
 * the request's AbortSignal, so the handler stops cleanly and the command reports it; a second Ctrl-C kills the
 * process as usual.
 */
export async function withBackend<T>(
  ctx: CommandContext,
  fn: (call: Call, backend: Backend) => Promise<T>,
  opts: { readonly?: boolean; interruptible?: boolean } = {},
): Promise<T> {
  let backend: Backend;
  try {
    backend = createBackend({ dataDir: ctx.dataDir, host: 'cli', recoverRuns: false });
  } catch (err) {
    if (
      !opts.readonly ||
      !(err instanceof StorageError) ||
      !isNotWritable({ code: err.code }) ||
      !existsSync(databasePath(ctx.dataDir))
    )
      throw err;
    backend = createBackend({ dataDir: ctx.dataDir, host: 'cli', recoverRuns: false, readonly: true });
    ctx.io.err(`note: ${err.message}; reading it read-only`);
  }
  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort(new ApiError('cancelled', 'interrupted (Ctrl-C)'));
  if (opts.interruptible) process.once('SIGINT', onSigint);
  try {
    const call: Call = (method, ...args) =>
      backend.dispatcher.call(method, args[0], { signal: interrupt.signal }) as Promise<Result<typeof method>>;
    return await fn(call, backend);
  } finally {
    process.removeListener('SIGINT', onSigint);
    backend.close();
  }
}

export function printJson(ctx: CommandContext, value: unknown): void {
  ctx.io.out(JSON.stringify(value, null, 2));
}

/** A plain-text table with left-aligned columns. */
export function table(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

/** Parse a positive integer argument or throw a UsageError naming it. */
export function intArg(value: string | undefined, name: string): number {
  if (value === undefined || !/^\d+$/.test(value) || Number(value) < 1)
    throw new UsageError(`${name} must be a positive integer, got ${value ?? 'nothing'}`);
  return Number(value);
}

/** A numeric flag, undefined when absent; anything but a finite number (an empty string too) is a usage error. */
export function numArg(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const x = Number(value);
  if (value.trim() === '' || !Number.isFinite(x)) throw new UsageError(`${name} must be a number (got "${value}")`);
  return x;
}

/** A comma-separated list flag (entries trimmed, empty ones dropped), undefined when absent. */
export function listArg(value: string | undefined): string[] | undefined {
  return value
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A path flag that must exist (a file, a folder or either); errors name the flag. */
export function requirePath(value: string | undefined, flag: string, kind: 'file' | 'dir' | 'any'): string {
  if (!value) throw new UsageError(`${flag} is required`);
  const p = resolve(value);
  if (!existsSync(p)) throw new ApiError('not_found', `${value}: not found (${flag})`, flag.replace(/^--/, ''));
  const st = statSync(p);
  if (kind === 'dir' && !st.isDirectory())
    throw new ApiError('invalid_request', `${value}: is not a folder (${flag})`, flag.replace(/^--/, ''));
  if (kind === 'file' && !st.isFile())
    throw new ApiError('invalid_request', `${value}: is not a file (${flag})`, flag.replace(/^--/, ''));
  return p;
}

/** --model and --adapter as references the service takes (both checked to exist here, naming the flag). */
export function modelRefs(
  model: string | undefined,
  adapter: string | undefined,
): { model: { path: string }; adapter?: { path: string } } {
  const modelDir = requirePath(model, '--model', 'dir');
  return {
    model: { path: modelDir },
    ...(adapter === undefined ? {} : { adapter: { path: requirePath(adapter, '--adapter', 'dir') } }),
  };
}

export { ApiError, resolveDataDir };
