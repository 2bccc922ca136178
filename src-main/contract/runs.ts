import { z } from 'zod';
import { defineEvents, defineMethods } from './define';
import { Id, JsonObject, Timestamp } from './common';

export const RUN_STATUSES = ['queued', 'running', 'paused', 'completed', 'failed', 'cancelled', 'interrupted'] as const;
export const RunStatus = z.enum(RUN_STATUSES);
export type RunStatus = z.infer<typeof RunStatus>;

export const Run = z.object({
  id: Id,
  name: z.string(),
  modelId: Id.nullable(),
  modelName: z.string().nullable(),
  datasetId: Id.nullable(),
  datasetName: z.string().nullable(),
  config: JsonObject,
  status: RunStatus,
  step: z.int().nonnegative(),
  totalSteps: z.int().nonnegative().nullable(),
  error: z.string().nullable(),
  createdAt: Timestamp,
  startedAt: Timestamp.nullable(),
  finishedAt: Timestamp.nullable(),
  updatedAt: Timestamp,
});
export type Run = z.infer<typeof Run>;

export const MetricPoint = z.object({ step: z.int(), name: z.string(), value: z.number().nullable() });
export type MetricPoint = z.infer<typeof MetricPoint>;

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
    points: z.array(z.object({ step: z.int().nonnegative(), metrics: z.record(z.string(), z.number().nullable()) })).min(1),
  }),
});
