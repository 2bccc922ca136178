// "Ultravox on a budget": compose an audio LLM from a Whisper folder, a LLaMA / Qwen2 folder and a new, randomly
// initialized frame-stacking projector, saved in Ultravox's layout (ultravox.ts), as composeLlava does for images.
//
// The LLM's tokenizer gets the audio placeholder (default "<audio>") as a new special token when it lacks one; if
// that id is past vocab_size, embed_tokens (and an untied lm_head) grow by the needed rows, initialized to the mean
// of the existing rows (transformers' resize_token_embeddings(mean_resizing=True)). The projector's RMSNorm weights
// start at norm_init (Ultravox's RMSNorm(init=norm_init)), linear_1 / linear_2 ~ N(0, initStd).

import { join } from 'node:path';
import { HfFolderError, loadHfFolder, writeTextAtomic, type HfModel } from '../hf-folder';
import { demoRng } from '../demo/rng';
import type { TensorSource } from '../weights/safetensors';
import { writeModelFolder } from './folder';
import { loadWhisperEncoder } from './whisper';
import {
  ULTRAVOX_LAYOUT,
  parseUltravox,
  projectorTensorsOf,
  ultravoxTensors,
  ultravoxToHf,
  type UltravoxConfig,
} from './ultravox';

export interface ComposeAudioOptions {
  /** Whisper folder (WhisperForConditionalGeneration / WhisperModel) with preprocessor_config.json */
  audioDir: string;
  /** LLaMA / Qwen2 folder with tokenizer.json */
  textDir: string;
  outDir: string;
  /** encoder frames per audio token (default 4: 1500 frames of a 30 s clip -> 375 tokens) */
  stackFactor?: number;
  /** linear_1's output size (default 2 x the text hidden size; swiglu halves it) */
  projectorHidden?: number;
  projectorAct?: string;
  normInit?: number;
  audioToken?: string;
  seed?: number;
  initStd?: number;
}

export interface ComposeAudioResult {
  config: UltravoxConfig;
  audioTokenId: number;
  addedAudioToken: boolean;
  files: string[];
}

function addSpecialToken(
  text: HfModel,
  token: string,
): { tokenizer: Record<string, unknown>; tokenizerConfig: Record<string, unknown>; id: number; added: boolean } {
  const tk = text.tokenizer!;
  const tokenizer = structuredClone(text.json.tokenizer!);
  const tokenizerConfig = structuredClone(text.json.tokenizerConfig ?? {});
  const existing = tk.tokenToId(token);
  tokenizerConfig.audio_token = token;
  if (existing !== undefined) return { tokenizer, tokenizerConfig, id: existing, added: false };
  const id = tk.vocabSize;
  tokenizer.added_tokens = [
    ...((tokenizer.added_tokens as unknown[]) ?? []),
    { id, content: token, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
  ];
  const dec = (tokenizerConfig.added_tokens_decoder as Record<string, unknown>) ?? {};
  dec[String(id)] = {
    content: token,
    lstrip: false,
    normalized: false,
    rstrip: false,
    single_word: false,
    special: true,
  };
  tokenizerConfig.added_tokens_decoder = dec;
  const extra = Array.isArray(tokenizerConfig.additional_special_tokens)
    ? (tokenizerConfig.additional_special_tokens as unknown[])
    : [];
  tokenizerConfig.additional_special_tokens = [...extra, token];
  return { tokenizer, tokenizerConfig, id, added: true };
}

export function composeAudioLlm(o: ComposeAudioOptions): ComposeAudioResult {
  const audio = loadWhisperEncoder(o.audioDir);
  let text: HfModel | null = null;
  try {
    text = loadHfFolder(o.textDir, { tokenizer: false, preprocessor: false });
    if (text.config.kind !== 'text' || (text.config.modelType !== 'llama' && text.config.modelType !== 'qwen2'))
      throw new HfFolderError(
        `${join(o.textDir, 'config.json')}: field "model_type": "${text.config.modelType}" is not a language model an audio LLM can use (llama, qwen2)`,
      );
    if (!text.tokenizer) throw new HfFolderError(`${o.textDir}: no tokenizer.json`);
    const t = text.config.text;
    const tok = addSpecialToken(text, o.audioToken ?? '<audio>');
    const vocabSize = Math.max(t.vocabSize, tok.id + 1);
    const grow = vocabSize - t.vocabSize;
    const json = ultravoxToHf({
      audio: audio.config,
      text: { ...t, vocabSize },
      stackFactor: o.stackFactor ?? 4,
      projectorHidden: o.projectorHidden ?? 2 * t.hiddenSize,
      projectorAct: o.projectorAct,
      normInit: o.normInit,
      audioTokenIndex: tok.id,
    });
    const config = parseUltravox(json, join(o.outDir, 'config.json'));
    const rng = demoRng(o.seed ?? 0);
    const std = o.initStd ?? 0.02;
    const projector = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const s of projectorTensorsOf(config.projector)) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      if (s.name.includes('.ln_')) data.fill(config.projector.normInit);
      else for (let i = 0; i < n; i++) data[i] = std * rng.normal();
      projector.set(s.name, { shape: s.shape, data });
    }
    const L = ULTRAVOX_LAYOUT;
    const textW = text.weights;
    const source = (name: string): { src: TensorSource; name: string; grow: boolean } => {
      if (name.startsWith(L.audio))
        return { src: audio.weights, name: 'encoder.' + name.slice(L.audio.length), grow: false };
      if (name === L.lmHead) return { src: textW, name: 'lm_head.weight', grow: true };
      const inner = name.slice(L.decoder.length);
      return { src: textW, name: 'model.' + inner, grow: inner === 'embed_tokens.weight' };
    };
    const specs = ultravoxTensors(config);
    const weights: TensorSource = {
      names: () => specs.map((s) => s.name),
      has: (n) => projector.has(n) || specs.some((s) => s.name === n),
      info: (n) => {
        const p = projector.get(n);
        if (p) return { dtype: 'F32', shape: p.shape };
        const s = source(n);
        const i = s.src.info(s.name);
        return { dtype: i.dtype, shape: s.grow ? [i.shape[0] + grow, ...i.shape.slice(1)] : i.shape };
      },
      get: (n) => {
        const p = projector.get(n);
        if (p) return p.data;
        const s = source(n);
        const d = s.src.get(s.name);
        if (!s.grow || grow === 0) return d;
        const [rows, cols] = s.src.info(s.name).shape;
        const out = new Float32Array((rows + grow) * cols);
        out.set(d);
        const mean = new Float64Array(cols);
        for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) mean[c] += d[r * cols + c];
        for (let g = 0; g < grow; g++) for (let c = 0; c < cols; c++) out[(rows + g) * cols + c] = mean[c] / rows;
        return out;
      },
    };
    const files = writeModelFolder(o.outDir, specs, weights, {
      'config.json': json,
      'preprocessor_config.json': audio.json.preprocessorConfig,
      'tokenizer.json': tok.tokenizer,
      'tokenizer_config.json': tok.tokenizerConfig,
      'generation_config.json': text.json.generationConfig,
    });
    if (text.json.chatTemplateJinja !== undefined) {
      writeTextAtomic(join(o.outDir, 'chat_template.jinja'), text.json.chatTemplateJinja);
      files.push('chat_template.jinja');
    }
    return { config, audioTokenId: tok.id, addedAudioToken: tok.added, files };
  } finally {
    audio.close();
    text?.close();
  }
}
