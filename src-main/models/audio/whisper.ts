// The Whisper encoder (transformers' modeling_whisper.py WhisperEncoder), the audio tower of Lenslab's audio LLMs.
//
//   input_features [N, num_mel_bins, T] -> gelu(conv1: k3 s1 p1) -> gelu(conv2: k3 s2 p1) -> [N, T/2, d_model]
//   + embed_positions.weight (sinusoidal, stored in the checkpoint) -> pre-LN layers -> layer_norm
//   layer: x + out_proj(attn(self_attn_layer_norm(x)))  (q scaled by head_dim^-0.5, k_proj has no bias)
//          x + fc2(act(fc1(final_layer_norm(x))))      (act = activation_function, "gelu")
//
// The convs use exact GELU whatever activation_function says (nn.functional.gelu in WhisperEncoder.forward). Whisper
// itself requires T = 2 * max_source_positions (3000 frames = 30 s); Ultravox's encoder also takes shorter inputs and
// adds the first T/2 position rows, which is what a T below the window does here. T is a static graph dim (the
// strided conv's gradient needs it).
//
// Published layouts, mapped to the canonical "encoder." names of WhisperModel:
//   WhisperForConditionalGeneration: model.encoder.*  (+ model.decoder.*, proj_out.weight: ignored)
//   WhisperModel:                     encoder.*        (+ decoder.*: ignored)
//   WhisperEncoder alone (e.g. an audio LLM's audio_tower.*): conv1.*, layers.*, ... -> prefixed by the caller

import type { Value } from '../../engine/graph/builder';
import { activation, gelu } from '../../engine/ops/activations';
import { attention } from '../../engine/ops/attention';
import { conv1dChannelsLast } from '../../engine/ops/conv';
import { layerNorm } from '../../engine/ops/norm';
import { Reader, type Activation } from '../config';
import { mergeHeads, splitHeads, type GraphWeights } from '../layers';
import type { TensorSpec } from '../weights/names';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { HfFolderError, readJsonObject, type HfWeights } from '../hf-folder';
import { openCheckedWeights } from './folder';
import { WhisperFeatureExtractor, parseWhisperFeatureConfig, type WhisperFeatureConfig } from './log-mel';

export interface WhisperEncoderConfig {
  dModel: number;
  numLayers: number;
  numHeads: number;
  headDim: number;
  ffnDim: number;
  numMelBins: number;
  /** rows of embed_positions: the longest input is 2 * maxSourcePositions frames */
  maxSourcePositions: number;
  activation: Activation;
}

/** WhisperConfig's encoder fields with transformers' defaults (configuration_whisper.py). */
export function parseWhisperEncoder(r: Reader): WhisperEncoderConfig {
  const mt = r.str('model_type', 'whisper');
  if (mt !== 'whisper') r.err('model_type', `"${mt}" is not a Whisper model (whisper)`);
  const dModel = r.int('d_model', 384);
  const numHeads = r.int('encoder_attention_heads', 6);
  if (dModel % numHeads !== 0)
    r.err('encoder_attention_heads', `d_model ${dModel} is not divisible by ${numHeads} heads`);
  const act = r.act('activation_function', 'gelu');
  const numLayers = r.int('encoder_layers', 4);
  if (numLayers > 256) r.err('encoder_layers', `${numLayers} is larger than any model Lenslab can run (at most 256)`);
  const ffnDim = r.int('encoder_ffn_dim', 1536);
  const numMelBins = r.int('num_mel_bins', 80);
  if (numMelBins > 512) r.err('num_mel_bins', `${numMelBins} is more than 512`);
  const maxSourcePositions = r.int('max_source_positions', 1500);
  if (maxSourcePositions > 100000) r.err('max_source_positions', `${maxSourcePositions} is more than 100000`);
  if (dModel > 16384) r.err('d_model', `${dModel} is larger than any model Lenslab can run (at most 16384)`);
  if (ffnDim > 65536) r.err('encoder_ffn_dim', `${ffnDim} is larger than any model Lenslab can run (at most 65536)`);
  return {
    dModel,
    numLayers,
    numHeads,
    headDim: dModel / numHeads,
    ffnDim,
    numMelBins,
    maxSourcePositions,
    activation: act,
  };
}

/** The config.json fields that describe this encoder (for writing an audio LLM's audio_config). */
export function whisperEncoderToHf(c: WhisperEncoderConfig): Record<string, unknown> {
  return {
    model_type: 'whisper',
    d_model: c.dModel,
    encoder_layers: c.numLayers,
    encoder_attention_heads: c.numHeads,
    encoder_ffn_dim: c.ffnDim,
    num_mel_bins: c.numMelBins,
    max_source_positions: c.maxSourcePositions,
    activation_function: c.activation,
  };
}

/** WhisperEncoder parameters under `prefix` ("encoder." in WhisperModel, "audio_tower." in an audio LLM). */
export function whisperEncoderTensors(c: WhisperEncoderConfig, prefix: string): TensorSpec[] {
  const d = c.dModel;
  const p = prefix;
  const out: TensorSpec[] = [
    { name: `${p}conv1.weight`, shape: [d, c.numMelBins, 3] },
    { name: `${p}conv1.bias`, shape: [d] },
    { name: `${p}conv2.weight`, shape: [d, d, 3] },
    { name: `${p}conv2.bias`, shape: [d] },
    { name: `${p}embed_positions.weight`, shape: [c.maxSourcePositions, d] },
  ];
  for (let l = 0; l < c.numLayers; l++) {
    const L = `${p}layers.${l}.`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      out.push({ name: `${L}self_attn.${proj}.weight`, shape: [d, d] });
      if (proj !== 'k_proj') out.push({ name: `${L}self_attn.${proj}.bias`, shape: [d] });
    }
    out.push(
      { name: `${L}self_attn_layer_norm.weight`, shape: [d] },
      { name: `${L}self_attn_layer_norm.bias`, shape: [d] },
    );
    out.push({ name: `${L}fc1.weight`, shape: [c.ffnDim, d] }, { name: `${L}fc1.bias`, shape: [c.ffnDim] });
    out.push({ name: `${L}fc2.weight`, shape: [d, c.ffnDim] }, { name: `${L}fc2.bias`, shape: [d] });
    out.push({ name: `${L}final_layer_norm.weight`, shape: [d] }, { name: `${L}final_layer_norm.bias`, shape: [d] });
  }
  out.push({ name: `${p}layer_norm.weight`, shape: [d] }, { name: `${p}layer_norm.bias`, shape: [d] });
  return out;
}

/** A Whisper folder's stored name -> "encoder.<rest>", or null for the decoder and the output projection. */
export function whisperCanonicalName(stored: string): string | null {
  if (stored.startsWith('model.encoder.')) return stored.slice('model.'.length);
  if (stored.startsWith('encoder.')) return stored;
  if (stored.startsWith('model.decoder.') || stored.startsWith('decoder.') || stored === 'proj_out.weight') return null;
  // a bare WhisperEncoder checkpoint
  if (/^(conv[12]\.|embed_positions\.|layers\.\d+\.|layer_norm\.)/.test(stored)) return `encoder.${stored}`;
  return null;
}

/** Encoder output length for `frames` input frames (conv2 has stride 2, padding 1, kernel 3). */
export function whisperOutputLength(frames: number): number {
  return Math.floor((frames - 1) / 2) + 1;
}

/** One WhisperEncoderLayer. */
function whisperLayer(w: GraphWeights, c: WhisperEncoderConfig, L: string, x: Value): Value {
  const g = w.g;
  const H = c.numHeads;
  const d = c.headDim;
  let y = layerNorm(x, w.tensor(`${L}self_attn_layer_norm.weight`), w.tensor(`${L}self_attn_layer_norm.bias`), {
    epsilon: 1e-5,
  });
  const q = splitHeads(g, w.linear(y, `${L}self_attn.q_proj`, { bias: true }), H, d);
  const k = splitHeads(g, w.linear(y, `${L}self_attn.k_proj`, { bias: false }), H, d);
  const v = splitHeads(g, w.linear(y, `${L}self_attn.v_proj`, { bias: true }), H, d);
  const a = attention(q, k, v, { scale: 1 / Math.sqrt(d) }).out;
  x = g.op1('Add', [x, w.linear(mergeHeads(g, a, H, d), `${L}self_attn.out_proj`, { bias: true })]);
  y = layerNorm(x, w.tensor(`${L}final_layer_norm.weight`), w.tensor(`${L}final_layer_norm.bias`), { epsilon: 1e-5 });
  y = w.linear(activation(c.activation, w.linear(y, `${L}fc1`, { bias: true })), `${L}fc2`, { bias: true });
  return g.op1('Add', [x, y]);
}

/**
 * Encoder hidden states [N, ceil(T / 2), d_model] (after the final layer_norm) of input_features [N, mel bins, T]
 * with a static T <= 2 * max_source_positions. `prefix` is where the encoder's tensors are ("encoder.", "audio_tower.").
 */
export function whisperEncoder(w: GraphWeights, c: WhisperEncoderConfig, prefix: string, inputFeatures: Value): Value {
  const g = w.g;
  const s = inputFeatures.shape;
  if (!s || s.length !== 3 || (typeof s[1] === 'number' && s[1] !== c.numMelBins) || typeof s[2] !== 'number')
    throw new Error(
      `whisper encoder: input_features '${inputFeatures.name}' must be [N, ${c.numMelBins}, frames] with a static number of frames (got [${s}])`,
    );
  const T = s[2];
  const max = 2 * c.maxSourcePositions;
  if (T > max)
    throw new Error(
      `whisper encoder: ${T} input frames is more than the encoder's window (${max} = 2 x max_source_positions)`,
    );
  const P = p(prefix);
  return g.scope('audio/encoder', () => {
    let x = g.op1('Transpose', [inputFeatures], { perm: [0, 2, 1] });
    x = gelu(conv1dChannelsLast(x, w.tensor(P('conv1.weight')), w.tensor(P('conv1.bias')), { stride: 1, padding: 1 }));
    x = gelu(conv1dChannelsLast(x, w.tensor(P('conv2.weight')), w.tensor(P('conv2.bias')), { stride: 2, padding: 1 }));
    const n = whisperOutputLength(T);
    let pos = w.tensor(P('embed_positions.weight'));
    if (n < c.maxSourcePositions) pos = g.op1('Slice', [pos, g.ints([0]), g.ints([n]), g.ints([0])]);
    x = g.op1('Add', [x, pos]);
    for (let l = 0; l < c.numLayers; l++) {
      const xl = x;
      x = g.scope(`layer${l}`, () => whisperLayer(w, c, P(`layers.${l}.`), xl));
    }
    return layerNorm(x, w.tensor(P('layer_norm.weight')), w.tensor(P('layer_norm.bias')), { epsilon: 1e-5 });
  });
}

const p = (prefix: string) => (rest: string) => `${prefix}${rest}`;

/** Whisper's sinusoidal position table (WhisperEncoder's sinusoids(length, channels, max_timescale=10000)). */
export function whisperSinusoids(length: number, channels: number): Float32Array {
  if (channels % 2 !== 0) throw new Error('whisper sinusoids: channels must be even');
  const half = channels / 2;
  const inc = Math.log(10000) / (half - 1);
  const out = new Float32Array(length * channels);
  for (let t = 0; t < length; t++)
    for (let i = 0; i < half; i++) {
      const a = t * Math.exp(-inc * i);
      out[t * channels + i] = Math.sin(a);
      out[t * channels + half + i] = Math.cos(a);
    }
  return out;
}

// ---- folders ---------------------------------------------------------------------------------------------------

/** A Whisper folder opened for its encoder and feature extractor (the decoder's tensors are not read). */
export interface WhisperEncoderModel {
  dir: string;
  config: WhisperEncoderConfig;
  features: WhisperFeatureExtractor;
  /** canonical "encoder.*" names */
  weights: HfWeights;
  json: { config: Record<string, unknown>; preprocessorConfig: Record<string, unknown> };
  close(): void;
}

/** Check that a feature extractor feeds this encoder: same mel bins, a window the position table covers. */
export function checkFeaturesFitEncoder(f: WhisperFeatureConfig, c: WhisperEncoderConfig, file: string): void {
  if (f.featureSize !== c.numMelBins)
    throw new HfFolderError(
      `${file}: field "feature_size": ${f.featureSize} mel bins, but the encoder's num_mel_bins is ${c.numMelBins}`,
    );
  if (f.nbMaxFrames > 2 * c.maxSourcePositions)
    throw new HfFolderError(
      `${file}: field "chunk_length": ${f.chunkLength} s is ${f.nbMaxFrames} frames, more than the encoder's window of ${2 * c.maxSourcePositions} (2 x max_source_positions)`,
    );
}

export function loadWhisperEncoder(dir: string): WhisperEncoderModel {
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath)) throw new HfFolderError(`${dir}: no config.json`);
  const configJson = readJsonObject(cfgPath);
  const config = parseWhisperEncoder(new Reader(cfgPath, configJson, ''));
  const ppPath = join(dir, 'preprocessor_config.json');
  if (!existsSync(ppPath))
    throw new HfFolderError(`${dir}: no preprocessor_config.json (Whisper's feature extractor settings)`);
  const preprocessorConfig = readJsonObject(ppPath);
  const fc = parseWhisperFeatureConfig(preprocessorConfig, ppPath);
  checkFeaturesFitEncoder(fc, config, ppPath);
  const weights = openCheckedWeights(dir, whisperEncoderTensors(config, 'encoder.'), whisperCanonicalName);
  return {
    dir,
    config,
    features: new WhisperFeatureExtractor(fc),
    weights,
    json: { config: configJson, preprocessorConfig },
    close: () => weights.close(),
  };
}
