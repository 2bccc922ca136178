// Import rules: only src-main/app/ may import electron; contract/ and the renderer stay free of node and electron.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

function sources(dir: string): string[] {
  const out: string[] = [];
  (function walk(d: string) {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const name of names) {
      if (name === 'node_modules' || name.startsWith('.')) continue;
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(ts|mts|cts|js|mjs|cjs|vue|tsx)$/.test(name)) out.push(p);
    }
  })(join(root, dir));
  return out;
}

/** Module specifiers a file imports: static, dynamic, require and export-from. */
export function importsOf(text: string): string[] {
  const specs: string[] = [];
  const patterns = [
    /\bimport\s+(?:type\s+)?[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bexport\s+(?:type\s+)?[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"`]([^'"`]+)['"`]\s*\)/g,
    /\brequire\s*\(\s*['"`]([^'"`]+)['"`]\s*\)/g,
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) specs.push(m[1]);
  return specs;
}

const isElectron = (s: string) => s === 'electron' || s.startsWith('electron/');
const nodeBuiltins = new Set(builtinModules);
const isNode = (s: string) => s.startsWith('node:') || nodeBuiltins.has(s.split('/')[0]);

test('the import scanner finds every import form', () => {
  const text = `import a from 'electron';\nimport type { B } from "electron/main";\nimport 'side';\nexport { c } from './c';\nconst d = await import('node:fs');\nconst e = require("path");\nimport {\n  f,\n} from 'multi';`;
  assert.deepEqual(importsOf(text).sort(), ['./c', 'electron', 'electron/main', 'multi', 'node:fs', 'path', 'side'].sort());
});

test('nothing outside src-main/app/ imports electron', () => {
  const offenders: string[] = [];
  const files = [...sources('src-main'), ...sources('src-renderer'), ...sources('bin'), ...sources('scripts')];
  assert.ok(files.length > 10, 'found the sources');
  for (const f of files) {
    const rel = relative(root, f);
    if (rel.startsWith(`src-main${sep}app${sep}`)) continue;
    for (const s of importsOf(readFileSync(f, 'utf8'))) if (isElectron(s)) offenders.push(`${rel} imports ${s}`);
  }
  assert.deepEqual(offenders, []);
});

test('contract/ and the renderer import neither node nor electron', () => {
  const offenders: string[] = [];
  for (const f of [...sources('src-main/contract'), ...sources('src-renderer')]) {
    for (const s of importsOf(readFileSync(f, 'utf8'))) if (isElectron(s) || isNode(s)) offenders.push(`${relative(root, f)} imports ${s}`);
  }
  assert.deepEqual(offenders, []);
});

test('contract/ does not touch DOM or node globals', () => {
  const offenders: string[] = [];
  for (const f of sources('src-main/contract')) {
    const text = readFileSync(f, 'utf8').replace(/\/\/.*$/gm, '').replace(/\/\*[\s\S]*?\*\//g, '')
      // string literals are prose (method summaries), not uses of a global
      .replace(/'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|`(?:\\.|[^`\\])*`/g, "''");
    for (const g of ['window', 'document', 'process', 'Buffer', '__dirname', 'localStorage']) {
      if (new RegExp(`\\b${g}\\s*[.[(]`).test(text)) offenders.push(`${relative(root, f)} uses ${g}`);
    }
  }
  assert.deepEqual(offenders, []);
});
