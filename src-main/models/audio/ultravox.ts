// An audio LLM in Ultravox's layout (fixie-ai ultravox_model.py, UltravoxModel): a Whisper encoder (`audio_tower.*`),
// a projector that stacks frames (`multi_modal_projector.*`) and a LLaMA / Qwen2 decoder (`language_model.*`).
//
//   input_features [N, mel bins, T] -> Whisper encoder [N, T/2, d_audio]
//   -> StackAudioFrames: zero-pad T/2 to a multiple of stack_factor, view [N, ceil(T/2 / sf), d_audio * sf]
//   -> ln_pre (RMSNorm, eps 1e-6) -> linear_1 (no bias) -> act (swiglu: x, gate = chunk(2); silu(gate) * x)
//   -> [ln_mid when projector_ln_mid] -> linear_2 (no bias) -> ln_post (RMSNorm; identity when projector_ln_mid)
//   -> [N, audio tokens, d_text]
//
// The features replace the embeddings of the audio placeholder token (audio_token_index) in row-major order over the
// batch, as LLaVA's image features do (llava.ts); one clip is `numAudioTokens` copies of the token. The prompt
// writes the placeholder (default "<audio>") where the clip goes; renderAudioPrompt expands it.
//
// Stacking cuts the decoder's sequence: a 30 s clip is 1500 encoder frames, 188 tokens at stack_factor 8.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Graph, type Value } from '../../engine/graph/builder';
import { activation, silu } from '../../engine/ops/activations';
import { rmsNorm } from '../../engine/ops/norm';
import { ConfigError, Reader, parseTextSub, textToHf, type TextConfig } from '../config';
import { embedTokens, decoderPositions, type DecoderResult, type KvPair } from '../decoder/llama';
import { HfFolderError, readJsonObject, type HfWeights } from '../hf-folder';
import { GraphWeights as GraphWeightsCtor, type GraphWeights } from '../layers';
import type { TensorSource } from '../weights/safetensors';
import { decoderFor } from '../registry';
import { ChatTemplate, findChatTemplate } from '../chat-template';
import { LensTokenizer } from '../tokenizer';
import { decoderTensors, type TensorSpec } from '../weights/names';
import { openCheckedWeights } from './folder';
import { WhisperFeatureExtractor, parseWhisperFeatureConfig } from './log-mel';
import {
  checkFeaturesFitEncoder,
  parseWhisperEncoder,
  whisperEncoder,
  whisperEncoderTensors,
  whisperEncoderToHf,
  whisperOutputLength,
  type WhisperEncoderConfig,
} from './whisper';

export interface AudioProjectorConfig {
  stackFactor: number;
  /** linear_1's output size (UltravoxConfig.hidden_size) */
  hiddenSize: number;
  /** 'swiglu' halves linear_1's output; other names are transformers activations */
  act: string;
  normInit: number;
  lnMid: boolean;
  /** d_audio * stackFactor */
  inFeatures: number;
  /** linear_2's input: hiddenSize / 2 for swiglu */
  midFeatures: number;
  outFeatures: number;
}

export interface UltravoxConfig {
  kind: 'ultravox';
  modelType: 'ultravox';
  audio: WhisperEncoderConfig;
  text: TextConfig;
  projector: AudioProjectorConfig;
  audioTokenIndex: number;
  raw: Record<string, unknown>;
}

export const ULTRAVOX_LAYOUT = {
  audio: 'audio_tower.',
  projector: 'multi_modal_projector.',
  decoder: 'language_model.model.',
  lmHead: 'language_model.lm_head.weight',
} as const;

const PROJECTOR_ACTS = ['swiglu', 'gelu', 'gelu_pytorch_tanh', 'silu', 'relu', 'quick_gelu'];

/** UltravoxConfig (config.json model_type "ultravox") with its defaults. */
export function parseUltravox(json: Record<string, unknown>, file = 'config.json'): UltravoxConfig {
  const r = new Reader(file, json, '');
  const mt = r.str('model_type');
  if (mt !== 'ultravox') r.err('model_type', `"${mt}" is not an Ultravox-layout audio LLM (ultravox)`);
  const ar = r.sub('audio_config');
  if (!ar)
    r.err(
      'audio_config',
      `is required (the Whisper encoder's config; a folder that only names audio_model_id "${String(json.audio_model_id ?? '')}" must be saved with its audio tower)`,
    );
  const tr = r.sub('text_config');
  if (!tr)
    r.err(
      'text_config',
      `is required (the language model's config; text_model_id "${String(json.text_model_id ?? '')}" alone is not enough)`,
    );
  const audio = parseWhisperEncoder(ar!);
  const text = parseTextSub(tr!);
  if (text.modelType !== 'llama' && text.modelType !== 'qwen2')
    tr!.err('model_type', `"${text.modelType}" is not a decoder an audio LLM can use here (llama, qwen2)`);
  const stackFactor = r.int('stack_factor', 8);
  if (stackFactor > 64) r.err('stack_factor', `${stackFactor} is more than 64`);
  const hiddenSize = r.int('hidden_size', 4096);
  const act = r.str('projector_act', 'swiglu');
  if (!PROJECTOR_ACTS.includes(act))
    r.err('projector_act', `unsupported activation "${act}" (supported: ${PROJECTOR_ACTS.join(', ')})`);
  if (act === 'swiglu' && hiddenSize % 2 !== 0)
    r.err('hidden_size', `swiglu needs an even hidden_size (got ${hiddenSize})`);
  const audioTokenIndex = r.int('audio_token_index', undefined, 0);
  if (audioTokenIndex >= text.vocabSize)
    r.err('audio_token_index', `${audioTokenIndex} is outside text_config.vocab_size ${text.vocabSize}`);
  const mid = act === 'swiglu' ? hiddenSize / 2 : hiddenSize;
  return {
    kind: 'ultravox',
    modelType: 'ultravox',
    audio,
    text,
    projector: {
      stackFactor,
      hiddenSize,
      act,
      normInit: r.num('norm_init', 0.4),
      lnMid: r.bool('projector_ln_mid', false),
      inFeatures: audio.dModel * stackFactor,
      midFeatures: mid,
      outFeatures: text.hiddenSize,
    },
    audioTokenIndex,
    raw: json,
  };
}

export interface UltravoxConfigInput {
  audio: WhisperEncoderConfig;
  text: TextConfig;
  stackFactor: number;
  projectorHidden: number;
  projectorAct?: string;
  normInit?: number;
  audioTokenIndex: number;
}

export function ultravoxToHf(c: UltravoxConfigInput): Record<string, unknown> {
  return {
    architectures: ['UltravoxModel'],
    model_type: 'ultravox',
    audio_config: whisperEncoderToHf(c.audio),
    text_config: {
      architectures: [c.text.modelType === 'qwen2' ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'],
      ...textToHf(c.text),
    },
    stack_factor: c.stackFactor,
    hidden_size: c.projectorHidden,
    projector_act: c.projectorAct ?? 'swiglu',
    projector_ln_mid: false,
    norm_init: c.normInit ?? 0.4,
    audio_token_index: c.audioTokenIndex,
    ignore_index: -100,
    vocab_size: c.text.vocabSize,
  };
}

export function projectorTensorsOf(p: AudioProjectorConfig, prefix: string = ULTRAVOX_LAYOUT.projector): TensorSpec[] {
  const out: TensorSpec[] = [
    { name: `${prefix}ln_pre.weight`, shape: [p.inFeatures] },
    { name: `${prefix}linear_1.weight`, shape: [p.hiddenSize, p.inFeatures] },
    { name: `${prefix}linear_2.weight`, shape: [p.outFeatures, p.midFeatures] },
  ];
  out.push(
    p.lnMid
      ? { name: `${prefix}ln_mid.weight`, shape: [p.midFeatures] }
      : { name: `${prefix}ln_post.weight`, shape: [p.outFeatures] },
  );
  return out;
}

/** Every tensor of the checkpoint, canonical (= published Ultravox) names. */
export function ultravoxTensors(c: UltravoxConfig): TensorSpec[] {
  const L = ULTRAVOX_LAYOUT;
  return [
    ...whisperEncoderTensors(c.audio, L.audio),
    ...projectorTensorsOf(c.projector),
    ...decoderTensors(c.text, L.decoder, L.lmHead),
  ];
}

/** Stored -> canonical: the published names; a tied lm_head copy is ignored. */
export function ultravoxCanonicalName(c: UltravoxConfig, stored: string): string | null {
  if (stored === ULTRAVOX_LAYOUT.lmHead && c.text.tieWordEmbeddings) return null;
  return stored;
}

/** Audio tokens one clip of `frames` feature frames becomes. */
export function numAudioTokens(c: UltravoxConfig, frames: number): number {
  return Math.ceil(whisperOutputLength(frames) / c.projector.stackFactor);
}

/** Projected audio features [N, tokens, d_text] of input_features [N, mel bins, T]. */
export function audioFeatures(w: GraphWeights, c: UltravoxConfig, inputFeatures: Value): Value {
  const g = w.g;
  const P = ULTRAVOX_LAYOUT.projector;
  const p = c.projector;
  const h = whisperEncoder(w, c.audio, ULTRAVOX_LAYOUT.audio, inputFeatures);
  return g.scope('audio/projector', () => {
    const T2 = h.shape![1] as number;
    const sf = p.stackFactor;
    const Tp = Math.ceil(T2 / sf) * sf;
    let x = Tp > T2 ? g.op1('Pad', [h, g.ints([0, 0, 0, 0, Tp - T2, 0])]) : h;
    x = g.op1('Reshape', [x, g.ints([0, Tp / sf, p.inFeatures])]);
    x = rmsNorm(x, w.tensor(`${P}ln_pre.weight`), { epsilon: 1e-6 });
    x = w.linear(x, `${P}linear_1`, { bias: false });
    if (p.act === 'swiglu') {
      const [a, gate] = g.op('Split', [x, g.ints([p.midFeatures, p.midFeatures])], { axis: -1 }, { outputs: 2 });
      x = g.op1('Mul', [silu(gate), a]);
    } else x = activation(p.act, x);
    if (p.lnMid) x = rmsNorm(x, w.tensor(`${P}ln_mid.weight`), { epsilon: 1e-6 });
    x = w.linear(x, `${P}linear_2`, { bias: false });
    if (!p.lnMid) x = rmsNorm(x, w.tensor(`${P}ln_post.weight`), { epsilon: 1e-6 });
    return x;
  });
}

/** Token embeddings with the audio placeholder positions replaced by the clips' features (row-major over the batch). */
export function audioEmbeddings(w: GraphWeights, c: UltravoxConfig, ids: Value, features: Value | null): Value {
  const g = w.g;
  const names = { prefix: ULTRAVOX_LAYOUT.decoder, lmHead: ULTRAVOX_LAYOUT.lmHead };
  return g.scope('merge', () => {
    const tok = g.constant(c.audioTokenIndex, 'int64', []);
    const zero = g.constant(0, 'int64', []);
    const isAudio = g.op1('Equal', [ids, tok]);
    const text = embedTokens(w, names, g.op1('Where', [isAudio, zero, ids]));
    if (!features) return text;
    const flat = g.op1('Reshape', [features, g.ints([-1, c.text.hiddenSize])]);
    const cnt = g.op1('Reshape', [g.op1('Cast', [isAudio], { to: 7 }), g.ints([-1])]);
    const cs = g.op1('CumSum', [cnt, g.constant(0, 'int64', [])], {}, { outTypes: [{ dtype: 'int64', shape: ['?'] }] });
    const idx = g.op1(
      'Reshape',
      [g.op1('Sub', [cs, g.constant(1, 'int64', [])]), g.op1('Shape', [ids])],
      {},
      { outTypes: [{ dtype: 'int64', shape: ids.shape }] },
    );
    const rows = g.op1('Gather', [flat, g.op1('Where', [isAudio, idx, zero])], { axis: 0 });
    return g.op1('Where', [g.op1('Unsqueeze', [isAudio, g.ints([-1])]), rows, text]);
  });
}

export interface AudioLlmInputs {
  inputIds: Value;
  attentionMask: Value;
  inputFeatures: Value | null;
}

/** The whole forward: audio features, merge, decoder (positions from the mask: left padding works). */
export function audioLlmForward(
  w: GraphWeights,
  c: UltravoxConfig,
  inp: AudioLlmInputs,
  o: { logits?: 'all' | 'last' | 'rows'; logitRows?: Value } = {},
): DecoderResult {
  const g = w.g;
  const feats = inp.inputFeatures ? audioFeatures(w, c, inp.inputFeatures) : null;
  const embeds = audioEmbeddings(w, c, inp.inputIds, feats);
  const positions = g.scope('positions', () => decoderPositions(inp.inputIds, inp.attentionMask, 'mask'));
  return decoderFor(c.text)(
    w,
    c.text,
    { prefix: ULTRAVOX_LAYOUT.decoder, lmHead: ULTRAVOX_LAYOUT.lmHead },
    { embeds, attentionMask: inp.attentionMask, positions },
    { logits: o.logits ?? 'all', logitRows: o.logitRows },
  );
}

/**
 * Generation graphs with a KV cache. 'prefill': input_ids [B, T], attention_mask [B, T], input_features
 * [N, mel bins, frames] -> logits of the last position [B, 1, V] + present.<i>.key/value; 'decode': input_ids [B, 1],
 * attention_mask [B, P+1], past_key_values.<i>.key/value [B, n_kv, P, head_dim] -> logits + present (text only: the
 * audio lives in the cache). Positions come from the mask (left padding works).
 */
export function buildAudioLlmGraph(
  m: { config: UltravoxConfig; weights: TensorSource },
  mode: 'prefill' | 'decode',
  frames: number,
  o: { quantize?: 'int8' | 'int4' } = {},
): Graph {
  const c = m.config;
  const t = c.text;
  const g = new Graph(`ultravox_${mode}`);
  const w = new GraphWeightsCtor(g, m.weights, { quantize: o.quantize });
  const ids = g.input('input_ids', 'int64', ['B', mode === 'decode' ? 1 : 'T']);
  const mask = g.input('attention_mask', 'int64', ['B', mode === 'decode' ? 'L' : 'T']);
  const names = { prefix: ULTRAVOX_LAYOUT.decoder, lmHead: ULTRAVOX_LAYOUT.lmHead };
  let embeds: Value;
  let past: KvPair[] | null = null;
  let pastLen: Value | number = 0;
  if (mode === 'prefill') {
    const x = inputFeaturesInput(g, c, frames);
    embeds = audioEmbeddings(w, c, ids, audioFeatures(w, c, x));
  } else {
    past = [];
    for (let i = 0; i < t.numHiddenLayers; i++)
      past.push({
        key: g.input(`past_key_values.${i}.key`, 'float32', ['B', t.numKeyValueHeads, 'P', t.headDim]),
        value: g.input(`past_key_values.${i}.value`, 'float32', ['B', t.numKeyValueHeads, 'P', t.headDim]),
      });
    embeds = embedTokens(w, names, ids);
    pastLen = g.op1('Squeeze', [g.op1('Shape', [past[0].key], { start: 2, end: 3 }), g.ints([0])]);
  }
  const positions = g.scope('positions', () => decoderPositions(ids, mask, 'mask', pastLen));
  const r = decoderFor(t)(
    w,
    t,
    names,
    { embeds, attentionMask: mask, positions, past },
    { logits: 'last', present: true },
  );
  g.output(r.logits!, 'logits');
  r.present!.forEach((p, i) => {
    g.output(p.key, `present.${i}.key`);
    g.output(p.value, `present.${i}.value`);
  });
  return g;
}

/** The graph input of the clips' features: float32 [N, mel bins, frames] (frames static: the extractor's window). */
export function inputFeaturesInput(
  g: Graph,
  c: UltravoxConfig,
  frames: number,
  dtype: 'float32' | 'float64' = 'float32',
): Value {
  return g.input('input_features', dtype, ['N', c.audio.numMelBins, frames]);
}

// ---- folder ------------------------------------------------------------------------------------------------------

export interface LoadedAudioLlm {
  dir: string;
  config: UltravoxConfig;
  weights: HfWeights;
  tokenizer: LensTokenizer;
  chatTemplate: ChatTemplate | null;
  features: WhisperFeatureExtractor;
  /** the placeholder text that stands for a clip in a prompt */
  audioToken: string;
  /** audio tokens per clip (the extractor's window through the encoder and the stacking) */
  tokensPerClip: number;
  json: {
    config: Record<string, unknown>;
    preprocessorConfig: Record<string, unknown>;
    tokenizerConfig: Record<string, unknown>;
  };
  close(): void;
}

export function loadAudioLlm(dir: string): LoadedAudioLlm {
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath)) throw new HfFolderError(`${dir}: no config.json`);
  const configJson = readJsonObject(cfgPath);
  const config = parseUltravox(configJson, cfgPath);
  const ppPath = join(dir, 'preprocessor_config.json');
  if (!existsSync(ppPath))
    throw new HfFolderError(`${dir}: no preprocessor_config.json (the Whisper feature extractor's settings)`);
  const preprocessorConfig = readJsonObject(ppPath);
  const fc = parseWhisperFeatureConfig(preprocessorConfig, ppPath);
  checkFeaturesFitEncoder(fc, config.audio, ppPath);
  const tokPath = join(dir, 'tokenizer.json');
  if (!existsSync(tokPath)) throw new HfFolderError(`${dir}: no tokenizer.json`);
  const tokCfgPath = join(dir, 'tokenizer_config.json');
  const tokenizer = LensTokenizer.fromFiles(tokPath, tokCfgPath);
  if (tokenizer.vocabSize > config.text.vocabSize)
    throw new HfFolderError(
      `${tokPath}: has ${tokenizer.vocabSize} tokens but text_config.vocab_size is ${config.text.vocabSize}`,
    );
  const audioToken = tokenizer.idToToken(config.audioTokenIndex);
  if (audioToken === undefined)
    throw new HfFolderError(`${tokPath}: no token with id ${config.audioTokenIndex} (config.json's audio_token_index)`);
  const tokenizerConfig = tokenizer.files.tokenizerConfig;
  const found = findChatTemplate(dir, tokenizerConfig);
  const chatTemplate = found
    ? new ChatTemplate(
        found.source,
        {
          bos_token: tokenizer.bosToken,
          eos_token: tokenizer.eosToken,
          unk_token: tokenizer.unkToken,
          pad_token: tokenizer.padToken,
        },
        found.origin,
      )
    : null;
  const weights = openCheckedWeights(
    dir,
    ultravoxTensors(config),
    (s) => ultravoxCanonicalName(config, s),
    ' (a published Ultravox folder that holds only the projector needs its audio tower and language model saved into it)',
  );
  return {
    dir,
    config,
    weights,
    tokenizer,
    chatTemplate,
    features: new WhisperFeatureExtractor(fc),
    audioToken,
    tokensPerClip: numAudioTokens(config, fc.nbMaxFrames),
    json: { config: configJson, preprocessorConfig, tokenizerConfig },
    close: () => weights.close(),
  };
}

/** Token ids of a prompt: the placeholder token expanded to tokensPerClip copies per clip. */
export function expandAudioTokens(
  m: Pick<LoadedAudioLlm, 'config' | 'tokensPerClip'>,
  ids: readonly number[],
): number[] {
  return ids.flatMap((id) => (id === m.config.audioTokenIndex ? new Array<number>(m.tokensPerClip).fill(id) : [id]));
}

/** A clip as the model takes it: mono samples at the extractor's sampling rate (resampling is the decoder's job). */
export interface AudioClip {
  samples: Float32Array;
  sampleRate: number;
  /** for messages (a file name, a dataset item) */
  name?: string;
}

/** input_features of clips, with a warning per clip cut to the window. */
export function clipFeatures(
  fx: WhisperFeatureExtractor,
  clips: readonly AudioClip[],
): { data: Float32Array; dims: [number, number, number]; warnings: string[] } {
  const warnings: string[] = [];
  clips.forEach((c, i) => {
    if (c.sampleRate !== fx.config.samplingRate)
      throw new Error(
        `${c.name ?? `clip ${i}`}: sample rate ${c.sampleRate} Hz, the model takes ${fx.config.samplingRate} Hz (resample it first)`,
      );
  });
  const b = fx.batch(clips.map((c) => c.samples));
  b.truncated.forEach((t, i) => {
    if (t)
      warnings.push(
        `${clips[i].name ?? `clip ${i}`}: ${(clips[i].samples.length / clips[i].sampleRate).toFixed(2)} s is longer than the model's ${fx.config.chunkLength} s window; the rest is cut`,
      );
  });
  return { data: b.data, dims: b.dims, warnings };
}

export { ConfigError };
