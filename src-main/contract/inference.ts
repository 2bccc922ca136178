// Inference straight on a model folder (or a registered model), with an optional adapter, nothing stored: one
// answer about an image (streamed as inference.token events carrying the caller's requestId), the loss of every
// sample of a data file, and a CLIP / SigLIP folder's zero-shot and retrieval scores on a data file. What `lenslab
// generate`, `lenslab score` and the contrastive `lenslab eval` do, for the UI and scripts too. The request's
// AbortSignal (a closed WebSocket, Ctrl-C) stops the work. Pure TS + zod.
import { z } from 'zod';
import { defineEvents, defineMethods } from './define';
import { Id } from './common';
import { DataSplit, ModelRef } from './runs';
import { ChatRole, FinishReason, RequestId } from './chat';

const Path = z.string().min(1, 'must not be empty').max(4096);

/** An adapter folder (PEFT layout), or a run's final adapter / its checkpoint at a step. */
export const AdapterRef = z.union([
  z.strictObject({ path: Path }),
  z.strictObject({ runId: Id, step: z.int().nonnegative().optional() }),
]);
export type AdapterRef = z.infer<typeof AdapterRef>;

/**
 * Sampling settings, all optional (greedy, the model's default length). Only the types are checked here: the
 * sampler checks the ranges and names `options` (so a caller sees the same message whatever the model).
 */
export const SamplingOptions = z.strictObject({
  maxNewTokens: z.int().min(1).max(4096).optional(),
  /** 0 = greedy */
  temperature: z.number().optional(),
  topK: z.int().optional(),
  topP: z.number().optional(),
  repetitionPenalty: z.number().optional(),
  seed: z.number().optional(),
  stop: z.array(z.string().min(1).max(200)).max(8).optional(),
  /** Weight-only quantization of the model's graphs: int8 (u8 x s8) or int4 (block 32); default none (float32). */
  quantize: z.enum(['none', 'int8', 'int4']).optional(),
});

const ContrastiveMetrics = z.object({
  /** Zero-shot classification over the items' first tags as class names. */
  zeroShot: z.object({ items: z.int().nonnegative(), classes: z.array(z.string()), accuracy: z.number().nullable() }),
  /** Recall@1/5/10 ("R@1", ...) over the captioned images; null with fewer than two pairs. */
  recall: z
    .object({ imageToText: z.record(z.string(), z.number()), textToImage: z.record(z.string(), z.number()) })
    .nullable(),
});

const ScoredSample = z.object({
  ref: z.string(),
  /** 'qa', 'caption', ... (the conversation's kind) */
  kind: z.string(),
  /** Mean negative log-likelihood per scored token (nats); null where the sample had no token to score. */
  loss: z.number().nullable(),
  tokens: z.int().nonnegative(),
});

export const inferenceMethods = defineMethods({
  'inference.generate': {
    input: z.strictObject({
      /** Ties inference.token events to this call; without it no tokens are streamed. */
      requestId: RequestId.optional(),
      model: ModelRef,
      adapter: AdapterRef.optional(),
      /** An image file on this machine to ask about. */
      image: z.strictObject({ path: Path }).optional(),
      /** The conversation, normally [system?, user]; a captioning model (BLIP) may take none and caption the image. */
      messages: z.array(z.strictObject({ role: ChatRole, content: z.string().max(100_000) })).max(100),
      options: SamplingOptions.optional(),
    }),
    output: z.object({
      ids: z.array(z.int()),
      text: z.string(),
      finishReason: FinishReason,
      promptTokens: z.int().nonnegative(),
      /** Milliseconds per phase and counts (null where not measurable, e.g. tokens per second with no decode step). */
      timings: z.record(z.string(), z.number().nullable()),
      /** What the model's setup had to assume or ignored. */
      warnings: z.array(z.string()).optional(),
    }),
    summary: 'Answer a prompt (about an image) with a model folder and optional adapter; nothing is stored.',
  },
  'inference.score': {
    input: z.strictObject({
      model: ModelRef,
      adapter: AdapterRef.optional(),
      /** A data file or folder on this machine (anything datasets.import reads). */
      data: z.strictObject({ path: Path }),
      /** Score only the first N samples (a CLIP / SigLIP batch: default 32). */
      limit: z.int().min(1).max(1_000_000).optional(),
    }),
    output: z.discriminatedUnion('kind', [
      z.object({
        /** Token loss per sample over its answer tokens (VLMs: assistant tokens; BLIP: label-smoothed answer loss). */
        kind: z.literal('tokens'),
        samples: z.array(ScoredSample),
        meanLoss: z.number().nullable(),
        tokenWeightedLoss: z.number().nullable(),
        tokens: z.int().nonnegative(),
        /** BLIP's label smoothing of the loss (absent for the other families). */
        labelSmoothing: z.number().optional(),
        /** Problems found reading the data and what the model had to assume, one line each, starting with their severity. */
        warnings: z.array(z.string()),
      }),
      z.object({
        /** CLIP / SigLIP: the contrastive loss of the batch of captioned images and its logits (text x image). */
        kind: z.literal('contrastive'),
        model: z.string(),
        lossType: z.string(),
        loss: z.number(),
        items: z.array(z.object({ ref: z.string(), text: z.string() })),
        logitsPerText: z.array(z.array(z.number())),
        warnings: z.array(z.string()),
      }),
    ]),
    summary:
      "The loss of each sample of a data file under a model folder (+ adapter): mean token loss, or a CLIP / SigLIP batch's contrastive loss.",
  },
  'inference.evaluate': {
    input: z.strictObject({
      model: ModelRef,
      adapter: AdapterRef.optional(),
      /** A data file or folder on this machine; its items' split field selects them. */
      data: z.strictObject({ path: Path, split: DataSplit.default('val') }),
      maxItems: z.int().min(1).max(100_000).optional(),
      /** Zero-shot prompt templates, "{}" for the class name (default: the CLIP paper's "a photo of a {}."). */
      templates: z.array(z.string().min(1).max(500)).max(100).optional(),
    }),
    output: z.object({
      model: z.string(),
      split: z.string(),
      /** Image items of the split evaluated, and the image-text pairs among them. */
      items: z.int().nonnegative(),
      pairs: z.int().nonnegative(),
      base: ContrastiveMetrics,
      /** The same with the adapter (when one was given). */
      adapter: ContrastiveMetrics.optional(),
      /** Problems found reading the data and what the model had to assume, one line each, starting with their severity. */
      warnings: z.array(z.string()),
    }),
    summary:
      'A CLIP / SigLIP folder on a data file split: zero-shot accuracy and recall@1/5/10, the base beside the adapter; nothing stored.',
  },
  'inference.embed': {
    input: z.strictObject({
      model: ModelRef,
      adapter: AdapterRef.optional(),
      /** A data file or folder on this machine: its image items, each with its first caption as the text. */
      data: z.strictObject({ path: Path }),
      limit: z.int().min(1).max(100_000).optional(),
    }),
    output: z.object({
      model: z.string(),
      dim: z.int().positive(),
      items: z.array(
        z.object({
          ref: z.string(),
          text: z.string().nullable(),
          imageEmbeds: z.array(z.number()),
          textEmbeds: z.array(z.number()).nullable(),
        }),
      ),
      /** Problems found reading the data and what the model had to assume, one line each, starting with their severity. */
      warnings: z.array(z.string()),
    }),
    summary:
      'Normalized image and text embeddings of the image items of a data file with a CLIP / SigLIP folder (+ adapter).',
  },
  'inference.train': {
    input: z.strictObject({
      /** Ties inference.step events to this call; without it no steps are streamed. */
      requestId: RequestId.optional(),
      model: ModelRef,
      /** A data file or folder on this machine; its items' split field selects them. */
      data: z.strictObject({ path: Path, split: DataSplit.default('train') }),
      /** The adapter folder to write (empty or new). */
      outDir: Path,
      /** Train on the first N items only. */
      limit: z.int().min(1).max(10_000_000).optional(),
      /** The trainer's settings; each has the family's recipe default, and the trainer checks the values (naming them). */
      options: z
        .strictObject({
          /** CLIP / SigLIP: lora (default) or projections; BLIP: lora. */
          method: z.enum(['lora', 'projections']).optional(),
          /** CLIP / SigLIP LoRA: which towers (default both). */
          towers: z.enum(['text', 'vision', 'both']).optional(),
          targetModules: z.array(z.string().min(1).max(200)).max(100).optional(),
          rank: z.number().optional(),
          alpha: z.number().optional(),
          dropout: z.number().optional(),
          lr: z.number().optional(),
          epochs: z.number().optional(),
          batchSize: z.number().optional(),
          gradAccum: z.number().optional(),
          seed: z.number().optional(),
          weightDecay: z.number().optional(),
          clipNorm: z.number().optional(),
        })
        .optional(),
    }),
    output: z.object({
      outDir: z.string(),
      steps: z.int().nonnegative(),
      firstLoss: z.number().nullable(),
      lastLoss: z.number().nullable(),
      seconds: z.number(),
      /** What was trained on and how (one line each). */
      notes: z.array(z.string()),
      /** Problems found reading the data, one line each, starting with their severity. */
      warnings: z.array(z.string()),
    }),
    summary:
      'Fine-tune a BLIP or CLIP / SigLIP folder on a data file into a PEFT adapter folder for the length of the call (no run record; the other models train with runs.start); steps as inference.step events.',
  },
});

export const inferenceEvents = defineEvents({
  /** One optimizer step of an inference.train call with a requestId. */
  'inference.step': z.object({
    requestId: RequestId,
    step: z.int().nonnegative(),
    total: z.int().nonnegative(),
    loss: z.number().nullable(),
  }),
  /** One generated piece of an inference.generate call with a requestId: `text` is what it adds (may be ''). */
  'inference.token': z.object({ requestId: RequestId, index: z.int().nonnegative(), text: z.string() }),
});
