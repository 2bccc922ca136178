// npm run bench:compile [-- --cases train,vision,decoder --skip-run --model DIR]
//
// Peak memory of compiling a real-size model's graphs on a graph-cache miss (what the first training run or the
// first chat with a model pays): the 0.45B random LLaVA of bench:train (CLIP-B/16-like 12x768 tower at 224 px,
// Qwen2-0.5B-like 24x896 decoder, float32 safetensors; written once into <os tmp>/lenslab-bench-train by bench:train's
// setup). Each case runs in its own child process into an empty temp cache folder and reports:
//   base     VmHWM after loading the model folder (and, for train, building the trainable program), before compiling
//   peak     VmHWM after compileCached returned (the compile's peak; no ORT session is opened)
//   RSS after, gc   VmRSS once compileCached returned and a full GC ran (what the compile leaves resident)
//   entry    bytes of the cache entry written (model.onnx + model.onnx.data)
// against the weights on disk (the model's safetensors bytes, the baseline of the ratios: peak / weights) and the
// memory estimate Lenslab shows before a run of bench:train's 0.5B configuration (training/memory.ts). Then (unless
// --skip-run) that whole training run twice (bench:train's worker, 1 + 2 steps) into one empty graph cache: the first
// run compiles (miss), the second loads (hit); their peak RSS against the estimate.
// --model DIR compiles (and trains) that LLaVA folder instead, e.g. bench:generate's
// <os tmp>/lenslab-bench-generate/half-b (Qwen2's 151,936-token vocabulary: a 544 MB embedding, tied head).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatBytes } from '../../src-main/training/memory';

const args = process.argv.slice(2);
const here = fileURLToPath(new URL('.', import.meta.url));
const opt = (name: string, d: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : d;
};

interface CaseOutput {
  name: string;
  baseHwm: number;
  peakHwm: number;
  entryBytes: number;
  /** VmRSS after the compile, once its garbage is collected: memory the compile left resident. */
  afterGc: number;
  ms: number;
}

/** A field of /proc/self/status in bytes: VmHWM (this process's peak resident set) or VmRSS (now). */
function status(field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : process.resourceUsage().maxRSS * 1024;
}
const hwm = () => status('VmHWM');

function dirBytes(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir, { withFileTypes: true }))
    n += f.isDirectory() ? dirBytes(join(dir, f.name)) : statSync(join(dir, f.name)).size;
  return n;
}

// ------------------------------------------------------------------------------------------------ child

async function child(name: string, modelDir: string): Promise<void> {
  const { compileCached } = await import('../../src-main/engine/runtime/cache');
  const cache = mkdtempSync(join(tmpdir(), 'lenslab-bench-compile-'));
  let build: () => import('../../src-main/engine/graph/builder').Graph;
  let key: unknown;
  if (name === 'train') {
    // the trainer's step graph for bench:train's 0.5B run (LoRA rank 16 on q/k/v/o, batch 1, no accumulation)
    const { loadVlm, buildTrainableVlm } = await import('../../src-main/models/program');
    const { buildTrainStep } = await import('../../src-main/engine/programs/train-step');
    const { loraOptions } = await import('../../src-main/training/vlm-trainer');
    const { parseHparams } = await import('../../src-main/training/hparams');
    const hp = parseHparams({ method: 'lora', rank: 16, alpha: 32, dropout: 0, batchSize: 2, lr: 1e-4 });
    const model = loadVlm(modelDir);
    const tvlm = buildTrainableVlm(model, 'lora', loraOptions(hp), {
      maxSeqLen: hp.maxSeqLen,
      batchSize: hp.batchSize,
    });
    const adamw = { beta1: hp.betas[0], beta2: hp.betas[1], eps: hp.eps, weightDecay: hp.weightDecay };
    build = () =>
      buildTrainStep({
        params: tvlm.params,
        forward: tvlm.forward,
        adamw,
        clipNorm: hp.clipNorm > 0 ? hp.clipNorm : null,
      }).graph;
    key = { bench: 'compile', name };
  } else {
    const { loadHfFolder } = await import('../../src-main/models/hf-folder');
    const { buildGraph } = await import('../../src-main/models/generate');
    const model = loadHfFolder(modelDir);
    build = () => buildGraph(model, name as 'vision' | 'decoder', null);
    key = { bench: 'compile', name };
  }
  const baseHwm = hwm();
  const t0 = performance.now();
  const entry = compileCached(cache, key, build);
  const ms = performance.now() - t0;
  const peakHwm = hwm();
  // two full GCs: the first finds the graph's arrays dead, their backing stores are freed by V8's sweeper after it
  for (let i = 0; i < 2; i++) {
    (globalThis as { gc?: () => void }).gc?.();
    await new Promise((r) => setTimeout(r, 500));
  }
  const out: CaseOutput = {
    name,
    baseHwm,
    peakHwm,
    entryBytes: dirBytes(join(cache, entry.hash)),
    afterGc: status('VmRSS'),
    ms,
  };
  entry.release();
  rmSync(cache, { recursive: true, force: true });
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

// ------------------------------------------------------------------------------------------------ parent

async function main(): Promise<void> {
  const { setup } = await import('./train'); // bench:train's generator: writes the 0.45B LLaVA once
  const { data, models } = await setup();
  const found = models.find((m) => m.name === '0.5B');
  if (!found) throw new Error('bench:compile needs the 0.5B model (do not pass --skip-large)');
  const big = { ...found, dir: opt('model', found.dir) };
  const weights = readdirSync(big.dir)
    .filter((f) => f.endsWith('.safetensors'))
    .reduce((s, f) => s + statSync(join(big.dir, f)).size, 0);
  // the estimate shown before bench:train's 0.5B run
  const { vlmTrainerModule } = await import('../../src-main/training/vlm-trainer');
  const check = vlmTrainerModule.validateConfig({
    model: big.dir,
    data: { file: data },
    hparams: {
      method: 'lora',
      rank: 16,
      alpha: 32,
      dropout: 0,
      maxSteps: 7,
      batchSize: big.batch,
      saveEvery: 0,
      evalEvery: 0,
      lr: 1e-4,
    },
    eval: { maxItems: 1 },
  });
  const est = check.memory!.breakdown;
  console.log(`bench:compile — graph-cache miss, one child process per graph; model ${big.dir}`);
  console.log(
    `weights on disk ${formatBytes(weights)}; training memory estimate ${formatBytes(est.total)} (weights term ${formatBytes(est.weights)}${'compile' in est ? `, compile term ${formatBytes((est as unknown as { compile: number }).compile)}` : ''})`,
  );
  const rows = [
    ['graph', 'base', 'peak', 'peak - base', 'peak / weights', 'peak / estimate', 'RSS after, gc', 'entry', 'time'],
  ];
  for (const name of opt('cases', 'train,vision,decoder').split(',')) {
    process.stderr.write(`[${name}] compiling ...\n`);
    const r = spawnSync(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), '--child', name, big.dir],
      { encoding: 'utf8', maxBuffer: 1 << 24 },
    );
    const line = r.stdout.trim().split('\n').pop() ?? '';
    if (r.status !== 0 || !line.startsWith('{'))
      throw new Error(`case ${name} failed (${r.status}): ${r.stderr.slice(-3000)}`);
    const o = JSON.parse(line) as CaseOutput;
    rows.push([
      name,
      formatBytes(o.baseHwm),
      formatBytes(o.peakHwm),
      formatBytes(o.peakHwm - o.baseHwm),
      (o.peakHwm / weights).toFixed(2),
      (o.peakHwm / est.total).toFixed(2),
      formatBytes(o.afterGc),
      formatBytes(o.entryBytes),
      `${(o.ms / 1000).toFixed(1)} s`,
    ]);
  }
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(w[i])).join('  '));
  if (args.includes('--skip-run')) return;
  // the whole first training run (cache miss) against the second (cache hit): bench:train's worker, 1 + 2 steps
  const cache = mkdtempSync(join(tmpdir(), 'lenslab-bench-compile-run-'));
  try {
    const input = { model: big.dir, data, batchSize: big.batch, steps: 2, warmup: 1, threads: cpus().length };
    const peaks: number[] = [];
    for (const which of ['first (miss)', 'second (hit)']) {
      process.stderr.write(`[run] ${which} ...\n`);
      const r = spawnSync(
        process.execPath,
        ['--import', 'tsx', join(here, 'train.ts'), '--worker', JSON.stringify(input)],
        {
          encoding: 'utf8',
          maxBuffer: 1 << 24,
          env: { ...process.env, LENSLAB_GRAPH_CACHE: cache },
        },
      );
      const line = r.stdout.trim().split('\n').pop() ?? '';
      if (r.status !== 0 || !line.startsWith('{'))
        throw new Error(`training run failed (${r.status}): ${r.stderr.slice(-3000)}`);
      const o = JSON.parse(line) as { peakRss: number; estimate: number; initMs: number };
      peaks.push(o.peakRss);
      console.log(
        `training run, ${which}: peak RSS ${formatBytes(o.peakRss)} = ${(o.peakRss / o.estimate).toFixed(2)} x the estimate ${formatBytes(o.estimate)}; init ${(o.initMs / 1000).toFixed(1)} s`,
      );
    }
    console.log(`first / second run peak: ${(peaks[0] / peaks[1]).toFixed(2)}`);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
}

const ci = args.indexOf('--child');
if (ci >= 0) await child(args[ci + 1], args[ci + 2]);
else await main();
