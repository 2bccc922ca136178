// Training an audio LLM (ultravox.ts) in the stages of the image path (program.ts): the projector alone first
// (method 'projector', on captions), then LoRA on the decoder with or without the projector ('lora',
// 'lora+projector'). Frozen weights are initializers; trainable ones are the step program's parameters, named as in
// PEFT files: LoRA "base_model.model.<module>.lora_A.weight" [r, in] / "...lora_B.weight" [out, r], projector
// tensors by their checkpoint names ("multi_modal_projector.linear_1.weight").
//
// Data inputs: input_ids, attention_mask, labels int64 [B, T] (labels unshifted, -100 ignored), input_features
// float32 [N, mel bins, frames] (one clip per audio placeholder run, row-major over the batch).
// The inference graph (`logitsGraph`) takes the same parameters as graph inputs, so one compiled session scores the
// base (initial values: projector as composed, LoRA B = 0) and every trained state.

import { Graph, type Value } from '../../engine/graph/builder';
import type { ForwardBuilder, ParamSpec } from '../../engine/programs/train-step';
import { serializeModel } from '../../engine/graph/serialize';
import { Session } from '../../engine/runtime/session';
import { tensor } from '../../engine/runtime/tensor';
import { GraphWeights, type LoraBinding } from '../layers';
import { ATTENTION_TARGETS, MLP_TARGETS, TRAIN_METHODS, type TrainMethod } from '../../contract/hparams';
import { labelPositions, selectedTokenLosses } from '../program';
import { demoRng } from '../demo/rng';
import type { TensorSource } from '../weights/safetensors';
import {
  ULTRAVOX_LAYOUT,
  audioLlmForward,
  expandAudioTokens,
  projectorTensorsOf,
  ultravoxTensors,
  type LoadedAudioLlm,
  type UltravoxConfig,
} from './ultravox';

export type AudioTrainMethod = TrainMethod;

export interface AudioLoraOptions {
  rank: number;
  alpha: number;
  /** q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj */
  targetModules: string[];
}

const ATTN: readonly string[] = ATTENTION_TARGETS;
const MLP: readonly string[] = MLP_TARGETS;

export interface AudioLoraModule {
  module: string;
  keyA: string;
  keyB: string;
  inFeatures: number;
  outFeatures: number;
}

export function audioLoraModules(c: UltravoxConfig, targets: readonly string[]): AudioLoraModule[] {
  for (const t of targets)
    if (!ATTN.includes(t) && !MLP.includes(t))
      throw new Error(`LoRA target "${t}" is not a decoder projection (${[...ATTN, ...MLP].join(', ')})`);
  const shapes = new Map(ultravoxTensors(c).map((s) => [s.name, s.shape]));
  const out: AudioLoraModule[] = [];
  for (let l = 0; l < c.text.numHiddenLayers; l++)
    for (const t of [...ATTN, ...MLP]) {
      if (!targets.includes(t)) continue;
      const module = `${ULTRAVOX_LAYOUT.decoder}layers.${l}.${ATTN.includes(t) ? 'self_attn' : 'mlp'}.${t}`;
      const [o, i] = shapes.get(`${module}.weight`)!;
      out.push({
        module,
        keyA: `base_model.model.${module}.lora_A.weight`,
        keyB: `base_model.model.${module}.lora_B.weight`,
        inFeatures: i,
        outFeatures: o,
      });
    }
  return out;
}

export interface TrainableAudioLlm {
  method: AudioTrainMethod;
  params: ParamSpec[];
  modules: AudioLoraModule[];
  projector: string[];
  initialValues(seed: number): Record<string, Float32Array>;
  forward: ForwardBuilder;
  /** input_ids, attention_mask, input_features + every parameter as an input -> logits of the last position [B, 1, V] */
  logitsGraph(): Graph;
}

export function buildTrainableAudioLlm(
  m: { config: UltravoxConfig; weights: TensorSource },
  method: AudioTrainMethod,
  lora: AudioLoraOptions | null,
  frames: number,
): TrainableAudioLlm {
  const c = m.config;
  if (!(TRAIN_METHODS as readonly string[]).includes(method))
    throw new Error(`unknown training method "${method}" (projector, lora, lora+projector)`);
  const modules = method === 'projector' ? [] : audioLoraModules(c, lora?.targetModules ?? []);
  if (method !== 'projector' && (!lora || modules.length === 0))
    throw new Error(`method ${method} needs LoRA options with at least one target module`);
  if (lora && (!Number.isInteger(lora.rank) || lora.rank < 1))
    throw new Error(`LoRA rank must be a positive integer (got ${lora.rank})`);
  const projector = method === 'lora' ? [] : projectorTensorsOf(c.projector).map((s) => s.name);
  const shapes = new Map(ultravoxTensors(c).map((s) => [s.name, s.shape]));
  const params: ParamSpec[] = [];
  for (const mod of modules)
    params.push(
      { name: mod.keyA, shape: [lora!.rank, mod.inFeatures] },
      { name: mod.keyB, shape: [mod.outFeatures, lora!.rank] },
    );
  for (const n of projector) params.push({ name: n, shape: shapes.get(n)!, decay: shapes.get(n)!.length > 1 });
  const scaling = lora ? lora.alpha / lora.rank : 1;

  const weightsFor = (g: Graph, p: Readonly<Record<string, Value>>) => {
    const full: Record<string, Value> = {};
    for (const n of projector) full[n] = p[n];
    const bindings = new Map<string, LoraBinding>();
    for (const mod of modules) bindings.set(mod.module, { a: p[mod.keyA], b: p[mod.keyB], scaling });
    return new GraphWeights(g, m.weights, { params: full, lora: bindings });
  };
  const dataInputs = (g: Graph) => ({
    inputIds: g.input('input_ids', 'int64', ['B', 'T']),
    attentionMask: g.input('attention_mask', 'int64', ['B', 'T']),
    inputFeatures: g.input('input_features', 'float32', ['N', c.audio.numMelBins, frames]),
  });

  const forward: ForwardBuilder = (g, p) => {
    const w = weightsFor(g, p);
    const inp = dataInputs(g);
    const labels = g.input('labels', 'int64', ['B', 'T']);
    const sel = g.scope('loss', () => labelPositions(g, labels));
    const r = audioLlmForward(w, c, inp, { logits: 'rows', logitRows: sel.rows });
    const t = g.scope('loss', () => selectedTokenLosses(g, r.logits!, sel));
    const sum = g.op1('ReduceSum', [t.perToken], { keepdims: 0 });
    const count = g.op1('ReduceSum', [t.valid], { keepdims: 0 });
    return {
      loss: g.op1('Div', [sum, g.op1('Max', [count, g.scalar(1, sum)])]),
      outputs: { token_loss_sum: sum, token_count: count },
    };
  };

  const logitsGraph = () => {
    const g = new Graph('audio_llm_logits');
    const p: Record<string, Value> = {};
    for (const s of params) p[s.name] = g.input(s.name, 'float32', [...s.shape]);
    const r = audioLlmForward(weightsFor(g, p), c, dataInputs(g), { logits: 'last' });
    g.output(r.logits!, 'logits');
    return g;
  };

  const initialValues = (seed: number) => {
    const rng = demoRng(seed);
    const out: Record<string, Float32Array> = {};
    for (const mod of modules) {
      const bound = 1 / Math.sqrt(mod.inFeatures);
      const a = new Float32Array(lora!.rank * mod.inFeatures);
      for (let i = 0; i < a.length; i++) a[i] = (2 * rng.next() - 1) * bound;
      out[mod.keyA] = a;
      out[mod.keyB] = new Float32Array(mod.outFeatures * lora!.rank);
    }
    for (const n of projector) out[n] = Float32Array.from(m.weights.get(n));
    return out;
  };

  return { method, params, modules, projector, initialValues, forward, logitsGraph };
}

// ---- data ----------------------------------------------------------------------------------------------------------

export interface AudioExample {
  /** the user's text; the clip goes before it */
  question: string;
  /** the assistant's answer (training target; exact-match reference in evaluation) */
  answer: string;
}

/** Prompt ids (audio placeholder expanded) of one question, rendered by the model's chat template. */
export function promptIds(m: LoadedAudioLlm, question: string): number[] {
  if (!m.chatTemplate)
    throw new Error(`${m.dir}: no chat template (tokenizer_config.json chat_template or chat_template.jinja)`);
  const text = m.chatTemplate.render([{ role: 'user', content: `${m.audioToken}\n${question}` }], {
    addGenerationPrompt: true,
  });
  const bos = m.tokenizer.bosToken;
  const ids = m.tokenizer.encode(text, { addSpecialTokens: !(bos && text.startsWith(bos)) });
  const n = ids.filter((id) => id === m.config.audioTokenIndex).length;
  if (n !== 1)
    throw new Error(`${m.chatTemplate.origin}: the prompt has ${n} audio placeholders "${m.audioToken}" for one clip`);
  return expandAudioTokens(m, ids);
}

/** Answer ids: " answer" + eos (the assistant turn the template would write after "ASSISTANT:"). */
export function answerIds(m: LoadedAudioLlm, answer: string): number[] {
  const ids = m.tokenizer.encode(` ${answer}`, { addSpecialTokens: false });
  const eos = m.config.text.eosTokenIds[0];
  return eos === undefined ? ids : [...ids, eos];
}

export interface TrainFeeds {
  input_ids: ReturnType<typeof tensor>;
  attention_mask: ReturnType<typeof tensor>;
  labels: ReturnType<typeof tensor>;
  input_features: ReturnType<typeof tensor>;
}

/** A right-padded training batch: loss on the answer tokens only. `features` = the clips' input_features in order. */
export function trainBatch(
  m: LoadedAudioLlm,
  examples: readonly AudioExample[],
  features: { data: Float32Array; dims: [number, number, number] },
): TrainFeeds {
  const rows = examples.map((e) => {
    const p = promptIds(m, e.question);
    const a = answerIds(m, e.answer);
    return { ids: [...p, ...a], labels: [...new Array<number>(p.length).fill(-100), ...a] };
  });
  const T = Math.max(...rows.map((r) => r.ids.length));
  const B = rows.length;
  const pad = m.tokenizer.padTokenId ?? 0;
  const ids = new BigInt64Array(B * T).fill(BigInt(pad));
  const mask = new BigInt64Array(B * T);
  const labels = new BigInt64Array(B * T).fill(-100n);
  rows.forEach((r, b) =>
    r.ids.forEach((id, t) => {
      ids[b * T + t] = BigInt(id);
      mask[b * T + t] = 1n;
      labels[b * T + t] = BigInt(r.labels[t]);
    }),
  );
  return {
    input_ids: tensor('int64', [B, T], ids),
    attention_mask: tensor('int64', [B, T], mask),
    labels: tensor('int64', [B, T], labels),
    input_features: tensor('float32', features.dims, features.data),
  };
}

/** Greedy answers from the logits graph (no KV cache: the answers are a few tokens). */
export class AudioLlmGenerator {
  private constructor(
    private readonly m: LoadedAudioLlm,
    private readonly session: Session,
  ) {}

  static async create(m: LoadedAudioLlm, t: TrainableAudioLlm, threads = 2): Promise<AudioLlmGenerator> {
    return new AudioLlmGenerator(m, await Session.create(serializeModel(t.logitsGraph()).model, { threads }));
  }

  /** Left-padded batch of prompts, greedy until eos or maxNew tokens; returns the decoded answers (trimmed). */
  async answer(
    questions: readonly string[],
    features: { data: Float32Array; dims: [number, number, number] },
    values: Record<string, Float32Array>,
    params: readonly ParamSpec[],
    maxNew = 4,
  ): Promise<string[]> {
    const m = this.m;
    const eos = new Set(m.config.text.eosTokenIds);
    const seqs = questions.map((q) => promptIds(m, q));
    const out: number[][] = questions.map(() => []);
    const done = questions.map(() => false);
    const pf = Object.fromEntries(params.map((p) => [p.name, tensor('float32', [...p.shape], values[p.name])]));
    const feats = tensor('float32', features.dims, features.data);
    for (let step = 0; step < maxNew && done.some((d) => !d); step++) {
      const T = Math.max(...seqs.map((s) => s.length));
      const B = seqs.length;
      const ids = new BigInt64Array(B * T);
      const mask = new BigInt64Array(B * T);
      seqs.forEach((s, b) =>
        s.forEach((id, t) => {
          ids[b * T + T - s.length + t] = BigInt(id);
          mask[b * T + T - s.length + t] = 1n;
        }),
      );
      const r = await this.session.run({
        ...pf,
        input_ids: tensor('int64', [B, T], ids),
        attention_mask: tensor('int64', [B, T], mask),
        input_features: feats,
      });
      const lg = r.logits.data as Float32Array;
      const V = m.config.text.vocabSize;
      for (let b = 0; b < B; b++) {
        if (done[b]) {
          seqs[b].push(m.tokenizer.padTokenId ?? 0);
          continue;
        }
        let best = 0;
        for (let v = 1; v < V; v++) if (lg[b * V + v] > lg[b * V + best]) best = v;
        if (eos.has(best)) done[b] = true;
        else out[b].push(best);
        seqs[b].push(best);
      }
    }
    return out.map((ids) => m.tokenizer.decode(ids, { skipSpecialTokens: true }).trim());
  }

  async dispose(): Promise<void> {
    await this.session.dispose();
  }
}
