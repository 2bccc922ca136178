// npm run bench:blip2-large [-- --dir DIR --steps 3 --warmup 0 --batches 1,4 --threads N --keep-cache]
//
// A LoRA run on a random BLIP-2 in Salesforce/blip2-opt-2.7b's shapes (tiny-blip2.ts BLIP2_OPT_2_7B: ViT-g 39 x 1408
// at 224 px, Q-Former 12 x 768 with 32 queries, OPT-2.7B 32 x 2560 with its 50,272-row tied table) with an int4
// frozen base (hparams.quantizeBase), r 16 on q/k/v/o, samples of at most 64 tokens: the memory estimate the run's
// preflight shows (training/memory.ts, as checkVlmRun computes it, and whether it fits 12 GiB) against the measured
// peak RSS (VmHWM) of the process that trains, loading and quantization included, and its peak when init is done.
// Each run is bench:train's worker (tests/bench/train.ts runWorker) in its own process, the same trainer a user's
// run creates, on the CPU. The first batch size runs twice: first with an empty graph cache (the base is quantized
// and the graph compiled into it), then again (the int4 graph read back); each later batch size once, from the cache.
//
// The folder is written once into DIR/model (default <os tmp>/lenslab-bench-blip2-2.7b) and reused while it loads
// with these shapes: float16 (torch_dtype float16, F16 safetensors in two shards, about 7.7 GB), each tensor made
// and written on its own so the writer never holds the model. The toy BPE tokenizer's tokens are the first rows of
// the table. The graph cache is DIR/graph-cache, emptied at the start unless --keep-cache.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { BLIP2_OPT_2_7B, tinyBlip2Parts, writeTinyBlip2 } from '../../src-main/models/demo/tiny-blip2';
import { blip2ToHf } from '../../src-main/models/families/blip2/config';
import { parseHfConfig } from '../../src-main/models/config';
import { loadHfFolder } from '../../src-main/models/hf-folder';
import { expectedTensors } from '../../src-main/models/weights/names';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';
import { readSnapshot } from '../../src-main/training/data';
import { checkVlmRun } from '../../src-main/training/vlm-config';
import { formatBytes } from '../../src-main/training/memory';
import { writeIconSnapshot } from '../helpers/icon-snapshot';
import { runWorker, type WorkerOutput } from './train';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const num = (name: string, d: number) => Number(opt(name) ?? d);
const has = (name: string) => args.includes(`--${name}`);

const GiB = 2 ** 30;
const dir = opt('dir') ?? join(tmpdir(), 'lenslab-bench-blip2-2.7b');
const steps = num('steps', 3);
const warmup = num('warmup', 0);
const threads = num('threads', cpus().length);
const batches = (opt('batches') ?? '1,4').split(',').map(Number);
const MAX_TOKENS = 64;
const model = join(dir, 'model');
const cacheDir = join(dir, 'graph-cache');

/** Bytes under `path` on disk (du), 0 when it does not exist. */
function diskBytes(path: string): number {
  if (!existsSync(path)) return 0;
  return Number(execFileSync('du', ['-sb', path], { encoding: 'utf8' }).split('\t')[0]);
}

/** The folder's tensors when it loads with the 2.7B shapes, else null (absent, partly written, other shapes). */
function existingFolder(): string | null {
  if (!existsSync(join(model, 'config.json'))) return null;
  const want = parseHfConfig(blip2ToHf(tinyBlip2Parts(BLIP2_OPT_2_7B, BLIP2_OPT_2_7B.vocabSize!, 0, 2)), 'want');
  const key = (specs: Array<{ name: string; shape: number[] }>) =>
    JSON.stringify(specs.map((s) => [s.name, s.shape]).sort());
  try {
    const m = loadHfFolder(model);
    try {
      if (key(expectedTensors(m.config)) !== key(expectedTensors(want))) return 'other shapes';
      return m.json.config.torch_dtype === 'float16' ? 'ok' : 'not float16';
    } finally {
      m.close();
    }
  } catch (e) {
    return (e as Error).message.slice(0, 200);
  }
}

/** Cache entries (hash folders holding a model.onnx) and their bytes. */
function cacheEntries(): Map<string, number> {
  const out = new Map<string, number>();
  if (!existsSync(cacheDir)) return out;
  for (const e of readdirSync(cacheDir))
    if (!e.startsWith('.') && existsSync(join(cacheDir, e, 'model.onnx'))) out.set(e, diskBytes(join(cacheDir, e)));
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const t0 = performance.now();
  const found = existingFolder();
  let wrote: string | null = null;
  if (found !== 'ok') {
    process.stderr.write(`writing the BLIP-2 OPT-2.7B-shaped folder to ${model} (${found ?? 'absent'}) ...\n`);
    rmSync(model, { recursive: true, force: true });
    writeTinyBlip2(model, 0, BLIP2_OPT_2_7B, { dtype: 'F16', stream: true });
    wrote = `written in ${((performance.now() - t0) / 1000).toFixed(0)} s`;
  }
  const modelBytes = diskBytes(model);
  const icons = join(dir, 'icons');
  if (!existsSync(join(icons, 'vqa.jsonl')))
    await writeDemoDataset(icons, { seed: 3, count: 8, size: 64, families: ['colors'] });
  const data = writeIconSnapshot(icons, join(dir, 'data.json'), { name: 'blip2-large icons' });

  // the preflight's estimate, as a run on a machine with 12 GiB available would see it
  const estimates = new Map<number, ReturnType<typeof checkVlmRun>>();
  for (const b of batches)
    estimates.set(
      b,
      checkVlmRun({
        modelDir: model,
        snapshot: readSnapshot(data),
        hparams: { method: 'lora', rank: 16, alpha: 32, batchSize: b, maxSeqLen: MAX_TOKENS, quantizeBase: 'int4' },
        availableBytes: 12 * GiB,
        refuseMemory: false,
      }),
    );
  const first = estimates.get(batches[0])!;
  const p = first.memory.params;
  console.log(
    `bench:blip2-large — BLIP-2 OPT-2.7B shapes (${((p.vision + p.projector + p.decoder) / 1e9).toFixed(2)}B parameters: vision ${(p.vision / 1e9).toFixed(2)}B, Q-Former + projection ${(p.projector / 1e9).toFixed(2)}B, decoder ${(p.decoder / 1e9).toFixed(2)}B; LoRA ${(p.trainable / 1e6).toFixed(2)}M), int4 base, r 16 on q/k/v/o, ${first.trainSamples} samples of at most ${first.longestSample} tokens (limit ${MAX_TOKENS}), ${threads} threads, ${warmup} warm-up + ${steps} timed steps`,
  );
  console.log(`folder ${model}: ${formatBytes(modelBytes)} on disk (float16), ${wrote ?? 'reused'}; data ${data}`);
  for (const [b, c] of estimates)
    console.log(
      `estimate B${b}: ${formatBytes(c.memory.breakdown.total)} (${c.memory.fits ? 'fits' : 'does not fit'} 12 GiB); ${Object.entries(
        c.memory.breakdown,
      )
        .filter(([k]) => k !== 'total')
        .map(([k, v]) => `${k} ${formatBytes(v)}`)
        .join(', ')}`,
    );

  if (!has('keep-cache')) rmSync(cacheDir, { recursive: true, force: true });
  process.env.LENSLAB_GRAPH_CACHE = cacheDir;
  const plan = batches.flatMap((b, i) => (i === 0 ? [b, b] : [b]));
  const rows: string[][] = [];
  for (const b of plan) {
    const before = cacheEntries();
    process.stderr.write(`[B${b}] training (${before.size} graph cache entries) ...\n`);
    const w0 = performance.now();
    const r: WorkerOutput = runWorker({
      model,
      data,
      batchSize: b,
      steps,
      warmup,
      threads,
      quantizeBase: 'int4',
      maxSeqLen: MAX_TOKENS,
    });
    const wall = (performance.now() - w0) / 1000;
    const after = cacheEntries();
    const added = [...after].filter(([k]) => !before.has(k));
    const cache = added.length
      ? `written (${added.map(([, v]) => formatBytes(v)).join(' + ')})`
      : `read (${[...after.values()].map(formatBytes).join(' + ')})`;
    const est = estimates.get(b)!.memory.breakdown.total;
    rows.push([
      `B${b}`,
      cache,
      `${(r.initMs / 1000).toFixed(0)} s`,
      formatBytes(r.initPeakRss),
      formatBytes(r.peakRss),
      `${formatBytes(est)} (${(est / r.peakRss).toFixed(2)}x)`,
      r.peakRss <= 12 * GiB ? 'yes' : 'NO',
      `${r.ms.map((m) => (m / 1000).toFixed(1)).join(' / ')} s (median ${(median(r.ms) / 1000).toFixed(1)} s)`,
      r.losses.map((l) => l.toFixed(3)).join(' '),
      `${wall.toFixed(0)} s`,
    ]);
    process.stderr.write(`${rows.at(-1)!.join('  ')}\n${r.logs.map((l) => `  ${l}`).join('\n')}\n`);
    if (!r.losses.every(Number.isFinite)) throw new Error(`B${b}: a loss is not finite: ${r.losses.join(' ')}`);
  }
  const head = [
    'batch',
    'int4 graph cache',
    'init',
    'peak after init',
    'peak RSS',
    'estimate (est/measured)',
    '<= 12 GiB',
    'steps',
    'losses',
    'wall',
  ];
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  for (const r of all) console.log(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]))).join('  '));
  console.log(
    `graph cache ${cacheDir}: ${formatBytes(diskBytes(cacheDir))}; load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')} (1/5/15 min) on ${cpus().length} cores`,
  );
  console.log(`the folder stays in ${dir} for the next run (rm -r it to free ${formatBytes(diskBytes(dir))})`);
}

await main();
