// A tiny Whisper folder in the published WhisperForConditionalGeneration layout (model.encoder.*, model.decoder.*,
// proj_out tied), random-initialized from a seed: config.json, model.safetensors, preprocessor_config.json. The
// feature extractor's chunk_length is shortened (default 1 s = 100 frames) and max_source_positions matches it
// (50), so the encoder's window is the clip window, as a 30 s / 1500-position Whisper is. The decoder is written
// (small) so the folder has every tensor a published one has; Lenslab's audio models read only the encoder.

import type { TensorSpec } from '../weights/names';
import { memorySource, type Tensor } from '../weights/safetensors';
import { writeModelFolder } from '../audio/folder';
import { whisperEncoderTensors, whisperSinusoids } from '../audio/whisper';
import { parseWhisperEncoder } from '../audio/whisper';
import { Reader } from '../config';
import { demoRng } from './rng';

export interface TinyWhisperOptions {
  dModel?: number;
  encoderLayers?: number;
  heads?: number;
  ffnDim?: number;
  numMelBins?: number;
  /** seconds of audio per clip (the feature extractor's chunk_length; default 1) */
  chunkLength?: number;
  decoderLayers?: number;
  vocabSize?: number;
  /** std of the normal init of weight matrices (default 0.02) */
  initStd?: number;
  /** std of the two convs' weights (default initStd) */
  convStd?: number;
}

export function tinyWhisperJson(o: TinyWhisperOptions = {}): {
  config: Record<string, unknown>;
  preprocessorConfig: Record<string, unknown>;
} {
  const chunk = o.chunkLength ?? 1;
  const d = o.dModel ?? 32;
  const heads = o.heads ?? 4;
  const config = {
    architectures: ['WhisperForConditionalGeneration'],
    model_type: 'whisper',
    d_model: d,
    encoder_layers: o.encoderLayers ?? 2,
    encoder_attention_heads: heads,
    encoder_ffn_dim: o.ffnDim ?? 4 * d,
    decoder_layers: o.decoderLayers ?? 1,
    decoder_attention_heads: heads,
    decoder_ffn_dim: o.ffnDim ?? 4 * d,
    num_mel_bins: o.numMelBins ?? 80,
    max_source_positions: (chunk * 100) / 2,
    max_target_positions: 32,
    vocab_size: o.vocabSize ?? 64,
    activation_function: 'gelu',
    scale_embedding: false,
    tie_word_embeddings: true,
    decoder_start_token_id: 1,
    pad_token_id: 0,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: 'float32',
  };
  const preprocessorConfig = {
    feature_extractor_type: 'WhisperFeatureExtractor',
    feature_size: config.num_mel_bins,
    sampling_rate: 16000,
    hop_length: 160,
    chunk_length: chunk,
    n_fft: 400,
    n_samples: chunk * 16000,
    nb_max_frames: chunk * 100,
    padding_side: 'right',
    padding_value: 0.0,
    return_attention_mask: false,
    processor_class: 'WhisperProcessor',
  };
  return { config, preprocessorConfig };
}

/** The decoder's tensors of WhisperForConditionalGeneration (written, never read by Lenslab). */
function whisperDecoderTensors(c: Record<string, number>, prefix: string): TensorSpec[] {
  const d = c.d_model;
  const f = c.decoder_ffn_dim;
  const out: TensorSpec[] = [
    { name: `${prefix}embed_tokens.weight`, shape: [c.vocab_size, d] },
    { name: `${prefix}embed_positions.weight`, shape: [c.max_target_positions, d] },
  ];
  for (let l = 0; l < c.decoder_layers; l++) {
    const L = `${prefix}layers.${l}.`;
    for (const att of ['self_attn', 'encoder_attn']) {
      for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
        out.push({ name: `${L}${att}.${proj}.weight`, shape: [d, d] });
        if (proj !== 'k_proj') out.push({ name: `${L}${att}.${proj}.bias`, shape: [d] });
      }
      out.push(
        { name: `${L}${att}_layer_norm.weight`, shape: [d] },
        { name: `${L}${att}_layer_norm.bias`, shape: [d] },
      );
    }
    out.push({ name: `${L}fc1.weight`, shape: [f, d] }, { name: `${L}fc1.bias`, shape: [f] });
    out.push({ name: `${L}fc2.weight`, shape: [d, f] }, { name: `${L}fc2.bias`, shape: [d] });
    out.push({ name: `${L}final_layer_norm.weight`, shape: [d] }, { name: `${L}final_layer_norm.bias`, shape: [d] });
  }
  out.push({ name: `${prefix}layer_norm.weight`, shape: [d] }, { name: `${prefix}layer_norm.bias`, shape: [d] });
  return out;
}

/** Random tensors for specs: matrices ~ N(0, std), norm weights 1 + N(0, 0.1), biases N(0, 0.1); `special` overrides. */
export function randomTensors(
  specs: TensorSpec[],
  seed: number,
  std: number,
  special: (name: string, n: number) => Float32Array | null = () => null,
): Map<string, Tensor> {
  const rng = demoRng(seed);
  const m = new Map<string, Tensor>();
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    let data = special(s.name, n);
    if (!data) {
      data = new Float32Array(n);
      const isNorm = /(layer_?norm|ln_|norm)[^.]*\.weight$/.test(s.name);
      for (let i = 0; i < n; i++)
        data[i] = isNorm ? 1 + 0.1 * rng.normal() : s.name.endsWith('.bias') ? 0.1 * rng.normal() : std * rng.normal();
    }
    m.set(s.name, { dtype: 'F32', shape: s.shape, data });
  }
  return m;
}

/** Write the tiny Whisper folder; returns the files written. */
export function writeTinyWhisper(dir: string, seed: number, o: TinyWhisperOptions = {}): string[] {
  const { config, preprocessorConfig } = tinyWhisperJson(o);
  const enc = parseWhisperEncoder(new Reader('tiny whisper config', config, ''));
  const specs = [
    ...whisperEncoderTensors(enc, 'model.encoder.'),
    ...whisperDecoderTensors(config as unknown as Record<string, number>, 'model.decoder.'),
  ];
  const convRng = demoRng(seed + 0x5eed);
  const weights = memorySource(
    randomTensors(specs, seed, o.initStd ?? 0.02, (name, n) => {
      if (name === 'model.encoder.embed_positions.weight') return whisperSinusoids(enc.maxSourcePositions, enc.dModel);
      if (o.convStd !== undefined && /^model\.encoder\.conv[12]\.weight$/.test(name))
        return Float32Array.from({ length: n }, () => o.convStd! * convRng.normal());
      return null;
    }),
  );
  return writeModelFolder(dir, specs, weights, {
    'config.json': config,
    'preprocessor_config.json': preprocessorConfig,
  });
}
