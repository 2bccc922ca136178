// The parts of the tiny demo audio LLM, in published layouts: a tiny Whisper folder (tiny-whisper.ts) and a tiny
// LLaMA folder (LlamaForCausalLM, byte-level BPE trained on the tone task's text and the demo corpus, LLaVA-1.5 style
// chat template), both random-initialized from a seed; composeAudioLlm puts them together with a new projector.

import { join } from 'node:path';
import { parseHfConfig, textToHf, type TextModelConfig } from '../config';
import { saveHfFolder } from '../hf-folder';
import { LLAVA_CHAT_TEMPLATE } from '../chat-template';
import { expectedTensors } from '../weights/names';
import { memorySource } from '../weights/safetensors';
import { composeAudioLlm, type ComposeAudioResult } from '../audio/compose';
import { trainByteLevelBpe } from './bpe';
import { demoCorpus } from './dataset';
import { randomWeights } from './tiny-llava';
import { writeTinyWhisper, type TinyWhisperOptions } from './tiny-whisper';
import { TONE_QUESTIONS, toneCaption } from './tones';

export interface TinyAudioLlmOptions {
  whisper?: TinyWhisperOptions;
  textHidden?: number;
  textLayers?: number;
  textHeads?: number;
  textKvHeads?: number;
  textIntermediate?: number;
  vocabSize?: number;
  tieWordEmbeddings?: boolean;
  stackFactor?: number;
  initStd?: number;
}

const SPECIALS = ['<unk>', '<s>', '</s>', '<pad>'];

/** A tiny LLaMA folder with tokenizer and chat template (no audio token: composing adds it). */
export function writeTinyTextLlm(dir: string, seed: number, o: TinyAudioLlmOptions = {}): TextModelConfig {
  const corpus = [...demoCorpus(1234, 300)];
  // the task's words often enough that each answer is one token
  for (let i = 0; i < 40; i++)
    for (const q of Object.values(TONE_QUESTIONS))
      corpus.push(`USER: ${q}\nASSISTANT: first second one two three four`);
  for (let i = 0; i < 120; i++) corpus.push(toneCaption(i));
  const tokenizer = trainByteLevelBpe(corpus, {
    vocabSize: o.vocabSize ?? 512,
    specialTokens: SPECIALS,
    bosToken: '<s>',
  });
  const vocab = (tokenizer.model as { vocab: Record<string, number> }).vocab;
  const vocabSize = Object.keys(vocab).length;
  const json = {
    architectures: ['LlamaForCausalLM'],
    ...textToHf({
      modelType: 'llama',
      vocabSize,
      hiddenSize: o.textHidden ?? 64,
      intermediateSize: o.textIntermediate ?? 128,
      numHiddenLayers: o.textLayers ?? 2,
      numAttentionHeads: o.textHeads ?? 4,
      numKeyValueHeads: o.textKvHeads ?? 2,
      headDim: (o.textHidden ?? 64) / (o.textHeads ?? 4),
      hiddenAct: 'silu',
      maxPositionEmbeddings: 256,
      rmsNormEps: 1e-6,
      rope: { theta: 10000, type: 'default', factor: 1 },
      qkvBias: false,
      oBias: false,
      mlpBias: false,
      tieWordEmbeddings: o.tieWordEmbeddings ?? false,
      bosTokenId: 1,
      eosTokenIds: [2],
      padTokenId: 3,
    }),
  };
  const cfg = parseHfConfig(json) as TextModelConfig;
  const added: Record<string, unknown> = {};
  SPECIALS.forEach(
    (content, id) =>
      (added[String(id)] = {
        content,
        lstrip: false,
        normalized: false,
        rstrip: false,
        single_word: false,
        special: true,
      }),
  );
  saveHfFolder(dir, {
    config: json,
    weights: memorySource(randomWeights(expectedTensors(cfg), seed, o.initStd ?? 0.15)),
    tokenizer,
    tokenizerConfig: {
      add_bos_token: true,
      add_eos_token: false,
      added_tokens_decoder: added,
      bos_token: '<s>',
      eos_token: '</s>',
      unk_token: '<unk>',
      pad_token: '<pad>',
      chat_template: LLAVA_CHAT_TEMPLATE,
      clean_up_tokenization_spaces: false,
      model_max_length: 256,
      tokenizer_class: 'PreTrainedTokenizerFast',
    },
  });
  return cfg;
}

/** Write the Whisper and LLaMA parts under `root` and compose them into `root/audio-llm`. */
export function writeTinyAudioLlm(
  root: string,
  seed: number,
  o: TinyAudioLlmOptions = {},
): ComposeAudioResult & { dir: string } {
  const audioDir = join(root, 'whisper');
  const textDir = join(root, 'llama');
  const dir = join(root, 'audio-llm');
  // small layer weights keep the random encoder close to its convs (a random attention stack smears the clip over time)
  writeTinyWhisper(audioDir, seed, { initStd: 0.02, convStd: 0.3, ...o.whisper });
  writeTinyTextLlm(textDir, seed + 1, o);
  const r = composeAudioLlm({
    audioDir,
    textDir,
    outDir: dir,
    stackFactor: o.stackFactor ?? 4,
    seed: seed + 2,
    initStd: 0.05,
  });
  return { ...r, dir };
}
