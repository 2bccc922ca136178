// Greedy generation for an audio LLM with a KV cache: one prefill run (features -> encoder -> projector -> decoder
// over the prompt with its audio tokens), then one decode run per new token over the cache. One row at a time.
// Graphs are serialized in memory, or saved with external data under `dir` (needed past protobuf's 2 GB).

import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { saveModel, serializeModel } from '../../engine/graph/serialize';
import { Session, type SessionOptions } from '../../engine/runtime/session';
import { tensor } from '../../engine/runtime/tensor';
import type { TensorSource } from '../weights/safetensors';
import { buildAudioLlmGraph, type UltravoxConfig } from './ultravox';

export interface CachedGreedyResult {
  ids: number[];
  /** prefill run + first argmax, ms (features not included) */
  prefillMs: number;
  /** each decode run + argmax, ms */
  decodeMs: number[];
}

export class AudioLlmCachedGenerator {
  private constructor(
    private readonly c: UltravoxConfig,
    private readonly prefill: Session,
    private readonly decode: Session,
  ) {}

  static async create(
    m: { config: UltravoxConfig; weights: TensorSource },
    frames: number,
    o: { dir?: string; threads?: number; quantize?: 'int8' | 'int4'; provider?: SessionOptions['provider'] } = {},
  ): Promise<AudioLlmCachedGenerator> {
    const open = async (mode: 'prefill' | 'decode') => {
      const g = buildAudioLlmGraph(m, mode, frames, { quantize: o.quantize });
      if (!o.dir) return Session.create(serializeModel(g).model, { threads: o.threads ?? 2, provider: o.provider });
      mkdirSync(o.dir, { recursive: true });
      const { modelPath } = saveModel(g, join(o.dir, `${mode}.onnx`));
      return Session.create(modelPath, { threads: o.threads ?? 2, provider: o.provider });
    };
    const prefill = await open('prefill');
    const decode = await open('decode');
    return new AudioLlmCachedGenerator(m.config, prefill, decode);
  }

  /** The execution provider the decoder runs on. */
  get provider(): string {
    return this.decode.provider;
  }

  /** Greedy continuation of `ids` (audio placeholder already expanded) for the clips' input_features. */
  async greedy(
    ids: readonly number[],
    features: { data: Float32Array; dims: [number, number, number] },
    maxNew: number,
    o: { stopAtEos?: boolean } = {},
  ): Promise<CachedGreedyResult> {
    const V = this.c.text.vocabSize;
    const eos = new Set(this.c.text.eosTokenIds);
    const out: number[] = [];
    const r = await this.run(ids, features, (logits) => {
      let best = 0;
      for (let v = 1; v < V; v++) if (logits[v] > logits[best]) best = v;
      out.push(best);
      return out.length < maxNew && !(o.stopAtEos && eos.has(best)) ? best : null;
    });
    return { ids: out, prefillMs: r.prefillMs, decodeMs: r.decodeMs };
  }

  /**
   * Prefill `ids` with the clips' features, then decode with the cache: `next` gets each step's last-position logits
   * and returns the token to feed next, or null to stop. The sampling policy (greedy, a chat's sampler) is the caller's.
   */
  async run(
    ids: readonly number[],
    features: { data: Float32Array; dims: [number, number, number] },
    next: (logits: Float32Array) => number | null,
  ): Promise<{ prefillMs: number; decodeMs: number[] }> {
    const c = this.c;
    const T = ids.length;
    const t0 = performance.now();
    let r = await this.prefill.run({
      input_ids: tensor('int64', [1, T], BigInt64Array.from(ids.map(BigInt))),
      attention_mask: tensor('int64', [1, T], new BigInt64Array(T).fill(1n)),
      input_features: tensor('float32', features.dims, features.data),
    });
    let id = next(r.logits.data as Float32Array);
    const prefillMs = performance.now() - t0;
    const decodeMs: number[] = [];
    let len = T;
    while (id !== null) {
      const t1 = performance.now();
      const feeds: Record<string, ReturnType<typeof tensor>> = {
        input_ids: tensor('int64', [1, 1], BigInt64Array.of(BigInt(id))),
        attention_mask: tensor('int64', [1, len + 1], new BigInt64Array(len + 1).fill(1n)),
      };
      for (let i = 0; i < c.text.numHiddenLayers; i++) {
        feeds[`past_key_values.${i}.key`] = r[`present.${i}.key`];
        feeds[`past_key_values.${i}.value`] = r[`present.${i}.value`];
      }
      r = await this.decode.run(feeds);
      len++;
      id = next(r.logits.data as Float32Array);
      decodeMs.push(performance.now() - t1);
    }
    return { prefillMs, decodeMs };
  }

  async dispose(): Promise<void> {
    await this.prefill.dispose();
    await this.decode.dispose();
  }
}
