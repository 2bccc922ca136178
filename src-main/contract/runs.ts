// Training runs over the API: list / get / metric series, the estimate (memory + plan) before a run, start / pause /
// resume / cancel, checkpoints; the status, progress, eval, checkpoint and log events. Pure TS + zod (imported by
// the renderer).
import { z } from 'zod';
import { defineEvents, defineMethods } from './define';
import { Device, Id, Name, Timestamp } from './common';
import { hparamsSchema, StoredHparams } from './hparams';

export const RUN_STATUSES = ['queued', 'running', 'paused', 'completed', 'failed', 'cancelled', 'interrupted'] as const;
export const RunStatus = z.enum(RUN_STATUSES);
export type RunStatus = z.infer<typeof RunStatus>;

/**
 * A run's settings as stored (the job spec, the data split, …). `hparams` holds the hyperparameters this version takes;
 * any a run recorded by an older or newer version that this one does not (an unknown field, a value outside today's
 * choices or limits) are in `otherHparams`, exactly as stored (contract/hparams.ts readStoredHparams).
 */
export const RunConfig = z.looseObject({
  hparams: StoredHparams.optional(),
  otherHparams: z.record(z.string(), z.unknown()).optional(),
});
export type RunConfig = z.infer<typeof RunConfig>;

export const Run = z.object({
  id: Id,
  name: z.string(),
  modelId: Id.nullable(),
  modelName: z.string().nullable(),
  datasetId: Id.nullable(),
  datasetName: z.string().nullable(),
  config: RunConfig,
  status: RunStatus,
  step: z.int().nonnegative(),
  totalSteps: z.int().nonnegative().nullable(),
  error: z.string().nullable(),
  createdAt: Timestamp,
  startedAt: Timestamp.nullable(),
  finishedAt: Timestamp.nullable(),
  updatedAt: Timestamp,
  /** Archived runs are hidden from the Runs list unless asked for; their files and metrics stay. */
  archivedAt: Timestamp.nullable(),
});
export type Run = z.infer<typeof Run>;

export const MetricPoint = z.object({ step: z.int(), name: z.string(), value: z.number().nullable() });
export type MetricPoint = z.infer<typeof MetricPoint>;

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

/**
 * Hyperparameters (contract/hparams.ts): defaults filled in, limits and cross-field checks; a bad one is refused by
 * the dispatcher naming its path (`hparams.rank`), an unknown field too.
 */
export const Hparams = hparamsSchema.prefault({});

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
export const StartRunInput = z.strictObject({
  name: Name.optional(),
  model: ModelRef,
  data: TrainData,
  hparams: Hparams,
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

export const runsMethods = defineMethods({
  'runs.list': {
    input: z.strictObject({ status: RunStatus.optional(), datasetId: Id.optional() }),
    output: z.object({ runs: z.array(Run) }),
    summary: 'Training runs, newest first.',
  },
  'runs.get': { input: z.strictObject({ id: Id }), output: Run, summary: 'One run.' },
  'runs.metrics': {
    input: z.strictObject({
      id: Id,
      name: z.string().min(1).optional(),
      /** Only these metric names (loss, lr, grad_norm, samples_per_sec, tokens_per_sec, eval_<name>). */
      names: z.array(z.string().min(1)).max(100).optional(),
      /** Only points after this step (for incremental chart updates). */
      sinceStep: z.int().optional(),
    }),
    output: z.object({
      points: z.array(MetricPoint),
      /** The same points by name, as columns (steps ascending). */
      series: z.record(z.string(), z.object({ steps: z.array(z.int()), values: z.array(z.number().nullable()) })),
    }),
    summary: "A run's metric series (all names, or some; optionally only after a step).",
  },
  'runs.estimate': {
    input: z.strictObject({ model: ModelRef, data: TrainData, hparams: Hparams }),
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
    input: z.strictObject({
      id: Id,
      /** Continue on another device (e.g. the CPU after the GPU was lost). */ device: Device.optional(),
    }),
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
    output: z.object({
      checkpoints: z.array(Checkpoint),
      finalDir: z.string().nullable(),
      finalBytes: z.number().int().nonnegative().nullable(),
    }),
    summary:
      "A run's kept checkpoints (oldest first) and its final adapter folder (and its size in bytes) once completed.",
  },
});

export const runsEvents = defineEvents({
  /** A run's status changed (queued → running → completed, ...). */
  'runs.status': z.object({ runId: Id, status: RunStatus, error: z.string().nullable().optional() }),
  /**
   * Progress of a running run, at most ~10 per second: the last step finished and its scalar metrics, and in
   * `points` every step finished since the previous event (ascending, the last one included).
   */
  'runs.progress': z.object({
    runId: Id,
    step: z.int().nonnegative(),
    totalSteps: z.int().nonnegative().nullable(),
    metrics: z.record(z.string(), z.number().nullable()),
    points: z
      .array(z.object({ step: z.int().nonnegative(), metrics: z.record(z.string(), z.number().nullable()) }))
      .min(1),
  }),
  /** An evaluation during training finished (metrics at that step; predictions stored as evaluation evaluationId). */
  'runs.eval': z.object({
    runId: Id,
    step: z.int().nonnegative(),
    metrics: z.record(z.string(), z.number().nullable()),
    evaluationId: Id.nullable(),
  }),
  /** A checkpoint was committed (and older ones pruned). */
  'runs.checkpoint': z.object({
    runId: Id,
    step: z.int().nonnegative(),
    path: z.string(),
    bytes: z.number(),
    pruned: z.array(z.int()),
  }),
  /** The job started, from the start or resumed from the checkpoint at step `resumedFrom`; totalSteps in all. */
  'runs.started': z.object({
    runId: Id,
    totalSteps: z.int().nonnegative(),
    resumedFrom: z.int().nonnegative().nullable(),
  }),
  /** The job ended its work: done (final metrics, output folder), or paused / cancelled at a step (a failure is a runs.log error). */
  'runs.ended': z.object({
    runId: Id,
    kind: z.enum(['done', 'paused', 'cancelled']),
    step: z.int().nonnegative(),
    metrics: z.record(z.string(), z.number().nullable()).optional(),
    outputDir: z.string().optional(),
  }),
  /** A line from a run's job (warnings, errors, notes). */
  'runs.log': z.object({ runId: Id, level: z.enum(['info', 'warn', 'error']), message: z.string() }),
});
