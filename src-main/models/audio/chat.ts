// Chat with an audio LLM: a conversation (the latest clip tagged "<audio>" on its turn) through the model's chat
// template, the clip through the Whisper feature extractor, then the KV-cached prefill / decode graphs (generate.ts)
// with the chat's sampler, stop strings and streamed text, answering as the image generator does (GenerateResult).
// An adapter (PEFT folder from `lenslab audio train`) is merged into the weights once, when the generator loads.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Sampler, StopStrings, validateSamplingOptions, type FinishReason } from '../sampling';
import { GenerateError, type ChatTurn, type GenerateOptions, type GenerateResult } from '../generate';
import type { TensorSource } from '../weights/safetensors';
import { PeftError } from '../peft';
import type { SessionOptions } from '../../engine/runtime/session';
import { readJsonObject } from '../hf-folder';
import { AudioLlmCachedGenerator } from './generate';
import { loadAudioAdapter, mergeAudioAdapter } from './adapter';
import { clipFeatures, expandAudioTokens, loadAudioLlm, type AudioClip, type LoadedAudioLlm } from './ultravox';

/** Where a clip goes in a turn's text (replaced by the model's own placeholder token). */
export const AUDIO_TAG = '<audio>';

/** Whether a folder holds an Ultravox-layout audio LLM (its config.json model_type), without loading it. */
export function isAudioLlmFolder(dir: string): boolean {
  const p = join(dir, 'config.json');
  if (!existsSync(p)) return false;
  try {
    return readJsonObject(p).model_type === 'ultravox';
  } catch {
    return false;
  }
}

export interface AudioChatRequest {
  audio?: AudioClip | null;
  messages: ChatTurn[];
}

export interface AudioChatGenerator {
  readonly llm: LoadedAudioLlm;
  readonly provider: string;
  readonly contextLength: number;
  /** Prompt ids for a conversation (the clip's placeholder expanded to the model's audio tokens). */
  promptIds(messages: readonly ChatTurn[], hasAudio: boolean): number[];
  generate(req: AudioChatRequest, opts?: GenerateOptions): Promise<GenerateResult>;
  dispose(): Promise<void>;
}

/** Open an audio LLM folder (+ adapter folder) for chat. Errors name the folder / file (GenerateError or the loaders'). */
export async function loadAudioChatGenerator(
  modelDir: string,
  adapterDir: string | null,
  o: {
    threads?: number;
    quantize?: 'none' | 'int8' | 'int4';
    provider?: SessionOptions['provider'];
    onStatus?(m: string): void;
  } = {},
): Promise<AudioChatGenerator> {
  if (!existsSync(modelDir)) throw new GenerateError(`${modelDir}: model folder not found`);
  if (adapterDir && !existsSync(adapterDir)) throw new GenerateError(`${adapterDir}: adapter folder not found`);
  const m = loadAudioLlm(modelDir);
  let cached: AudioLlmCachedGenerator;
  try {
    if (!m.chatTemplate)
      throw new GenerateError(
        `${modelDir}: no chat template (tokenizer_config.json chat_template or chat_template.jinja)`,
      );
    let weights: TensorSource = m.weights;
    if (adapterDir) {
      try {
        const a = loadAudioAdapter(adapterDir, m);
        weights = mergeAudioAdapter(m, a.method, a.lora, a.values);
      } catch (e) {
        throw new PeftError((e as Error).message);
      }
    }
    o.onStatus?.(`compiling ${modelDir}`);
    const quantize = o.quantize && o.quantize !== 'none' ? o.quantize : undefined;
    cached = await AudioLlmCachedGenerator.create({ config: m.config, weights }, m.features.config.nbMaxFrames, {
      threads: o.threads,
      quantize,
      provider: o.provider,
    });
  } catch (e) {
    m.close();
    throw e;
  }
  const fx = m.features;
  const eos = new Set(m.config.text.eosTokenIds);
  const contextLength = m.config.text.maxPositionEmbeddings;
  const tok = m.tokenizer;
  const template = m.chatTemplate!;
  let disposed = false;

  function promptIds(messages: readonly ChatTurn[], hasAudio: boolean): number[] {
    const tagged = messages.filter((t) => t.content.includes(AUDIO_TAG)).length;
    if (tagged > 1 || messages.some((t) => t.content.split(AUDIO_TAG).length > 2))
      throw new GenerateError(`the conversation has more than one "${AUDIO_TAG}"; one clip at a time is supported`);
    if (tagged === 1 && !hasAudio) throw new GenerateError(`a turn has "${AUDIO_TAG}" but no audio clip was given`);
    const firstUser = messages.findIndex((t) => t.role === 'user');
    if (hasAudio && firstUser === -1) throw new GenerateError('an audio clip needs a user message');
    const turns = messages.map((t, i) => ({
      role: t.role,
      content: (hasAudio && tagged === 0 && i === firstUser ? `${AUDIO_TAG}\n${t.content}` : t.content)
        .split(AUDIO_TAG)
        .join(m.audioToken),
    }));
    const text = template.render(turns, { addGenerationPrompt: true });
    const bos = tok.bosToken;
    const ids = tok.encode(text, { addSpecialTokens: !(bos && text.startsWith(bos)) });
    const n = ids.filter((id) => id === m.config.audioTokenIndex).length;
    if (n !== (hasAudio ? 1 : 0))
      throw new GenerateError(
        `${template.origin}: the prompt has ${n} audio placeholders "${m.audioToken}" for ${hasAudio ? 'one clip' : 'no clip'}`,
      );
    return expandAudioTokens(m, ids);
  }

  async function generate(req: AudioChatRequest, opts: GenerateOptions = {}): Promise<GenerateResult> {
    if (disposed) throw new GenerateError('the generator was disposed');
    const t0 = performance.now();
    validateSamplingOptions(opts);
    const maxNew = opts.maxNewTokens ?? 128;
    if (!Number.isInteger(maxNew) || maxNew < 1)
      throw new GenerateError(`maxNewTokens must be a positive integer, got ${maxNew}`);
    const hasAudio = !!req.audio;
    const ids = promptIds(req.messages, hasAudio);
    if (ids.length >= contextLength)
      throw new GenerateError(`the prompt is ${ids.length} tokens; the model's context is ${contextLength}`);
    const warnings: string[] = [];
    // without a clip the prefill graph still takes input_features: silence, which no placeholder reads
    let feats;
    try {
      feats = clipFeatures(fx, [
        req.audio ?? { samples: new Float32Array(fx.config.samplingRate), sampleRate: fx.config.samplingRate },
      ]);
    } catch (e) {
      throw new GenerateError((e as Error).message);
    }
    if (hasAudio) warnings.push(...feats.warnings);
    const budget = Math.min(maxNew, contextLength - ids.length);
    const tPrep = performance.now();
    const sampler = new Sampler(opts);
    const stops = new StopStrings(opts.stop ?? []);
    const seq = ids.slice();
    const gen: number[] = [];
    const dec = tok.streamDecoder({ skipSpecialTokens: true });
    const hasText = (x: number) => !eos.has(x) && x < tok.vocabSize;
    const answerText = (all: number[]) => tok.decode(all.filter(hasText), { skipSpecialTokens: true });
    let shown = 0;
    let streamed = '';
    let finish: FinishReason = 'length';
    let firstTokenMs = 0;
    let tDecode0 = 0;
    const r = await cached.run(ids, feats, (logits) => {
      if (opts.signal?.aborted) {
        finish = 'cancelled';
        return null;
      }
      const id = sampler.next(logits, seq);
      if (gen.length === 0) {
        firstTokenMs = performance.now() - t0;
        tDecode0 = performance.now();
      }
      seq.push(id);
      gen.push(id);
      const isEos = eos.has(id);
      if (hasText(id)) dec.push(id);
      const last = isEos || gen.length === budget;
      const text = last ? answerText(gen) : dec.text;
      const st = stops.check(text);
      let emitTo: number;
      if (st.stopped) {
        finish = 'stop';
        emitTo = st.end;
      } else {
        if (isEos) finish = 'eos';
        emitTo = last ? text.length : st.end;
      }
      let delta = '';
      if (emitTo > shown && text.startsWith(streamed)) {
        delta = text.slice(shown, emitTo);
        shown = emitTo;
        streamed = text.slice(0, shown);
      }
      opts.onToken?.({ id, text: delta });
      if (st.stopped || last) return null;
      return opts.signal?.aborted ? ((finish = 'cancelled'), null) : id;
    });
    const full = answerText(gen);
    const st = stops.check(full);
    const decodeMs = gen.length > 1 ? performance.now() - tDecode0 : 0;
    const decodeTokens = Math.max(0, gen.length - 1);
    return {
      ids: gen,
      text: st.stopped ? full.slice(0, st.end) : full,
      finishReason: finish,
      promptTokens: ids.length,
      ...(warnings.length ? { warnings } : {}),
      timings: {
        prepareMs: tPrep - t0,
        prefillMs: r.prefillMs,
        firstTokenMs,
        decodeMs,
        decodeTokens,
        tokensPerSecond: decodeTokens > 0 ? (decodeTokens / decodeMs) * 1000 : NaN,
      },
    };
  }

  return {
    llm: m,
    provider: cached.provider,
    contextLength,
    promptIds,
    generate,
    async dispose() {
      if (disposed) return;
      disposed = true;
      await cached.dispose();
      m.close();
    },
  };
}
