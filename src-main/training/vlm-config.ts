// The VLM trainer's config and the checks that run before any work: hyperparameters, the model folder (a
// vision-language model of any family, with tokenizer and chat template), every training sample rendered with the model's template and tokenizer
// (datasets/render.ts) and checked against the model (length, vocabulary, images), the step plan, and the memory
// estimate (refused, with suggestions, when it does not fit). Used in the parent (service / CLI) before a job
// process starts, and again in the job process to build the same samples.
import { GRAPH_CACHE_ENV } from '../storage/data-dir';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { z } from 'zod';
import type { VlmModelConfig } from '../models/config';
import { loadVlm, renderSetupOf, type LoadedVlm } from '../models/program';
import { RenderError, renderItem, type RenderSetup } from '../datasets/render';
import { assertSamplesFit, SampleError, type RenderedSample, type SampleProblem } from './batching';
import { parseHparams, planRun, HparamsError, type Hparams, type RunPlan } from './hparams';
import {
  availableMemory,
  baseWeightCopies,
  estimateTrainingMemory,
  memoryRefusal,
  shapeOfVlm,
  type MemoryEstimate,
} from './memory';
import {
  evalItems,
  itemsOfSplit,
  readSnapshot,
  subsample,
  type DataItem,
  type DataSnapshot,
  type GenItem,
} from './data';
import type { EvalTask } from '../eval/metrics';

/**
 * Where a job process compiles graphs: LENSLAB_GRAPH_CACHE, which the backend sets to its data directory's cache
 * (storage/data-dir.ts graphCacheDirOf), else the temp folder (a job started by hand).
 */
export function graphCacheDir(): string {
  return process.env[GRAPH_CACHE_ENV] || join(tmpdir(), 'lenslab-graph-cache');
}

export const vlmConfigSchema = z
  .object({
    /** The base model: a Hugging Face LLaVA folder (absolute path). */
    model: z.string().min(1),
    data: z
      .object({
        /** The run's data snapshot (training/data.ts), written when the run was created. */
        file: z.string().min(1),
        trainSplit: z.enum(['train', 'val', 'test']).default('train'),
        evalSplit: z.enum(['train', 'val', 'test']).default('val'),
      })
      .strict(),
    hparams: z.record(z.string(), z.unknown()).prefault({}),
    eval: z
      .object({
        /** Items of the eval split generated at each evaluation (evenly spaced subset). */
        maxItems: z.int().min(1).max(100_000).default(64),
        maxNewTokens: z.int().min(1).max(4096).default(32),
        task: z.enum(['vqa', 'caption']).optional(),
      })
      .strict()
      .prefault({}),
    /**
     * Where the step programs run: 'auto' (LENSLAB_PROVIDER, else a GPU only where it measured faster than the CPU
     * for this model: runtime/provider-choice.ts), or a provider by name. Default: LENSLAB_PROVIDER, else auto.
     */
    provider: z.enum(['auto', 'cpu', 'cuda', 'webgpu']).optional(),
    /**
     * Compute each image's features once and reuse them in later epochs and evaluations when nothing before that
     * layer trains (training/feature-cache.ts; disk cache: LENSLAB_FEATURE_CACHE, LENSLAB_FEATURE_CACHE_MAX).
     */
    featureCache: z.boolean().default(true),
    /** Test hooks. */
    debug: z
      .object({ stepDelayMs: z.number().min(0).default(0) })
      .strict()
      .prefault({}),
  })
  .strict();

export type VlmConfigInput = z.input<typeof vlmConfigSchema>;
export type VlmConfig = z.output<typeof vlmConfigSchema>;

export function parseVlmConfig(config: unknown): VlmConfig {
  const r = vlmConfigSchema.safeParse(config ?? {});
  if (!r.success) {
    const i = r.error.issues[0];
    throw new Error(`VLM trainer config: ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  return r.data;
}

/** The model cannot take this data / these settings; `field` names what to change. */
export class VlmCheckError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
    this.name = 'VlmCheckError';
  }
}

/** Not enough memory; carries the estimate (with suggestions). */
export class MemoryRefusalError extends Error {
  constructor(readonly estimate: MemoryEstimate) {
    super(memoryRefusal(estimate) ?? 'not enough memory');
    this.name = 'MemoryRefusalError';
  }
}

/**
 * Memory a run may use: LENSLAB_MEMORY_LIMIT (bytes, or with a K/M/G suffix) caps what is available now, e.g. to
 * leave room for other programs. Undefined = what the machine has available now.
 */
export function memoryLimit(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env.LENSLAB_MEMORY_LIMIT?.trim();
  if (!v) return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)i?b?$/i.exec(v);
  if (!m) throw new Error(`LENSLAB_MEMORY_LIMIT: expected bytes or a size like 6G, got ${JSON.stringify(v)}`);
  const bytes = Number(m[1]) * 1024 ** ' kmg'.indexOf((m[2] || ' ').toLowerCase());
  return Math.min(bytes, availableMemory());
}

/** Open a model folder as a vision-language model with tokenizer and chat template (models/program.ts loadVlm). */
export function openVlm(dir: string): LoadedVlm {
  try {
    return loadVlm(dir);
  } catch (e) {
    throw new VlmCheckError(`model: ${(e as Error).message}`, 'model');
  }
}

/**
 * The render setup of a loaded model (models/program.ts renderSetupOf), for the largest image its processor makes:
 * sample lengths checked with it are upper bounds. The trainer renders each item with its image's own grid.
 */
export function renderSetupFor(m: LoadedVlm): RenderSetup {
  return renderSetupOf(m);
}

/**
 * Every conversation of the items rendered for training; items the template cannot render are SampleErrors.
 * `setup` may depend on the item (its image's tile grid).
 */
export function renderSamples(
  items: readonly DataItem[],
  setup: RenderSetup | ((item: DataItem, index: number) => RenderSetup),
): { samples: (RenderedSample & { item: number })[]; problems: SampleProblem[] } {
  const samples: (RenderedSample & { item: number })[] = [];
  const problems: SampleProblem[] = [];
  items.forEach((it, i) => {
    try {
      const st = typeof setup === 'function' ? setup(it, i) : setup;
      for (const s of renderItem({ id: it.key, annotations: it.annotations, hasImage: it.image !== null }, st))
        samples.push({ ...s, item: i });
    } catch (e) {
      if (!(e instanceof RenderError)) throw e;
      problems.push({ index: i, key: it.key, message: e.message });
    }
  });
  return { samples, problems };
}

export interface VlmCheck {
  hp: Hparams;
  plan: RunPlan;
  memory: MemoryEstimate;
  config: VlmModelConfig;
  trainSamples: number;
  evalSamples: number;
  longestSample: number;
  evalTask: EvalTask;
  evalItems: GenItem[];
}

/**
 * Everything that can be checked without training. Throws HparamsError (names the field), SampleError (names the
 * items), VlmCheckError (model / data) or MemoryRefusalError. `availableBytes` overrides the measured free memory.
 */
export function checkVlmRun(input: {
  modelDir: string;
  snapshot: DataSnapshot;
  trainSplit?: 'train' | 'val' | 'test';
  evalSplit?: 'train' | 'val' | 'test';
  hparams: unknown;
  evalMaxItems?: number;
  evalTask?: EvalTask;
  availableBytes?: number;
  /** Throw MemoryRefusalError when the estimate does not fit (default true; false returns it with fits = false). */
  refuseMemory?: boolean;
}): VlmCheck {
  const hp = parseHparams(input.hparams);
  const trainSplit = input.trainSplit ?? 'train';
  const evalSplit = input.evalSplit ?? 'val';
  const trainItems = itemsOfSplit(input.snapshot, trainSplit);
  const evalData = itemsOfSplit(input.snapshot, evalSplit);
  if (trainItems.length === 0)
    throw new VlmCheckError(
      `the dataset "${input.snapshot.source.name}" has no items in the ${trainSplit} split; assign a split first`,
      'data',
    );
  const m = openVlm(input.modelDir);
  try {
    const setup = renderSetupFor(m);
    const rendered = renderSamples(trainItems, setup);
    if (rendered.problems.length) throw new SampleError(rendered.problems);
    const vocabSize = m.config.text.vocabSize;
    assertSamplesFit(rendered.samples, { maxSeqLen: hp.maxSeqLen, vocabSize, maxImagesPerSample: 1 });
    const withoutImage = rendered.samples.filter((s) => s.imageCount === 0 && trainItems[s.item].image !== null);
    if (withoutImage.length)
      throw new SampleError(
        withoutImage.map((s) => ({
          index: s.item,
          key: s.key ?? s.item,
          message: 'has an image but no <image> in its conversation',
        })),
      );
    const noFile = rendered.samples.filter((s) => s.imageCount > 0 && trainItems[s.item].image === null);
    if (noFile.length)
      throw new SampleError(
        noFile.map((s) => ({
          index: s.item,
          key: s.key ?? s.item,
          message: 'has <image> in its conversation but no image',
        })),
      );
    const ev = evalItems(evalData, { task: input.evalTask, captionPrompt: setup.captionPrompt });
    const evalSamples = renderSamples(evalData, setup).samples.length;
    const plan = planRun(hp, { trainSamples: rendered.samples.length, evalSamples });
    if (hp.maxSteps === undefined && plan.totalSteps === 0)
      throw new HparamsError([{ field: 'epochs', message: 'the run has no steps' }]);
    const longest = Math.max(...rendered.samples.map((s) => s.ids.length));
    const mostLabels = Math.max(...rendered.samples.map((s) => s.lossMask.reduce((n, v) => n + (v ? 1 : 0), 0)));
    const shape = shapeOfVlm(m.config, 4, m.images);
    const memory = estimateTrainingMemory(
      shape,
      // weightCopies: a float base is held twice (the session's initializers, and building / loading the graph holds
      // a second copy for a while: bench:train measures 5.2 GiB peak for a 0.45B model whose weights are 1.7 GiB); an
      // int4 base's blocks 1.4 times (memory.ts baseWeightCopies)
      {
        method: hp.method,
        rank: hp.rank,
        targetModules: hp.targetModules,
        dropout: hp.dropout,
        batchSize: hp.batchSize,
        maxSeqLen: longest,
        labelTokens: mostLabels,
        imagesPerSample: shape.framesPerImage,
        weightCopies: baseWeightCopies(hp.quantizeBase),
        quantizeBase: hp.quantizeBase,
        gradientCheckpointing: hp.gradientCheckpointing,
      },
      { availableBytes: input.availableBytes ?? memoryLimit() },
    );
    if (!memory.fits && (input.refuseMemory ?? true)) throw new MemoryRefusalError(memory);
    return {
      hp,
      plan,
      memory,
      config: m.config,
      trainSamples: rendered.samples.length,
      evalSamples,
      longestSample: longest,
      evalTask: ev.task,
      evalItems: subsample(ev.items, input.evalMaxItems),
    };
  } finally {
    m.close();
  }
}

/** checkVlmRun for a job config (reads the snapshot file). */
export function checkVlmConfig(cfg: VlmConfig, opts: { availableBytes?: number } = {}): VlmCheck {
  return checkVlmRun({
    modelDir: cfg.model,
    snapshot: readSnapshot(cfg.data.file),
    trainSplit: cfg.data.trainSplit,
    evalSplit: cfg.data.evalSplit,
    hparams: cfg.hparams,
    evalMaxItems: cfg.eval.maxItems,
    evalTask: cfg.eval.task,
    availableBytes: opts.availableBytes,
  });
}
