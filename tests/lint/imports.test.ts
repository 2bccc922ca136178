// Import rules: only src-main/app/ may import electron; contract/ and the renderer stay free of node and electron;
// src-main's folders import one way (LAYERS below).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Source files under `dir`. A missing or empty folder throws: a rule checked over nothing would pass. */
function sources(dir: string): string[] {
  const out: string[] = [];
  (function walk(d: string) {
    const names = readdirSync(d);
    for (const name of names) {
      if (name === 'node_modules' || name.startsWith('.')) continue;
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(ts|mts|cts|js|mjs|cjs|vue|tsx)$/.test(name)) out.push(p);
    }
  })(join(root, dir));
  if (out.length === 0) throw new Error(`no source files under ${dir}`);
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
  assert.deepEqual(
    importsOf(text).sort(),
    ['./c', 'electron', 'electron/main', 'multi', 'node:fs', 'path', 'side'].sort(),
  );
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
    for (const s of importsOf(readFileSync(f, 'utf8')))
      if (isElectron(s) || isNode(s)) offenders.push(`${relative(root, f)} imports ${s}`);
  }
  assert.deepEqual(offenders, []);
});

test('contract/ does not touch DOM or node globals', () => {
  const offenders: string[] = [];
  for (const f of sources('src-main/contract')) {
    const text = readFileSync(f, 'utf8')
      .replace(/\/\/.*$/gm, '')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      // string literals are prose (method summaries), not uses of a global
      .replace(/'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|`(?:\\.|[^`\\])*`/g, "''");
    for (const g of ['window', 'document', 'process', 'Buffer', '__dirname', 'localStorage']) {
      if (new RegExp(`\\b${g}\\s*[.[(]`).test(text)) offenders.push(`${relative(root, f)} uses ${g}`);
    }
  }
  assert.deepEqual(offenders, []);
});

// The backend's layers, top to bottom: a folder imports only from its own layer's folders or from below (and
// contract/ and util/, which everyone may use and which import no other folder). The dispatcher and event bus are
// services/; transport/ adapts them to IPC, HTTP/WebSocket and the CLI.
const LAYERS: string[][] = [
  ['app', 'cli.ts'],
  ['transport'],
  ['services'],
  ['jobs', 'training', 'datasets', 'eval', 'models', 'hub', 'export', 'media'],
  ['engine', 'storage'],
];
const SHARED = new Set(['contract', 'util']);

/** Every relative import inside src-main as [from file, top-level folder (or file) it reaches]. */
function srcMainEdges(): { file: string; from: string; to: string; spec: string }[] {
  const base = join(root, 'src-main');
  const top = (p: string) => relative(base, p).split(sep)[0];
  const edges: { file: string; from: string; to: string; spec: string }[] = [];
  for (const f of sources('src-main')) {
    for (const s of importsOf(readFileSync(f, 'utf8'))) {
      if (!s.startsWith('.')) continue;
      const target = join(f, '..', s);
      if (relative(base, target).startsWith('..')) continue;
      edges.push({
        file: relative(root, f),
        from: top(f),
        to: top(target).replace(/\.ts$/, '') === 'cli' ? 'cli.ts' : top(target),
        spec: s,
      });
    }
  }
  return edges;
}

type Edge = { file: string; from: string; to: string; spec: string };

/** Edges that break the layering, and folders that have no layer. */
function directionOffenders(edges: Edge[]): { offenders: string[]; unknown: string[] } {
  const rank = new Map<string, number>();
  LAYERS.forEach((names, i) => names.forEach((n) => rank.set(n, i)));
  const offenders: string[] = [];
  const unknown = new Set<string>();
  for (const e of edges) {
    if (e.from === e.to) continue;
    for (const n of [e.from, e.to]) if (!rank.has(n) && !SHARED.has(n)) unknown.add(n);
    if (SHARED.has(e.from)) {
      if (!SHARED.has(e.to)) offenders.push(`${e.file} imports ${e.spec} (${e.from}/ imports no other folder)`);
      continue;
    }
    if (SHARED.has(e.to) || !rank.has(e.from) || !rank.has(e.to)) continue;
    const up = rank.get(e.to)! < rank.get(e.from)!;
    // the domain folders use each other (training reads datasets, jobs run trainers); other layers do not
    const sideways = rank.get(e.to) === rank.get(e.from) && !LAYERS[rank.get(e.from)!].includes('jobs');
    if (up || sideways) offenders.push(`${e.file} imports ${e.spec} (${e.from} → ${e.to})`);
  }
  return { offenders, unknown: [...unknown] };
}

test('src-main imports go one way: app → transport → services → domain folders → engine, storage', () => {
  const edges = srcMainEdges();
  assert.ok(
    edges.some((e) => e.from === 'transport' && e.to === 'services'),
    'the scanner sees transport → services',
  );
  const { offenders, unknown } = directionOffenders(edges);
  assert.deepEqual(unknown, [], 'every src-main folder has a place in LAYERS (tests/lint/imports.test.ts)');
  assert.deepEqual(offenders, []);
});

test('the direction check fails on back-edges, sideways edges and unknown folders', () => {
  const e = (from: string, to: string): Edge => ({ file: `src-main/${from}/x.ts`, from, to, spec: `../${to}/y` });
  assert.deepEqual(
    directionOffenders([
      e('transport', 'services'),
      e('services', 'jobs'),
      e('training', 'datasets'),
      e('jobs', 'storage'),
      e('engine', 'util'),
    ]),
    { offenders: [], unknown: [] },
  );
  assert.deepEqual(directionOffenders([e('services', 'transport')]).offenders, [
    'src-main/services/x.ts imports ../transport/y (services → transport)',
  ]);
  assert.equal(directionOffenders([e('storage', 'jobs')]).offenders.length, 1);
  assert.equal(directionOffenders([e('engine', 'storage')]).offenders.length, 1);
  assert.equal(directionOffenders([e('contract', 'services')]).offenders.length, 1);
  assert.deepEqual(directionOffenders([e('newthing', 'storage')]).unknown, ['newthing']);
});
