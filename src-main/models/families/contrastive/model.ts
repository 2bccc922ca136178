// A CLIP / SigLIP folder loaded for embedding, scoring and training: config, weights under canonical names (checked
// against the published layout, errors naming the tensor), tokenizer.json and the one-frame image processor, plus
// the host side of the text tower: tokenization, truncation to the tower's positions (with a warning, never an index
// error), padding and the pooled position of each text as transformers computes it.

import { existsSync } from 'node:fs';
import { readJsonObject } from '../../hf-folder';
import { join } from 'node:path';
import { Graph } from '../../../engine/graph/builder';
import { modelSource } from '../../../engine/runtime/cache';
import { Session } from '../../../engine/runtime/session';
import { tensor } from '../../../engine/runtime/tensor';
import { ImageProcessor, parsePreprocessorConfig, type ImageInput } from '../../image-processor';
import { GraphWeights } from '../../layers';
import { LensTokenizer } from '../../tokenizer';
import { ShardedSafetensors, type TensorSource, type TensorInfo } from '../../weights/safetensors';
import { adapterLoraBindings, mergedTensors, type ContrastiveAdapter } from './adapter';
import { parseContrastiveConfig, type ContrastiveConfig } from './config';
import {
  contrastiveCanonicalName,
  contrastiveLogits,
  contrastiveLoss,
  contrastiveTensors,
  imageEmbeds,
  textEmbeds,
} from './graph';

export class ContrastiveError extends Error {}

/** Weights of a folder under canonical names. */
class CanonicalWeights implements TensorSource {
  constructor(
    readonly files: ShardedSafetensors,
    private stored: Map<string, string>,
  ) {}
  names(): string[] {
    return [...this.stored.keys()];
  }
  has(name: string): boolean {
    return this.stored.has(name);
  }
  info(name: string): TensorInfo {
    return this.files.fileOf(this.storedName(name)).info(this.storedName(name));
  }
  get(name: string): Float32Array {
    return this.files.get(this.storedName(name));
  }
  getRange(name: string, start: number, count: number): Float32Array {
    return this.files.getRange(this.storedName(name), start, count);
  }
  private storedName(name: string): string {
    const s = this.stored.get(name);
    if (s === undefined) throw new ContrastiveError(`no tensor "${name}" in this model`);
    return s;
  }
  close(): void {
    this.files.close();
  }
}

export interface ContrastiveModel {
  dir: string;
  config: ContrastiveConfig;
  weights: TensorSource & { close(): void };
  /** the folder's safetensors under their stored names (weights reads through them) */
  storedFiles: ShardedSafetensors;
  tokenizer: LensTokenizer;
  imageProcessor: ImageProcessor;
  close(): void;
}

/** What each missing tensor is, for the error message. */
function tensorRole(name: string): string {
  if (name === 'logit_bias') return " (SiglipModel's logit bias, added to every logit)";
  if (name === 'logit_scale') return ' (the learned temperature)';
  if (name.endsWith('projection.weight')) return ' (CLIPModel projection)';
  if (name.includes('.head.')) return ' (pooling head)';
  return '';
}

/** Open a CLIP / SigLIP folder (config.json, model.safetensors[.index.json], tokenizer.json, preprocessor_config.json). */
export function loadContrastive(dir: string): ContrastiveModel {
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new ContrastiveError(`${dir}: no config.json`);
  const config = parseContrastiveConfig(
    readJsonObject(configPath, (m) => new ContrastiveError(m)),
    configPath,
  );
  if (!existsSync(join(dir, 'model.safetensors')) && !existsSync(join(dir, 'model.safetensors.index.json')))
    throw new ContrastiveError(`${dir}: no model.safetensors or model.safetensors.index.json`);
  const files = ShardedSafetensors.openFolder(dir);
  const where = files.indexPath ?? files.files[0].path;
  try {
    const stored = new Map<string, string>();
    for (const s of files.names()) {
      const c = contrastiveCanonicalName(s);
      if (c !== null) stored.set(c, s);
    }
    for (const spec of contrastiveTensors(config)) {
      const s = stored.get(spec.name);
      if (s === undefined)
        throw new ContrastiveError(
          `${where}: no tensor "${spec.name}"${tensorRole(spec.name)}, which a ${config.modelType} model needs`,
        );
      const shape = files.fileOf(s).info(s).shape;
      const a = shape.reduce((x, y) => x * y, 1);
      const b = spec.shape.reduce((x, y) => x * y, 1);
      // logit_scale is [] in CLIP and [1] in SigLIP checkpoints; both hold one value
      const ok = shape.length === spec.shape.length ? shape.every((d, i) => d === spec.shape[i]) : a === 1 && b === 1;
      if (!ok)
        throw new ContrastiveError(`${where}: tensor "${s}" has shape [${shape}], config.json gives [${spec.shape}]`);
    }
    const weights = new CanonicalWeights(files, stored);
    const tokPath = join(dir, 'tokenizer.json');
    if (!existsSync(tokPath))
      throw new ContrastiveError(`${dir}: no tokenizer.json (a ${config.modelType} model needs one)`);
    const tokenizer = LensTokenizer.fromFiles(tokPath, join(dir, 'tokenizer_config.json'));
    if (tokenizer.vocabSize > config.text.vocabSize)
      throw new ContrastiveError(
        `${tokPath}: has ${tokenizer.vocabSize} tokens but config.json's text_config.vocab_size is ${config.text.vocabSize}`,
      );
    const ppPath = join(dir, 'preprocessor_config.json');
    if (!existsSync(ppPath))
      throw new ContrastiveError(`${dir}: no preprocessor_config.json (a ${config.modelType} model needs one)`);
    const imageProcessor = new ImageProcessor(
      parsePreprocessorConfig(
        readJsonObject(ppPath, (m) => new ContrastiveError(m)),
        ppPath,
      ),
    );
    return { dir, config, weights, storedFiles: files, tokenizer, imageProcessor, close: () => weights.close() };
  } catch (e) {
    files.close();
    throw e;
  }
}

export interface TextBatch {
  /** [B, T] row-major */
  ids: BigInt64Array;
  batch: number;
  length: number;
  /** flat pooled index b * T + t per text */
  poolIndex: BigInt64Array;
  /** one line per text that was truncated */
  warnings: string[];
}

/** The position transformers pools a text at: CLIP's EOS rule for the config's version, SigLIP's last position. */
export function textPoolPosition(c: ContrastiveConfig, ids: ArrayLike<number>): number {
  if (c.kind === 'siglip') return ids.length - 1;
  const eos = c.text.eosTokenId;
  let best = 0;
  if (eos === 2) {
    // configs from before transformers 4.31 carry eos_token_id 2: the EOS is taken as the largest id (argmax)
    for (let i = 1; i < ids.length; i++) if (ids[i] > ids[best]) best = i;
    return best;
  }
  for (let i = 0; i < ids.length; i++) if (ids[i] === eos) return i;
  return 0; // argmax of an all-zero row
}

/**
 * Tokenize texts as the model's processor does: special tokens added, truncated to max_position_embeddings keeping
 * the final special token (a warning names the text), padded with the pad token to the longest text (CLIP) or to
 * max_position_embeddings (SigLIP, its processor's padding="max_length").
 */
export function textBatch(m: ContrastiveModel, texts: readonly string[]): TextBatch {
  const c = m.config;
  const max = c.text.maxPositionEmbeddings;
  const pad = m.tokenizer.padTokenId ?? c.text.padTokenId;
  const warnings: string[] = [];
  const rows = texts.map((t, i) => {
    let ids = m.tokenizer.encode(t);
    if (ids.length === 0) ids = [pad];
    if (ids.length > max) {
      warnings.push(`text ${i + 1}: ${ids.length} tokens, truncated to the text tower's ${max} positions`);
      ids = [...ids.slice(0, max - 1), ids[ids.length - 1]];
    }
    return ids;
  });
  const T = c.kind === 'siglip' ? max : Math.max(1, ...rows.map((r) => r.length));
  const ids = new BigInt64Array(rows.length * T).fill(BigInt(pad));
  const poolIndex = new BigInt64Array(rows.length);
  rows.forEach((r, b) => {
    for (let t = 0; t < r.length; t++) ids[b * T + t] = BigInt(r[t]);
    const full = Array.from(ids.subarray(b * T, (b + 1) * T), Number);
    poolIndex[b] = BigInt(b * T + textPoolPosition(c, full));
  });
  return { ids, batch: rows.length, length: T, poolIndex, warnings };
}

/** pixel_values [N, 3, S, S] of images through the model's processor. */
export function imageBatch(
  m: ContrastiveModel,
  images: readonly ImageInput[],
): Promise<{ data: Float32Array; n: number; size: number }> {
  return m.imageProcessor.squareBatch(
    images,
    m.config.vision.imageSize,
    (msg) => new ContrastiveError(msg),
    'the vision tower',
  );
}

export interface ContrastiveGraphOptions {
  /** a PEFT adapter: LoRA branches as constants plus its saved tensors, or merged into the weights (merge: true) */
  adapter?: ContrastiveAdapter | null;
  merge?: boolean;
}

/** The inference graph: inputs pixel_values, input_ids, text_pool_index; outputs embeddings, logits and loss. */
export function buildContrastiveGraph(m: ContrastiveModel, o: ContrastiveGraphOptions = {}, withLoss = true): Graph {
  const g = new Graph(`${m.config.kind}-contrastive`);
  const ad = o.adapter;
  const w = new GraphWeights(g, m.weights, {
    lora: ad && !o.merge ? adapterLoraBindings(ad, m.config, g) : undefined,
    overrides: ad ? (o.merge ? mergedTensors(ad, m.config, m.weights) : ad.saved) : undefined,
  });
  const S = m.config.vision.imageSize;
  const pv = g.input('pixel_values', 'float32', ['N', 3, S, S]);
  const ids = g.input('input_ids', 'int64', ['B', 'T']);
  const pool = g.input('text_pool_index', 'int64', ['B']);
  const out = contrastiveLogits(w, m.config, imageEmbeds(w, m.config, pv), textEmbeds(w, m.config, ids, pool));
  g.output(out.imageEmbeds, 'image_embeds');
  g.output(out.textEmbeds, 'text_embeds');
  g.output(out.logitsPerText, 'logits_per_text');
  if (withLoss) g.output(contrastiveLoss(w, m.config, out), 'loss');
  return g;
}

/** The text tower alone (inputs input_ids, text_pool_index; output text_features, not normalized), for queries. */
export function buildTextGraph(m: ContrastiveModel, o: ContrastiveGraphOptions = {}): Graph {
  const g = new Graph(`${m.config.kind}-text`);
  const ad = o.adapter;
  const w = new GraphWeights(g, m.weights, {
    lora: ad && !o.merge ? adapterLoraBindings(ad, m.config, g) : undefined,
    overrides: ad ? (o.merge ? mergedTensors(ad, m.config, m.weights) : ad.saved) : undefined,
  });
  const ids = g.input('input_ids', 'int64', ['B', 'T']);
  const pool = g.input('text_pool_index', 'int64', ['B']);
  g.output(textEmbeds(w, m.config, ids, pool), 'text_features');
  return g;
}

export interface ContrastiveResult {
  imageEmbeds: Float32Array[];
  textEmbeds: Float32Array[];
  /** [texts][images] */
  logitsPerText: number[][];
  /** the batch's contrastive loss (only when texts and images pair up) */
  loss: number | null;
  warnings: string[];
}

/** Runs the model on images and texts (one ORT session per runner). */
export class ContrastiveRunner {
  private embedSession: Session | null = null;
  private textSession: Session | null = null;
  private constructor(
    readonly model: ContrastiveModel,
    private session: Session,
    private o: ContrastiveGraphOptions & { cacheDir?: string; cacheKey?: unknown },
  ) {}

  static async create(
    m: ContrastiveModel,
    o: ContrastiveGraphOptions & { cacheDir?: string; cacheKey?: unknown } = {},
  ): Promise<ContrastiveRunner> {
    const src = modelSource(() => buildContrastiveGraph(m, o), {
      cacheDir: o.cacheDir,
      key: o.cacheKey === undefined ? undefined : { loss: true, key: o.cacheKey },
    });
    return new ContrastiveRunner(m, await Session.create(src, { threads: 2 }), o);
  }

  /** The graph without the loss, for batches whose texts and images do not pair up (built on first use). */
  private async unpaired(): Promise<Session> {
    if (!this.embedSession) {
      const o = this.o;
      const src = modelSource(() => buildContrastiveGraph(this.model, o, false), {
        cacheDir: o.cacheDir,
        key: o.cacheKey === undefined ? undefined : { loss: false, key: o.cacheKey },
      });
      this.embedSession = await Session.create(src, { threads: 2 });
    }
    return this.embedSession;
  }

  /** Normalized text embeddings without running the image tower (a search query). */
  async embedTexts(texts: readonly string[]): Promise<{ embeds: Float32Array[]; warnings: string[] }> {
    if (texts.length === 0) return { embeds: [], warnings: [] };
    if (!this.textSession) {
      const o = this.o;
      const src = modelSource(() => buildTextGraph(this.model, o), {
        cacheDir: o.cacheDir,
        key: o.cacheKey === undefined ? undefined : { text: true, key: o.cacheKey },
      });
      this.textSession = await Session.create(src, { threads: 2 });
    }
    const tb = textBatch(this.model, texts);
    const r = await this.textSession.run({
      input_ids: tensor('int64', [tb.batch, tb.length], tb.ids),
      text_pool_index: tensor('int64', [tb.batch], tb.poolIndex),
    });
    const E = this.model.config.projectionDim;
    const all = r.text_features.data as Float32Array;
    const embeds = Array.from({ length: tb.batch }, (_, i) => {
      const v = all.slice(i * E, (i + 1) * E);
      let n = 0;
      for (const x of v) n += x * x;
      n = Math.sqrt(n) || 1;
      for (let j = 0; j < E; j++) v[j] /= n;
      return v;
    });
    return { embeds, warnings: tb.warnings };
  }

  /** Embeddings and logits; the loss pairs text i with image i (null when the counts differ). */
  async run(images: readonly ImageInput[], texts: readonly string[]): Promise<ContrastiveResult> {
    if (images.length === 0 || texts.length === 0) throw new ContrastiveError('need at least one image and one text');
    const ib = await imageBatch(this.model, images);
    const tb = textBatch(this.model, texts);
    const S = ib.size;
    const paired = ib.n === tb.batch;
    const session = paired ? this.session : await this.unpaired();
    const r = await session.run({
      pixel_values: tensor('float32', [ib.n, 3, S, S], ib.data),
      input_ids: tensor('int64', [tb.batch, tb.length], tb.ids),
      text_pool_index: tensor('int64', [tb.batch], tb.poolIndex),
    });
    const E = this.model.config.projectionDim;
    const ie = r.image_embeds.data as Float32Array;
    const te = r.text_embeds.data as Float32Array;
    const lg = r.logits_per_text.data as Float32Array;
    return {
      imageEmbeds: Array.from({ length: ib.n }, (_, i) => ie.slice(i * E, (i + 1) * E)),
      textEmbeds: Array.from({ length: tb.batch }, (_, i) => te.slice(i * E, (i + 1) * E)),
      logitsPerText: Array.from({ length: tb.batch }, (_, i) => Array.from(lg.subarray(i * ib.n, (i + 1) * ib.n))),
      loss: paired ? (r.loss.data as Float32Array)[0] : null,
      warnings: tb.warnings,
    };
  }

  async release(): Promise<void> {
    await this.session.dispose();
    await this.embedSession?.dispose();
    await this.textSession?.dispose();
  }
}
