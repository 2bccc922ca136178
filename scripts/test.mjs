#!/usr/bin/env node
// Runs every tests/**/*.test.ts with Node's test runner and the tsx loader.
// Node 20's --test takes no globs, so the files are collected here.
// Usage: node scripts/test.mjs [substring ...]   (only files whose path contains one of the substrings)
// When e2e tests are chosen and the built renderer (out/renderer) is missing or older than its sources,
// it is built first. The run ends with a plain "N passed, N failed" line; the exit code is the runner's.
// Tests run on the CPU provider (LENSLAB_PROVIDER=cpu unless set): 'auto' would time every new model on each usable
// GPU (WebGPU on llvmpipe here) before its first run; the device tests name their provider, and
// tests/engine/provider-choice.test.ts covers 'auto'.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.ts')) files.push(relative(root, p));
  }
})(join(root, 'tests'));
const chosen = files.sort().filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (chosen.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}

function newestMtime(paths) {
  let newest = 0;
  const visit = (p) => {
    if (!existsSync(p)) return;
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const name of readdirSync(p)) if (name !== 'node_modules') visit(join(p, name));
    } else newest = Math.max(newest, st.mtimeMs);
  };
  paths.forEach(visit);
  return newest;
}

if (chosen.some((f) => f.startsWith('tests/e2e/'))) {
  const built = join(root, 'out', 'renderer', 'index.html');
  const sources = ['src-renderer', 'src-main/contract', 'electron.vite.config.ts', 'tsconfig.web.json'].map((p) =>
    join(root, p),
  );
  if (!existsSync(built) || statSync(built).mtimeMs < newestMtime(sources)) {
    console.log('building the renderer for the e2e tests (electron-vite build)…');
    const b = spawnSync(
      process.execPath,
      [join(root, 'node_modules', 'electron-vite', 'bin', 'electron-vite.js'), 'build'],
      {
        cwd: root,
        stdio: 'inherit',
      },
    );
    if (b.status !== 0) {
      console.error('electron-vite build failed');
      process.exit(b.status ?? 1);
    }
  }
}

const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-reporter=spec', ...chosen],
  {
    cwd: root,
    stdio: ['inherit', 'pipe', 'inherit'],
    env: { LENSLAB_PROVIDER: 'cpu', ...process.env, LENSLAB_TEST: '1' },
  },
);
let tail = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString()).slice(-4000);
});
child.on('close', (code, signal) => {
  const last = (re) => {
    const all = [...tail.matchAll(re)];
    return all.length ? Number(all[all.length - 1][1]) : NaN;
  };
  const pass = last(/ℹ pass (\d+)/g);
  const fail = last(/ℹ fail (\d+)/g);
  console.log(`${Number.isNaN(pass) ? '?' : pass} passed, ${Number.isNaN(fail) ? '?' : fail} failed`);
  process.exit(code ?? (signal ? 1 : 0));
});
