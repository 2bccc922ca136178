// Evaluations over the API: a model (optionally with an adapter) on a dataset split in the background, with its
// per-item predictions, listed, compared (base vs fine-tuned) and cancelled; progress and status events. The
// evaluations a run makes during training are stored the same way. Pure TS + zod (imported by the renderer).
import { z } from 'zod';
import { defineEvents, defineMethods } from './define';
import { Id, JsonObject, Timestamp } from './common';
import { DataSplit, ModelRef } from './runs';

export const EVALUATION_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled', 'interrupted'] as const;
export const Evaluation = z.object({
  id: Id,
  runId: Id.nullable(),
  checkpointId: Id.nullable(),
  /** Training step the evaluation was made at (evaluations during training), else null. */
  step: z.int().nullable(),
  modelId: Id.nullable(),
  datasetId: Id.nullable(),
  split: z.string().nullable(),
  task: z.string().nullable(),
  config: JsonObject,
  status: z.enum(EVALUATION_STATUSES),
  metrics: z.record(z.string(), z.number().nullable()),
  predictionCount: z.int().nonnegative(),
  error: z.string().nullable(),
  createdAt: Timestamp,
  finishedAt: Timestamp.nullable(),
});
export type Evaluation = z.infer<typeof Evaluation>;

export const PredictionSchema = z.object({
  id: Id,
  itemId: Id.nullable(),
  key: z.union([z.string(), z.number()]).nullable(),
  prompt: z.string(),
  output: z.string(),
  references: z.array(z.string()),
  scores: z.record(z.string(), z.number().nullable()),
});
export type PredictionData = z.infer<typeof PredictionSchema>;

export const evaluationsMethods = defineMethods({
  'evaluations.start': {
    input: z.strictObject({
      model: ModelRef,
      /** An adapter folder (PEFT layout), or a run's final adapter / checkpoint (step). */
      adapter: z
        .union([
          z.strictObject({ path: z.string().min(1).max(4096) }),
          z.strictObject({ runId: Id, step: z.int().nonnegative().optional() }),
        ])
        .optional(),
      data: z.strictObject({ datasetId: Id, split: DataSplit.default('val') }),
      maxItems: z.int().min(1).max(100_000).optional(),
      maxNewTokens: z.int().min(1).max(4096).default(32),
      /** Weight-only quantization for generation: int8 or int4; default none (float32). */
      quantize: z.enum(['none', 'int8', 'int4']).optional(),
      /** vqa (exact match) or caption (BLEU-4, CIDEr); default: from the split's annotations. */
      task: z.enum(['vqa', 'caption']).optional(),
      /**
       * Answer when the evaluation has ended (completed, failed or cancelled) instead of when it starts; the request's
       * signal (a closed WebSocket, Ctrl-C) then cancels it.
       */
      wait: z.boolean().optional(),
    }),
    output: Evaluation,
    summary:
      'Evaluate a model (with an optional adapter) on a dataset split in the background; predictions are stored per item.',
  },
  'evaluations.list': {
    input: z.strictObject({ runId: Id.optional(), datasetId: Id.optional() }),
    output: z.object({ evaluations: z.array(Evaluation) }),
    summary: 'Evaluations, newest first.',
  },
  'evaluations.get': {
    input: z.strictObject({ id: Id }),
    output: Evaluation,
    summary: 'One evaluation with its metrics.',
  },
  'evaluations.predictions': {
    input: z.strictObject({
      id: Id,
      offset: z.int().nonnegative().default(0),
      limit: z.int().min(1).max(1000).default(100),
    }),
    output: z.object({ predictions: z.array(PredictionSchema), total: z.int().nonnegative() }),
    summary: "An evaluation's per-item predictions with their scores.",
  },
  'evaluations.compare': {
    input: z.strictObject({ baseId: Id, tunedId: Id }),
    output: z.object({
      task: z.string(),
      metrics: z.record(z.string(), z.object({ base: z.number(), tuned: z.number(), delta: z.number() })),
      items: z.array(
        z.object({
          key: z.union([z.string(), z.number()]),
          prompt: z.string(),
          references: z.array(z.string()),
          base: z.string(),
          tuned: z.string(),
          change: z.enum(['better', 'worse', 'same']),
        }),
      ),
    }),
    summary: 'Base vs fine-tuned on the same items: metric deltas and per-item changes.',
  },
  'evaluations.cancel': {
    input: z.strictObject({ id: Id }),
    output: Evaluation,
    summary: 'Stop a running evaluation.',
  },
});

export const evaluationsEvents = defineEvents({
  /** Progress of a background evaluation. */
  'evaluations.progress': z.object({ id: Id, done: z.int().nonnegative(), total: z.int().nonnegative() }),
  /** An evaluation finished, failed or was cancelled. */
  'evaluations.status': z.object({
    id: Id,
    status: z.enum(EVALUATION_STATUSES),
    metrics: z.record(z.string(), z.number().nullable()).optional(),
    error: z.string().nullable().optional(),
  }),
});
