// Random-initialized tiny OPT (OPTForCausalLM) folders in the published layout (config.json as OPTConfig writes it,
// model.safetensors with model.decoder.* and lm_head.weight when untied, a GPT-2 byte-level BPE tokenizer.json with
// OPT's special tokens: <s> 0, <pad> 1, </s> 2, <unk> 3, and </s> prepended as OPT's tokenizer does), for tests and
// benchmarks. Weights are deterministic in the seed.
import { mkdirSync } from 'node:fs';
import { parseHfConfig, type TextConfig, type TextModelConfig } from '../config';
import { optToHf } from '../decoder/opt';
import { expectedTensors } from '../weights/names';
import { memorySource, type Tensor } from '../weights/safetensors';
import { saveHfFolder } from '../hf-folder';
import { trainByteLevelBpe } from './bpe';
import { demoCorpus } from './dataset';
import { demoRng } from './rng';
import { DEMO_CORPUS_SEED } from './tiny-llava';

export const OPT_SPECIAL_TOKENS = ['<s>', '<pad>', '</s>', '<unk>'];

/** OPT's tokenizer files at a toy vocabulary; `extraTokens` are added special tokens after the BPE vocabulary. */
export function optTokenizerFiles(bpeSize = 320, extraTokens: string[] = []): { tokenizer: Record<string, unknown>; tokenizerConfig: Record<string, unknown>; vocab: Record<string, number>; size: number } {
  const tokenizer = trainByteLevelBpe(demoCorpus(DEMO_CORPUS_SEED, 3000), { vocabSize: bpeSize, specialTokens: OPT_SPECIAL_TOKENS, bosToken: '</s>' });
  const vocab = (tokenizer.model as { vocab: Record<string, number> }).vocab;
  let size = Object.keys(vocab).length;
  const added = tokenizer.added_tokens as Array<Record<string, unknown>>;
  const ids: Record<string, number> = { ...vocab };
  for (const t of extraTokens) {
    added.push({ id: size, content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    ids[t] = size++;
  }
  const decoder: Record<string, unknown> = {};
  for (const t of added)
    decoder[String(t.id)] = { content: t.content, lstrip: false, normalized: t.id as number < 4, rstrip: false, single_word: false, special: true };
  const tokenizerConfig: Record<string, unknown> = {
    add_bos_token: true,
    add_prefix_space: false,
    added_tokens_decoder: decoder,
    bos_token: '</s>',
    clean_up_tokenization_spaces: false,
    eos_token: '</s>',
    errors: 'replace',
    model_max_length: 1000000000000000019884624838656,
    pad_token: '<pad>',
    tokenizer_class: 'GPT2Tokenizer',
    unk_token: '</s>',
  };
  if (extraTokens.length) tokenizerConfig.additional_special_tokens = extraTokens;
  return { tokenizer, tokenizerConfig, vocab: ids, size };
}

export interface TinyOptOptions {
  hidden?: number;
  layers?: number;
  heads?: number;
  ffn?: number;
  vocabSize?: number;
  maxPositionEmbeddings?: number;
  tieWordEmbeddings?: boolean;
  layerNormBefore?: boolean;
  eosTokenId?: number;
  initStd?: number;
}

/** The normalized OPT text config of a tiny model. */
export function tinyOptText(vocabSize: number, o: TinyOptOptions = {}): TextConfig {
  const h = o.hidden ?? 32;
  const heads = o.heads ?? 4;
  const ln = o.layerNormBefore ?? true;
  return {
    modelType: 'opt',
    vocabSize,
    hiddenSize: h,
    intermediateSize: o.ffn ?? 64,
    numHiddenLayers: o.layers ?? 2,
    numAttentionHeads: heads,
    numKeyValueHeads: heads,
    headDim: h / heads,
    hiddenAct: 'relu',
    maxPositionEmbeddings: o.maxPositionEmbeddings ?? 128,
    rmsNormEps: 1e-5,
    rope: { theta: 10000, type: 'default', factor: 1 },
    qkvBias: true,
    oBias: true,
    mlpBias: true,
    tieWordEmbeddings: o.tieWordEmbeddings ?? true,
    bosTokenId: 2,
    eosTokenIds: [o.eosTokenId ?? 2],
    padTokenId: 1,
    opt: { layerNormBefore: ln, finalLayerNorm: ln, enableBias: true, layerNormEps: 1e-5, positionOffset: 2 },
  };
}

/** Random weights: matrices and biases ~ N(0, std), LayerNorm weights ~ 1 + N(0, std) (any spelling of layer norm). */
export function randomBlip2Weights(specs: Array<{ name: string; shape: number[] }>, seed: number, std: number): Map<string, Tensor> {
  const rng = demoRng(seed);
  const out = new Map<string, Tensor>();
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = /(norm|Norm|layer_norm\d?)\.weight$/.test(s.name);
    for (let i = 0; i < n; i++) data[i] = (isNorm ? 1 : 0) + std * rng.normal();
    out.set(s.name, { dtype: 'F32', shape: s.shape, data });
  }
  return out;
}

/** Write a random tiny OPTForCausalLM folder; returns its parsed config. */
export function writeTinyOpt(dir: string, seed: number, o: TinyOptOptions = {}): TextModelConfig {
  const tok = optTokenizerFiles();
  const text = tinyOptText(o.vocabSize ?? tok.size + 8, o);
  const json = { architectures: ['OPTForCausalLM'], ...optToHf(text), torch_dtype: 'float32' };
  const config = parseHfConfig(json, 'tiny-opt config.json') as TextModelConfig;
  mkdirSync(dir, { recursive: true });
  saveHfFolder(dir, {
    config: config.raw,
    weights: memorySource(randomBlip2Weights(expectedTensors(config), seed, o.initStd ?? 0.02)),
    tokenizer: tok.tokenizer,
    tokenizerConfig: tok.tokenizerConfig,
    generationConfig: { bos_token_id: 2, eos_token_id: text.eosTokenIds[0], pad_token_id: 1, max_new_tokens: 32 },
  });
  return config;
}
