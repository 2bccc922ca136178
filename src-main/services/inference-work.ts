// The work behind inference.score, inference.evaluate, inference.train and the BLIP form of inference.generate, run
// in the backend worker (work-worker.ts: model loading, graph compiles and ORT runs are synchronous on the calling
// thread) or in this thread where no worker can start. Errors that name a field are thrown as ApiErrors (rebuilt as ApiErrors on the
// other side of the worker boundary); the loaders' own errors are mapped by modelErrorToApi.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ApiError } from '../contract/errors';
import type { Result } from '../contract/index';
import { parseSource } from '../datasets/parse';
import { itemConversations } from '../datasets/conversation';
import { readPairs, readVqaItems } from '../datasets/pairs';
import { loadGenerator, renderSetupOf, type ScoreSample } from '../models/generate';
import { loadBlipAdapter, type BlipAdapter } from '../models/families/blip/adapter';
import { BlipRunner, answerBatch, isBlipFolder, loadBlip, type BlipModel } from '../models/families/blip/model';
import { loadContrastiveAdapter, type ContrastiveAdapter } from '../models/families/contrastive/adapter';
import { ContrastiveRunner, loadContrastive, type ContrastiveModel } from '../models/families/contrastive/model';
import { isContrastiveFolder } from '../models/families/contrastive/folder';
import { embedAll, evaluateContrastive, type ContrastiveEval } from '../eval/contrastive';
import { BLIP_VQA_RECIPE, BlipTrainError, trainBlipToFolder } from '../training/blip';
import { ContrastiveTrainError, trainContrastiveToFolder } from '../training/contrastive';
import { modelErrorToApi } from './model-errors';

export type ScoreOutput = Result<'inference.score'>;
export type GenerateOutput = Result<'inference.generate'>;
export type EvaluateOutput = Result<'inference.evaluate'>;
export type TrainOutput = Result<'inference.train'>;
export type EmbedOutput = Result<'inference.embed'>;

export interface FolderScoreInput {
  modelDir: string;
  adapterDir: string | null;
  /** The data file or folder as the caller gave it (messages quote it; resolved against the working folder). */
  data: string;
  limit?: number;
  /** Compiled-graph cache. */
  cacheDir: string;
}

export interface FolderGenerateInput {
  modelDir: string;
  adapterDir: string | null;
  image: string | null;
  prompt: string | null;
  hasSystem: boolean;
  maxNewTokens?: number;
  temperature?: number;
  quantize?: string;
  cacheDir: string;
}

export interface FolderEvaluateInput {
  modelDir: string;
  adapterDir: string | null;
  data: string;
  split: string;
  maxItems?: number;
  templates?: string[];
}

export interface FolderTrainInput {
  modelDir: string;
  data: string;
  split: string;
  outDir: string;
  limit?: number;
  options: {
    method?: 'lora' | 'projections';
    towers?: 'text' | 'vision' | 'both';
    targetModules?: string[];
    rank?: number;
    alpha?: number;
    dropout?: number;
    lr?: number;
    epochs?: number;
    batchSize?: number;
    gradAccum?: number;
    seed?: number;
    weightDecay?: number;
    clipNorm?: number;
  };
}

export interface InferenceHooks {
  signal?: AbortSignal;
  onStep?(s: { step: number; total: number; loss: number }): void;
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new ApiError('cancelled', 'cancelled');
}

// ---------------------------------------------------------------- BLIP

function openBlip(modelDir: string, adapterDir: string | null): { m: BlipModel; ad: BlipAdapter | null } {
  let m: BlipModel;
  try {
    m = loadBlip(modelDir);
  } catch (e) {
    throw new ApiError('invalid_request', (e as Error).message, 'model');
  }
  try {
    return { m, ad: adapterDir ? loadBlipAdapter(adapterDir, m.config) : null };
  } catch (e) {
    m.close();
    throw new ApiError('invalid_request', (e as Error).message, 'adapter');
  }
}

function blipRunner(m: BlipModel, ad: BlipAdapter | null, cacheDir: string): BlipRunner {
  // compiled graphs cached per model folder and adapter file contents
  const adKey = ad
    ? {
        r: ad.r,
        alpha: ad.alpha,
        modules: [...ad.lora.keys()],
        sum: [...ad.lora.values()].map((e) => e.a.reduce((s, v) => s + v, 0) + e.b.reduce((s, v) => s + v, 0)),
      }
    : null;
  const files = readdirSync(m.dir)
    .filter((f) => /\.(safetensors|json)$/.test(f))
    .sort()
    .map((f) => {
      const st = statSync(join(m.dir, f));
      return [f, st.size, st.mtimeMs];
    });
  return new BlipRunner(m, { adapter: ad, cacheDir, cacheKey: { blip: m.dir, files, adapter: adKey } });
}

/** A BLIP answer to one question about one image (VQA), or a caption continuing the prompt; greedy, as transformers. */
export async function generateBlip(i: FolderGenerateInput, hooks: InferenceHooks = {}): Promise<GenerateOutput> {
  if (i.image === null)
    throw new ApiError(
      'invalid_request',
      'an image is required: BLIP answers a question about an image or captions it',
      'image',
    );
  if (i.temperature !== undefined && i.temperature !== 0)
    throw new ApiError(
      'invalid_request',
      "BLIP VQA answers greedily (as transformers' generate for BlipForQuestionAnswering): temperature must be 0",
      'options.temperature',
    );
  if (i.quantize !== undefined && i.quantize !== 'none')
    throw new ApiError('invalid_request', 'quantization is not supported for BLIP models', 'options.quantize');
  const { m, ad } = openBlip(i.modelDir, i.adapterDir);
  try {
    const captioning = m.config.architecture === 'BlipForConditionalGeneration';
    if (!captioning && i.prompt === null)
      throw new ApiError('invalid_request', 'a user message is required (the question)', 'messages');
    checkAborted(hooks.signal);
    const runner = blipRunner(m, ad, i.cacheDir);
    const t0 = performance.now();
    // transformers' default max_length 20 counts the whole sequence (bos and any caption prompt)
    const maxNew = i.maxNewTokens ?? null;
    let r;
    try {
      if (captioning) {
        const start = i.prompt ? m.tokenizer.encode(i.prompt).length - 1 : 1;
        [r] = await runner.caption([i.image], i.prompt ?? '', { maxLength: maxNew === null ? 20 : start + maxNew });
      } else [r] = await runner.answer([i.image], [i.prompt!], { maxLength: maxNew === null ? 20 : 1 + maxNew });
    } catch (e) {
      throw new ApiError('invalid_request', (e as Error).message, 'image');
    } finally {
      await runner.release();
    }
    const ms = performance.now() - t0;
    const warnings = i.hasSystem ? ['BLIP VQA has no system message: --system was ignored'] : [];
    return {
      ids: r.tokens,
      text: r.answer,
      finishReason: r.tokens.at(-1) === m.config.text.sepTokenId ? 'stop' : 'length',
      promptTokens: i.prompt === null ? 1 : m.tokenizer.encode(i.prompt).length,
      timings: { totalMs: ms, decodeTokens: r.tokens.length },
      ...(warnings.length ? { warnings } : {}),
    };
  } finally {
    m.close();
  }
}

async function scoreBlip(i: FolderScoreInput, hooks: InferenceHooks): Promise<ScoreOutput> {
  const { m, ad } = openBlip(i.modelDir, i.adapterDir);
  try {
    const warnings: string[] = [];
    const captioning = m.config.architecture === 'BlipForConditionalGeneration';
    const items = await readVqaItems(i.data, { limit: i.limit, captions: captioning, warn: (l) => warnings.push(l) });
    if (!items.length)
      throw new ApiError(
        'invalid_request',
        `${i.data}: no image items with ${captioning ? 'a caption' : 'a question and answer'} to score`,
        'data',
      );
    const runner = blipRunner(m, ad, i.cacheDir);
    const rows: Array<{ ref: string; kind: string; loss: number; tokens: number }> = [];
    let sum = 0;
    let count = 0;
    try {
      for (let k = 0; k < items.length; k += 8) {
        checkAborted(hooks.signal);
        const b = items.slice(k, k + 8);
        const r = captioning
          ? await runner.captionLoss(
              b.map((x) => x.image),
              b.map((x) => x.answer),
            )
          : await runner.loss(
              b.map((x) => x.image),
              b.map((x) => x.question),
              b.map((x) => x.answer),
            );
        const ab = answerBatch(
          m,
          b.map((x) => x.answer),
        );
        b.forEach((x, j) => {
          let n = 0;
          for (let t = 1; t < ab.length; t++) if (ab.labels[j * ab.length + t] !== -100n) n++;
          rows.push({ ref: x.ref, kind: captioning ? 'caption' : 'qa', loss: r.items[j], tokens: n });
        });
        sum += r.sum;
        count += r.count;
      }
    } catch (e) {
      if (e instanceof ApiError) throw e;
      throw new ApiError('invalid_request', (e as Error).message, 'data');
    } finally {
      await runner.release();
    }
    return {
      kind: 'tokens',
      samples: rows,
      meanLoss: rows.reduce((a, r) => a + r.loss, 0) / rows.length,
      tokenWeightedLoss: sum / Math.max(count, 1),
      tokens: count,
      labelSmoothing: m.config.text.labelSmoothing,
      warnings,
    };
  } finally {
    m.close();
  }
}

// ---------------------------------------------------------------- CLIP / SigLIP

export function openContrastive(
  modelDir: string,
  adapterDir: string | null,
): { m: ContrastiveModel; ad: ContrastiveAdapter | null } {
  let m: ContrastiveModel;
  try {
    m = loadContrastive(modelDir);
  } catch (e) {
    throw new ApiError('invalid_request', (e as Error).message, 'model');
  }
  try {
    return { m, ad: adapterDir ? loadContrastiveAdapter(adapterDir, m.config) : null };
  } catch (e) {
    m.close();
    throw new ApiError('invalid_request', (e as Error).message, 'adapter');
  }
}

async function scoreContrastive(i: FolderScoreInput): Promise<ScoreOutput> {
  const warnings: string[] = [];
  const pairs = (await readPairs(i.data, { warn: (l) => warnings.push(l) }))
    .filter((p) => p.text !== undefined)
    .slice(0, i.limit ?? 32);
  if (pairs.length < 2)
    throw new ApiError(
      'invalid_request',
      `${i.data}: ${pairs.length} captioned image(s); the contrastive loss needs at least 2 pairs`,
      'data',
    );
  const { m, ad } = openContrastive(i.modelDir, i.adapterDir);
  try {
    const runner = await ContrastiveRunner.create(m, { adapter: ad });
    const r = await runner.run(
      pairs.map((p) => p.image),
      pairs.map((p) => p.text!),
    );
    await runner.release();
    warnings.push(...r.warnings.map((w) => `warning: ${w}`));
    return {
      kind: 'contrastive',
      model: m.config.modelType,
      lossType: m.config.kind === 'clip' ? 'clip (symmetric cross-entropy)' : 'siglip (sigmoid)',
      loss: r.loss!,
      items: pairs.map((p) => ({ ref: p.ref, text: p.text! })),
      logitsPerText: r.logitsPerText.map((row) => Array.from(row, (v) => Number(v.toFixed(6)))),
      warnings,
    };
  } finally {
    m.close();
  }
}

function metricsOf(e: ContrastiveEval) {
  return {
    zeroShot: { items: e.zeroShot.items, classes: e.zeroShot.classes, accuracy: e.zeroShot.accuracy },
    recall: e.recall,
  };
}

/** Zero-shot accuracy and recall@K of a CLIP / SigLIP folder on a data file's split, the adapter's beside the base's. */
export async function evaluateContrastiveFolder(
  i: FolderEvaluateInput,
  hooks: InferenceHooks = {},
): Promise<EvaluateOutput> {
  if (!isContrastiveFolder(i.modelDir))
    throw new ApiError(
      'invalid_request',
      `${i.modelDir}: not a CLIP or SigLIP folder (evaluate the other models on a dataset with evaluations.start)`,
      'model',
    );
  const warnings: string[] = [];
  const pairs = await readPairs(i.data, { split: i.split, limit: i.maxItems, warn: (l) => warnings.push(l) });
  if (!pairs.length) throw new ApiError('invalid_request', `${i.data}: no image items in split "${i.split}"`, 'data');
  const { m, ad } = openContrastive(i.modelDir, i.adapterDir);
  try {
    const tuned = ad ? await evaluateContrastive(m, pairs, { adapter: ad, templates: i.templates }) : null;
    checkAborted(hooks.signal);
    const base = await evaluateContrastive(m, pairs, { templates: i.templates });
    warnings.push(...base.warnings.map((w) => `warning: ${w}`));
    return {
      model: m.config.modelType,
      split: i.split,
      items: pairs.length,
      pairs: base.pairs,
      base: metricsOf(base),
      ...(tuned ? { adapter: metricsOf(tuned) } : {}),
      warnings,
    };
  } finally {
    m.close();
  }
}

/** Normalized image (and caption) embeddings of a data file's image items with a CLIP / SigLIP folder. */
export async function embedFolder(i: Omit<FolderScoreInput, 'cacheDir'>): Promise<EmbedOutput> {
  if (!isContrastiveFolder(i.modelDir))
    throw new ApiError('invalid_request', `${i.modelDir}: not a CLIP or SigLIP folder`, 'model');
  const warnings: string[] = [];
  const pairs = await readPairs(i.data, { limit: i.limit, warn: (l) => warnings.push(l) });
  if (!pairs.length) throw new ApiError('invalid_request', `${i.data}: no image items`, 'data');
  const { m, ad } = openContrastive(i.modelDir, i.adapterDir);
  try {
    const runner = await ContrastiveRunner.create(m, { adapter: ad });
    const withText = pairs.filter((p) => p.text !== undefined);
    const e = await embedAll(
      runner,
      pairs.map((p) => p.image),
      withText.map((p) => p.text!),
    );
    await runner.release();
    warnings.push(...e.warnings.map((w) => `warning: ${w}`));
    const round = (v: number) => Number(v.toFixed(6));
    const textOf = new Map(withText.map((p, k) => [p, e.texts[k]]));
    const items = pairs.map((p, k) => ({
      ref: p.ref,
      text: p.text ?? null,
      imageEmbeds: Array.from(e.images[k], round),
      textEmbeds: textOf.has(p) ? Array.from(textOf.get(p)!, round) : null,
    }));
    return { model: m.config.modelType, dim: m.config.projectionDim, items, warnings };
  } finally {
    m.close();
  }
}

// ---------------------------------------------------------------- the generative VLMs

async function scoreGenerative(i: FolderScoreInput, hooks: InferenceHooks): Promise<ScoreOutput> {
  let parsed;
  try {
    parsed = await parseSource(resolve(i.data));
  } catch (e) {
    throw new ApiError('invalid_request', `${i.data}: ${(e as Error).message}`, 'data');
  }
  try {
    const warnings = parsed.problems.map(
      (p) => `${p.severity}: ${p.ref}${p.field ? ` (${p.field})` : ''}: ${p.message}`,
    );
    let g;
    try {
      g = await loadGenerator(i.modelDir, i.adapterDir, { cacheDir: i.cacheDir });
    } catch (e) {
      throw modelErrorToApi(e);
    }
    const limit = i.limit ?? Infinity;
    // captions are scored with the model's own caption prompt (BLIP-2: none)
    const captionPrompt = renderSetupOf(g.model).captionPrompt;
    const samples: Array<ScoreSample & { ref: string; kind: string }> = [];
    for (const item of parsed.items) {
      const image = item.image ? ('path' in item.image ? item.image.path : Buffer.from(item.image.bytes)) : null;
      itemConversations(item.annotations, !!item.image, { captionPrompt }).forEach((c, k, all) => {
        if (samples.length < limit)
          samples.push({
            image,
            messages: c.messages,
            ref: all.length > 1 ? `${item.sourcePath}#${k}` : item.sourcePath,
            kind: c.kind,
          });
      });
    }
    let results;
    try {
      if (samples.length === 0)
        throw new ApiError('invalid_request', `${i.data}: no samples with annotations to score`, 'data');
      results = await g.score(samples, { signal: hooks.signal });
    } catch (e) {
      throw modelErrorToApi(e, 'data');
    } finally {
      await g.dispose();
    }
    const rows = samples.map((s, k) => ({
      ref: s.ref,
      kind: s.kind,
      loss: Number.isNaN(results[k].loss) ? null : results[k].loss,
      tokens: results[k].tokens,
    }));
    const tokens = rows.reduce((a, r) => a + r.tokens, 0);
    const scored = rows.filter((r) => r.loss !== null);
    const meanLoss = scored.length ? scored.reduce((a, r) => a + r.loss!, 0) / scored.length : null;
    const tokenWeightedLoss = tokens ? scored.reduce((a, r) => a + r.loss! * r.tokens, 0) / tokens : null;
    return { kind: 'tokens', samples: rows, meanLoss, tokenWeightedLoss, tokens, warnings };
  } finally {
    parsed.cleanup();
  }
}

/** The loss of every sample of a data file under the model folder (+ adapter), for the folder's family. */
export async function scoreFolder(i: FolderScoreInput, hooks: InferenceHooks = {}): Promise<ScoreOutput> {
  if (isContrastiveFolder(i.modelDir)) return scoreContrastive(i);
  if (isBlipFolder(i.modelDir)) return scoreBlip(i, hooks);
  return scoreGenerative(i, hooks);
}

// ---------------------------------------------------------------- adapters trained for the length of a call

/**
 * LoRA (or CLIP / SigLIP projections) on a BLIP or CLIP / SigLIP folder, written as a PEFT adapter folder. A step
 * checks the signal: a cancelled call stops before the adapter is written (nothing half-written is left).
 */
export async function trainFolder(i: FolderTrainInput, hooks: InferenceHooks = {}): Promise<TrainOutput> {
  if (existsSync(i.outDir) && readdirSync(i.outDir).length)
    throw new ApiError('invalid_request', `${i.outDir} is not empty; choose an empty or new folder`, 'outDir');
  const o = i.options;
  const notes: string[] = [];
  const warnings: string[] = [];
  const onStep = (s: { step: number; total: number; loss: number }) => {
    checkAborted(hooks.signal);
    hooks.onStep?.(s);
  };
  const t0 = Date.now();
  let res: { steps: number; losses: number[] };
  if (isContrastiveFolder(i.modelDir)) {
    const pairs = (await readPairs(i.data, { split: i.split, warn: (l) => warnings.push(l) }))
      .filter((p) => p.text !== undefined)
      .slice(0, i.limit);
    const { m } = openContrastive(i.modelDir, null);
    try {
      notes.push(
        `${m.config.modelType}: ${pairs.length} image-text pairs from split "${i.split}"; in-batch negatives: batch size = negatives + 1 (accumulation adds none)`,
      );
      const opts = {
        method: o.method ?? 'lora',
        towers: o.towers ?? 'both',
        targets: o.targetModules,
        rank: o.rank,
        alpha: o.alpha,
        lr: o.lr,
        epochs: o.epochs,
        batchSize: o.batchSize,
        gradAccum: o.gradAccum,
        seed: o.seed,
        weightDecay: o.weightDecay,
        onStep,
      };
      try {
        res = await trainContrastiveToFolder(
          m,
          pairs.map((p) => ({ image: p.image, text: p.text! })),
          opts,
          i.outDir,
        );
      } catch (e) {
        if (e instanceof ContrastiveTrainError) throw new ApiError('invalid_request', e.message, 'options');
        throw e;
      }
    } finally {
      m.close();
    }
  } else if (isBlipFolder(i.modelDir)) {
    if (o.method !== undefined && o.method !== 'lora')
      throw new ApiError('invalid_request', `method ${o.method}: BLIP models train with lora`, 'options.method');
    const { m } = openBlip(i.modelDir, null);
    try {
      const captioning = m.config.architecture === 'BlipForConditionalGeneration';
      const items = await readVqaItems(i.data, {
        split: i.split,
        limit: i.limit,
        captions: captioning,
        warn: (l) => warnings.push(l),
      });
      const R = BLIP_VQA_RECIPE;
      notes.push(
        `BLIP ${captioning ? 'captioning' : 'VQA'}: ${items.length} ${captioning ? 'caption' : 'question'}(s) from split "${i.split}"; LoRA r=${o.rank ?? R.rank} alpha=${o.alpha ?? R.alpha} dropout=${o.dropout ?? R.dropout} on ${(o.targetModules ?? R.targets).join(', ')}`,
      );
      const opts = {
        targets: o.targetModules,
        rank: o.rank,
        alpha: o.alpha,
        dropout: o.dropout,
        lr: o.lr,
        epochs: o.epochs,
        batchSize: o.batchSize,
        gradAccum: o.gradAccum,
        seed: o.seed,
        weightDecay: o.weightDecay,
        clipNorm: o.clipNorm,
        onStep,
      };
      try {
        res = await trainBlipToFolder(m, items, opts, i.outDir);
      } catch (e) {
        if (e instanceof BlipTrainError) throw new ApiError('invalid_request', e.message, 'options');
        throw e;
      }
    } finally {
      m.close();
    }
  } else
    throw new ApiError(
      'invalid_request',
      `${i.modelDir}: not a BLIP or CLIP / SigLIP folder (train the other models with runs.start)`,
      'model',
    );
  return {
    outDir: i.outDir,
    steps: res.steps,
    firstLoss: res.losses[0] ?? null,
    lastLoss: res.losses.at(-1) ?? null,
    seconds: (Date.now() - t0) / 1000,
    notes,
    warnings,
  };
}
