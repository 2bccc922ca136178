// Training runs and evaluations over the API: estimate (memory + plan) before a run, start / pause / resume /
// cancel, checkpoints, and evaluations of a model (optionally with an adapter) on a dataset split with their
// per-item predictions. Run listing and metric series are in runs.ts; the progress and status events too.
// Pure TS + zod (imported by the renderer).
import { z } from 'zod';
import { defineEvents, defineMethods } from './define';
import { Id, JsonObject, Name, Timestamp } from './common';
import { Run } from './runs';

export const TRAIN_METHODS = ['lora', 'projector', 'lora+projector'] as const;
export const SPLITS = ['train', 'val', 'test'] as const;
export const DataSplit = z.enum(SPLITS);

/** A base model: a registered model (models table) or a Hugging Face LLaVA folder on disk. */
export const ModelRef = z.union([
  z.strictObject({ id: Id }),
  z.strictObject({ path: z.string().min(1, 'must not be empty').max(4096) }),
]);
export type ModelRef = z.infer<typeof ModelRef>;

/** Training data: a dataset, trained on one split and evaluated on another. */
export const TrainData = z.strictObject({
  datasetId: Id,
  trainSplit: DataSplit.default('train'),
  evalSplit: DataSplit.default('val'),
});
export type TrainData = z.infer<typeof TrainData>;

/** Hyperparameters as training/hparams.ts parses them (camelCase; unknown fields are refused naming them). */
export const Hparams = JsonObject;

export const MemoryEstimateSchema = z.object({
  fits: z.boolean(),
  /** Bytes per part (weights, adapter, gradients, optimizer, activations, logits, vision, workspace, runtime, total). */
  breakdown: z.record(z.string(), z.number()),
  params: z.record(z.string(), z.number()),
  availableBytes: z.number(),
  totalBytes: z.number(),
  suggestions: z.array(z.string()),
  summary: z.string(),
});
export type MemoryEstimateData = z.infer<typeof MemoryEstimateSchema>;

export const RunPlanSchema = z.object({
  totalSteps: z.int().nonnegative(),
  stepsPerEpoch: z.int().nonnegative(),
  warmupSteps: z.int().nonnegative(),
  effectiveBatch: z.int().positive(),
  /** Samples (rendered conversations) in the training and evaluation splits. */
  trainSamples: z.int().nonnegative(),
  evalSamples: z.int().nonnegative(),
  /** Longest training sample in tokens (image tokens included). */
  longestSample: z.int().nonnegative(),
});
export type RunPlanData = z.infer<typeof RunPlanSchema>;

/** A LoRA / projector fine-tuning run of a LLaVA model on a dataset. */
/** Execution device of a run or a chat: 'auto' measures (engine/runtime/provider-choice.ts), the others are asked by name. */
export const Device = z.enum(['auto', 'cpu', 'webgpu', 'cuda']);
export type Device = z.infer<typeof Device>;

export const StartRunInput = z.strictObject({
  name: Name.optional(),
  model: ModelRef,
  data: TrainData,
  hparams: Hparams.default({}),
  /** Evaluation during training: at most this many items of the eval split are generated (default 64). */
  evalMaxItems: z.int().min(1).max(100_000).optional(),
  /** Run directory (default <data dir>/runs/<run id>). */
  outDir: z.string().min(1).max(4096).optional(),
  /** Where the run computes: auto (a GPU only where a measured step beat the CPU on this machine), cpu, webgpu, cuda. */
  device: Device.optional(),
});

export const Checkpoint = z.object({
  id: Id,
  runId: Id,
  step: z.int().nonnegative(),
  kind: z.string(),
  path: z.string(),
  bytes: z.number().nullable(),
  metrics: z.record(z.string(), z.number().nullable()),
  createdAt: Timestamp,
});
export type Checkpoint = z.infer<typeof Checkpoint>;

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

export const trainingMethods = defineMethods({
  'runs.estimate': {
    input: z.strictObject({ model: ModelRef, data: TrainData, hparams: Hparams.default({}) }),
    output: z.object({ memory: MemoryEstimateSchema, plan: RunPlanSchema, refusal: z.string().nullable() }),
    summary: 'Memory estimate and step plan of a training run before it starts (refusal names why it cannot run).',
  },
  'runs.start': {
    input: StartRunInput,
    output: z.object({ run: Run, memory: MemoryEstimateSchema.nullable() }),
    summary: 'Check a training run (hyperparameters, data against the model, memory) and start it in its own process.',
  },
  'runs.pause': {
    input: z.strictObject({ id: Id }),
    output: Run,
    summary: 'Finish the current step, write a checkpoint and stop; resume continues from there.',
  },
  'runs.resume': {
    input: z.strictObject({ id: Id, /** Continue on another device (e.g. the CPU after the GPU was lost). */ device: Device.optional() }),
    output: Run,
    summary: 'Continue a paused or interrupted run from its latest checkpoint.',
  },
  'runs.cancel': {
    input: z.strictObject({ id: Id }),
    output: Run,
    summary: 'Stop a run for good (no checkpoint is written after the current step).',
  },
  'runs.checkpoints': {
    input: z.strictObject({ id: Id }),
    output: z.object({ checkpoints: z.array(Checkpoint), finalDir: z.string().nullable(), finalBytes: z.number().int().nonnegative().nullable() }),
    summary: "A run's kept checkpoints (oldest first) and its final adapter folder (and its size in bytes) once completed.",
  },
  'evaluations.start': {
    input: z.strictObject({
      model: ModelRef,
      /** An adapter folder (PEFT layout), or a run's final adapter / checkpoint (step). */
      adapter: z.union([z.strictObject({ path: z.string().min(1).max(4096) }), z.strictObject({ runId: Id, step: z.int().nonnegative().optional() })]).optional(),
      data: z.strictObject({ datasetId: Id, split: DataSplit.default('val') }),
      maxItems: z.int().min(1).max(100_000).optional(),
      maxNewTokens: z.int().min(1).max(4096).default(32),
      /** Weight-only quantization for generation: int8 or int4; default none (float32). */
      quantize: z.enum(['none', 'int8', 'int4']).optional(),
      /** vqa (exact match) or caption (BLEU-4, CIDEr); default: from the split's annotations. */
      task: z.enum(['vqa', 'caption']).optional(),
    }),
    output: Evaluation,
    summary: 'Evaluate a model (with an optional adapter) on a dataset split in the background; predictions are stored per item.',
  },
  'evaluations.list': {
    input: z.strictObject({ runId: Id.optional(), datasetId: Id.optional() }),
    output: z.object({ evaluations: z.array(Evaluation) }),
    summary: 'Evaluations, newest first.',
  },
  'evaluations.get': { input: z.strictObject({ id: Id }), output: Evaluation, summary: 'One evaluation with its metrics.' },
  'evaluations.predictions': {
    input: z.strictObject({ id: Id, offset: z.int().nonnegative().default(0), limit: z.int().min(1).max(1000).default(100) }),
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

export const trainingEvents = defineEvents({
  /** An evaluation during training finished (metrics at that step; predictions stored as evaluation evaluationId). */
  'runs.eval': z.object({ runId: Id, step: z.int().nonnegative(), metrics: z.record(z.string(), z.number().nullable()), evaluationId: Id.nullable() }),
  /** A checkpoint was committed (and older ones pruned). */
  'runs.checkpoint': z.object({ runId: Id, step: z.int().nonnegative(), path: z.string(), bytes: z.number(), pruned: z.array(z.int()) }),
  /** A line from a run's job (warnings, errors, notes). */
  'runs.log': z.object({ runId: Id, level: z.enum(['info', 'warn', 'error']), message: z.string() }),
  /** Progress of a background evaluation. */
  'evaluations.progress': z.object({ id: Id, done: z.int().nonnegative(), total: z.int().nonnegative() }),
  /** An evaluation finished, failed or was cancelled. */
  'evaluations.status': z.object({ id: Id, status: z.enum(EVALUATION_STATUSES), metrics: z.record(z.string(), z.number().nullable()).optional(), error: z.string().nullable().optional() }),
});
