// A small LLaMA causal LM folder (LlamaForCausalLM, 2 x 48 wide, a 300-token byte-level BPE without <image>, random
// weights): the language model the compose tests put behind a vision tower.
import { saveHfFolder } from '../../src-main/models/hf-folder';
import { parseHfConfig, textToHf, type TextModelConfig } from '../../src-main/models/config';
import { expectedTensors } from '../../src-main/models/weights/names';
import { memorySource } from '../../src-main/models/weights/safetensors';
import { randomWeights, DEMO_CORPUS_SEED } from '../../src-main/models/demo/tiny-llava';
import { trainByteLevelBpe } from '../../src-main/models/demo/bpe';
import { demoCorpus } from '../../src-main/models/demo/dataset';

/** config.json of the tiny LLaMA: vocab_size equals the tokenizer's size, so a new token needs a new row. */
export const TINY_LLAMA_JSON: Record<string, unknown> = {
  architectures: ['LlamaForCausalLM'],
  ...textToHf({
    modelType: 'llama',
    vocabSize: 300,
    hiddenSize: 48,
    intermediateSize: 96,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 12,
    hiddenAct: 'silu',
    maxPositionEmbeddings: 256,
    rmsNormEps: 1e-6,
    rope: { theta: 10000, type: 'default', factor: 1 },
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    tieWordEmbeddings: false,
    bosTokenId: 1,
    eosTokenIds: [2],
    padTokenId: null,
  }),
};

/** Write a tiny causal LM folder (`json` defaults to TINY_LLAMA_JSON); returns its parsed config. */
export function writeTinyLlamaLm(
  out: string,
  o: { json?: Record<string, unknown>; seed?: number; specials?: string[]; chatTemplate?: string } = {},
): TextModelConfig {
  const json = o.json ?? TINY_LLAMA_JSON;
  const cfg = parseHfConfig(json) as TextModelConfig;
  const tokenizer = trainByteLevelBpe(demoCorpus(DEMO_CORPUS_SEED, 200), {
    vocabSize: 300,
    specialTokens: o.specials ?? ['<unk>', '<s>', '</s>'],
    bosToken: '<s>',
  });
  saveHfFolder(out, {
    config: json,
    weights: memorySource(randomWeights(expectedTensors(cfg), o.seed ?? 2)),
    tokenizer,
    tokenizerConfig: {
      bos_token: '<s>',
      eos_token: '</s>',
      ...(o.chatTemplate ? { chat_template: o.chatTemplate } : {}),
    },
  });
  return cfg;
}
