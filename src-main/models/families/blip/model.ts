// A BLIP folder loaded for answering, scoring and training: config, weights under the published names (checked
// against the layout, errors naming the tensor), the BERT WordPiece tokenizer and BlipImageProcessor, and the host side
// of BlipProcessor and BlipForQuestionAnswering.generate:
//   question ids = tokenizer(question) ([CLS] ... [SEP]), padded with [PAD] to the batch's longest, attention mask 1/0
//   answer ids   = [bos] + tokenizer(answer)[1:]: the decoder's first token is the config's bos_token_id ([DEC]),
//                  the token generate starts from (the original BLIP's train-time rule, answer.input_ids[:, 0] = bos)
//   generate     = vision + question encoded once, then greedy decoding from [bos] until [SEP] (text_config
//                  sep_token_id, generate's eos) or max_length (20, transformers' default, counting the bos); the
//                  decoder attends to every question position (generate passes an all-ones question mask)

import { existsSync, readFileSync } from 'node:fs';
import { readJsonObject } from '../../hf-folder';
import { join } from 'node:path';
import { Graph } from '../../../engine/graph/builder';
import { modelSource } from '../../../engine/runtime/cache';
import { Session } from '../../../engine/runtime/session';
import { tensor } from '../../../engine/runtime/tensor';
import { ImageProcessor, parsePreprocessorConfig, type ImageInput } from '../../image-processor';
import { GraphWeights } from '../../layers';
import { blipLoraBindings, mergedBlipTensors, type BlipAdapter } from './adapter';
import { LensTokenizer } from '../../tokenizer';
import { ShardedSafetensors, type TensorInfo, type TensorSource } from '../../weights/safetensors';
import { parseBlipConfig, type BlipConfig } from './config';
import {
  blipDecoderLogits,
  blipImageEmbeds,
  blipLmLoss,
  blipQuestionEmbeds,
  blipTensors,
  ignoredBlipTensor,
} from './graph';

export class BlipError extends Error {}

class BlipWeights implements TensorSource {
  constructor(
    readonly files: ShardedSafetensors,
    private stored: Set<string>,
  ) {}
  names(): string[] {
    return [...this.stored];
  }
  has(name: string): boolean {
    return this.stored.has(name);
  }
  info(name: string): TensorInfo {
    this.check(name);
    return this.files.fileOf(name).info(name);
  }
  get(name: string): Float32Array {
    this.check(name);
    return this.files.get(name);
  }
  getRange(name: string, start: number, count: number): Float32Array {
    this.check(name);
    return this.files.getRange(name, start, count);
  }
  private check(name: string): void {
    if (!this.stored.has(name)) throw new BlipError(`no tensor "${name}" in this model`);
  }
  close(): void {
    this.files.close();
  }
}

export interface BlipModel {
  dir: string;
  config: BlipConfig;
  weights: TensorSource & { close(): void };
  tokenizer: LensTokenizer;
  imageProcessor: ImageProcessor;
  close(): void;
}

/** Whether a model folder is BLIP (config.json model_type "blip"). */
export function isBlipFolder(dir: string | undefined): boolean {
  if (!dir) return false;
  const p = join(dir, 'config.json');
  if (!existsSync(p)) return false;
  try {
    return JSON.parse(readFileSync(p, 'utf8')).model_type === 'blip';
  } catch {
    return false;
  }
}

function role(name: string): string {
  if (name.startsWith('text_decoder.')) return ' (the answer decoder)';
  if (name.startsWith('text_encoder.')) return ' (the question encoder)';
  if (name.startsWith('vision_model.')) return ' (the vision model)';
  return '';
}

/** Open a BLIP folder (config.json, model.safetensors[.index.json], tokenizer.json, preprocessor_config.json). */
export function loadBlip(dir: string): BlipModel {
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new BlipError(`${dir}: no config.json`);
  const config = parseBlipConfig(
    readJsonObject(configPath, (m) => new BlipError(m)),
    configPath,
  );
  if (!existsSync(join(dir, 'model.safetensors')) && !existsSync(join(dir, 'model.safetensors.index.json')))
    throw new BlipError(`${dir}: no model.safetensors or model.safetensors.index.json`);
  const files = ShardedSafetensors.openFolder(dir);
  const where = files.indexPath ?? files.files[0].path;
  try {
    const stored = new Set(files.names().filter((n) => !ignoredBlipTensor(n)));
    const tiedHead = 'text_decoder.cls.predictions.decoder.weight';
    for (const spec of blipTensors(config)) {
      if (!stored.has(spec.name)) {
        if (spec.name === tiedHead) continue; // tied to the decoder's word embeddings
        throw new BlipError(
          `${where}: no tensor "${spec.name}"${role(spec.name)}, which a ${config.architecture} model needs`,
        );
      }
      const shape = files.fileOf(spec.name).info(spec.name).shape;
      if (shape.join() !== spec.shape.join())
        throw new BlipError(`${where}: tensor "${spec.name}" has shape [${shape}], config.json gives [${spec.shape}]`);
    }
    const weights = new BlipWeights(files, stored);
    const tokPath = join(dir, 'tokenizer.json');
    if (!existsSync(tokPath)) throw new BlipError(`${dir}: no tokenizer.json (a BLIP model needs one)`);
    const tokenizer = LensTokenizer.fromFiles(tokPath, join(dir, 'tokenizer_config.json'));
    if (tokenizer.vocabSize > config.text.vocabSize)
      throw new BlipError(
        `${tokPath}: has ${tokenizer.vocabSize} tokens but config.json's text_config.vocab_size is ${config.text.vocabSize}`,
      );
    const ppPath = join(dir, 'preprocessor_config.json');
    if (!existsSync(ppPath)) throw new BlipError(`${dir}: no preprocessor_config.json (a BLIP model needs one)`);
    const imageProcessor = new ImageProcessor(
      parsePreprocessorConfig(
        readJsonObject(ppPath, (m) => new BlipError(m)),
        ppPath,
      ),
    );
    return { dir, config, weights, tokenizer, imageProcessor, close: () => weights.close() };
  } catch (e) {
    files.close();
    throw e;
  }
}

export interface IdBatch {
  /** [B, T] row-major */
  ids: BigInt64Array;
  mask: BigInt64Array;
  batch: number;
  length: number;
  warnings: string[];
}

function padRows(rows: number[][], pad: number): IdBatch {
  const T = Math.max(1, ...rows.map((r) => r.length));
  const ids = new BigInt64Array(rows.length * T).fill(BigInt(pad));
  const mask = new BigInt64Array(rows.length * T);
  rows.forEach((r, b) =>
    r.forEach((id, t) => {
      ids[b * T + t] = BigInt(id);
      mask[b * T + t] = 1n;
    }),
  );
  return { ids, mask, batch: rows.length, length: T, warnings: [] };
}

/** Tokens of a text with [CLS] ... [SEP], truncated to the text model's positions keeping the final [SEP]. */
function encodeText(m: BlipModel, text: string, what: string, warnings: string[]): number[] {
  const max = m.config.text.maxPositionEmbeddings;
  let ids = m.tokenizer.encode(text);
  if (ids.length > max) {
    warnings.push(`${what}: ${ids.length} tokens, truncated to the text model's ${max} positions`);
    ids = [...ids.slice(0, max - 1), ids[ids.length - 1]];
  }
  return ids;
}

/** Questions as BlipProcessor gives them (padding to the longest). */
export function questionBatch(m: BlipModel, questions: readonly string[]): IdBatch {
  const warnings: string[] = [];
  const rows = questions.map((q, i) => encodeText(m, q, `question ${i + 1}`, warnings));
  const b = padRows(rows, m.config.text.padTokenId);
  b.warnings = warnings;
  return b;
}

/** Answers (VQA) or captions (captioning) as decoder input ids ([bos] text [SEP]) and labels (-100 at padding). */
export function answerBatch(m: BlipModel, answers: readonly string[]): IdBatch & { labels: BigInt64Array } {
  const warnings: string[] = [];
  const rows = answers.map((a, i) => {
    const ids = encodeText(m, a, `answer ${i + 1}`, warnings);
    ids[0] = m.config.text.bosTokenId;
    return ids;
  });
  const b = padRows(rows, m.config.text.padTokenId);
  const labels = b.ids.map((v, i) => (b.mask[i] ? v : -100n));
  return { ...b, labels, warnings };
}

/** pixel_values [N, 3, S, S] through BlipImageProcessor. */
export function blipPixelValues(
  m: BlipModel,
  images: readonly ImageInput[],
): Promise<{ data: Float32Array; n: number; size: number }> {
  return m.imageProcessor.squareBatch(images, m.config.vision.imageSize, (msg) => new BlipError(msg));
}

export interface BlipGraphOptions {
  /** a PEFT adapter: LoRA branches as constants, or merged into the weights (merge: true) */
  adapter?: BlipAdapter | null;
  merge?: boolean;
  dtype?: 'float32' | 'float64';
}

function weightsOf(g: Graph, m: BlipModel, o: BlipGraphOptions): GraphWeights {
  const ad = o.adapter;
  return new GraphWeights(g, m.weights, {
    lora: ad && !o.merge ? blipLoraBindings(ad, m.config, g) : undefined,
    overrides: ad && o.merge ? mergedBlipTensors(ad, m.weights) : undefined,
    dtype: o.dtype,
  });
}

/** pixel_values, input_ids, attention_mask -> question_embeds [B, S, D] (the VQA encoder, run once per question). */
export function buildQuestionGraph(m: BlipModel, o: BlipGraphOptions = {}): Graph {
  const g = new Graph('blip-question');
  const w = weightsOf(g, m, o);
  const S = m.config.vision.imageSize;
  const dt = w.dtype;
  const pv = g.input('pixel_values', dt, ['B', 3, S, S]);
  const ids = g.input('input_ids', 'int64', ['B', 'S']);
  const mask = g.input('attention_mask', 'int64', ['B', 'S']);
  g.output(blipQuestionEmbeds(w, m.config, ids, mask, blipImageEmbeds(w, m.config, pv)), 'question_embeds');
  return g;
}

/**
 * decoder_input_ids, question_embeds, question_mask -> logits of the last position [B, V] (greedy steps). The encoder
 * states are the question (VQA) or the image embeddings (captioning); the input keeps the VQA name.
 */
export function buildAnswerStepGraph(m: BlipModel, o: BlipGraphOptions = {}): Graph {
  const g = new Graph('blip-answer-step');
  const w = weightsOf(g, m, o);
  const D = m.config.text.encoderHiddenSize; // the question (VQA: = hidden_size) or the image (captioning)
  const V = m.config.text.vocabSize;
  const ids = g.input('decoder_input_ids', 'int64', ['B', 'T']);
  const q = g.input('question_embeds', w.dtype, ['B', 'S', D]);
  const qm = g.input('question_mask', 'int64', ['B', 'S']);
  const logits = blipDecoderLogits(w, m.config, ids, null, q, qm);
  const last = g.op1('Slice', [logits, g.ints([-1]), g.ints([Number.MAX_SAFE_INTEGER]), g.ints([1])]);
  g.output(
    g.op1('Reshape', [last, g.ints([-1, V])], {}, { outTypes: [{ dtype: w.dtype, shape: ['B', V] }] }),
    'logits',
  );
  return g;
}

/**
 * The whole forward with the loss, as BlipForQuestionAnswering(pixel_values, input_ids, attention_mask,
 * decoder_input_ids, decoder_attention_mask, labels): outputs logits [B, T, V], loss (mean over the batch's targets),
 * loss_sum, loss_count and per-row sums (row_loss).
 */
export function buildVqaLossGraph(m: BlipModel, o: BlipGraphOptions = {}): Graph {
  const g = new Graph('blip-vqa-loss');
  const w = weightsOf(g, m, o);
  const S = m.config.vision.imageSize;
  const dt = w.dtype;
  const pv = g.input('pixel_values', dt, ['B', 3, S, S]);
  const ids = g.input('input_ids', 'int64', ['B', 'S']);
  const mask = g.input('attention_mask', 'int64', ['B', 'S']);
  const dids = g.input('decoder_input_ids', 'int64', ['B', 'T']);
  const dmask = g.input('decoder_attention_mask', 'int64', ['B', 'T']);
  const labels = g.input('labels', 'int64', ['B', 'T']);
  const out = vqaForward(w, m.config, { pv, ids, mask, dids, dmask, labels });
  g.output(out.logits, 'logits');
  g.output(out.loss.mean, 'loss');
  g.output(out.loss.sum, 'loss_sum');
  g.output(out.loss.count, 'loss_count');
  g.output(out.rowLoss, 'row_loss');
  return g;
}

/** pixel_values -> image_embeds [B, 1 + patches, D] (what the captioning decoder attends to). */
export function buildImageGraph(m: BlipModel, o: BlipGraphOptions = {}): Graph {
  const g = new Graph('blip-image');
  const w = weightsOf(g, m, o);
  const S = m.config.vision.imageSize;
  g.output(blipImageEmbeds(w, m.config, g.input('pixel_values', w.dtype, ['B', 3, S, S])), 'image_embeds');
  return g;
}

export interface CaptionInputs {
  pv: import('../../../engine/graph/builder').Value;
  ids: import('../../../engine/graph/builder').Value;
  mask: import('../../../engine/graph/builder').Value;
  labels: import('../../../engine/graph/builder').Value;
}

/** BlipForConditionalGeneration's forward + loss: the decoder over the caption, cross-attending to the image. */
export function captionForward(w: GraphWeights, c: BlipConfig, x: CaptionInputs) {
  const g = w.g;
  const logits = blipDecoderLogits(w, c, x.ids, x.mask, blipImageEmbeds(w, c, x.pv), null);
  const loss = blipLmLoss(w, c, logits, x.labels);
  const rows = g.op1('Reshape', [
    loss.perTarget,
    g.op1('Concat', [g.op1('Shape', [x.ids], { end: 1 }), g.ints([-1])], { axis: 0 }),
  ]);
  const rowLoss = g.op1('ReduceSum', [rows, g.ints([1])], { keepdims: 0 });
  return { logits, loss, rowLoss };
}

/** Captioning loss graph: pixel_values, input_ids, attention_mask, labels -> logits, loss, loss_sum, loss_count, row_loss. */
export function buildCaptionLossGraph(m: BlipModel, o: BlipGraphOptions = {}): Graph {
  const g = new Graph('blip-caption-loss');
  const w = weightsOf(g, m, o);
  const S = m.config.vision.imageSize;
  const out = captionForward(w, m.config, {
    pv: g.input('pixel_values', w.dtype, ['B', 3, S, S]),
    ids: g.input('input_ids', 'int64', ['B', 'T']),
    mask: g.input('attention_mask', 'int64', ['B', 'T']),
    labels: g.input('labels', 'int64', ['B', 'T']),
  });
  g.output(out.logits, 'logits');
  g.output(out.loss.mean, 'loss');
  g.output(out.loss.sum, 'loss_sum');
  g.output(out.loss.count, 'loss_count');
  g.output(out.rowLoss, 'row_loss');
  return g;
}

export interface VqaInputs {
  pv: import('../../../engine/graph/builder').Value;
  ids: import('../../../engine/graph/builder').Value;
  mask: import('../../../engine/graph/builder').Value;
  dids: import('../../../engine/graph/builder').Value;
  dmask: import('../../../engine/graph/builder').Value;
  labels: import('../../../engine/graph/builder').Value;
}

/** The VQA forward + loss on graph values (shared by the inference, score and training graphs). */
export function vqaForward(w: GraphWeights, c: BlipConfig, x: VqaInputs) {
  const g = w.g;
  const q = blipQuestionEmbeds(w, c, x.ids, x.mask, blipImageEmbeds(w, c, x.pv));
  const logits = blipDecoderLogits(w, c, x.dids, x.dmask, q, x.mask);
  const loss = blipLmLoss(w, c, logits, x.labels);
  // per-row sums of the per-target losses: [B*(T-1)] -> [B, T-1] -> [B]
  const rows = g.op1('Reshape', [
    loss.perTarget,
    g.op1('Concat', [g.op1('Shape', [x.dids], { end: 1 }), g.ints([-1])], { axis: 0 }),
  ]);
  const rowLoss = g.op1('ReduceSum', [rows, g.ints([1])], { keepdims: 0 });
  return { logits, loss, rowLoss };
}

/** Each row's loss sum over its targets / its target count. */
function itemMeans(rows: Float32Array, ab: { labels: BigInt64Array; length: number }): number[] {
  return Array.from(rows, (s, b) => {
    let n = 0;
    for (let t = 1; t < ab.length; t++) if (ab.labels[b * ab.length + t] !== -100n) n++;
    return s / Math.max(n, 1);
  });
}

export interface BlipAnswer {
  answer: string;
  /** generated ids after the bos, up to and including [SEP] when it came */
  tokens: number[];
}

export interface BlipRunnerOptions extends BlipGraphOptions {
  cacheDir?: string;
  cacheKey?: unknown;
  threads?: number;
}

/** Runs BLIP VQA: answers (question encoded once, greedy decoder) and losses. */
export class BlipRunner {
  private question: Session | null = null;
  private step: Session | null = null;
  private lossSession: Session | null = null;
  private image: Session | null = null;
  private captionLossSession: Session | null = null;
  constructor(
    readonly model: BlipModel,
    private o: BlipRunnerOptions = {},
  ) {}

  private async session(which: 'question' | 'step' | 'loss' | 'image' | 'captionLoss'): Promise<Session> {
    const o = this.o;
    const builders = {
      question: buildQuestionGraph,
      step: buildAnswerStepGraph,
      loss: buildVqaLossGraph,
      image: buildImageGraph,
      captionLoss: buildCaptionLossGraph,
    };
    const key = o.cacheKey === undefined ? undefined : { which, key: o.cacheKey };
    const s = await Session.create(
      modelSource(() => builders[which](this.model, o), { cacheDir: o.cacheDir, key }),
      { threads: o.threads ?? 2 },
    );
    if (which === 'question') this.question = s;
    else if (which === 'step') this.step = s;
    else if (which === 'loss') this.lossSession = s;
    else if (which === 'image') this.image = s;
    else this.captionLossSession = s;
    return s;
  }

  /** Greedy from `start` attending to `enc` [1, L, D]: ids after start, up to [SEP] or maxLength in all. */
  private async greedy(enc: import('onnxruntime-node').Tensor, start: number[], maxLength: number): Promise<number[]> {
    const c = this.model.config;
    const st = this.step ?? (await this.session('step'));
    const L = Number(enc.dims[1]);
    const encMask = tensor('int64', [1, L], new BigInt64Array(L).fill(1n));
    const ids = [...start];
    while (ids.length < maxLength) {
      const s = await st.run({
        decoder_input_ids: tensor('int64', [1, ids.length], BigInt64Array.from(ids.map(BigInt))),
        question_embeds: enc,
        question_mask: encMask,
      });
      const lg = s.logits.data as Float32Array;
      let best = 0;
      for (let v = 1; v < lg.length; v++) if (lg[v] > lg[best]) best = v;
      ids.push(best);
      if (best === c.text.sepTokenId) break;
    }
    return ids.slice(start.length);
  }

  private text(ids: number[]): string {
    // ids past the tokenizer's (a vocab_size padded beyond it) have no text: skipped, as a fast tokenizer's decode does
    return this.model.tokenizer
      .decode(
        ids.filter((t) => t < this.model.tokenizer.vocabSize),
        { skipSpecialTokens: true },
      )
      .trim();
  }

  /**
   * Captions (BlipForConditionalGeneration.generate): greedy from [bos] (+ the prompt's tokens, "a picture of"
   * style, its [CLS] replaced by bos and its final [SEP] dropped) to [SEP] or max_length 20 counting the prompt.
   * `text` is the prompt and the continuation, as transformers decodes the whole sequence.
   */
  async caption(
    images: readonly ImageInput[],
    prompt = '',
    o: { maxLength?: number } = {},
  ): Promise<Array<BlipAnswer & { promptTokens: number }>> {
    const c = this.model.config;
    if (c.architecture !== 'BlipForConditionalGeneration')
      throw new BlipError(
        `${this.model.dir}: ${c.architecture} answers questions; captions need BlipForConditionalGeneration`,
      );
    const is = this.image ?? (await this.session('image'));
    const S = c.vision.imageSize;
    const start = prompt ? this.model.tokenizer.encode(prompt).slice(0, -1) : [c.text.bosTokenId];
    start[0] = c.text.bosTokenId;
    const out: Array<BlipAnswer & { promptTokens: number }> = [];
    for (const img of images) {
      const pv = await blipPixelValues(this.model, [img]);
      const r = await is.run({ pixel_values: tensor('float32', [1, 3, S, S], pv.data) });
      const tokens = await this.greedy(r.image_embeds, start, o.maxLength ?? 20);
      out.push({ answer: this.text([...start.slice(1), ...tokens]), tokens, promptTokens: start.length });
    }
    return out;
  }

  /** Captioning losses of (image, caption) pairs: the batch's mean and each item's token mean. */
  async captionLoss(
    images: readonly ImageInput[],
    captions: readonly string[],
  ): Promise<{ loss: number; sum: number; count: number; items: number[] }> {
    if (images.length !== captions.length)
      throw new BlipError(`${images.length} image(s) for ${captions.length} caption(s): they pair up one to one`);
    const ls = this.captionLossSession ?? (await this.session('captionLoss'));
    const S = this.model.config.vision.imageSize;
    const pv = await blipPixelValues(this.model, images);
    const ab = answerBatch(this.model, captions);
    const r = await ls.run({
      pixel_values: tensor('float32', [pv.n, 3, S, S], pv.data),
      input_ids: tensor('int64', [ab.batch, ab.length], ab.ids),
      attention_mask: tensor('int64', [ab.batch, ab.length], ab.mask),
      labels: tensor('int64', [ab.batch, ab.length], ab.labels),
    });
    return {
      loss: (r.loss.data as Float32Array)[0],
      sum: (r.loss_sum.data as Float32Array)[0],
      count: (r.loss_count.data as Float32Array)[0],
      items: itemMeans(r.row_loss.data as Float32Array, ab),
    };
  }

  /** Greedy answers, one per (image, question) pair. */
  async answer(
    images: readonly ImageInput[],
    questions: readonly string[],
    o: { maxLength?: number } = {},
  ): Promise<BlipAnswer[]> {
    if (images.length !== questions.length)
      throw new BlipError(`${images.length} image(s) for ${questions.length} question(s): they pair up one to one`);
    const c = this.model.config;
    if (c.architecture !== 'BlipForQuestionAnswering')
      throw new BlipError(
        `${this.model.dir}: ${c.architecture} writes captions; questions need BlipForQuestionAnswering`,
      );
    const out: BlipAnswer[] = [];
    const qs = this.question ?? (await this.session('question'));
    const S = c.vision.imageSize;
    for (let i = 0; i < images.length; i++) {
      const pv = await blipPixelValues(this.model, [images[i]]);
      const qb = questionBatch(this.model, [questions[i]]);
      const r = await qs.run({
        pixel_values: tensor('float32', [1, 3, S, S], pv.data),
        input_ids: tensor('int64', [1, qb.length], qb.ids),
        attention_mask: tensor('int64', [1, qb.length], qb.mask),
      });
      // generate passes an all-ones question mask (one unpadded question here)
      const tokens = await this.greedy(r.question_embeds, [c.text.bosTokenId], o.maxLength ?? 20);
      out.push({ answer: this.text(tokens), tokens });
    }
    return out;
  }

  /** Losses of (image, question, answer) triples: the batch's mean (as transformers) and each item's token mean. */
  async loss(
    images: readonly ImageInput[],
    questions: readonly string[],
    answers: readonly string[],
  ): Promise<{ loss: number; sum: number; count: number; items: number[] }> {
    if (images.length !== questions.length || questions.length !== answers.length)
      throw new BlipError(
        `${images.length} image(s), ${questions.length} question(s), ${answers.length} answer(s): they pair up one to one`,
      );
    const ls = this.lossSession ?? (await this.session('loss'));
    const S = this.model.config.vision.imageSize;
    const pv = await blipPixelValues(this.model, images);
    const qb = questionBatch(this.model, questions);
    const ab = answerBatch(this.model, answers);
    const r = await ls.run({
      pixel_values: tensor('float32', [pv.n, 3, S, S], pv.data),
      input_ids: tensor('int64', [qb.batch, qb.length], qb.ids),
      attention_mask: tensor('int64', [qb.batch, qb.length], qb.mask),
      decoder_input_ids: tensor('int64', [ab.batch, ab.length], ab.ids),
      decoder_attention_mask: tensor('int64', [ab.batch, ab.length], ab.mask),
      labels: tensor('int64', [ab.batch, ab.length], ab.labels),
    });
    return {
      loss: (r.loss.data as Float32Array)[0],
      sum: (r.loss_sum.data as Float32Array)[0],
      count: (r.loss_count.data as Float32Array)[0],
      items: itemMeans(r.row_loss.data as Float32Array, ab),
    };
  }

  async release(): Promise<void> {
    for (const x of [this.question, this.step, this.lossSession, this.image, this.captionLossSession])
      await x?.dispose();
  }
}
