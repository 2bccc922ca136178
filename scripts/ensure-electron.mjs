#!/usr/bin/env node
// Run by `npm start` / `npm run dev` before Electron starts. `npm install` here skips Electron's own
// download (package.json allowScripts has electron: false, so installs work offline), so this:
//   1. checks for Electron's binary and, when missing, runs electron's own install.js (needs internet);
//   2. makes sure better-sqlite3 exists compiled for Electron's ABI. better-sqlite3 is not N-API, so the
//      copy npm built for Node cannot load in Electron, and rebuilding it in place (electron-rebuild)
//      would break the Node side (tests, `lenslab serve`, the CLI). The Electron build is kept apart under
//      node_modules/.lenslab-electron/ and the backend utilityProcess loads it (LENSLAB_SQLITE_BINDING).
// Each step prints a clear message and the one command to run by hand when it fails.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, copyFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(join(root, 'package.json'));

/** Keep in step with electronSqliteBindingPath in src-main/app/app.ts. */
export function electronSqliteBinding(appRoot, electronVersion, platform = process.platform, arch = process.arch) {
  return join(
    appRoot,
    'node_modules',
    '.lenslab-electron',
    `electron-${electronVersion}-${platform}-${arch}`,
    'better_sqlite3.node',
  );
}

function electronInfo() {
  const dir = dirname(require.resolve('electron/package.json'));
  const version = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version;
  return { dir, version };
}

export function electronBinaryPresent(dir) {
  if (process.env.ELECTRON_OVERRIDE_DIST_PATH) return true;
  const pathTxt = join(dir, 'path.txt');
  if (!existsSync(pathTxt)) return false;
  return existsSync(join(dir, 'dist', readFileSync(pathTxt, 'utf8').trim()));
}

function fail(lines) {
  console.error(['', ...lines, ''].join('\n'));
  process.exit(1);
}

function ensureBinary({ dir, version }) {
  if (electronBinaryPresent(dir)) return;
  console.log(`Electron ${version}'s binary is not installed yet; downloading it (node_modules/electron/install.js)…`);
  const r = spawnSync(process.execPath, [join(dir, 'install.js')], {
    cwd: dir,
    stdio: 'inherit',
    timeout: 15 * 60_000,
  });
  if (r.status !== 0 || !electronBinaryPresent(dir)) {
    fail([
      `Could not download Electron ${version} (it comes from GitHub; set ELECTRON_MIRROR to use a mirror).`,
      'When you are online, run:',
      `  node ${relative(process.cwd(), join(dir, 'install.js')) || 'node_modules/electron/install.js'}`,
      'and then `npm start` again. Lenslab also runs in a browser without Electron: `npm run serve`.',
    ]);
  }
}

function nodeGypPath() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp))
    return process.env.npm_config_node_gyp;
  const bundled = join(
    dirname(process.execPath),
    '..',
    'lib',
    'node_modules',
    'npm',
    'node_modules',
    'node-gyp',
    'bin',
    'node-gyp.js',
  );
  return existsSync(bundled) ? bundled : null;
}

function ensureSqlite({ version }) {
  const target = electronSqliteBinding(root, version);
  if (existsSync(target)) return;
  console.log(`Building better-sqlite3 for Electron ${version} (kept apart from the Node copy)…`);
  const src = dirname(require.resolve('better-sqlite3/package.json'));
  const work = mkdtempSync(join(tmpdir(), 'lenslab-sqlite-electron-'));
  try {
    cpSync(src, work, { recursive: true, filter: (p) => !(dirname(p) === src && basename(p) === 'build') });
    const built = join(work, 'build', 'Release', 'better_sqlite3.node');
    // 1) a prebuilt binary for Electron (downloads from GitHub releases)
    const prebuild = join(dirname(require.resolve('prebuild-install/package.json')), 'bin.js');
    spawnSync(
      process.execPath,
      [prebuild, '--runtime', 'electron', '--target', version, '--arch', process.arch, '--platform', process.platform],
      {
        cwd: work,
        stdio: 'inherit',
        timeout: 10 * 60_000,
      },
    );
    // 2) compile from source against Electron's headers
    const gyp = nodeGypPath();
    if (!existsSync(built) && gyp) {
      spawnSync(
        process.execPath,
        [
          gyp,
          'rebuild',
          '--release',
          `--target=${version}`,
          `--arch=${process.arch}`,
          '--dist-url=https://electronjs.org/headers',
        ],
        {
          cwd: work,
          stdio: 'inherit',
          timeout: 20 * 60_000,
        },
      );
    }
    if (!existsSync(built)) {
      fail([
        `Could not build better-sqlite3 for Electron ${version}. better-sqlite3 is not N-API, so Electron needs its own build.`,
        'It needs internet (Electron headers or a prebuilt binary) and, to compile, a C++ toolchain and Python.',
        'Alternatively rebuild it in place for Electron:',
        '  npx @electron/rebuild -f -w better-sqlite3',
        '(that copy then no longer loads in plain Node: run `npm rebuild better-sqlite3` before `npm test` or `npm run serve`).',
      ]);
    }
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(built, target);
    console.log(`better-sqlite3 for Electron ${version}: ${relative(root, target)}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const info = electronInfo();
  ensureBinary(info);
  ensureSqlite(info);
}
