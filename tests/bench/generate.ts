// Benchmark: generation with one image on this machine's CPU, for the demo LLaVA, a ~0.5B random LLaVA in real
// shapes (SigLIP-base/16 at 224 px + Qwen2-0.5B: 24 layers, 896 hidden, 14/2 heads, 151,936 vocab, tied head), and a
// random Idefics3 in SmolVLM-256M's shapes (12x768 SigLIP at 512 px, pixel shuffle x4 = 64 image tokens, 30x576
// SmolLM2 decoder, 49,152 vocab, untied head; one frame per image; --skip-smolvlm).
// Per model, each phase in its own child process (so peak RSS is that phase's):
//   cold   compile the prefill + decode graphs into an empty graph cache and open the sessions
//   warm   open from the cache, then: time to first token (image decode + preprocessing + prefill incl. the vision
//          tower + first sample), decode tokens/s with the KV cache, and the baseline measured in the same run:
//          decoding by full recomputation (what generation costs without the cache); ratio = cached / recompute.
//   lag    the backend thread's worst event-loop stall while a generator loads (from the cache) and generates,
//          hosted in this thread vs in the chat service's worker_thread.
// The random weights are written once to <os tmp>/lenslab-bench-generate (about 2.3 GB for the 0.5B model, plus
// the compiled graphs) and reused by later runs.
//
// With --quantize (e.g. --quantize none,int8,int4; --quant-only skips the phases above) each scheme runs in a child
// of its own: graphs compiled (quantized) into a fresh cache, then TTFT, decode tokens/s and peak RSS, with the same
// answer's tokens compared to float32's. --llama f32,q8_0,q4_0 exports the model to GGUF (export/gguf) and runs
// llama.cpp (@fugood/llama.node, CPU, same threads) on the same image and question in the same run. --context N
// (with --quantize / --llama) measures decode again after a prompt of about N tokens (the image, a long text, the
// question) and prints the slowdown against the short prompt, for Lenslab and llama.cpp alike.
//
//   npm run bench:generate [-- --tokens 32 --skip-big --skip-smolvlm --only-smolvlm --fresh]
//   npm run bench:generate -- --quant-only --skip-smolvlm --quantize none,int8,int4 --llama f32,q8_0,q4_0 --tokens 16
//   npm run bench:generate -- --audio [--tokens 16]   (a 10 s clip through an audio LLM: tests/bench/generate-audio.ts)
//   npm run bench:generate -- --quant-only --skip-smolvlm --quantize int4 --llama q4_0 --tokens 16 --context 2000
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { loadHfFolder } from '../../src-main/models/hf-folder';
import {
  llavaToHf,
  parseHfConfig,
  type LlavaModelConfig,
  type TextConfig,
  type VisionConfig,
} from '../../src-main/models/config';
import { demoTokenizerFiles, randomWeights, writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { SMOLVLM_256M, writeTinyIdefics3 } from '../../src-main/models/demo/tiny-idefics3';
import { expectedTensors } from '../../src-main/models/weights/names';
import { memorySource } from '../../src-main/models/weights/safetensors';
import { saveHfFolder } from '../../src-main/models/hf-folder';
import { loadGenerator, type GenerateResult } from '../../src-main/models/generate';
import { GeneratorWorker } from '../../src-main/models/generate-worker';
import { parseQuantScheme } from '../../src-main/models/quantize';
import { exportGguf, type GgufQuant } from '../../src-main/export/gguf/export';
import { cpus } from 'node:os';

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(`--${name}`);
const opt = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const list = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1].split(',').filter(Boolean) : [];
};
const ROOT = join(tmpdir(), 'lenslab-bench-generate');
const QUESTION = 'What shapes are in the picture, and what colours are they?';
/** --context N reaches the child through the environment (its argv is positional) as "N:words", words being how
 *  many of longText's words make about N tokens with the model's tokenizer. */
const CONTEXT_ENV = 'LENSLAB_BENCH_CONTEXT';
function contextFromEnv(): { tokens: number; words: number } {
  const [t, w] = (process.env[CONTEXT_ENV] ?? '0:0').split(':').map(Number);
  return { tokens: t, words: w };
}
/** Words of longText that the tokenizer of the model in `dir` makes into about `tokens` tokens. */
function calibrateWords(dir: string, tokens: number): number {
  const m = loadHfFolder(dir, { preprocessor: false });
  try {
    let words = tokens;
    for (let i = 0; i < 4; i++) {
      const n = m.tokenizer!.encode(longText(words), { addSpecialTokens: false }).length;
      words = Math.max(1, Math.round((words * tokens) / n));
    }
    return words;
  } finally {
    m.close();
  }
}
/** About `n` tokens of text (a tokenizer gives roughly one token per word of it) before the question. */
function longText(n: number): string {
  const words = 'the quick brown fox jumps over the lazy dog while seven red squares and three blue circles wait'.split(
    ' ',
  );
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(words[i % words.length]);
  return `${out.join(' ')}.\n`;
}

// ---------------------------------------------------------------- models

function writeHalfBLlava(dir: string): LlavaModelConfig {
  const { tokenizer, tokenizerConfig } = demoTokenizerFiles(512);
  const imageTokenIndex = (tokenizer.model as { vocab: Record<string, number> }).vocab['<image>'];
  const vision: VisionConfig = {
    modelType: 'siglip_vision_model',
    hiddenSize: 768,
    intermediateSize: 3072,
    numHiddenLayers: 12,
    numAttentionHeads: 12,
    headDim: 64,
    numChannels: 3,
    imageSize: 224,
    patchSize: 16,
    hiddenAct: 'gelu_pytorch_tanh',
    layerNormEps: 1e-6,
    classToken: false,
    preLayerNorm: false,
    patchBias: true,
    useHead: false,
    numPatches: 196,
    numPositions: 196,
  };
  const text: TextConfig = {
    modelType: 'qwen2',
    vocabSize: 151936,
    hiddenSize: 896,
    intermediateSize: 4864,
    numHiddenLayers: 24,
    numAttentionHeads: 14,
    numKeyValueHeads: 2,
    headDim: 64,
    hiddenAct: 'silu',
    maxPositionEmbeddings: 32768,
    rmsNormEps: 1e-6,
    rope: { theta: 1000000, type: 'default', factor: 1 },
    qkvBias: true,
    oBias: false,
    mlpBias: false,
    tieWordEmbeddings: true,
    bosTokenId: 1,
    eosTokenIds: [2],
    padTokenId: 3,
  };
  const json = llavaToHf({
    vision,
    text,
    imageTokenIndex,
    projectorHiddenAct: 'gelu',
    visionFeatureLayer: -1,
    visionFeatureSelectStrategy: 'full',
  });
  const config = parseHfConfig(json, 'bench config.json') as LlavaModelConfig;
  mkdirSync(dir, { recursive: true });
  saveHfFolder(dir, {
    config: config.raw,
    weights: memorySource(randomWeights(expectedTensors(config), 7, 0.02)),
    tokenizer,
    tokenizerConfig,
    preprocessorConfig: {
      do_convert_rgb: true,
      do_normalize: true,
      do_rescale: true,
      do_resize: true,
      image_mean: [0.5, 0.5, 0.5],
      image_std: [0.5, 0.5, 0.5],
      image_processor_type: 'SiglipImageProcessor',
      processor_class: 'LlavaProcessor',
      resample: 2,
      rescale_factor: 1 / 255,
      size: { height: 224, width: 224 },
    },
    generationConfig: { bos_token_id: 1, eos_token_id: 2, pad_token_id: 3, max_new_tokens: 64 },
  });
  return config;
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir, { withFileTypes: true }))
    n += f.isDirectory() ? dirBytes(join(dir, f.name)) : statSync(join(dir, f.name)).size;
  return n;
}

// ---------------------------------------------------------------- child phases

function lagMeter(periodMs = 5) {
  let last = performance.now();
  let max = 0;
  const iv = setInterval(() => {
    const now = performance.now();
    max = Math.max(max, now - last - periodMs);
    last = now;
  }, periodMs);
  return {
    reset() {
      last = performance.now();
      max = 0;
    },
    stop() {
      clearInterval(iv);
      return Math.max(0, max);
    },
    get max() {
      return Math.max(0, max);
    },
  };
}

const fmtBytes = (b: number) => (b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : `${(b / 1e6).toFixed(1)} MB`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rssMb = () => process.memoryUsage().rss / 2 ** 20;
const peakMb = () => process.resourceUsage().maxRSS / 1024;

async function child(
  phase: string,
  modelDir: string,
  cacheDir: string,
  image: string,
  tokens: number,
  recomputeTokens: number,
): Promise<void> {
  const messages = [{ role: 'user', content: QUESTION }];
  const out: Record<string, unknown> = { phase };
  if (phase === 'cold') {
    const t0 = performance.now();
    const g = await loadGenerator(modelDir, null, { cacheDir });
    out.compileMs = performance.now() - t0;
    out.rssMb = rssMb();
    await g.dispose();
  } else if (phase === 'warm') {
    const t0 = performance.now();
    const g = await loadGenerator(modelDir, null, { cacheDir });
    out.loadMs = performance.now() - t0;
    out.rssAfterLoadMb = rssMb();
    await g.generate({ image, messages }, { maxNewTokens: 2 }); // warm-up (first-run allocations)
    const runs: GenerateResult[] = [];
    for (let i = 0; i < 3; i++) runs.push(await g.generate({ image, messages }, { maxNewTokens: tokens }));
    out.promptTokens = runs[0].promptTokens;
    out.ttftMs = median(runs.map((r) => r.timings.firstTokenMs));
    out.prefillMs = median(runs.map((r) => r.timings.prefillMs));
    out.prepareMs = median(runs.map((r) => r.timings.prepareMs));
    out.decodeTokens = runs[0].timings.decodeTokens;
    out.tokPerS = median(runs.map((r) => r.timings.tokensPerSecond));
    // baseline: the same decoding by full recomputation (prefill of the whole sequence per token)
    const full = await g.generate({ image, messages }, { maxNewTokens: recomputeTokens + 1, kvCache: false });
    out.recomputeTokPerS = full.timings.tokensPerSecond;
    out.sameTokens = JSON.stringify(full.ids) === JSON.stringify(runs[0].ids.slice(0, full.ids.length));
    out.rssMb = rssMb();
    await g.dispose();
  } else if (phase.startsWith('quant-')) {
    const quantize = parseQuantScheme(phase.slice('quant-'.length));
    const t0 = performance.now();
    const g = await loadGenerator(modelDir, null, { cacheDir, quantize });
    out.loadMs = performance.now() - t0;
    await g.generate({ image, messages }, { maxNewTokens: 2 });
    const runs: GenerateResult[] = [];
    for (let i = 0; i < 3; i++) runs.push(await g.generate({ image, messages }, { maxNewTokens: tokens }));
    out.ttftMs = median(runs.map((r) => r.timings.firstTokenMs));
    out.tokPerS = median(runs.map((r) => r.timings.tokensPerSecond));
    out.decodeTokens = runs[0].timings.decodeTokens;
    out.ids = JSON.stringify(runs[0].ids);
    const context = contextFromEnv();
    if (context.tokens > 0 && g.contextLength >= context.tokens + tokens + 512) {
      // the same decode after a long prompt: attention and the KV cache grow with it, the weights do not
      const long = [{ role: 'user', content: longText(context.words) + QUESTION }];
      const r = await g.generate({ image, messages: long }, { maxNewTokens: tokens });
      out.longPromptTokens = r.promptTokens;
      out.longTokPerS = r.timings.tokensPerSecond;
      out.longTtftMs = r.timings.firstTokenMs;
    }
    await g.dispose();
  } else if (phase.startsWith('llama-')) {
    // llama.cpp on the GGUF export of the same model (written by the parent), same image and question
    const quant = phase.slice('llama-'.length) as GgufQuant;
    const llama = await import('@fugood/llama.node');
    const dir = join(cacheDir, `gguf-${quant}`);
    const files = readdirSync(dir);
    const model = join(
      dir,
      files.find((f) => f.endsWith('.gguf') && !f.startsWith('mmproj-'))!,
    );
    const mmproj = files.find((f) => f.startsWith('mmproj-'));
    const t0 = performance.now();
    const ctx = await llama.loadModel({ model, n_ctx: 1024, n_threads: cpus().length, n_gpu_layers: 0, n_parallel: 1 });
    if (mmproj) ctx.initMultimodal({ path: join(dir, mmproj), use_gpu: false });
    out.loadMs = performance.now() - t0;
    const prompt = `USER: <__media__>\n${QUESTION}\nASSISTANT:`;
    // one answer: a second completion on the context would reuse its cached prompt
    const s0 = performance.now();
    let first = 0;
    const r = await ctx.completion(
      { prompt, media_paths: mmproj ? [image] : undefined, n_predict: tokens, temperature: 0, ignore_eos: true },
      () => {
        if (!first) first = performance.now() - s0;
      },
    );
    keep.push(ctx);
    const ttft = [first];
    const tps = [r.timings.predicted_per_second];
    out.ttftMs = median(ttft);
    out.tokPerS = median(tps);
    const context = contextFromEnv();
    const cfg = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as {
      text_config?: { max_position_embeddings?: number };
      max_position_embeddings?: number;
    };
    const maxPos = cfg.text_config?.max_position_embeddings ?? cfg.max_position_embeddings ?? 0;
    if (context.tokens > 0 && maxPos >= context.tokens + tokens + 512) {
      const lctx = await llama.loadModel({
        model,
        n_ctx: context.tokens + 1024,
        n_threads: cpus().length,
        n_gpu_layers: 0,
        n_parallel: 1,
      });
      if (mmproj) lctx.initMultimodal({ path: join(dir, mmproj), use_gpu: false });
      keep.push(lctx);
      const s1 = performance.now();
      let first1 = 0;
      const long = `USER: <__media__>\n${longText(context.words)}${QUESTION}\nASSISTANT:`;
      const lr = await lctx.completion(
        {
          prompt: long,
          media_paths: mmproj ? [image] : undefined,
          n_predict: tokens,
          temperature: 0,
          ignore_eos: true,
        },
        () => {
          if (!first1) first1 = performance.now() - s1;
        },
      );
      out.longPromptTokens = lr.timings.prompt_n;
      out.longTokPerS = lr.timings.predicted_per_second;
      out.longTtftMs = first1;
    }
  } else if (phase === 'lag-thread' || phase === 'lag-worker') {
    const meter = lagMeter();
    const t0 = performance.now();
    let loadLag: number;
    let genLag: number;
    if (phase === 'lag-thread') {
      const g = await loadGenerator(modelDir, null, { cacheDir });
      out.loadMs = performance.now() - t0;
      loadLag = meter.max;
      meter.reset();
      await g.generate({ image, messages }, { maxNewTokens: tokens, temperature: 0.8, topP: 0.9, topK: 50, seed: 1 });
      genLag = meter.max;
      await g.dispose();
    } else {
      const w = new GeneratorWorker({ cacheDir });
      // the first request loads the model in the worker; a 1-token request isolates the load
      await w.generate({ modelDir, image, messages }, { maxNewTokens: 1 });
      out.loadMs = performance.now() - t0;
      loadLag = meter.max;
      meter.reset();
      await w.generate(
        { modelDir, image, messages },
        { maxNewTokens: tokens, temperature: 0.8, topP: 0.9, topK: 50, seed: 1 },
        { onToken: () => {} },
      );
      genLag = meter.max;
      await w.close();
    }
    meter.stop();
    out.loadLagMs = loadLag;
    out.genLagMs = genLag;
  }
  out.peakRssMb = peakMb();
  process.stdout.write(`${JSON.stringify(out)}\n`);
  // llama.node crashes when a context is collected at exit with another model loaded: leave without teardown
  if (phase.startsWith('llama-')) process.exit(0);
}
const keep: unknown[] = [];

function runChild(
  phase: string,
  modelDir: string,
  cacheDir: string,
  image: string,
  tokens: number,
  recomputeTokens: number,
): Record<string, number | string | boolean> {
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', self, '--child', phase, modelDir, cacheDir, image, String(tokens), String(recomputeTokens)],
    {
      encoding: 'utf8',
      maxBuffer: 16 << 20,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  if (r.status !== 0) throw new Error(`child ${phase} failed (${r.status}): ${r.stdout}`);
  const line = r.stdout.trim().split('\n').pop()!;
  return JSON.parse(line);
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const tokens = opt('tokens', 32);
  mkdirSync(ROOT, { recursive: true });
  const image = join(ROOT, 'photo.jpg');
  if (!existsSync(image)) {
    // a 640x480 "photo": gradient + blocks, JPEG-compressed, so decoding and resizing cost what a real photo costs
    const w = 640;
    const h = 480;
    const raw = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const o = (y * w + x) * 3;
        const block = (Math.floor(x / 80) + Math.floor(y / 80)) % 3;
        raw[o] = block === 0 ? 220 : (x * 255) / w;
        raw[o + 1] = block === 1 ? 200 : (y * 255) / h;
        raw[o + 2] = block === 2 ? 180 : (x ^ y) & 255;
      }
    await sharp(raw, { raw: { width: w, height: h, channels: 3 } })
      .jpeg({ quality: 88 })
      .toFile(image);
  }
  const models: Array<{
    name: string;
    dir: string;
    write: (d: string) => { vision: { modelType: string }; text: { modelType: string } };
    recompute: number;
  }> = [];
  if (!flag('only-smolvlm')) {
    models.push({
      name: 'demo (tiny LLaVA)',
      dir: join(ROOT, 'demo'),
      write: (d) => writeTinyLlava(d, 0),
      recompute: 16,
    });
    if (!flag('skip-big'))
      models.push({
        name: '0.5B (SigLIP-B/16 + Qwen2-0.5B shapes)',
        dir: join(ROOT, 'half-b'),
        write: writeHalfBLlava,
        recompute: 3,
      });
  }
  if (!flag('skip-smolvlm'))
    models.push({
      name: 'smolvlm-256m (Idefics3, SmolVLM-256M shapes)',
      dir: join(ROOT, 'smolvlm-256m'),
      write: (d) => writeTinyIdefics3(d, 7, SMOLVLM_256M),
      recompute: 3,
    });

  const rows: string[] = [];
  for (const m of models) {
    if (flag('fresh')) rmSync(m.dir, { recursive: true, force: true });
    if (!existsSync(join(m.dir, 'config.json'))) {
      const t0 = performance.now();
      const cfg = m.write(m.dir);
      console.log(
        `${m.name}: wrote random weights (${fmtBytes(dirBytes(m.dir))}, vision ${cfg.vision.modelType}, text ${cfg.text.modelType}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
    }
    const cacheDir = join(ROOT, `cache-${m.name.split(' ')[0]}`);
    rmSync(cacheDir, { recursive: true, force: true });
    const schemes = list('quantize');
    const llamaQuants = list('llama') as GgufQuant[];
    if (schemes.length || llamaQuants.length) {
      const context = opt('context', 0);
      if (context > 0) process.env[CONTEXT_ENV] = `${context}:${calibrateWords(m.dir, context)}`;
      const lines = [
        `## ${m.name}: weight-only quantization, ${tokens} tokens, ${cpus().length} threads (peak RSS of each child process)`,
      ];
      const longHead = context > 0 ? ` prompt tokens (long) | decode tokens/s (long) | slowdown |` : '';
      lines.push(
        `| | load+compile (s) | TTFT (ms) | decode tokens/s | peak RSS (MB) | same tokens as f32 |${longHead}`,
      );
      lines.push(`|---|---|---|---|---|---|${context > 0 ? '---|---|---|' : ''}`);
      const longCells = (r: Record<string, number | string | boolean>) =>
        context <= 0
          ? ''
          : r.longTokPerS === undefined
            ? ' n/a (context too short) | | |'
            : ` ${r.longPromptTokens} | ${(r.longTokPerS as number).toFixed(2)} | ${((r.tokPerS as number) / (r.longTokPerS as number)).toFixed(2)}x |`;
      let base: Record<string, number | string | boolean> | null = null;
      for (const q of schemes) {
        const qc = join(ROOT, `cache-quant-${q}`);
        rmSync(qc, { recursive: true, force: true });
        const r = runChild(`quant-${q}`, m.dir, qc, image, tokens, 0);
        if (q === 'none') base = r;
        const same = base ? String(r.ids === base.ids) : '';
        console.log(`[${m.name}] Lenslab ${q}: ${JSON.stringify({ ...r, ids: undefined })}`);
        lines.push(
          `| Lenslab ${q} | ${((r.loadMs as number) / 1000).toFixed(1)} | ${(r.ttftMs as number).toFixed(0)} | ${(r.tokPerS as number).toFixed(2)} | ${(r.peakRssMb as number).toFixed(0)} | ${same} |${longCells(r)}`,
        );
        rmSync(qc, { recursive: true, force: true });
      }
      for (const q of llamaQuants) {
        const gdir = join(cacheDir, `gguf-${q}`);
        const t0 = performance.now();
        exportGguf({ modelDir: m.dir, outDir: gdir, quant: q, overwrite: true });
        const exportS = (performance.now() - t0) / 1000;
        const r = runChild(`llama-${q}`, m.dir, cacheDir, image, tokens, 0);
        console.log(`[${m.name}] llama.cpp ${q}: ${JSON.stringify(r)}`);
        lines.push(
          `| llama.cpp ${q.toUpperCase()} (export ${exportS.toFixed(0)} s) | ${((r.loadMs as number) / 1000).toFixed(1)} | ${(r.ttftMs as number).toFixed(0)} | ${(r.tokPerS as number).toFixed(2)} | ${(r.peakRssMb as number).toFixed(0)} | |${longCells(r)}`,
        );
        rmSync(gdir, { recursive: true, force: true });
      }
      rows.push(lines.join('\n'));
      console.log(rows[rows.length - 1]);
      console.log();
      if (flag('quant-only')) continue;
    }
    const cold = runChild('cold', m.dir, cacheDir, image, tokens, m.recompute);
    const warm = runChild('warm', m.dir, cacheDir, image, tokens, m.recompute);
    const lagT = runChild('lag-thread', m.dir, cacheDir, image, tokens, m.recompute);
    const lagW = runChild('lag-worker', m.dir, cacheDir, image, tokens, m.recompute);
    const n = (x: unknown, d = 0) => (typeof x === 'number' ? x.toFixed(d) : String(x));
    const weights = dirBytes(m.dir);
    const tokps = warm.tokPerS as number;
    rows.push(
      [
        `## ${m.name}: ${fmtBytes(weights)} of f32 weights, prompt ${warm.promptTokens} tokens (image + question), ${warm.decodeTokens} decode tokens`,
        `compile (cold cache): ${n((cold.compileMs as number) / 1000, 1)} s, peak RSS ${n(cold.peakRssMb)} MB; graph cache ${fmtBytes(dirBytes(cacheDir))}`,
        `load (warm cache):    ${n((warm.loadMs as number) / 1000, 2)} s, RSS after load ${n(warm.rssAfterLoadMb)} MB`,
        `time to first token:  ${n(warm.ttftMs)} ms (image decode+preprocess ${n(warm.prepareMs, 1)} ms, prefill ${n(warm.prefillMs)} ms)`,
        `decode:               ${n(tokps, 1)} tokens/s with the KV cache vs ${n(warm.recomputeTokPerS, 2)} tokens/s by full recomputation (baseline) = ${n(tokps / (warm.recomputeTokPerS as number), 1)}x; same tokens: ${warm.sameTokens}`,
        `                      weights streamed per second at that rate: ${((weights * tokps) / 1e9).toFixed(1)} GB/s`,
        `peak RSS (generate):  ${n(warm.peakRssMb)} MB`,
        `event-loop stall of the calling thread, in-thread vs worker_thread: load ${n(lagT.loadLagMs)} vs ${n(lagW.loadLagMs)} ms, generate (T=0.8, top-k 50, top-p 0.9) ${n(lagT.genLagMs)} vs ${n(lagW.genLagMs)} ms`,
      ].join('\n'),
    );
    console.log(rows[rows.length - 1]);
    console.log();
  }
  writeFileSync(join(ROOT, 'last-report.txt'), rows.join('\n\n') + '\n');
}

if (flag('audio')) {
  // the audio row (10 s clip, Whisper-base + Qwen2-0.5B shapes) runs on its own: tests/bench/generate-audio.ts
  const r = spawnSync(
    process.execPath,
    [...process.execArgv, fileURLToPath(new URL('./generate-audio.ts', import.meta.url)), ...args],
    { stdio: 'inherit' },
  );
  process.exit(r.status ?? 1);
} else if (args[0] === '--child') {
  const [, phase, modelDir, cacheDir, image, tokens, recompute] = args;
  await child(phase, modelDir, cacheDir, image, Number(tokens), Number(recompute));
} else {
  await main();
}
