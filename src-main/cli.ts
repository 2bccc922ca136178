// `lenslab <command>`: the CLI entry. Global flags: --data-dir DIR, --json, --help, --version.
import { pathToFileURL } from 'node:url';
import { realpathSync } from 'node:fs';
import { ApiError } from './contract/errors';
import { commandGroups } from './transport/cli/index';
import { UsageError, type CliIO, type CommandGroup } from './transport/cli/command';
import { databasePath, resolveDataDir } from './storage/data-dir';
import { StorageError, storageReason } from './storage/database';
import { LENSLAB_VERSION } from './services/version';

function mainUsage(groups: CommandGroup[]): string {
  const w = Math.max(...groups.map((g) => g.name.length));
  return [
    'Usage: lenslab <command> [options]',
    '',
    'Commands:',
    ...groups.map((g) => `  ${g.name.padEnd(w)}  ${g.summary}`),
    '',
    'Global options:',
    '  --data-dir DIR   where Lenslab keeps its data (default: $LENSLAB_DATA_DIR or the per-user data folder)',
    '  --json           machine-readable output',
    '  --help           help for a command: lenslab <command> --help',
    '  --version',
  ].join('\n');
}

/** Run the CLI with argv (without node and script); returns the exit code. */
export async function runCli(
  argv: string[],
  io: CliIO = {
    out: (t) => process.stdout.write(`${t}\n`),
    err: (t) => process.stderr.write(`${t}\n`),
    write: (t) => process.stdout.write(t),
  },
  env: NodeJS.ProcessEnv = process.env,
  groups: CommandGroup[] = commandGroups,
): Promise<number> {
  // Pull out global flags wherever they appear.
  const rest: string[] = [];
  let dataDir: string | undefined;
  let json = false;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === '--json') json = true;
    else if (a === '--help' || a === '-h') help = true;
    else if (a === '--data-dir') {
      dataDir = argv[++i];
      if (!dataDir) {
        io.err('error: --data-dir needs a directory');
        return 2;
      }
    } else if (a.startsWith('--data-dir=')) dataDir = a.slice('--data-dir='.length);
    else rest.push(a);
  }
  const [name, ...args] = rest;
  if (name === '--version' || name === 'version') {
    io.out(LENSLAB_VERSION);
    return 0;
  }
  if (!name) {
    (help ? io.out : io.err)(mainUsage(groups));
    return help ? 0 : 2;
  }
  const group = groups.find((g) => g.name === name);
  if (!group) {
    io.err(`error: unknown command "${name}"\n\n${mainUsage(groups)}`);
    return 2;
  }
  if (help) {
    io.out(group.usage);
    return 0;
  }
  try {
    return await group.run(args, { io, dataDir: resolveDataDir(dataDir, env), json, env });
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`error: ${e.message}\n\n${group.usage}`);
      return 2;
    }
    if (e instanceof ApiError) {
      if (json) io.err(JSON.stringify({ error: e.toData() }));
      else io.err(`error (${e.code}): ${e.message}`);
      return 1;
    }
    // the data folder or database cannot be written (read-only, full, permissions): the path and why, no stack
    const code = (e as { code?: unknown }).code;
    if (e instanceof StorageError || (typeof code === 'string' && code.startsWith('SQLITE_'))) {
      const message =
        e instanceof StorageError
          ? e.message
          : `the database ${databasePath(resolveDataDir(dataDir, env))} failed: ${storageReason(e)}`;
      if (json) io.err(JSON.stringify({ error: { code: 'unavailable', message } }));
      else io.err(`error: ${message}`);
      return 1;
    }
    io.err(`error: ${(e as Error).stack ?? String(e)}`);
    return 1;
  }
}

function isEntry(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

// Run directly (`tsx src-main/cli.ts ...`); bin/lenslab.mjs imports runCli instead.
if (isEntry()) {
  runCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
