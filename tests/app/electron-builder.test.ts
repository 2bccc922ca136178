// The installer configuration cannot be built here (no Electron binary, no macOS/Windows): it is checked against
// electron-builder's own JSON schema (app-builder-lib 26.0.12's scheme.json, vendored in tests/fixtures) and for
// what the app needs at run time; the release workflow is checked for its three runners and smoke test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const root = fileURLToPath(new URL('../..', import.meta.url));
const read = (p: string) => readFileSync(join(root, p), 'utf8');
const schema = z.fromJSONSchema(JSON.parse(read('tests/fixtures/electron-builder/scheme-26.0.12.json')));
const config = JSON.parse(read('electron-builder.json')) as Record<string, any>;

test("electron-builder.json is valid against electron-builder's schema, and the schema check catches mistakes", () => {
  const r = schema.safeParse(config);
  assert.ok(r.success, JSON.stringify(r.error?.issues.slice(0, 5), null, 2));
  const typo = schema.safeParse({ ...config, asarUnpak: ['x'] });
  assert.equal(typo.success, false);
  assert.match(JSON.stringify(typo.error!.issues), /asarUnpak/);
  const badTarget = schema.safeParse({ ...config, nsis: { ...config.nsis, oneClick: 'no' } });
  assert.equal(badTarget.success, false);
});

test('the installers the issue asks for, native modules for Electron, onnxruntime-node unpacked from asar', () => {
  assert.deepEqual(config.linux.target, ['AppImage', 'deb']);
  assert.deepEqual(config.mac.target, ['dmg']);
  assert.deepEqual(config.win.target, ['nsis']);
  assert.equal(config.npmRebuild, true, 'better-sqlite3 and friends rebuilt for the Electron ABI');
  const unpack: string[] = config.asarUnpack;
  for (const mod of ['onnxruntime-node/bin', 'better-sqlite3/build', 'sharp'])
    assert.ok(
      unpack.some((u) => u.includes(mod)),
      `${mod} is unpacked`,
    );
  assert.ok(config.files.includes('out/**'));
  const pkg = JSON.parse(read('package.json'));
  assert.equal(config.extraMetadata.main, pkg.main);
  assert.ok(
    config.files.some((f: string) => f.startsWith('!') && f.includes('bin')),
    'pickled weights are never packed',
  );
});

test('the release workflow builds on the three GitHub-hosted OSes and smoke-tests the app', () => {
  const wf = read('.github/workflows/release.yml');
  assert.match(wf, /os: \[ubuntu-latest, macos-latest, windows-latest\]/);
  assert.match(wf, /electron-builder@[\d.]+ --config electron-builder\.json --publish never/);
  assert.match(wf, /node node_modules\/electron\/install\.js/);
  assert.match(wf, /scripts\/electron-smoke\.ts/);
  assert.ok(existsSync(join(root, 'scripts', 'electron-smoke.ts')));
  assert.match(read('scripts/electron-smoke.ts'), /_electron as electron/);
});
