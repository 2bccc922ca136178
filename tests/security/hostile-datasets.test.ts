// Hostile import sources (hostile-inputs.ts generates them: 500+ cases) run through the import API in a worker
// thread with a heap limit, each case within a time limit. Each must end in a correct import or an ImportError
// that names the file (or record/field); never another error, a stack trace, a hang or unbounded memory.
// A sample also runs through the CLI (`lenslab import`), which must exit 1 with a one-line message (or 0).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startWorker } from '../../src-main/util/worker-host';
import { tempDir } from '../helpers/tmp';
import { generateHostileCases, type Generated, type HostileCase } from './hostile-inputs';

const CASE_MS = 20_000;
const HEAP_MB = 1024;
const root = fileURLToPath(new URL('../..', import.meta.url));

let tmp: ReturnType<typeof tempDir>;
let gen: Generated;

before(async () => {
  tmp = tempDir('hostile-');
  gen = await generateHostileCases(join(tmp.dir, 'cases'));
});
after(() => {
  gen?.close();
  tmp?.cleanup();
});

interface End {
  t: 'end';
  i: number;
  ms: number;
  imported?: number;
  report?: string;
  error?: { importError: boolean; name: string; message: string; problems: string };
}

/** What is wrong with a case's outcome ('' when nothing). */
function judge(c: HostileCase, r: End): string {
  if (r.error) {
    const { importError, name, message } = r.error;
    if (!importError) return `${name} instead of an ImportError: ${message.slice(0, 300)}`;
    if (/\n\s+at /.test(message)) return `stack trace in the message: ${message.slice(0, 300)}`;
    if (c.outcome === 'import') return `failed, expected an import: ${message.slice(0, 300)}`;
    const all = `${message}\n${r.error.problems}`;
    if (!c.names.some((n) => all.includes(n)))
      return `the error names none of ${c.names.join(', ')}: ${message.slice(0, 300)}`;
    if (c.message && !c.message.test(all)) return `the error does not say ${c.message}: ${all.slice(0, 300)}`;
    return '';
  }
  if (c.outcome === 'error') return `imported ${r.imported} item(s), expected an error`;
  if (c.items !== undefined && r.imported !== c.items) return `imported ${r.imported} item(s), expected ${c.items}`;
  if (c.report && !c.report.test(r.report ?? ''))
    return `the report does not say ${c.report}:\n${(r.report ?? '').slice(0, 400)}`;
  return '';
}

test('500+ hostile import sources: each a correct import or a clear ImportError naming the file, within time and memory limits', async () => {
  const { cases } = gen;
  assert.ok(cases.length >= 500, `only ${cases.length} cases`);
  const dataDir = join(tmp.dir, 'data');
  const ends: End[] = [];
  const failures: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const w = startWorker(join(root, 'tests/security/hostile-runner.ts'), {
      workerData: { cases: cases.map((c) => ({ path: c.path, format: c.format })), dataDir },
      resourceLimits: { maxOldGenerationSizeMb: HEAP_MB },
    });
    let current = -1;
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const stop = (why: string) => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      void w.terminate();
      reject(new Error(why));
    };
    w.on('message', (m: Omit<End, 't'> & { t: string }) => {
      if (m.t === 'start') {
        current = m.i;
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => stop(`case ${m.i} (${cases[m.i].name}) took longer than ${CASE_MS} ms`), CASE_MS);
      } else if (m.t === 'end') ends[m.i] = m as End;
      else if (m.t === 'finished') {
        done = true;
        if (timer) clearTimeout(timer);
        resolve();
      }
    });
    w.on('error', (err: Error & { code?: string }) =>
      stop(
        `case ${current} (${cases[current]?.name}) ${err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `needed more than ${HEAP_MB} MiB` : `crashed the worker: ${err.message}`}`,
      ),
    );
    w.on('exit', () => stop(`the runner exited during case ${current} (${cases[current]?.name})`));
  });
  cases.forEach((c, i) => {
    const why = ends[i] ? judge(c, ends[i]) : 'no result';
    if (why) failures.push(`${c.name}: ${why}`);
  });
  assert.deepEqual(failures, [], `${failures.length} of ${cases.length} cases`);
  assert.ok(!readdirSync(dataDir).some((f) => f.startsWith('.lenslab-unzip-')), 'no extraction folder is left');
  const outcomes = { errors: ends.filter((e) => e.error).length, imports: ends.filter((e) => !e.error).length };
  assert.ok(outcomes.errors > 100 && outcomes.imports > 100, JSON.stringify(outcomes));
});

test('a sample of hostile sources through `lenslab import`: exit 1 with one clear line (or 0), no stack trace', () => {
  const pick = (re: RegExp) => {
    const c = gen.cases.find((x) => re.test(x.name));
    assert.ok(c, `no case ${re}`);
    return c;
  };
  const sample: [HostileCase, number][] = [
    [pick(/^parquet: footer claims 2\^50 rows$/), 1],
    [pick(/^parquet: pages past the end \(4\/9/), 1],
    [pick(/^zip: 2,000-level folder chain$/), 1],
    [pick(/^zip: 300 entries of 256 KiB/), 1],
    [pick(/^data\.json is a FIFO$/), 1],
    [pick(/^Latin-1 in data\.json \(0\)$/), 0],
    [pick(/^folder: PNG header claims 16000x16000$/), 0],
  ];
  const dataDir = join(tmp.dir, 'cli-data');
  for (const [c, code] of sample) {
    const r = spawnSync(process.execPath, [join(root, 'bin/lenslab.mjs'), 'import', c.path, '--data-dir', dataDir], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, code, `${c.name}: exit ${r.status} (signal ${r.signal})\n${r.stderr.slice(0, 800)}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /, `${c.name}: stack trace\n${r.stderr.slice(0, 800)}`);
    if (code === 1)
      assert.ok(
        c.names.some((n) => r.stderr.includes(n)),
        `${c.name}: the message names none of ${c.names.join(', ')}:\n${r.stderr.slice(0, 800)}`,
      );
  }
  assert.ok(!readdirSync(dataDir).some((f) => f.startsWith('.lenslab-unzip-')), 'no extraction folder is left');
});

test('hostile model files: a FIFO, socket or folder named model.safetensors / config.json is refused by kind, never opened', () => {
  const dir = join(tmp.dir, 'models');
  const cases: [string, string, RegExp][] = [];
  const mk = (name: string, make: (d: string) => void, file: string, re: RegExp) => {
    const d = join(dir, name);
    mkdirSync(d, { recursive: true });
    make(d);
    cases.push([name, d, re]);
    void file;
  };
  mk(
    'fifo-weights',
    (d) => spawnSync('mkfifo', [join(d, 'model.safetensors')]),
    'model.safetensors',
    /model\.safetensors: not a regular file \(a FIFO\)/,
  );
  mk(
    'folder-weights',
    (d) => mkdirSync(join(d, 'model.safetensors')),
    'model.safetensors',
    /model\.safetensors: not a regular file \(a folder\)/,
  );
  mk(
    'fifo-index',
    (d) => spawnSync('mkfifo', [join(d, 'model.safetensors.index.json')]),
    'model.safetensors.index.json',
    /model\.safetensors\.index\.json: cannot read index \(not a regular file\)/,
  );
  mk(
    'huge-header',
    (d) => {
      const b = Buffer.alloc(16);
      b.writeBigUInt64LE(2n ** 60n);
      writeFileSync(join(d, 'model.safetensors'), b);
    },
    'model.safetensors',
    /model\.safetensors: header length \d+ exceeds/,
  );
  mk(
    'short-header',
    (d) => {
      const b = Buffer.alloc(16);
      b.writeBigUInt64LE(1000n);
      writeFileSync(join(d, 'model.safetensors'), b);
    },
    'model.safetensors',
    /runs past the end/,
  );
  // each in a child process with a time limit: a blocking open would hang it, not this test runner
  const script = `import { ShardedSafetensors } from ${JSON.stringify(join(root, 'src-main/models/weights/safetensors.ts'))};
    const out = [];
    for (const d of JSON.parse(process.argv[1])) { try { ShardedSafetensors.openFolder(d); out.push('opened'); } catch (e) { out.push(String(e.message)); } }
    console.log(JSON.stringify(out));`;
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script, JSON.stringify(cases.map((c) => c[1]))],
    { encoding: 'utf8', timeout: 30_000, cwd: root },
  );
  assert.equal(r.status, 0, `exit ${r.status} (signal ${r.signal}): ${r.stderr.slice(0, 500)}`);
  const got = JSON.parse(r.stdout.trim().split('\n').pop()!) as string[];
  cases.forEach(([name, , re], i) => assert.match(got[i], re, name));
  // config.json as a FIFO: the folder loader says so instead of blocking on the read
  const cfg = join(dir, 'fifo-config');
  mkdirSync(cfg, { recursive: true });
  spawnSync('mkfifo', [join(cfg, 'config.json')]);
  const script2 = `import { loadHfFolder } from ${JSON.stringify(join(root, 'src-main/models/hf-folder.ts'))};
    try { loadHfFolder(process.argv[1]); console.log('loaded'); } catch (e) { console.log(String(e.message)); }`;
  const r2 = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script2, cfg], {
    encoding: 'utf8',
    timeout: 30_000,
    cwd: root,
  });
  assert.equal(r2.status, 0, `exit ${r2.status} (signal ${r2.signal}): ${r2.stderr.slice(0, 500)}`);
  assert.match(r2.stdout, /config\.json: cannot read \(not a regular file\)/);
});
