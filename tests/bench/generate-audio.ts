// Benchmark: generation from a 10 s audio clip on this machine's CPU, for a random audio LLM in real shapes:
// a Whisper-base encoder (6 x 512, 8 heads, 80 mel bins, 10 s window = 1,000 frames -> 500 encoder frames) + a
// frame-stacking projector (stack 4 -> 125 audio tokens, SwiGLU 1,792) + a Qwen2-0.5B decoder (24 x 896, 14/2 heads,
// 151,936 vocab, tied head), Ultravox layout, weights drawn on the fly (nothing is downloaded or kept).
//   compile  prefill + decode graphs saved with external data into a temp folder, sessions opened
//   TTFT     log-mel features of the clip + prefill (encoder, projector, decoder over ~150 tokens) + first argmax
//   decode   tokens/s with the KV cache (median step), and the baseline in the same run: decoding by full
//            recomputation (the prefill graph over the growing sequence, encoder included, as the recomputing
//            generator does); ratio = cached / recompute
// Peak RSS of the process at the end.
//   npm run bench:generate -- --audio [--tokens 16 --recompute 3 --threads 2 --quantize int8]
//   (or npm run bench:generate-audio -- ...)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mulberry32 } from '../../src-main/util/mulberry32';
import {
  parseUltravox,
  ultravoxTensors,
  ultravoxToHf,
  clipFeatures,
  numAudioTokens,
  type UltravoxConfig,
} from '../../src-main/models/audio/ultravox';
import { whisperSinusoids, type WhisperEncoderConfig } from '../../src-main/models/audio/whisper';
import { WhisperFeatureExtractor, whisperFeatureConfig } from '../../src-main/models/audio/log-mel';
import { AudioLlmCachedGenerator } from '../../src-main/models/audio/generate';
import type { TextConfig } from '../../src-main/models/config';
import type { TensorSource } from '../../src-main/models/weights/safetensors';
import { toneSample } from '../../src-main/models/demo/tones';

const args = process.argv.slice(2).filter((a) => a !== '--audio');
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const TOKENS = Number(opt('tokens', '16'));
const RECOMPUTE = Number(opt('recompute', '3'));
const THREADS = Number(opt('threads', '2'));
const QUANT = opt('quantize', 'none');

const audio: WhisperEncoderConfig = {
  dModel: 512,
  numLayers: 6,
  numHeads: 8,
  headDim: 64,
  ffnDim: 2048,
  numMelBins: 80,
  maxSourcePositions: 1500,
  activation: 'gelu',
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
  bosTokenId: null,
  eosTokenIds: [151645],
  padTokenId: null,
};
const config: UltravoxConfig = parseUltravox(
  ultravoxToHf({ audio, text, stackFactor: 4, projectorHidden: 2 * text.hiddenSize, audioTokenIndex: 151646 }),
  'bench config',
);

/** Random weights drawn per tensor from a seed of its name (std 0.02, norms 1, sinusoidal positions). */
function randomSource(c: UltravoxConfig): TensorSource {
  const specs = new Map(ultravoxTensors(c).map((s) => [s.name, s.shape]));
  const seedOf = (name: string) => {
    let h = 0x811c9dc5;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
    return h;
  };
  return {
    names: () => [...specs.keys()],
    has: (n) => specs.has(n),
    info: (n) => ({ dtype: 'F32', shape: specs.get(n)! }),
    get: (n) => {
      const shape = specs.get(n)!;
      const len = shape.reduce((a, b) => a * b, 1);
      if (n === 'audio_tower.embed_positions.weight') return whisperSinusoids(shape[0], shape[1]);
      if (/(norm|ln_[a-z]+|layer_norm)\.weight$/.test(n)) return new Float32Array(len).fill(1);
      const r = mulberry32(seedOf(n));
      const a = 0.02 * Math.sqrt(3);
      const out = new Float32Array(len);
      for (let i = 0; i < len; i++) out[i] = (2 * r() - 1) * a;
      return out;
    },
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const dir = mkdtempSync(join(tmpdir(), 'lenslab-bench-audio-'));
try {
  const weights = randomSource(config);
  const fx = new WhisperFeatureExtractor(whisperFeatureConfig({ chunk_length: 10 }));
  const frames = fx.config.nbMaxFrames;
  const nAudio = numAudioTokens(config, frames);
  const clip = toneSample(3, 1, 10).samples;
  const rng = mulberry32(7);
  const textIds = (n: number) => Array.from({ length: n }, () => Math.floor(rng() * 150000));
  const prompt = [...textIds(8), ...new Array<number>(nAudio).fill(config.audioTokenIndex), ...textIds(14)];
  console.log(
    `audio LLM: Whisper-base-shaped encoder (6x512) + Qwen2-0.5B-shaped decoder (24x896, 151,936 vocab), stack 4: ${frames} frames -> ${nAudio} audio tokens, prompt ${prompt.length} tokens, ${THREADS} threads, weights ${QUANT}`,
  );

  let t = performance.now();
  const gen = await AudioLlmCachedGenerator.create({ config, weights }, frames, {
    dir,
    threads: THREADS,
    quantize: QUANT === 'none' ? undefined : (QUANT as 'int8' | 'int4'),
  });
  const compileS = (performance.now() - t) / 1000;

  // warm-up run (first-run allocations), then the measured one
  const feats0 = clipFeatures(fx, [{ samples: clip, sampleRate: 16000 }]);
  await gen.greedy(prompt, feats0, 2);
  t = performance.now();
  const feats = clipFeatures(fx, [{ samples: clip, sampleRate: 16000 }]);
  const featMs = performance.now() - t;
  const r = await gen.greedy(prompt, feats, TOKENS);
  const ttft = featMs + r.prefillMs;
  const cachedTokS = 1000 / median(r.decodeMs);

  // baseline: each new token by a full prefill over the sequence so far (encoder included)
  const recompute: number[] = [];
  const seq = [...prompt, ...r.ids.slice(0, 1)];
  for (let k = 0; k < RECOMPUTE; k++) {
    const s = await gen.greedy(seq, feats, 1);
    recompute.push(s.prefillMs);
    seq.push(s.ids[0]);
  }
  const recomputeTokS = 1000 / median(recompute);
  const peak = process.resourceUsage().maxRSS / 2 ** 20;
  await gen.dispose();
  const line =
    `compile ${compileS.toFixed(1)} s | TTFT ${(ttft / 1000).toFixed(2)} s (features ${featMs.toFixed(0)} ms, prefill ${(r.prefillMs / 1000).toFixed(2)} s) | ` +
    `decode ${cachedTokS.toFixed(2)} tok/s cached vs ${recomputeTokS.toFixed(2)} tok/s recompute (${(cachedTokS / recomputeTokS).toFixed(1)}x) | peak RSS ${peak.toFixed(2)} GB`;
  console.log(line);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
