// Benchmark: import 2,000 generated images with sidecar captions (folder format) into a fresh data folder,
// with hashing, validation, thumbnails and the one-transaction insert. Reports images/s and peak RSS.
// Baseline, measured in the same run on the same files: read + sha256 + write each file into the same
// <h[0:2]>/<h>.jpg layout (the I/O floor of storing images, without validation, thumbnails or database).
// Each measurement runs in its own child process so peak RSS belongs to that phase alone.
//
// With --records N: a LLaVA .json array of N records (each names one of 1,000 small JPEGs; imported with
// groupByImage off, so N items + N chats) imported through the backend's `datasets.import` (the import
// worker), while this thread answers `datasets.list` every 20 ms. Reports records/s, the process's peak RSS
// (worker included), the event loop's delay (p50 / p99 / max, perf_hooks.monitorEventLoopDelay) and the
// datasets.list latency during the import. Baseline in the same run: streaming the same file through the
// record reader and JSON.parse (the floor of reading the records, no validation or database).
//
//   npm run bench:import [-- --count 2000 --size 256]
//   npm run bench:import -- --records 1000000
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

const args = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};

async function generate(dir: string, count: number, size: number): Promise<number> {
  mkdirSync(dir, { recursive: true });
  const colours = ['red', 'green', 'blue', 'yellow', 'purple', 'orange'];
  const shapes = ['circle', 'square', 'triangle', 'star'];
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    // A gradient plus a coloured block: distinct, compressible like a photo-ish JPEG.
    const raw = Buffer.alloc(size * size * 3);
    const c = [(i * 37) % 256, (i * 91) % 256, (i * 13) % 256];
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++) {
        const o = (y * size + x) * 3;
        const inBlock = Math.abs(x - ((i * 7) % size)) < size / 6 && Math.abs(y - ((i * 11) % size)) < size / 6;
        raw[o] = inBlock ? c[0] : (x + i) & 255;
        raw[o + 1] = inBlock ? c[1] : (y * 2) & 255;
        raw[o + 2] = inBlock ? c[2] : (x ^ y) & 255;
      }
    const jpg = await sharp(raw, { raw: { width: size, height: size, channels: 3 } })
      .jpeg({ quality: 85 })
      .toBuffer();
    bytes += jpg.length;
    const sub = `part${Math.floor(i / 500)}`;
    mkdirSync(join(dir, sub), { recursive: true });
    writeFileSync(join(dir, sub, `img${String(i).padStart(5, '0')}.jpg`), jpg);
    writeFileSync(
      join(dir, sub, `img${String(i).padStart(5, '0')}.txt`),
      `A ${colours[i % colours.length]} ${shapes[i % shapes.length]} on a gradient, number ${i}.`,
    );
  }
  return bytes;
}

/** A LLaVA .json array of `n` records naming 1,000 small JPEGs under images/, written in pieces. */
async function generateRecords(dir: string, n: number): Promise<number> {
  mkdirSync(join(dir, 'images'), { recursive: true });
  for (let i = 0; i < 1000; i++) {
    const c = { r: (i * 37) % 256, g: (i * 91) % 256, b: (i * 13) % 256 };
    writeFileSync(
      join(dir, 'images', `img${i}.jpg`),
      await sharp({ create: { width: 16, height: 16, channels: 3, background: c } })
        .jpeg()
        .toBuffer(),
    );
  }
  const fd = openSync(join(dir, 'llava.json'), 'w');
  let bytes = 0;
  let buf = '[';
  for (let i = 0; i < n; i++) {
    const rec = {
      id: `r${i}`,
      image: `img${i % 1000}.jpg`,
      conversations: [
        { from: 'human', value: `<image>\nWhat is shown in picture ${i}?` },
        { from: 'gpt', value: `A small square of colour number ${i % 1000}, seen in record ${i}.` },
      ],
    };
    buf += (i ? ',\n' : '') + JSON.stringify(rec);
    if (buf.length > 1 << 20) {
      bytes += writeSync(fd, buf);
      buf = '';
    }
  }
  bytes += writeSync(fd, `${buf}]\n`);
  closeSync(fd);
  return bytes;
}

const pct = (sorted: number[], p: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : 0;

async function recordsChild(mode: string, src: string, work: string): Promise<void> {
  const file = join(src, 'llava.json');
  const t0 = performance.now();
  if (mode === 'records-baseline') {
    const { jsonRecords } = await import('../../src-main/datasets/read');
    let n = 0;
    for (const r of jsonRecords(file, 'llava.json', [])) if (r.value) n++;
    const seconds = (performance.now() - t0) / 1000;
    process.stdout.write(
      JSON.stringify({ mode, records: n, seconds, peakRssMiB: process.resourceUsage().maxRSS / 1024 }) + '\n',
    );
    return;
  }
  const { monitorEventLoopDelay } = await import('node:perf_hooks');
  const { createBackend } = await import('../../src-main/services/backend');
  const be = createBackend({ dataDir: work });
  // The same polling with no import first: on a shared machine the loop's delay has a floor of its own
  // (the histogram's samples also include its 10 ms resolution), which the import's figures are read against.
  const poll = async (ms: number | Promise<unknown>) => {
    const h = monitorEventLoopDelay({ resolution: 10 });
    const lat: number[] = [];
    let busy = false;
    const tick = setInterval(() => {
      if (busy) return;
      busy = true;
      const s = performance.now();
      void Promise.resolve(be.dispatcher.call('datasets.list' as never, undefined as never)).finally(() => {
        lat.push(performance.now() - s);
        busy = false;
      });
    }, 20);
    h.enable();
    const out = typeof ms === 'number' ? await new Promise((r) => setTimeout(r, ms)) : await ms;
    h.disable();
    clearInterval(tick);
    lat.sort((a, b) => a - b);
    const n = (ns: number) => ns / 1e6;
    return {
      out,
      loop: { p50: n(h.percentile(50)), p99: n(h.percentile(99)), max: n(h.max) },
      list: { n: lat.length, p50: pct(lat, 50), p99: pct(lat, 99), max: lat[lat.length - 1] ?? 0 },
    };
  };
  const idle = await poll(5000);
  const t1 = performance.now();
  const during = await poll(
    be.dispatcher.call(
      'datasets.import' as never,
      { path: file, dataset: 'bench', groupByImage: false } as never,
    ) as Promise<unknown>,
  );
  const rep = during.out as { imported: number; annotations: number };
  const seconds = (performance.now() - t1) / 1000;
  // datasets.list counts each dataset's items: after the import it has N more to count, which shows in the
  // latency of the calls that ran between the commit and the end of the import
  const after: number[] = [];
  for (let k = 0; k < 5; k++) {
    const s = performance.now();
    await be.dispatcher.call('datasets.list' as never, undefined as never);
    after.push(performance.now() - s);
  }
  after.sort((a, b) => a - b);
  be.close();
  process.stdout.write(
    JSON.stringify({
      mode,
      records: rep.imported,
      annotations: rep.annotations,
      seconds,
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
      loop: during.loop,
      list: during.list,
      idle: { loop: idle.loop, list: idle.list },
      listAfter: { p50: pct(after, 50), max: after[after.length - 1] },
    }) + '\n',
  );
}

async function child(mode: string, src: string, work: string): Promise<void> {
  if (mode.startsWith('records')) return recordsChild(mode, src, work);
  const t0 = performance.now();
  let images = 0;
  if (mode === 'baseline') {
    const out = join(work, 'copy');
    mkdirSync(out, { recursive: true });
    for (const sub of readdirSync(src).sort()) {
      for (const f of readdirSync(join(src, sub)).sort()) {
        if (!f.endsWith('.jpg')) continue;
        const b = readFileSync(join(src, sub, f));
        const h = createHash('sha256').update(b).digest('hex');
        // same layout as the image store: <h[0:2]>/<h>.jpg
        mkdirSync(join(out, h.slice(0, 2)), { recursive: true });
        writeFileSync(join(out, h.slice(0, 2), `${h}.jpg`), b);
        images++;
      }
    }
  } else {
    const { openDatabase, closeDatabase } = await import('../../src-main/storage/database');
    const { importDataset } = await import('../../src-main/datasets/import');
    const db = openDatabase(join(work, 'lenslab.db'));
    const rep = await importDataset(db, work, src, { dataset: 'bench', strict: true });
    images = rep.imported;
    if (rep.annotations !== images) throw new Error(`expected ${images} captions, got ${rep.annotations}`);
    closeDatabase(db);
  }
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(
    JSON.stringify({ mode, images, seconds, peakRssMiB: process.resourceUsage().maxRSS / 1024 }) + '\n',
  );
}

async function main(): Promise<void> {
  if (args[0] === '--child') return child(args[1], args[2], args[3]);
  if (args.includes('--records')) return records(opt('records', 1_000_000));
  const count = opt('count', 2000);
  const size = opt('size', 256);
  const root = mkdtempSync(join(tmpdir(), 'lenslab-bench-import-'));
  try {
    const src = join(root, 'src');
    const g0 = performance.now();
    const bytes = await generate(src, count, size);
    console.log(
      `generated ${count} JPEGs ${size}×${size} (${(bytes / 1024 / 1024).toFixed(1)} MiB) + captions in ${((performance.now() - g0) / 1000).toFixed(1)} s`,
    );
    const self = fileURLToPath(import.meta.url);
    const run = (mode: string) => {
      const work = join(root, `work-${mode}`);
      mkdirSync(work, { recursive: true });
      const r = spawnSync(process.execPath, ['--import', 'tsx', self, '--child', mode, src, work], {
        encoding: 'utf8',
      });
      if (r.status !== 0) throw new Error(`${mode} failed:\n${r.stderr}`);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as { images: number; seconds: number; peakRssMiB: number };
    };
    // Flush the generated files first, and run the baseline before and after the import (its best time
    // counts), so neither phase pays for the other's disk write-back.
    spawnSync('sync');
    const base1 = run('baseline');
    const imp = run('import');
    const base2 = run('baseline');
    const base = base1.seconds <= base2.seconds ? base1 : base2;
    const fmt = (r: typeof base) =>
      `${(r.images / r.seconds).toFixed(1)} images/s (${r.seconds.toFixed(2)} s), peak RSS ${r.peakRssMiB.toFixed(0)} MiB`;
    console.log(`baseline (read + sha256 + write, best of 2): ${fmt(base)}`);
    console.log(`import (validate + thumbnails + SQLite): ${fmt(imp)}`);
    console.log(`import takes ${(imp.seconds / base.seconds).toFixed(1)}× the baseline time`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

async function records(n: number): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'lenslab-bench-records-'));
  try {
    const src = join(root, 'src');
    const g0 = performance.now();
    const bytes = await generateRecords(src, n);
    console.log(
      `generated ${n} LLaVA records (${(bytes / 1024 / 1024).toFixed(1)} MiB, 1,000 images) in ${((performance.now() - g0) / 1000).toFixed(1)} s`,
    );
    const self = fileURLToPath(import.meta.url);
    const run = (mode: string) => {
      const work = join(root, `work-${mode}`);
      mkdirSync(work, { recursive: true });
      const r = spawnSync(process.execPath, ['--import', 'tsx', self, '--child', mode, src, work], {
        encoding: 'utf8',
        maxBuffer: 1 << 24,
      });
      if (r.status !== 0) throw new Error(`${mode} failed:\n${r.stderr}`);
      return JSON.parse(r.stdout.trim().split('\n').pop()!);
    };
    spawnSync('sync');
    const base = run('records-baseline');
    const imp = run('records-import');
    console.log(
      `baseline (stream + JSON.parse each record): ${(base.records / base.seconds).toFixed(0)} records/s (${base.seconds.toFixed(1)} s), peak RSS ${base.peakRssMiB.toFixed(0)} MiB`,
    );
    console.log(
      `import through datasets.import (worker): ${imp.records} items, ${(imp.records / imp.seconds).toFixed(0)} records/s (${imp.seconds.toFixed(1)} s), peak RSS ${imp.peakRssMiB.toFixed(0)} MiB`,
    );
    const loop = (l: { p50: number; p99: number; max: number }) =>
      `p50 ${l.p50.toFixed(1)} ms, p99 ${l.p99.toFixed(1)} ms, max ${l.max.toFixed(1)} ms`;
    console.log(
      `event loop delay (10 ms resolution included), idle 5 s before: ${loop(imp.idle.loop)}; during the import: ${loop(imp.loop)}`,
    );
    console.log(
      `datasets.list latency, idle: ${loop(imp.idle.list)} (${imp.idle.list.n} calls); during the import: ${loop(imp.list)} (${imp.list.n} calls)`,
    );
    console.log(
      `datasets.list after the import (${imp.records} items to count): p50 ${imp.listAfter.p50.toFixed(1)} ms, max ${imp.listAfter.max.toFixed(1)} ms (5 calls)`,
    );
    console.log(`import takes ${(imp.seconds / base.seconds).toFixed(1)}× the baseline time`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
